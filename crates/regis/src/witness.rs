//! `regis witness`: a C2SP tlog-witness for Regis logs and any other C2SP
//! log (regis-witness). No logic here but parsing arguments and printing.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use regis_note::{KeyName, Verifier};
use regis_witness::{KEY_FILE, Limits, Witness};

#[derive(Debug, Subcommand)]
pub enum WitnessCommand {
    /// Make a witness's data directory with a new cosigning key (type
    /// 0x04, kept 0600 in DIR/witness-key); print its verifier key alone
    /// on the last line, for the logs' witness policies.
    Init {
        /// The witness's data directory.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// The witness's name, in its key and every cosignature line (a
        /// schema-less URL, such as witness.example.gov.uk/w1).
        #[arg(long)]
        name: String,
    },
    /// Trust a log: cosign checkpoints of ORIGIN signed by VKEY. A
    /// register has two logs, each added once: `regis key` prints their
    /// origins and keys. Any C2SP log with an Ed25519 key will do (Go's
    /// checksum database: ORIGIN `go.sum database tree`, VKEY
    /// `sum.golang.org+033de0ae+…`).
    AddLog {
        /// The witness's data directory.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// The log's origin (its checkpoints' first line).
        #[arg(long)]
        origin: String,
        /// The log's verifier key (`name+hex+base64`, type 0x01).
        #[arg(long = "key", value_name = "VKEY")]
        key: String,
    },
    /// Serve the witness over HTTP (POST /add-checkpoint, GET /<origin
    /// hash>/checkpoint, GET /healthz) until Ctrl-C or SIGTERM.
    Serve {
        /// The witness's data directory.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// The address to listen on.
        #[arg(long, value_name = "ADDR")]
        listen: SocketAddr,
    },
}

pub fn run(command: WitnessCommand) -> Result<()> {
    match command {
        WitnessCommand::Init { data, name } => {
            let name = KeyName::new(name.as_str()).context("--name")?;
            let verifier = regis_witness::init(&data, name)?;
            println!("witness in {}", data.display());
            println!(
                "its cosigning key is {} (mode 0600); its verifier key:",
                data.join(KEY_FILE).display()
            );
            println!("{verifier}");
        }
        WitnessCommand::AddLog { data, origin, key } => {
            let key = Verifier::parse(&key).context("--key")?;
            if regis_witness::add_log(&data, &origin, &key)? {
                println!("trusting {key} for {origin}");
            } else {
                println!("already trusting {key} for {origin}");
            }
            println!("a witness serving reads its logs when it starts: restart it");
        }
        WitnessCommand::Serve { data, listen } => {
            crate::serve::init_logging();
            let witness = Witness::open(&data)?;
            let verifier = witness.verifier();
            let origins: Vec<String> = witness.origins().into_iter().map(str::to_owned).collect();
            regis_witness::run(
                witness,
                listen,
                Limits::default(),
                |addr| {
                    println!(
                        "regis: witness {} serving on http://{addr}/",
                        data.display()
                    );
                    println!("verifier key: {verifier}");
                    for origin in &origins {
                        println!("trusted log: {origin}");
                    }
                },
                regis_server::shutdown_signal(),
            )
            .with_context(|| format!("serving on {listen}"))?;
        }
    }
    Ok(())
}
