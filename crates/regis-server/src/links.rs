//! Links between registers (`spec/formats.md`, "Links"): a value that names
//! a record of a register ([`regis_model::links`]) resolved against a
//! register on this server, or against a remote register declared in the
//! register's `links.toml` with its base URL and pinned verifier key.
//!
//! ```toml
//! links = "check"          # check | warn | off
//!
//! [remote.government-organisation]
//! url = "https://registers.example.gov.uk/registers/government-organisation"
//! key = "registers.example.gov.uk/registers/government-organisation+1a2b3c4d+AbC…"
//! timeout-seconds = 5      # each request to it; 5 by default, at most 60
//! ```
//!
//! `links` says what a write (`POST B/entries`, `POST B/load-rsf`) whose
//! links do not resolve gets: `check` refuses it (422 `dangling-link` or
//! `unresolvable-link`, naming the entry, field, value and target), `warn`
//! takes it and lists each in the answer's `link-warnings`, `off` does not
//! look. A register created by `POST /registers` is given `links =
//! "check"` in this file before it is created; one created by `regis load`
//! (published history) `links = "warn"`; without the file, a register is
//! `warn`. The file is the durable marker of how a register was made: the
//! store does not record it (both go through `Registry::create` and the
//! sequencer). Importing history (`regis load`) never checks links.
//!
//! A remote target is fetched with regis-client: its record's tlog-proof,
//! verified with the pinned key, and its items, each request bounded by
//! the remote's timeout. Unreachable, slow or failing (5xx) remotes make a
//! checked write a 503 `link-target-unavailable` (retry later); a remote
//! whose answer does not verify (a bad proof, another key) a 502
//! `link-target-unverified`. Once a remote fails, the write's other links
//! to it fail without asking again, so a write waits at most one timeout
//! per request to each remote register it links to.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Seek as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use regis_client::{Client, Error as ClientError, FetchFailure};
use regis_model::api::records_json;
use regis_model::rsf::{Command, RsfReader};
use regis_model::{
    Item, ItemHash, Link, LinkCensus, Log, Record, Resolution, Schema, SystemKey, links, may_link,
};
use regis_note::Verifier;
use regis_store::{DirBackend, RegistryError, link_census, resolve_among, write_atomically};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::{App, RegisterState};
use crate::error::{ApiError, ServerError};
use crate::http::{Query, quote};
use crate::tlog;
use crate::urls;

/// A register's link settings, in its directory.
pub const LINKS_FILE: &str = "links.toml";

/// What a write whose links do not resolve gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkMode {
    /// Refused (422).
    Check,
    /// Taken, with a warning per link.
    #[default]
    Warn,
    /// Not looked at.
    Off,
}

