//! `regis publish`: a one-shot catch-up of a static copy in object storage
//! (regis-publish, `spec/static.md`): per register, one publication from
//! where the target and the state file say to the pair the server would
//! serve; resumable, as every publication is.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use regis_model::RegisterName;
use regis_publish::{ObjectStoreTarget, Settings};
use regis_server::Config;
use regis_server::publishing::publish_once;
use regis_store::{DirBackend, Registry};

/// `regis publish` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The data directory (default: the --config file's, else
    /// ./regis-data). The server must not be running on it.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// The server's configuration: its data directory, its witness policy
    /// (a witnessed register is published at its witnessed checkpoints),
    /// and its [publish] target and options when --to is not given.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Only this register (default: every one).
    #[arg(long)]
    register: Option<String>,
    /// The target: s3://bucket/prefix, file:///srv/regis-static, …
    #[arg(long, value_name = "URL")]
    to: Option<String>,
    /// An object_store option (aws_endpoint=…, aws_allow_http=true, …),
    /// beside the AWS_* environment; repeatable.
    #[arg(long = "option", value_name = "KEY=VALUE")]
    options: Vec<String>,
    /// The storage backend.
    #[arg(long, value_enum, default_value_t = crate::Backend::Redb)]
    pub backend: crate::Backend,
}

/// Publishes each register; fails naming the first that failed, after
/// trying every one.
pub fn run<B: DirBackend>(args: &Args) -> Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(data) = &args.data {
        config.data = data.clone();
    }
    let mut options = config
        .publish
        .as_ref()
        .map(regis_server::publishing::PublishConfig::options)
        .unwrap_or_default();
    for option in &args.options {
        let Some((key, value)) = option.split_once('=') else {
            bail!("--option {option}: expected KEY=VALUE");
        };
        options.push((key.to_owned(), value.to_owned()));
    }
    let url = match (&args.to, &config.publish) {
        (Some(url), _) => url.clone(),
        (None, Some(publish)) => publish.url.clone(),
        (None, None) => bail!("no target: give --to URL (or a --config with [publish])"),
    };
    let settings = config
        .publish
        .as_ref()
        .map_or_else(Settings::default, |publish| publish.settings());
    let target = Arc::new(ObjectStoreTarget::new(&url, &options)?);
    let witness = config.witness_settings()?;
    let registry = Registry::new(&config.data, &config.host);
    let names = match &args.register {
        Some(name) => {
            let name = RegisterName::new(name)?;
            if !registry.exists::<B>(&name) {
                bail!("{} holds no register {name}", config.data.display());
            }
            vec![name]
        }
        None => registry.list::<B>()?,
    };
    let mut failed = Vec::new();
    for name in names {
        match publish_once::<B>(&registry, &name, &witness, target.clone(), settings) {
            Ok(true) => println!("{name}: published to {url}"),
            Ok(false) => println!("{name}: {url} is up to date"),
            Err(error) => {
                eprintln!("regis: {name}: {error:#}");
                failed.push(name.to_string());
            }
        }
    }
    if !failed.is_empty() {
        return Err(anyhow::anyhow!("{}", failed.join(", ")))
            .context("these registers were not published");
    }
    Ok(())
}
