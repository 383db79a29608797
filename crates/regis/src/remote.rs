//! `regis get` and `regis verify`: a remote register checked against a
//! pinned verifier key, by regis-client. No logic here but printing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use regis_client::{Client, LinkKeys, LinkOutcome, VerifiedCheckpoint};
use regis_model::api::records_json;
use regis_model::{Record, Timestamp, format_hash};
use regis_note::{Verifier, WitnessPolicy};

/// `--witness-policy FILE`, for every command that reads a remote register.
#[derive(Debug, clap::Args)]
pub struct Witnesses {
    /// A C2SP tlog-policy file (`witness NAME VKEY`, `group …`, `quorum
    /// …`): every checkpoint must then also carry cosignatures of its
    /// witnesses that make up its quorum. Pinned, as the key is.
    #[arg(long = "witness-policy", value_name = "FILE")]
    witness_policy: Option<PathBuf>,
}

impl Witnesses {
    /// The policy, if one is given; a file that does not parse is an error
    /// naming the file and the line.
    pub fn policy(&self) -> Result<Option<WitnessPolicy>> {
        let Some(path) = &self.witness_policy else {
            return Ok(None);
        };
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let policy = WitnessPolicy::parse(&bytes).with_context(|| format!("{}", path.display()))?;
        Ok(Some(policy))
    }
}

/// `, cosigned by NAME at TIME, …` for a checkpoint a witness policy
/// accepted; nothing without one.
pub fn cosigned(checkpoint: &VerifiedCheckpoint) -> String {
    checkpoint
        .cosigned_by()
        .iter()
        .enumerate()
        .map(|(index, (name, time))| {
            let at = i64::try_from(*time)
                .ok()
                .and_then(Timestamp::from_unix_seconds)
                .map_or_else(|| time.to_string(), |t| t.as_str().to_owned());
            let lead = if index == 0 { ", cosigned by" } else { "," };
            format!("{lead} {name} at {at}")
        })
        .collect()
}

/// Where the register is and which key its user log must be signed by.
#[derive(Debug, clap::Args)]
pub struct Remote {
    /// The register's base URL: http(s)://host/registers/NAME.
    url: String,
    /// The user log's verifier key (`name+hex+base64`), pinned: obtained
    /// from the custodian out of band, never from the server being checked.
    #[arg(long = "key", value_name = "VKEY")]
    key: String,
    #[command(flatten)]
    witnesses: Witnesses,
}

impl Remote {
    fn client(&self) -> Result<Client> {
        let key = Verifier::parse(&self.key).context("--key")?;
        let client = Client::new(&self.url, key)?;
        Ok(match self.witnesses.policy()? {
            Some(policy) => client.with_witness_policy(policy),
            None => client,
        })
    }
}

/// `regis get URL KEY --key VKEY [--witness-policy FILE]`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    #[command(flatten)]
    remote: Remote,
    /// The record's key.
    #[arg(value_name = "KEY")]
    record: String,
    /// Also verify the records it links to, each in its own register
    /// (`B/records/KEY/proof?links=1`).
    #[arg(long)]
    links: bool,
    /// A linked register's user-log verifier key, pinned as --key is:
    /// REGISTER=VKEY; repeatable. A linked record served with a proof
    /// needs its register's key.
    #[arg(long = "link-key", value_name = "REGISTER=VKEY", requires = "links")]
    link_keys: Vec<String>,
    /// A trusted register of registers (its base URL): a linked register
    /// without a --link-key takes the `log-public-key` of its record there,
    /// verified with --registry-key.
    #[arg(long, value_name = "URL", requires_all = ["links", "registry_key"])]
    registry: Option<String>,
    /// The user-log verifier key of --registry, pinned.
    #[arg(long = "registry-key", value_name = "VKEY", requires = "registry")]
    registry_key: Option<String>,
}