impl LinkMode {
    /// `check`, `warn` or `off`.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkMode::Check => "check",
            LinkMode::Warn => "warn",
            LinkMode::Off => "off",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct LinksFile {
    links: Option<LinkMode>,
    #[serde(default)]
    remote: BTreeMap<String, RemoteFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RemoteFile {
    url: String,
    key: String,
    timeout_seconds: Option<u64>,
}

/// A register on another server that links may name.
#[derive(Clone, Debug)]
pub struct RemoteRegister {
    /// Its base URL (`https://host/registers/NAME`).
    pub url: String,
    /// Its user log's verifier key, pinned.
    pub key: Verifier,
    /// The longest one request to it may take.
    pub timeout: Duration,
}

/// How a register's links are resolved and checked.
#[derive(Clone, Debug, Default)]
pub struct LinkSettings {
    /// What a write whose links do not resolve gets.
    pub mode: LinkMode,
    /// Registers on other servers, by name.
    pub remotes: BTreeMap<String, RemoteRegister>,
}

impl LinkSettings {
    /// The settings in `dir/links.toml`; the defaults without one. A file
    /// that does not parse is an error naming it.
    pub fn load(dir: &Path) -> Result<LinkSettings, ServerError> {
        let path = dir.join(LINKS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(LinkSettings::default());
            }
            other => other.map_err(|error| ServerError::ReadConfig {
                path: path.clone(),
                error,
            })?,
        };
        LinkSettings::parse(&text).map_err(|error| ServerError::Config { path, error })
    }

    /// Parses a `links.toml`.
    pub fn parse(text: &str) -> Result<LinkSettings, String> {
        let file: LinksFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut remotes = BTreeMap::new();
        for (name, remote) in file.remote {
            let key =
                Verifier::parse(&remote.key).map_err(|e| format!("remote.{name}.key: {e}"))?;
            let timeout = remote.timeout_seconds.unwrap_or(5);
            if timeout == 0 || timeout > 60 {
                return Err(format!(
                    "remote.{name}.timeout-seconds must be from 1 to 60"
                ));
            }
            // The client refuses a URL that is not a register's base URL.
            Client::new(&remote.url, key.clone()).map_err(|e| format!("remote.{name}.url: {e}"))?;
            remotes.insert(
                name,
                RemoteRegister {
                    url: remote.url,
                    key,
                    timeout: Duration::from_secs(timeout),
                },
            );
        }
        Ok(LinkSettings {
            mode: file.links.unwrap_or_default(),
            remotes,
        })
    }

    /// Marks the register in `dir` (created if need be) as made with
    /// `mode`, unless its `links.toml` exists: written atomically before
    /// the register is created, so that a crash leaves the marker or
    /// nothing.
    pub fn mark(dir: &Path, mode: LinkMode) -> Result<(), RegistryError> {
        if dir.join(LINKS_FILE).exists() {
            return Ok(());
        }
        std::fs::create_dir_all(dir).map_err(|error| RegistryError::Io {
            what: "creating",
            path: dir.to_owned(),
            error,
        })?;
        let text = format!("links = \"{}\"\n", mode.as_str());
        write_atomically(dir, LINKS_FILE, text.as_bytes(), 0o644)
    }
}

/// Whether query parameter `name` is `value` (absent: no; anything else: 400).
pub fn asked(query: &Query, name: &str, value: &str) -> Result<bool, ApiError> {
    match query.get(name) {
        None => Ok(false),
        Some(given) if given == value => Ok(true),
        Some(other) => Err(ApiError::bad_request(
            "bad-query",
            format!(
                "query parameter {name} must be {value}, not {}",
                quote(other)
            ),
        )),
    }
}

/// A link's target record, proved in its register.
struct Found {
    entry_number: u64,
    /// The size of the checkpoint it is proved against.
    size: u64,
    /// The record as `B/records/{key}` serves it.
    record: Value,
    /// Its C2SP tlog-proof against the register's served checkpoint.
    tlog_proof: String,
    /// Its items' canonical JSON.
    items: Vec<String>,
}

/// What a link resolved to.
enum Outcome {
    Found(Found),
    Dangling,
    Unresolvable,
    Unavailable(ApiError),
}

/// One link, resolved: where its register is (a path on this server, or a
/// remote's base URL) and what it resolved to.
struct Resolved {
    url: Option<String>,
    /// The verifier key of its register's user log, when known.
    verifier: Option<String>,
    outcome: Outcome,
}

/// Resolves links for one request: each target once, and each remote
/// register that failed not asked again.
struct Resolver<'a, B: DirBackend> {
    app: &'a App<B>,
    reg: &'a RegisterState<B>,
    failed: HashMap<String, ApiError>,
}

impl<'a, B: DirBackend> Resolver<'a, B> {
    fn new(app: &'a App<B>, reg: &'a RegisterState<B>) -> Self {
        Resolver {
            app,
            reg,
            failed: HashMap::new(),
        }
    }

