//! `regis mirror`: replicate a remote register into a local mirror, by
//! regis-mirror. No logic here but printing.

use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use regis_mirror::{FollowEvent, Mirror, SyncProgress, SyncReport};
use regis_model::{PerLog, format_hash};
use regis_note::Verifier;
use regis_store::{DirBackend, Registry};

use crate::remote::Witnesses;

/// `regis mirror URL --key VKEY --data DIR [--witness-policy FILE] [--follow]`.
#[derive(Debug, clap::Args)]
pub struct MirrorArgs {
    /// The register's base URL: http(s)://host/registers/NAME.
    url: String,
    /// The user log's verifier key (`name+hex+base64`), pinned: obtained
    /// from the custodian out of band. The system log's key is derived
    /// from it.
    #[arg(long = "key", value_name = "VKEY")]
    key: String,
    #[command(flatten)]
    pub data: super::Data,
    #[command(flatten)]
    witnesses: Witnesses,
    /// After catching up, follow the register's events and copy each new
    /// checkpoint as it is published (until killed).
    #[arg(long)]
    follow: bool,
}

/// How long the event stream may stay silent (the server sends a
/// keep-alive every 15 s) before it is taken for dead.
const EVENTS_IDLE: Duration = Duration::from_secs(45);

fn progress_bar() -> Result<ProgressBar> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg:10} [{bar:40}] {pos}/{len} entries ({eta})")?
            .progress_chars("=> "),
    );
    bar.set_message("mirroring");
    Ok(bar)
}

fn summary(name: &str, url: &str, report: &SyncReport) -> String {
    let PerLog { user, system } = report.after;
    format!(
        "mirrored {name} from {url}: {} user and {} system entries copied, {} new items; user log {} entries, root {}; system log {} entries, root {}",
        report.copied.user,
        report.copied.system,
        report.items,
        user.size,
        format_hash(&user.root),
        system.size,
        format_hash(&system.root),
    )
}

pub fn run<B: DirBackend>(args: &MirrorArgs) -> Result<()> {
    let key = Verifier::parse(&args.key).context("--key")?;
    let policy = args.witnesses.policy()?;
    let registry = Registry::new(&args.data.data, "localhost");
    let (mirror, created) = Mirror::<B>::open_or_create(&registry, &args.url, key)?;
    let mut mirror = match policy {
        Some(policy) => mirror.with_witness_policy(policy),
        None => mirror,
    };
    let name = mirror.name().clone();
    let url = mirror.client().base_url().to_owned();
    let bar = progress_bar()?;
    let mut progress = |p: SyncProgress| {
        bar.set_length(p.total);
        bar.set_position(p.done);
    };
    let synced = mirror.sync(&mut progress);
    bar.finish_and_clear();
    let report = match synced {
        Ok(report) => report,
        Err(error) => {
            // A mirror this run created holds nothing: remove it.
            if created && mirror.heads().iter().all(|(_, head)| head.size == 0) {
                drop(mirror);
                let dir = registry.dir(&name);
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("removing {}", dir.display()))?;
            }
            return Err(error.into());
        }
    };
    println!("{}", summary(name.as_str(), &url, &report));
    if !args.follow {
        return Ok(());
    }
    let bar = progress_bar()?;
    let mut progress = |p: SyncProgress| {
        bar.set_length(p.total);
        bar.set_position(p.done);
    };
    let mut observe = |event: FollowEvent| match event {
        FollowEvent::Connected => eprintln!("following {url}/events"),
        FollowEvent::Synced(report) => {
            bar.set_length(0);
            bar.set_position(0);
            if report.before != report.after {
                println!("{}", summary(name.as_str(), &url, &report));
            }
        }
        FollowEvent::Retrying { reason, wait } => {
            eprintln!("{reason}; retrying in {} s", wait.as_secs())
        }
    };
    mirror.follow(EVENTS_IDLE, &|| false, &mut observe, &mut progress)?;
    Ok(())
}