/// `regis verify URL --key VKEY [--witness-policy FILE] [--full]`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    remote: Remote,
    /// Also replay the whole log: every entry, leaf and item, and
    /// re-derive every record.
    #[arg(long)]
    full: bool,
    /// With --full, also check that the server's `B/records` pages list
    /// exactly the records re-derived (what consumers read without a
    /// proof). Paged through the API, so slower than the replay.
    #[arg(long, requires = "full")]
    records: bool,
}

/// Prints the record (GOV.UK record JSON) and the checkpoint it was
/// verified against.
pub fn get(args: &GetArgs) -> Result<()> {
    let client = args.remote.client()?;
    let checkpoint = client.checkpoint()?;
    let (record, links) = if args.links {
        let mut keys = LinkKeys::pinned(link_keys(&args.link_keys)?);
        if let (Some(url), Some(key)) = (&args.registry, &args.registry_key) {
            let key = Verifier::parse(key).context("--registry-key")?;
            keys = keys.with_registry(Client::new(url, key)?);
        }
        let linked = client.record_with_links(&args.record, &checkpoint, &mut keys)?;
        (linked.record, linked.links)
    } else {
        (client.record(&args.record, &checkpoint)?, Vec::new())
    };
    println!(
        "{}",
        records_json([Record {
            number: record.number,
            entry: &record.entry,
            items: record.items.iter().collect(),
        }])
    );
    println!(
        "verified against checkpoint {} of {}{}",
        record.checkpoint.size(),
        client.key().name(),
        cosigned(&record.checkpoint)
    );
    for check in &links {
        let link = &check.link;
        let outcome = match &check.outcome {
            LinkOutcome::Verified(target) => format!(
                "verified: entry {} against checkpoint {} of {}",
                target.number,
                target.checkpoint.size(),
                target.checkpoint.signed().checkpoint().origin()
            ),
            LinkOutcome::Dangling => "not verified: the server says it has no such record".into(),
            LinkOutcome::Unresolvable => {
                "not verified: the server cannot resolve its register".into()
            }
            LinkOutcome::Unavailable(why) => format!("not verified: {why}"),
        };
        println!(
            "link {}={:?} -> {}:{}: {outcome}",
            link.field, link.value, link.register, link.key
        );
    }
    Ok(())
}

/// `--link-key REGISTER=VKEY` values, by register.
fn link_keys(values: &[String]) -> Result<BTreeMap<String, Verifier>> {
    let mut keys = BTreeMap::new();
    for value in values {
        let (register, key) = value
            .split_once('=')
            .with_context(|| format!("--link-key {value:?}: expected REGISTER=VKEY"))?;
        let key = Verifier::parse(key).with_context(|| format!("--link-key {register}"))?;
        if keys.insert(register.to_owned(), key).is_some() {
            anyhow::bail!("--link-key {register} is given twice");
        }
    }
    Ok(keys)
}

/// Prints what was verified.
pub fn verify(args: &VerifyArgs) -> Result<()> {
    let client = args.remote.client()?;
    // The replay reads the checkpoint's partial objects too: a static copy
    // may delete them meanwhile, and then both are read again.
    let (checkpoint, replay) = client.at_checkpoint(|checkpoint| {
        client.verify_tree(checkpoint)?;
        args.full.then(|| client.replay(checkpoint)).transpose()
    })?;
    println!(
        "checkpoint {} of {} verified with the pinned key: root {}{}",
        checkpoint.size(),
        client.key().name(),
        format_hash(checkpoint.root()),
        cosigned(&checkpoint)
    );
    println!("hash tiles: the right edge folds to the root");
    if let Some(replay) = replay {
        println!(
            "replayed {} entries: every leaf matches the verified tiles, {} items re-hashed, {} records re-derived, root recomputed",
            replay.entries,
            replay.items,
            replay.records.len()
        );
        if args.records {
            let records = client.check_records(&replay, &checkpoint)?;
            println!(
                "B/records: {} records listed exactly as re-derived{}",
                records.matching,
                if records.newer > 0 {
                    format!(
                        "; {} changed after checkpoint {} (not compared)",
                        records.newer,
                        checkpoint.size()
                    )
                } else {
                    String::new()
                }
            );
        }
    }
    Ok(())
}
