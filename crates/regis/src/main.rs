//! `regis`: the command line. Wires the crates together; every rule lives in
//! a library (regis-model reads and checks documents, regis-store stores,
//! sequences and signs them).
// Doc comments here are clap's --help text, written for a terminal, not
// rustdoc: `[limits]` and `<name>` are meant literally.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use regis_model::rsf::{Policy, RsfReader};
use regis_model::{PerLog, RegisterName, Resolution, format_hash, import};
use regis_server::links::{LinkMode, LinkSettings};
use regis_store::{
    Commands, DirBackend, FsckReport, Log, RedbBackend, RegisterKind, Registry, Request, Scope,
    Sequencer, SequencerConfig, TOKENS_FILE, Tokens, fsck, link_census, load_schema, resolve_among,
    system_clock,
};

/// See `tikv-jemallocator` in the workspace's Cargo.toml for why.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod audit;
mod mirror;
mod publish;
mod remote;
mod serve;
mod witness;

#[derive(Debug, Parser)]
#[command(name = "regis", version, about = "A verifiable register server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where registers are kept, and in which database.
#[derive(Debug, clap::Args)]
struct Data {
    /// The data directory (registers live in DIR/registers/<name>/).
    #[arg(long, value_name = "DIR", default_value = "./regis-data")]
    pub data: PathBuf,
    /// The storage backend.
    #[arg(long, value_enum, default_value_t = Backend::Redb)]
    pub backend: Backend,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    /// redb: checksummed, fsync on commit (the default).
    Redb,
    /// sled: opt-in; its flush does not fully sync on Linux.
    #[cfg(feature = "sled")]
    Sled,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load an RSF (or TSV/CSV) file into a register, creating the register
    /// if it is new. All or nothing: a failed assert-root-hash changes
    /// nothing. Published history's slips (an item no entry references, a
    /// system entry of no known key) load with a warning naming the line.
    Load {
        #[command(flatten)]
        data: Data,
        /// The register's name.
        #[arg(long)]
        register: String,
        /// The host in the origins of a new register's logs.
        #[arg(long, default_value = "localhost")]
        host: String,
        /// The file: RSF, or TSV/CSV by its extension (new entries for a
        /// register already defined, stamped now).
        file: PathBuf,
        /// Refuse the slips an RSF file otherwise loads with a warning.
        #[arg(long)]
        strict: bool,
    },
    /// Print a register's log origins and verifier keys.
    Key {
        #[command(flatten)]
        data: Data,
        /// The register's name.
        #[arg(long)]
        register: String,
    },
    /// Mint a write token for a register (or, with --admin, one that may
    /// create registers over HTTP). It is printed once, alone on the last
    /// line; only its SHA-256 is kept (DIR/tokens).
    Token {
        #[command(flatten)]
        data: Data,
        /// The register the token writes to.
        #[arg(long, required_unless_present = "admin", conflicts_with = "admin")]
        register: Option<String>,
        /// A token for `POST /registers` instead.
        #[arg(long)]
        admin: bool,
    },
    /// Recompute every item hash, leaf, stored hash, root and index of every
    /// register (or one); report the first difference.
    Fsck {
        #[command(flatten)]
        data: Data,
        /// Only this register.
        #[arg(long)]
        register: Option<String>,
        /// Count the links of every record instead (`NAME: N links, M
        /// dangling, U unresolvable`), resolved against the registers of
        /// DIR, and list the dangling and unresolvable ones.
        #[arg(long)]
        links: bool,
    },
    /// Serve the registers of a data directory over HTTP (the read API,
    /// tlog tiles and proofs); `--demo` loads a demo register first.
    Serve(serve::Args),
    /// Fetch one record of a remote register and verify it (proof,
    /// checkpoint, items) against a pinned verifier key.
    Get(remote::GetArgs),
    /// Verify a remote register against a pinned verifier key: its
    /// checkpoint and hash tiles; with --full, every entry and item.
    Verify(remote::VerifyArgs),
    /// Replicate a remote register into a local mirror (DIR/registers/NAME),
    /// verifying every checkpoint, entry and item before storing it;
    /// --follow keeps it up to date.
    Mirror(mirror::MirrorArgs),
    /// Check that a remote register's logs extend the checkpoints last seen
    /// (kept in --state); on a fork, write the evidence and fail.
    Audit(audit::AuditArgs),
    /// Publish a static copy of registers to object storage (s3://…,
    /// file://…): one catch-up from where the target stands; resumable.
    Publish(publish::Args),
    /// Run a witness (C2SP tlog-witness) that cosigns the checkpoints of
    /// the logs it trusts, each only if it extends the last it cosigned.
    Witness {
        #[command(subcommand)]
        command: witness::WitnessCommand,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("regis: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    let backend = match &command {
        Command::Load { data, .. }
        | Command::Key { data, .. }
        | Command::Token { data, .. }
        | Command::Fsck { data, .. } => data.backend,
        Command::Serve(args) => args.backend,
        Command::Mirror(args) => args.data.backend,
        Command::Publish(args) => args.backend,
        // Remote commands open no store: any backend will do.
        Command::Get(_) | Command::Verify(_) | Command::Audit(_) | Command::Witness { .. } => {
            Backend::Redb
        }
    };
    match backend {
        Backend::Redb => run_with::<RedbBackend>(command),
        #[cfg(feature = "sled")]
        Backend::Sled => run_with::<regis_store::SledBackend>(command),
    }
}

fn run_with<B: DirBackend>(command: Command) -> Result<()> {
    match command {
        Command::Load {
            data,
            register,
            host,
            file,
            strict,
        } => {
            let policy = if strict {
                Policy::IMPORT_STRICT
            } else {
                Policy::IMPORT
            };
            load::<B>(&Registry::new(&data.data, &host), &register, &file, policy)
        }
        Command::Key { data, register } => key::<B>(&data.data, &register),
        Command::Token { data, register, .. } => token::<B>(&data.data, register.as_deref()),
        Command::Fsck {
            data,
            register,
            links: false,
        } => check::<B>(&data.data, register.as_deref()),
        Command::Fsck {
            data,
            register,
            links: true,
        } => check_links::<B>(&data.data, register.as_deref()),
        Command::Serve(args) => serve::run::<B>(args),
        Command::Get(args) => remote::get(&args),
        Command::Verify(args) => remote::verify(&args),
        Command::Mirror(args) => mirror::run::<B>(&args),
        Command::Publish(args) => publish::run::<B>(&args),
        Command::Audit(args) => audit::run(&args),
        Command::Witness { command } => witness::run(command),
    }
}

fn token<B: DirBackend>(data: &Path, register: Option<&str>) -> Result<()> {
    let scope = match register {
        Some(register) => {
            let name = RegisterName::new(register)?;
            if !Registry::new(data, "localhost").exists::<B>(&name) {
                bail!("{} holds no register {name}", data.display());
            }
            Scope::Register(name)
        }
        None => Scope::Admin,
    };
    let minted = Tokens::new(data).mint(scope)?;
    match &minted.scope {
        Scope::Register(name) => println!("write token for register {name}"),
        Scope::Admin => println!("admin token (creates registers: POST /registers)"),
    }
    println!(
        "shown once: only its SHA-256 is kept, in {}",
        data.join(TOKENS_FILE).display()
    );
    println!("{}", minted.token);
    Ok(())
}

/// Loads `file`: RSF under `policy`, a table under every rule.
fn load<B: DirBackend>(
    registry: &Registry,
    register: &str,
    file: &Path,
    policy: Policy,
) -> Result<()> {
    let name = RegisterName::new(register)?;
    let mut input = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    // RSF whatever its extension (GOV.UK's own test files end in .tsv); else
    // a custodian's table, by its extension.
    let is_rsf = {
        let mut start = [0u8; 17];
        let read = std::io::Read::read(&mut input, &mut start)?;
        std::io::Seek::rewind(&mut input)?;
        ["add-item\t", "append-entry\t", "assert-root-hash\t"]
            .iter()
            .any(|command| start[..read].starts_with(command.as_bytes()))
    };
    let tabular = match file.extension().and_then(|e| e.to_str()) {
        _ if is_rsf => None,
        Some("tsv") => Some(import::Format::Tsv),
        Some("csv") => Some(import::Format::Csv),
        _ => None,
    };
    let bar = ProgressBar::new(input.metadata()?.len()).with_style(
        ProgressStyle::with_template("{msg:10} [{bar:40}] {bytes}/{total_bytes} ({eta})")?
            .progress_chars("=> "),
    );
    // An RSF file is read as it is loaded, in one transaction: memory does
    // not grow with it, and a malformed line fails the load, which then
    // changes nothing.
    let rsf = match tabular {
        None => Some(input),
        Some(_) => None,
    };
    let created = !registry.exists::<B>(&name);
    if created {
        // Published history: its links are warned of, not refused.
        LinkSettings::mark(&registry.dir(&name), LinkMode::Warn)?;
    }
    let opened = if created {
        registry.create::<B>(&name)
    } else {
        registry.open::<B>(&name)
    };
    let result = opened.map_err(anyhow::Error::from).and_then(|opened| {
        let request = match (rsf, tabular) {
            (Some(input), _) => {
                bar.set_message("loading");
                Request::Stream {
                    commands: Commands::new(RsfReader::new(BufReader::new(bar.wrap_read(input)))),
                    policy,
                }
            }
            (None, Some(format)) => {
                bar.set_message("reading");
                let schema = load_schema(name.as_str(), &opened.store)?;
                let now = system_clock()().context("the system clock is out of range")?;
                let input = BufReader::new(bar.wrap_read(File::open(file)?));
                let rows = import::Importer::new(input, format, &schema, now)
                    .with_context(|| format!("{}", file.display()))?;
                let commands = (1..)
                    .zip(import::commands(rows))
                    .map(|(line, command)| command.map(|command| (line, command)))
                    .collect::<Result<Vec<_>, _>>()
                    .with_context(|| format!("{}", file.display()))?;
                bar.set_message("committing");
                // New rows: every rule, as for an append.
                Request::Load {
                    commands,
                    policy: Policy::APPEND,
                }
            }
            (None, None) => bail!("nothing to load"),
        };
        let store = opened.store.clone();
        let sequencer = Sequencer::spawn(
            name.as_str(),
            opened.store,
            opened.writer,
            opened.signers,
            SequencerConfig::default(),
            system_clock(),
        )?;
        let receipt = sequencer
            .handle()
            .run(request)
            .with_context(|| format!("{}", file.display()));
        sequencer.join();
        Ok((receipt?, store))
    });
    bar.finish_and_clear();
    let (receipt, store) = match result {
        Ok(done) => done,
        Err(error) => {
            // A register this run created holds nothing: remove it, so that
            // a failed load changes nothing at all.
            if created {
                let dir = registry.dir(&name);
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("removing {}", dir.display()))?;
            }
            return Err(error);
        }
    };
    let snapshot = store.snapshot()?;
    println!(
        "loaded {} into {}{}: {} new items, {} user entries, {} system entries, {} root assertions checked",
        file.display(),
        name,
        if created { " (new)" } else { "" },
        receipt.items_added,
        receipt.appended.user,
        receipt.appended.system,
        receipt.assertions,
    );
    let warnings = &receipt.warnings;
    for warning in warnings.first() {
        eprintln!("regis: warning: {}: {warning}", file.display());
    }
    let unlisted = warnings
        .count()
        .saturating_sub(warnings.first().len() as u64);
    if unlisted > 0 {
        eprintln!(
            "regis: warning: {}: {unlisted} more warnings of these kinds",
            file.display()
        );
    }
    if !warnings.is_empty() {
        eprintln!(
            "regis: warning: {}: loaded as published history; --strict refuses these",
            file.display()
        );
    }
    for (log, checkpoint) in receipt.checkpoints.iter() {
        // The user count is kept in the head: listing the records to count
        // them would take memory in proportion to the register.
        let records = match log {
            Log::User => snapshot.record_count(),
            Log::System => snapshot.records(log, 0, u64::MAX)?.len() as u64,
        };
        println!(
            "{log} log: {} entries, root {}, {records} records",
            checkpoint.size,
            format_hash(&checkpoint.root),
        );
    }
    Ok(())
}