    fn resolve(&mut self, link: &Link) -> Resolved {
        match self.app.register(&link.register) {
            Ok(target) => Resolved {
                url: Some(urls::register(target.name.as_str()).to_string()),
                verifier: Some(target.verifier(Log::User).to_owned()),
                outcome: local(&target, &link.key),
            },
            // Not a register of this server: perhaps a declared remote one.
            Err(error)
                if error.status == StatusCode::NOT_FOUND
                    || error.status == StatusCode::BAD_REQUEST =>
            {
                match self.reg.links.remotes.get(&link.register) {
                    Some(remote) => Resolved {
                        url: Some(remote.url.clone()),
                        verifier: Some(remote.key.to_string()),
                        outcome: self.remote(&link.register, remote, &link.key),
                    },
                    None => Resolved {
                        url: None,
                        verifier: None,
                        outcome: Outcome::Unresolvable,
                    },
                }
            }
            Err(error) => Resolved {
                url: Some(urls::register(&link.register).to_string()),
                verifier: None,
                outcome: Outcome::Unavailable(error),
            },
        }
    }

    fn remote(&mut self, name: &str, remote: &RemoteRegister, key: &str) -> Outcome {
        if let Some(error) = self.failed.get(name) {
            return Outcome::Unavailable(error.clone());
        }
        let limits = regis_client::Limits {
            timeout: remote.timeout,
            ..regis_client::Limits::default()
        };
        let proved = Client::with_limits(&remote.url, remote.key.clone(), limits)
            .and_then(|client| client.proved_record(key));
        match proved {
            Ok(Some(proved)) => {
                let record = &proved.record;
                Outcome::Found(Found {
                    entry_number: record.number,
                    size: record.checkpoint.size(),
                    record: record_json(Record {
                        number: record.number,
                        entry: &record.entry,
                        items: record.items.iter().collect(),
                    }),
                    tlog_proof: proved.tlog_proof,
                    items: record.items.iter().map(|i| i.as_str().to_owned()).collect(),
                })
            }
            Ok(None) => Outcome::Dangling,
            Err(error) => {
                let error = remote_error(name, &remote.url, &error);
                self.failed.insert(name.to_owned(), error.clone());
                Outcome::Unavailable(error)
            }
        }
    }
}

/// A remote register's failure: 503 if it could not be asked (down, slow,
/// failing), 502 if its answer does not verify.
fn remote_error(name: &str, url: &str, error: &ClientError) -> ApiError {
    let unreachable = match error {
        ClientError::Fetch(fetch) => match fetch.failure {
            FetchFailure::Status(status) => status >= 500,
            FetchFailure::Transport(_) => true,
            FetchFailure::TooLarge(_) => false,
        },
        _ => false,
    };
    if unreachable {
        ApiError::unavailable(
            "link-target-unavailable",
            format!("linked register {name} ({url}) could not be reached: {error}; retry"),
        )
    } else {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "link-target-unverified",
            format!("linked register {name} ({url}) answered what does not verify: {error}"),
        )
    }
}

/// Record `key` of a register of this server, proved against the
/// checkpoint it serves.
fn local<B: DirBackend>(target: &RegisterState<B>, key: &str) -> Outcome {
    let proved = match tlog::proved_record(target, key) {
        Ok(proved) => proved,
        Err(error) if error.status == StatusCode::NOT_FOUND => return Outcome::Dangling,
        Err(error) => return Outcome::Unavailable(error),
    };
    Outcome::Found(Found {
        entry_number: proved.loaded.number,
        size: proved.signed.size,
        record: record_json(proved.loaded.model()),
        tlog_proof: proved.tlog_proof(),
        items: proved
            .loaded
            .items
            .iter()
            .map(|item| item.as_str().to_owned())
            .collect(),
    })
}

/// A record as `B/records/{key}` serves it, without its key around it.
fn record_json(record: Record<'_>) -> Value {
    let key = record.entry.key.clone();
    let mut body: Value = serde_json::from_str(&records_json([record])).unwrap_or(Value::Null);
    body.get_mut(&key).map(Value::take).unwrap_or(Value::Null)
}

