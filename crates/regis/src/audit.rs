//! `regis audit`: check that a remote register's logs only grow, by
//! regis-client's auditor. No logic here but reading, writing and printing.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use regis_client::audit::{AuditError, Auditor, Evidence, ForkKind, write_atomically};
use regis_model::format_hash;
use regis_note::Verifier;

use crate::remote::{Witnesses, cosigned};

/// `regis audit URL --key VKEY --state FILE [--witness-policy FILE]`, or
/// `regis audit --key VKEY --evidence FILE`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// The register's base URL: http(s)://host/registers/NAME.
    #[arg(required_unless_present = "evidence")]
    url: Option<String>,
    /// The user log's verifier key (`name+hex+base64`), pinned.
    #[arg(long = "key", value_name = "VKEY")]
    key: String,
    /// Where the last verified checkpoints are kept (JSON, written
    /// atomically). Evidence of a fork is written beside it.
    #[arg(long, value_name = "FILE", required_unless_present = "evidence")]
    state: Option<PathBuf>,
    #[command(flatten)]
    witnesses: Witnesses,
    /// Instead of auditing, re-check an evidence file (written by an
    /// audit, here or anywhere) with nothing but it and the key.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["url", "state", "witness_policy"])]
    evidence: Option<PathBuf>,
}

fn evidence_path(state: &Path) -> PathBuf {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut name = state.as_os_str().to_owned();
    name.push(format!(".evidence-{seconds}"));
    PathBuf::from(name)
}

pub fn run(args: &AuditArgs) -> Result<()> {
    let key = Verifier::parse(&args.key).context("--key")?;
    let (Some(url), Some(state)) = (&args.url, &args.state) else {
        let Some(evidence) = &args.evidence else {
            bail!("give URL and --state to audit, or --evidence to check evidence");
        };
        return check_evidence(evidence, &key);
    };
    let policy = args.witnesses.policy()?;
    let auditor = Auditor::new(url, key)?;
    let auditor = match policy {
        Some(policy) => auditor.with_witness_policy(policy),
        None => auditor,
    };
    let previous = match std::fs::read(state) {
        Ok(bytes) => Some(
            auditor
                .parse_state(&bytes)
                .with_context(|| format!("{}", state.display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", state.display())),
    };
    let audit = match auditor.audit(previous) {
        Ok(audit) => audit,
        Err(AuditError::Fork(evidence)) => {
            let path = evidence_path(state);
            write_atomically(&path, evidence.encode().as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            println!("evidence: {}", path.display());
            bail!(
                "{}: evidence written to {}",
                AuditError::Fork(evidence),
                path.display()
            );
        }
        Err(other) => return Err(other.into()),
    };
    write_atomically(state, auditor.encode_state(&audit.state).as_bytes())
        .with_context(|| format!("writing {}", state.display()))?;
    let logs = [("user", &audit.state.user), ("system", &audit.state.system)];
    match &audit.previous {
        None => {
            println!(
                "no saved state: trusting these checkpoints on first use (signatures and tiles verified)"
            );
            for (log, checkpoint) in logs {
                println!(
                    "{log} log: checkpoint {}, root {}{}",
                    checkpoint.size(),
                    format_hash(checkpoint.root()),
                    cosigned(checkpoint)
                );
            }
        }
        Some(previous) => {
            let old = [previous.user.size(), previous.system.size()];
            for ((log, checkpoint), old) in logs.into_iter().zip(old) {
                println!(
                    "{log} log: checkpoint {} is consistent with the saved checkpoint {old}, root {}{}",
                    checkpoint.size(),
                    format_hash(checkpoint.root()),
                    cosigned(checkpoint)
                );
            }
        }
    }
    println!("saved to {}", state.display());
    Ok(())
}

/// Re-checks an evidence file: both checkpoints signed by the key, and
/// contradicting each other as the file says.
fn check_evidence(path: &Path, key: &Verifier) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let evidence = Evidence::verify(&bytes, key).with_context(|| format!("{}", path.display()))?;
    let (old, new) = (evidence.old.size(), evidence.new.size());
    let checkpoints = match &evidence.origin {
        Some(origin) => format!("checkpoints {old} and {new} of the log {origin:?}"),
        None => format!("the {} log's checkpoints {old} and {new}", evidence.log),
    };
    println!(
        "the evidence holds: {checkpoints}, both signed by {}, are {}",
        evidence.key,
        match evidence.kind {
            ForkKind::Inconsistent => "inconsistent: the tiles show the older tree is no prefix",
            ForkKind::SameSizeDifferentRoot => "of one size with different roots",
            ForkKind::Smaller => "a log that shrank",
        }
    );
    Ok(())
}