fn key<B: DirBackend>(data: &Path, register: &str) -> Result<()> {
    let name = RegisterName::new(register)?;
    // The host is the one the register was created with.
    let opened = Registry::new(data, "localhost").open::<B>(&name)?;
    for (prefix, log) in [("log", Log::User), ("system-log", Log::System)] {
        println!("{prefix}-origin: {}", opened.signers.origin(log));
        println!("{prefix}-public-key: {}", opened.signers.verifier(log));
    }
    Ok(())
}

fn check<B: DirBackend>(data: &Path, register: Option<&str>) -> Result<()> {
    let registry = Registry::new(data, "localhost");
    let names = match register {
        Some(name) => vec![RegisterName::new(name)?],
        None => registry.list::<B>()?,
    };
    if names.is_empty() {
        bail!("no registers in {}", data.display());
    }
    for name in names {
        // redb may panic on a damaged page rather than return an error:
        // for fsck that is a finding, reported like any other.
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check_one::<B>(&registry, &name)
        }))
        .unwrap_or_else(|panic| {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            Err(anyhow::anyhow!(
                "the store is corrupt: its index database failed to read ({why})"
            ))
        });
        let report = checked.with_context(|| format!("register {name}"))?;
        println!(
            "{name}: ok: {} user and {} system entries, {} items, {} stored hashes, {} user and {} system records, {} field-index rows, {} checkpoints",
            report.entries.user,
            report.entries.system,
            report.items,
            report.stored_hashes,
            report.records.user,
            report.records.system,
            report.field_rows,
            report.checkpoints,
        );
    }
    Ok(())
}