/// A link's fields as JSON, with its status and target's URL.
fn link_json(link: &Link, resolved: &Resolved) -> Value {
    let status = match &resolved.outcome {
        Outcome::Found(_) => "found",
        Outcome::Dangling => "dangling",
        Outcome::Unresolvable => "unresolvable",
        Outcome::Unavailable(_) => "unavailable",
    };
    let mut body = json!({
        "field": link.field,
        "value": link.value,
        "register": link.register,
        "key": link.key,
        "status": status,
    });
    if let Some(url) = &resolved.url {
        body["register-url"] = Value::String(url.clone());
    }
    if let Outcome::Unavailable(error) = &resolved.outcome {
        body["error"] = Value::String(error.message.clone());
    }
    body
}

/// `B/records/{key}?expand=links`: each link of `loaded`'s items with its
/// status, and a found target's record and entry number.
pub fn expanded_json<B: DirBackend>(
    app: &App<B>,
    reg: &RegisterState<B>,
    schema: &Schema,
    loaded: &crate::request::Loaded,
) -> Result<Value, ApiError> {
    let mut resolver = Resolver::new(app, reg);
    let mut out = Vec::new();
    for link in item_links(schema, &loaded.items) {
        let resolved = resolver.resolve(&link);
        let mut body = link_json(&link, &resolved);
        if let Outcome::Found(found) = resolved.outcome {
            body["entry-number"] = Value::String(found.entry_number.to_string());
            body["record"] = found.record;
        }
        out.push(body);
    }
    Ok(Value::Array(out))
}

/// The `links` of a record's proof bundle (`?links=1`): each link, and a
/// found target's entry number, tlog-proof and items.
pub fn proofs_json<B: DirBackend>(
    app: &App<B>,
    reg: &RegisterState<B>,
    proved: &tlog::ProvedRecord,
) -> Result<Value, ApiError> {
    let read = crate::request::RegisterRead::new(reg)?;
    let schema = read.schema()?;
    let mut resolver = Resolver::new(app, reg);
    let mut out = Vec::new();
    for link in item_links(schema, &proved.loaded.items) {
        let resolved = resolver.resolve(&link);
        let mut body = link_json(&link, &resolved);
        if let Outcome::Found(found) = resolved.outcome {
            body["entry-number"] = Value::String(found.entry_number.to_string());
            body["tlog-proof"] = Value::String(found.tlog_proof);
            body["items"] = json!(found.items);
        }
        out.push(body);
    }
    Ok(Value::Array(out))
}

/// A link as the record page shows it.
#[derive(Debug)]
pub struct LinkShown {
    /// The link.
    pub link: Link,
    /// The target record's page (on this server) or URL (on another).
    pub href: Option<String>,
    /// Whether this server found and verified the target record.
    pub verified: bool,
    /// The verifier key a found target's proof is checked against (its
    /// register's, on this server or pinned for a remote one).
    pub verifier: Option<String>,
    /// What became of it, in words.
    pub status: String,
}

/// The links of a record's `items` for its page, each resolved by this
/// server: a target on it read from its store and proved against its
/// signed checkpoint, one on another server verified with the key pinned
/// in `links.toml`.
pub fn shown<B: DirBackend>(
    app: &App<B>,
    reg: &RegisterState<B>,
    schema: &Schema,
    items: &[Item],
) -> Vec<LinkShown> {
    let mut resolver = Resolver::new(app, reg);
    item_links(schema, items)
        .into_iter()
        .map(|link| {
            let resolved = resolver.resolve(&link);
            let local = resolved
                .url
                .as_deref()
                .is_some_and(|url| url.starts_with('/'));
            let href = resolved.url.as_deref().map(|url| match local {
                true => urls::record(&link.register, &link.key).to_string(),
                false => format!(
                    "{url}/records/{}",
                    regis_model::api::path_segment(&link.key)
                ),
            });
            let (verified, status) = match resolved.outcome {
                Outcome::Found(found) => (
                    true,
                    format!(
                        "verified by this server: entry {} of {}, proved against its checkpoint of size {}{}",
                        found.entry_number,
                        link.register,
                        found.size,
                        if local {
                            ""
                        } else {
                            " signed by the key pinned for it"
                        }
                    ),
                ),
                Outcome::Dangling => (
                    false,
                    format!(
                        "dangling: {} has no record {}",
                        link.register,
                        quote(&link.key)
                    ),
                ),
                Outcome::Unresolvable => (
                    false,
                    format!(
                        "not verified: {} is neither on this server nor declared",
                        link.register
                    ),
                ),
                Outcome::Unavailable(error) => (false, format!("not verified: {}", error.message)),
            };
            LinkShown {
                href: href.filter(|_| verified),
                verifier: resolved.verifier.filter(|_| verified),
                link,
                verified,
                status,
            }
        })
        .collect()
}

