//! `regis serve`: the HTTP read API (regis-server) over the registers of a
//! data directory; `--demo` first loads the built-in element register.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use regis_server::{App, Config, demo};
use regis_store::{DirBackend, Log, Registry};

/// `regis serve` options; each overrides the `--config` file's value.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A TOML configuration (listen, data, host, [limits]).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The data directory (default ./regis-data; with --demo, a new
    /// temporary one).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// The address to listen on (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// The host in the origins of registers created here (--demo).
    #[arg(long)]
    host: Option<String>,
    /// Load the demo register of the 118 chemical elements, print its URL,
    /// its verifier key and a curl command for a record with its proof.
    #[arg(long)]
    demo: bool,
    /// The storage backend.
    #[arg(long, value_enum, default_value_t = crate::Backend::Redb)]
    pub backend: crate::Backend,
}

/// Logs to standard error, at `RUST_LOG`'s levels (default info).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run<B: DirBackend>(args: Args) -> Result<()> {
    init_logging();
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(host) = args.host {
        config.host = host;
    }
    // Kept until this function returns, then removed.
    let mut demo_dir = None;
    match (args.data, args.demo) {
        (Some(data), _) => config.data = data,
        (None, true) => {
            let dir = demo_dir.insert(demo::DemoDir::new()?);
            config.data = dir.path().to_owned();
        }
        (None, false) => {}
    }
    if args.demo {
        let registry = Registry::new(&config.data, &config.host);
        demo::prepare::<B>(&registry).context("preparing the demo register")?;
    }
    let demo = args.demo;
    regis_server::run::<B>(&config, |addr, app: &App<B>| {
        println!("regis: serving {} on http://{addr}/", config.data.display());
        if demo && let Ok(element) = app.register(demo::NAME) {
            let base = format!("http://{addr}/registers/{}", demo::NAME);
            println!("register: {base}");
            println!("log verifier key: {}", element.verifier(Log::User));
            println!("system log verifier key: {}", element.verifier(Log::System));
            println!("a record with its proof:");
            println!("  curl -s {base}/records/{}/proof", demo::EXAMPLE_KEY);
            println!("as a C2SP tlog-proof:");
            println!(
                "  curl -s {base}/records/{}/proof.tlog-proof",
                demo::EXAMPLE_KEY
            );
        }
    })
    .context("serving")
}