/// `regis fsck --links`: every register's (or one's) links, resolved
/// against the registers of `data` (remote ones are not asked: offline,
/// their links count as unresolvable).
fn check_links<B: DirBackend>(data: &Path, register: Option<&str>) -> Result<()> {
    let registry = Registry::new(data, "localhost");
    let all = registry.list::<B>()?;
    if all.is_empty() {
        bail!("no registers in {}", data.display());
    }
    let mut stores = BTreeMap::new();
    for name in &all {
        let store = match registry.kind(name) {
            RegisterKind::Own => registry.open::<B>(name)?.store,
            RegisterKind::Mirror => registry.open_mirror::<B>(name)?.store,
        };
        stores.insert(name.to_string(), store);
    }
    let snapshots = stores
        .iter()
        .map(|(name, store)| Ok((name.clone(), store.snapshot()?)))
        .collect::<Result<BTreeMap<_, _>>>()?;
    let names = match register {
        Some(name) => vec![RegisterName::new(name)?],
        None => all,
    };
    for name in names {
        let (Some(store), Some(snapshot)) =
            (stores.get(name.as_str()), snapshots.get(name.as_str()))
        else {
            bail!("{} holds no register {name}", data.display());
        };
        let schema = load_schema(name.as_str(), store)?;
        let census = link_census(snapshot, &schema, |link| resolve_among(&snapshots, link))
            .with_context(|| format!("register {name}"))?;
        println!(
            "{name}: {} links, {} dangling, {} unresolvable",
            census.links, census.dangling, census.unresolvable
        );
        for (register, (links, dangling, unresolvable)) in &census.by_register {
            println!(
                "  to {register}: {links} links, {dangling} dangling, {unresolvable} unresolvable"
            );
        }
        for (key, link, resolution) in &census.listed {
            let what = match resolution {
                Resolution::Dangling => "dangling",
                _ => "unresolvable",
            };
            println!(
                "  {key}: {}={:?} -> {}:{} {what}",
                link.field, link.value, link.register, link.key
            );
        }
    }
    Ok(())
}

/// fsck of one register. Opening checks the tree against its last signed
/// checkpoint; a mirror's checkpoints are checked with its upstream's
/// pinned keys.
fn check_one<B: DirBackend>(registry: &Registry, name: &RegisterName) -> Result<FsckReport> {
    let report = match registry.kind(name) {
        RegisterKind::Own => {
            let opened = registry.open::<B>(name)?;
            fsck(&*opened.store.snapshot()?, &opened.signers)
        }
        RegisterKind::Mirror => {
            let opened = registry.open_mirror::<B>(name)?;
            let keys = PerLog::from_fn(|log| opened.upstream.verifier(log));
            regis_store::fsck_with_keys(&*opened.store.snapshot()?, keys)
        }
    }?;
    Ok(report)
}