fn item_links(schema: &Schema, items: &[Item]) -> Vec<Link> {
    items.iter().flat_map(|item| links(schema, item)).collect()
}

/// New entries' links, as a write names them: what the entry is (`entry 2
/// (key "X")`), its key, and its links.
#[derive(Debug)]
pub struct Posted {
    what: String,
    key: String,
    links: Vec<Link>,
}

/// Checks the links of a `POST B/entries` body's entries as [`check`]
/// does, reading `reg`'s schema on the same blocking thread.
pub async fn check_entries<B: DirBackend>(
    app: &Arc<App<B>>,
    reg: &Arc<RegisterState<B>>,
    entries: &[(String, Item)],
) -> Result<Vec<String>, ApiError> {
    if reg.links.mode == LinkMode::Off {
        return Ok(Vec::new());
    }
    let entries = entries.to_vec();
    let (app, reg) = (Arc::clone(app), Arc::clone(reg));
    tokio::task::spawn_blocking(move || check_now(&app, &reg, &posted_entries(&reg, &entries)?))
        .await
        .map_err(ApiError::internal)?
}

/// The links of a `POST B/entries` body's entries under `reg`'s schema.
fn posted_entries<B: DirBackend>(
    reg: &RegisterState<B>,
    entries: &[(String, Item)],
) -> Result<Vec<Posted>, ApiError> {
    if reg.links.mode == LinkMode::Off {
        return Ok(Vec::new());
    }
    let read = crate::request::RegisterRead::new(reg)?;
    let schema = read.schema()?;
    Ok(entries
        .iter()
        .enumerate()
        .map(|(index, (key, item))| Posted {
            what: format!("entry {} (key {})", index + 1, quote(key)),
            key: key.clone(),
            links: links(schema, item),
        })
        .collect())
}

/// The links of a spooled RSF document's user entries, under `reg`'s
/// schema with the document's own system entries applied (in their order;
/// one the sequencer will refuse is skipped here). Up to three passes over
/// the file (one when it defines nothing and no field can hold a link),
/// none holding more than the system items and the links found; the
/// file is left rewound. A document that does not read is left to the
/// sequencer to refuse: no links are found in it.
pub fn posted_rsf<B: DirBackend>(
    reg: &RegisterState<B>,
    file: &mut File,
) -> Result<Vec<Posted>, ApiError> {
    if reg.links.mode == LinkMode::Off {
        return Ok(Vec::new());
    }
    let read = crate::request::RegisterRead::new(reg)?;
    let mut schema = Schema::clone(read.schema()?);
    let found = rsf_links(&mut schema, file).map_err(ApiError::internal)?;
    file.rewind().map_err(ApiError::internal)?;
    Ok(found.unwrap_or_default())
}

