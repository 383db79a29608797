//! `regis get` and `regis verify`: a remote register checked against a
//! pinned verifier key, by regis-client. No logic here but printing.

use std::path::PathBuf;

use anyhow::{Context, Result};
use regis_client::{Client, VerifiedCheckpoint};
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
    let record = client.record(&args.record, &checkpoint)?;
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
    Ok(())
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