/// [`posted_rsf`]'s passes: `None` if the document does not read.
fn rsf_links(schema: &mut Schema, file: &mut File) -> std::io::Result<Option<Vec<Posted>>> {
    let commands = |file: &mut File| -> std::io::Result<_> {
        file.rewind()?;
        Ok(RsfReader::new(BufReader::new(file.try_clone()?)))
    };
    // 1: the system entries, in order.
    let mut system: Vec<(String, ItemHash)> = Vec::new();
    for command in commands(file)? {
        let Ok((_, command)) = command else {
            return Ok(None);
        };
        if let Command::AppendEntry(entry) = command
            && entry.log == Log::System
            && SystemKey::parse(&entry.key).is_ok()
        {
            system.extend(
                entry
                    .item_hashes
                    .into_iter()
                    .map(|h| (entry.key.clone(), h)),
            );
        }
    }
    // 2: their items, applied to the schema.
    if !system.is_empty() {
        let wanted: HashSet<ItemHash> = system.iter().map(|(_, hash)| *hash).collect();
        let mut items = HashMap::new();
        for (_, command) in commands(file)?.flatten() {
            if let Command::AddItem(item) = command
                && wanted.contains(&item.hash())
            {
                items.insert(item.hash(), item);
            }
        }
        for (key, hash) in &system {
            if let Some(item) = items.get(hash) {
                // A bad definition is the sequencer's to refuse.
                let _ = schema.apply(key, item);
            }
        }
    }
    // 3: each user entry's links, from its items' links; none if no field
    // can hold one (the common case: one pass over the document).
    if !may_link(schema) {
        return Ok(Some(Vec::new()));
    }
    let mut item_links: HashMap<ItemHash, Vec<Link>> = HashMap::new();
    let mut posted = Vec::new();
    for (line, command) in commands(file)?.flatten() {
        match command {
            Command::AddItem(item) => {
                let found = links(schema, &item);
                if !found.is_empty() {
                    item_links.insert(item.hash(), found);
                }
            }
            Command::AppendEntry(entry) if entry.log == Log::User => {
                let links = entry
                    .item_hashes
                    .iter()
                    .flat_map(|hash| item_links.get(hash).cloned().unwrap_or_default())
                    .collect::<Vec<_>>();
                if !links.is_empty() {
                    posted.push(Posted {
                        what: format!("line {line} (key {})", quote(&entry.key)),
                        key: entry.key,
                        links,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(Some(posted))
}

/// Checks `posted` links as `reg`'s mode says, on a blocking thread: an
/// error to answer (`check`: 422 for a link that does not resolve; 503 or
/// 502 for a target that cannot be asked or verified), or the warnings to
/// add to the answer (`warn`). A link to `reg` itself may name a key the
/// same write appends.
pub async fn check<B: DirBackend>(
    app: &Arc<App<B>>,
    reg: &Arc<RegisterState<B>>,
    posted: Vec<Posted>,
) -> Result<Vec<String>, ApiError> {
    if posted.iter().all(|p| p.links.is_empty()) {
        return Ok(Vec::new());
    }
    let (app, reg) = (Arc::clone(app), Arc::clone(reg));
    tokio::task::spawn_blocking(move || check_now(&app, &reg, &posted))
        .await
        .map_err(ApiError::internal)?
}

fn check_now<B: DirBackend>(
    app: &App<B>,
    reg: &RegisterState<B>,
    posted: &[Posted],
) -> Result<Vec<String>, ApiError> {
    let mode = reg.links.mode;
    let appended: HashSet<&str> = posted.iter().map(|p| p.key.as_str()).collect();
    let mut resolver = Resolver::new(app, reg);
    let mut seen: HashMap<(&str, &str), Option<ApiError>> = HashMap::new();
    let mut warnings = Vec::new();
    for entry in posted {
        for link in &entry.links {
            if link.register == reg.name.as_str() && appended.contains(link.key.as_str()) {
                continue;
            }
            let problem = seen
                .entry((&link.register, &link.key))
                .or_insert_with(|| problem(reg, link, resolver.resolve(link).outcome));
            let Some(problem) = problem else {
                continue;
            };
            let mut problem = problem.clone();
            problem.message = format!(
                "{}: field {} value {}: {}",
                entry.what,
                quote(&link.field),
                quote(&link.value),
                problem.message
            );
            match mode {
                LinkMode::Check => return Err(problem),
                LinkMode::Warn | LinkMode::Off => warnings.push(problem.message),
            }
        }
    }
    Ok(warnings)
}

/// What is wrong with a link's resolution, if anything.
fn problem<B: DirBackend>(
    reg: &RegisterState<B>,
    link: &Link,
    outcome: Outcome,
) -> Option<ApiError> {
    match outcome {
        Outcome::Found(_) => None,
        Outcome::Dangling => Some(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "dangling-link",
            format!(
                "register {} has no record {} at its checkpoint",
                link.register,
                quote(&link.key)
            ),
        )),
        Outcome::Unresolvable => Some(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unresolvable-link",
            format!(
                "register {} is neither on this server nor declared in register {}'s {LINKS_FILE}",
                link.register, reg.name
            ),
        )),
        Outcome::Unavailable(error) => Some(error),
    }
}

/// Register `reg`'s links counted, each resolved against the registers of
/// this server at their signed checkpoints (remote ones are not asked: a
/// page must not wait on other servers; their links count as
/// unresolvable, as in `regis fsck --links`).
pub fn census<B: DirBackend>(app: &App<B>, reg: &RegisterState<B>) -> Result<LinkCensus, ApiError> {
    let read = crate::request::RegisterRead::new(reg)?;
    let mut snapshots = BTreeMap::new();
    for other in app.registers() {
        snapshots.insert(other.name.to_string(), other.snapshot()?);
    }
    Ok(link_census(&read.snapshot, read.schema()?, |link| {
        resolve_among(&snapshots, link)
    })?)
}

/// `GET B/links`: [`census`] as JSON.
pub fn census_response<B: DirBackend>(
    app: &App<B>,
    reg: &RegisterState<B>,
    ctx: &crate::request::Ctx<'_>,
) -> Result<axum::response::Response, ApiError> {
    if ctx.format != crate::http::Format::Json {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not-acceptable",
            "a register's links are served as JSON (.json) or a page",
        ));
    }
    let census = census(app, reg)?;
    let by_register: serde_json::Map<String, Value> = census
        .by_register
        .iter()
        .map(|(register, (links, dangling, unresolvable))| {
            (
                register.clone(),
                json!({"links": links, "dangling": dangling, "unresolvable": unresolvable}),
            )
        })
        .collect();
    let listed: Vec<Value> = census
        .listed
        .iter()
        .map(|(key, link, resolution)| {
            json!({
                "record": key,
                "field": link.field,
                "value": link.value,
                "register": link.register,
                "key": link.key,
                "status": match resolution {
                    Resolution::Dangling => "dangling",
                    _ => "unresolvable",
                },
            })
        })
        .collect();
    let body = json!({
        "register": reg.name.as_str(),
        "links": census.links,
        "dangling": census.dangling,
        "unresolvable": census.unresolvable,
        "by-register": by_register,
        "not-resolved": listed,
    });
    Ok(crate::http::json(body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// C2SP signed-note's example verifier key.
    const KEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

    #[test]
    fn settings_parse_and_name_what_is_wrong() {
        let remote = |extra: &str| {
            format!(
                "links = \"check\"\n[remote.country]\nurl = \"https://example.org/registers/country\"\nkey = \"{KEY}\"\n{extra}"
            )
        };
        let settings = LinkSettings::parse(&remote("")).unwrap();
        assert_eq!(settings.mode, LinkMode::Check);
        assert_eq!(settings.remotes["country"].timeout, Duration::from_secs(5));
        assert_eq!(LinkSettings::parse("").unwrap().mode, LinkMode::Warn);
        assert_eq!(
            LinkSettings::parse("links = \"off\"").unwrap().mode,
            LinkMode::Off
        );
        for (text, wrong) in [
            ("links = \"strict\"".to_owned(), "unknown variant"),
            ("link = \"check\"".to_owned(), "unknown field"),
            (
                remote("timeout-seconds = 0"),
                "timeout-seconds must be from 1 to 60",
            ),
            (remote("").replace(KEY, "nokey"), "remote.country.key"),
            (
                remote("").replace("https://example.org/registers/country", "ftp://x"),
                "remote.country.url",
            ),
        ] {
            let error = LinkSettings::parse(&text).unwrap_err();
            assert!(error.contains(wrong), "{text}: {error}");
        }
    }
}
