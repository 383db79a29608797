//! The logs as C2SP tlog-tiles (checkpoints, hash tiles, entry bundles),
//! the GOV.UK proof resources, and a record's self-contained proof. With a
//! witness policy, the checkpoints served, and those records are proved
//! against, are the newest that meet it, with their cosignatures.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use regis_merkle::tile::{TileKind, TilePath};
use regis_merkle::{Hash, ProofError, leaf_hash};
use regis_model::api::records_json;
use regis_model::format_hash;
use regis_note::tlog_proof_text;
use regis_store::{DirBackend, Log, SignedTree, StoreError};
use serde_json::{Value, json};

use crate::app::{App, RegisterState};
use crate::error::ApiError;
use crate::http::{self, Format, quote};
use crate::request::{Ctx, Loaded, RegisterRead};
use crate::tile_cache::{TileBytes, TileCache};

const PROOF_IDENTIFIER: &str = "merkle:sha-256";

fn log_name(log: Log) -> &'static str {
    match log {
        Log::User => "log",
        Log::System => "system-log",
    }
}

/// The newest checkpoint of `log` that meets `reg`'s witness policy: 503
/// `not-witnessed` while there is none. `None` without a policy.
fn witnessed_checkpoint<B: DirBackend>(
    reg: &RegisterState<B>,
    log: Log,
) -> Result<Option<SignedTree>, ApiError> {
    let Some(witnessed) = reg.witnessed() else {
        return Ok(None);
    };
    witnessed.checkpoint(log).map(Some).ok_or_else(|| {
        ApiError::unavailable(
            "not-witnessed",
            format!(
                "the {} of register {} has no checkpoint cosigned by the witnesses its policy \
                 requires yet; retry",
                log_name(log),
                reg.name
            ),
        )
    })
}

/// `GET B/log/checkpoint`, `B/system-log/checkpoint`: the latest signed
/// checkpoint (with a witness policy, the latest that meets it, its
/// cosignatures after the log's signature), never cached.
pub fn checkpoint<B: DirBackend>(reg: &RegisterState<B>, log: Log) -> Result<Response, ApiError> {
    if let Some(witnessed) = witnessed_checkpoint(reg, log)? {
        return Ok(http::ok(
            "text/plain; charset=utf-8",
            http::NO_STORE,
            witnessed.text,
        ));
    }
    let snapshot = reg.snapshot()?;
    let checkpoint = snapshot.checkpoint(log)?.ok_or_else(|| {
        ApiError::unavailable(
            "no-checkpoint",
            format!(
                "the {} of register {} has no signed checkpoint yet",
                log_name(log),
                reg.name
            ),
        )
    })?;
    Ok(http::ok(
        "text/plain; charset=utf-8",
        http::NO_STORE,
        checkpoint.text,
    ))
}

/// `GET B/log/tile/{tile}`: a hash tile or entry bundle, exactly per C2SP
/// tlog-tiles. Every tile is immutable at its exact path (a partial tile's
/// path names its width), so all are cached for a week, with a strong
/// ETag; entry bundles are gzipped for clients that accept it. Full tiles
/// are kept in `cache` once read, a bundle with its gzip.
pub fn tile<B: DirBackend>(
    cache: &TileCache,
    reg: &RegisterState<B>,
    log: Log,
    rest: &str,
    gzip: bool,
) -> Result<Response, ApiError> {
    let text = format!("tile/{rest}");
    let path = TilePath::parse(&text)
        .map_err(|e| ApiError::bad_request("bad-tile-path", format!("{}: {e}", quote(&text))))?;
    let cached = path
        .is_full()
        .then(|| cache.get(reg.name.as_str(), log, &path))
        .flatten();
    let tile = match cached {
        Some(tile) => tile,
        None => {
            let bytes = Bytes::from(read_tile(reg, log, &path, &text)?);
            let bundle = path.kind() == TileKind::Entries;
            let gzipped = if bundle && (gzip || path.is_full()) {
                Some(Bytes::from(crate::finish::gzip_whole(&bytes)))
            } else {
                None
            };
            let tile = TileBytes::new(bytes, gzipped);
            if path.is_full() {
                cache.insert(reg.name.as_str(), log, &path, tile.clone());
            }
            tile
        }
    };
    Ok(tile_response(&path, tile, gzip))
}

/// [`tile`] for a full tile already in `cache`: only a map look-up, so the
/// server answers it on its event loop, without a blocking thread. `None`
/// for anything else (then [`tile`] answers).
pub fn cached_tile(
    cache: &TileCache,
    register: &str,
    log: Log,
    rest: &str,
    gzip: bool,
) -> Option<Response> {
    let path = TilePath::parse(&format!("tile/{rest}")).ok()?;
    if !path.is_full() {
        return None;
    }
    let tile = cache.get(register, log, &path)?;
    Some(tile_response(&path, tile, gzip))
}

/// A tile's response: its bytes, or for a bundle its gzip when accepted,
/// with the ETag of what is sent and caching headers (a 304 is made from
/// it on the way out: `finish`).
fn tile_response(path: &TilePath, tile: TileBytes, gzip: bool) -> Response {
    let (body, variant, encoded) = match tile.gzip {
        Some(gzipped) if gzip => (gzipped, "-gzip", true),
        _ => (tile.bytes, "", false),
    };
    let mut response = http::ok("application/octet-stream", http::IMMUTABLE, body);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&http::etag(&tile.digest, variant)) {
        headers.insert(header::ETAG, value);
    }
    if encoded {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if path.kind() == TileKind::Entries {
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    response
}

/// A tile's bytes from a snapshot of the store, or why there are none.
fn read_tile<B: DirBackend>(
    reg: &RegisterState<B>,
    log: Log,
    path: &TilePath,
    text: &str,
) -> Result<Vec<u8>, ApiError> {
    let snapshot = reg.snapshot()?;
    let size = snapshot.size(log);
    snapshot.tile(log, path)?.ok_or_else(|| {
        let what = match (
            TilePath::in_tree(path.kind(), path.index(), size),
            path.is_full(),
        ) {
            (Some(_), true) => "only partly there: ask for its partial width (.p/W)",
            (Some(_), false) => "wider than this tree holds there",
            (None, _) => "beyond the tree",
        };
        ApiError::not_found(
            "no-tile",
            format!(
                "{text} of the {} of register {} (size {size}) is {what}",
                log_name(log),
                reg.name
            ),
        )
    })
}

fn hashes_json(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(format_hash).collect()
}

fn proof_error(error: ProofError<StoreError>) -> ApiError {
    match error {
        ProofError::Read(error) => ApiError::from(error),
        other => ApiError::bad_request("bad-proof-request", other.to_string()),
    }
}

/// The tree size a proof may ask about: at most the log's size.
fn within(reg_name: &str, size: u64, asked: u64) -> Result<(), ApiError> {
    if asked > size {
        // A 400, as GOV.UK Registers answered a proof beyond its tree.
        return Err(ApiError::bad_request(
            "beyond-tree",
            format!("register {reg_name} has {size} entries; there is no tree of size {asked}"),
        ));
    }
    Ok(())
}

/// `GET B/proof/register/merkle:sha-256`.
pub fn register_proof<B: DirBackend>(reg: &RegisterState<B>) -> Result<Response, ApiError> {
    let snapshot = reg.snapshot()?;
    let body = json!({
        "proof-identifier": PROOF_IDENTIFIER,
        "root-hash": format_hash(&snapshot.root(Log::User)?),
        "total-entries": snapshot.size(Log::User),
    });
    Ok(http::json(body.to_string()))
}

/// `GET B/proof/entries/{number}/{size}/merkle:sha-256`: the audit path
/// of entry `number` in the tree of `size` entries.
pub fn entry_proof<B: DirBackend>(
    reg: &RegisterState<B>,
    number: &str,
    size: &str,
) -> Result<Response, ApiError> {
    let number = http::number(number, "the entry number", 1, u64::MAX)?;
    let size = http::number(size, "the tree size", 1, u64::MAX)?;
    if number > size {
        return Err(ApiError::bad_request(
            "bad-proof-request",
            format!("entry {number} is not in a tree of {size} entries"),
        ));
    }
    let snapshot = reg.snapshot()?;
    within(reg.name.as_str(), snapshot.size(Log::User), size)?;
    // Checked against the signed root before it is served.
    let path = snapshot
        .inclusion_proof(Log::User, number - 1, size)
        .map_err(proof_error)?;
    let body = json!({
        "proof-identifier": PROOF_IDENTIFIER,
        "entry-number": number.to_string(),
        "merkle-audit-path": hashes_json(&path),
    });
    Ok(http::ok(
        "application/json",
        http::IMMUTABLE,
        body.to_string(),
    ))
}

/// `GET B/proof/consistency/{old}/{new}/merkle:sha-256`.
pub fn consistency_proof_response<B: DirBackend>(
    reg: &RegisterState<B>,
    old: &str,
    new: &str,
) -> Result<Response, ApiError> {
    let old = http::number(old, "the old tree size", 0, u64::MAX)?;
    let new = http::number(new, "the new tree size", 0, u64::MAX)?;
    if old > new {
        return Err(ApiError::bad_request(
            "bad-proof-request",
            format!("the old tree size {old} is larger than the new tree size {new}"),
        ));
    }
    let snapshot = reg.snapshot()?;
    within(reg.name.as_str(), snapshot.size(Log::User), new)?;
    let path = snapshot
        .consistency_proof(Log::User, old, new)
        .map_err(proof_error)?;
    let body = json!({
        "proof-identifier": PROOF_IDENTIFIER,
        "merkle-consistency-nodes": hashes_json(&path),
    });
    Ok(http::ok(
        "application/json",
        http::IMMUTABLE,
        body.to_string(),
    ))
}

/// `GET B/records/{key}/proof`: the record, its entry's exact leaf bytes
/// and items, the audit path, and the signed checkpoint it is proved
/// against: all a department needs to verify offline with the log's
/// verifier key. As JSON, or as a C2SP tlog-proof (`.tlog-proof` or
/// `Accept: …tlog-proof`) whose `extra` line carries the leaf bytes.
///
/// With a witness policy the checkpoint is the newest witnessed one, with
/// its cosignatures, and the record is the key's latest entry within it: a
/// change since is proved once a witnessed checkpoint covers it. A key
/// whose first entry none covers yet is a 503 `not-yet-witnessed`.
pub fn record_proof<B: DirBackend>(
    app: &App<B>,
    reg: &RegisterState<B>,
    ctx: &Ctx<'_>,
    key: &str,
) -> Result<Response, ApiError> {
    let with_links = crate::links::asked(ctx.query, "links", "1")?;
    let proved = proved_record(reg, key)?;
    match ctx.format {
        Format::TlogProof if with_links => Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not-acceptable",
            "a record proof with its links is a JSON bundle (.json?links=1)",
        )),
        Format::TlogProof => Ok(http::ok(
            "text/plain; charset=utf-8",
            http::SHORT,
            proved.tlog_proof(),
        )),
        Format::Json => {
            let links = with_links
                .then(|| crate::links::proofs_json(app, reg, &proved))
                .transpose()?;
            let body = record_proof_json(&proved, reg.origin(Log::User), links.as_ref())?;
            // Not `http::json`: a proof changes with every checkpoint, so
            // an ETag would cost a hash of each answer and save little.
            Ok(http::ok("application/json", http::SHORT, body))
        }
        Format::Csv | Format::Html => Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not-acceptable",
            "a record proof is served as JSON (.json) or C2SP tlog-proof (.tlog-proof)",
        )),
    }
}

/// A record proof as JSON (`spec/formats.md`, "Record proofs"), its keys
/// in alphabetical order; `record` is the record's own JSON, as
/// `B/records/{key}` serves it, and `tlog-proof` is there with `links`.
/// Written field by field: serde would parse `record` again to embed it.
fn record_proof_json(
    proved: &ProvedRecord,
    log_origin: &str,
    links: Option<&Value>,
) -> Result<Vec<u8>, ApiError> {
    let loaded = &proved.loaded;
    let leaf = std::str::from_utf8(&loaded.leaf).map_err(ApiError::internal)?;
    let mut out = Vec::with_capacity(1024 + 2 * loaded.leaf.len());
    // A key and the value serde writes for `value`, after a comma unless
    // first.
    let field = |out: &mut Vec<u8>, key: &str, value: &dyn erased::Value| {
        out.push(if out.is_empty() { b'{' } else { b',' });
        serde_json::to_writer(&mut *out, key).map_err(ApiError::internal)?;
        out.push(b':');
        value.write(out).map_err(ApiError::internal)
    };
    let items: Vec<&str> = loaded.items.iter().map(|item| item.as_str()).collect();
    field(&mut out, "checkpoint", &proved.signed.text.as_str())?;
    field(
        &mut out,
        "entry-number",
        &loaded.number.to_string().as_str(),
    )?;
    field(&mut out, "items", &items.as_slice())?;
    field(&mut out, "leaf", &leaf)?;
    field(
        &mut out,
        "leaf-hash",
        &erased::Hash(&leaf_hash(&loaded.leaf)),
    )?;
    field(&mut out, "leaf-index", &proved.index)?;
    if let Some(links) = links {
        field(&mut out, "links", links)?;
    }
    field(&mut out, "log-origin", &log_origin)?;
    field(&mut out, "merkle-audit-path", &erased::Hashes(&proved.path))?;
    field(&mut out, "proof-identifier", &PROOF_IDENTIFIER)?;
    field(
        &mut out,
        "record",
        &erased::Raw(&records_json([loaded.model()])),
    )?;
    field(&mut out, "root-hash", &erased::Hash(&proved.signed.root))?;
    if links.is_some() {
        field(&mut out, "tlog-proof", &proved.tlog_proof().as_str())?;
    }
    field(&mut out, "tree-size", &proved.signed.size)?;
    out.push(b'}');
    Ok(out)
}

/// What [`record_proof_json`] writes as a field's value.
mod erased {
    /// A value written as JSON.
    pub trait Value {
        fn write(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error>;
    }

    impl<T: serde::Serialize + ?Sized> Value for T {
        fn write(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
            serde_json::to_writer(out, self)
        }
    }

    /// JSON text written as it is: the record's own JSON, which
    /// `records_json` made.
    pub struct Raw<'a>(pub &'a str);

    impl Value for Raw<'_> {
        fn write(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
            out.extend_from_slice(self.0.as_bytes());
            Ok(())
        }
    }

    /// A hash as the string `sha-256:<hex>`, which needs no escaping.
    pub struct Hash<'a>(pub &'a regis_merkle::Hash);

    impl Value for Hash<'_> {
        fn write(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
            out.push(b'"');
            out.extend_from_slice(&regis_model::hash_text(self.0));
            out.push(b'"');
            Ok(())
        }
    }

    /// Hashes as an array of such strings.
    pub struct Hashes<'a>(pub &'a [regis_merkle::Hash]);

    impl Value for Hashes<'_> {
        fn write(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
            out.push(b'[');
            for (at, hash) in self.0.iter().enumerate() {
                if at > 0 {
                    out.push(b',');
                }
                Hash(hash).write(out)?;
            }
            out.push(b']');
            Ok(())
        }
    }
}

/// A record proved against the register's served checkpoint: its entry,
/// leaf and items, the audit path and the checkpoint.
#[derive(Debug)]
pub struct ProvedRecord {
    /// The record's entry, leaf and items.
    pub loaded: Loaded,
    /// The entry's leaf index.
    pub index: u64,
    /// The audit path.
    pub path: Vec<Hash>,
    /// The checkpoint it is proved against.
    pub signed: SignedTree,
}

impl ProvedRecord {
    /// The C2SP tlog-proof, the leaf bytes as its `extra`.
    pub fn tlog_proof(&self) -> String {
        // The checkpoint as stored: its signature was checked on open.
        tlog_proof_text(
            Some(&self.loaded.leaf),
            self.index,
            &self.path,
            &self.signed.text,
        )
    }
}

/// Record `key` of `reg` proved against the checkpoint `reg` serves: with
/// a witness policy the newest witnessed one, with its cosignatures, and
/// the record the key's latest entry within it. 404 for no record; 503 for
/// one none of whose entries a (witnessed) checkpoint covers yet.
pub fn proved_record<B: DirBackend>(
    reg: &RegisterState<B>,
    key: &str,
) -> Result<ProvedRecord, ApiError> {
    // Read before the snapshot, so that the snapshot holds its tree.
    let witnessed = witnessed_checkpoint(reg, Log::User)?;
    let read = RegisterRead::new(reg)?;
    let snapshot = &read.snapshot;
    let signed = match witnessed {
        Some(witnessed) => witnessed,
        None => snapshot.checkpoint(Log::User)?.ok_or_else(|| {
            ApiError::unavailable(
                "no-checkpoint",
                format!("register {} has no signed checkpoint yet", reg.name),
            )
        })?,
    };
    let Some((found, path)) = snapshot
        .record_with_proof(Log::User, key, signed.size)
        .map_err(proof_error)?
    else {
        // A record none of whose entries the checkpoint covers yet, or none.
        read.record(key)?;
        let (code, what) = match reg.witnessed() {
            Some(_) => ("not-yet-witnessed", "a checkpoint its witnesses cosigned"),
            None => ("not-yet-signed", "a signed checkpoint"),
        };
        return Err(ApiError::unavailable(
            code,
            format!("record {} is not yet covered by {what}; retry", quote(key)),
        ));
    };
    let index = found
        .record
        .entry_number
        .checked_sub(1)
        .ok_or_else(|| ApiError::internal(format!("record {} names entry 0", quote(key))))?;
    let loaded = read.load_found(found)?;
    Ok(ProvedRecord {
        loaded,
        index,
        path,
        signed,
    })
}

/// `GET B/witness-policy`: the register's witness policy (C2SP tlog-policy)
/// as its file holds it, so that people and pages can see which witnesses
/// its checkpoints carry; a client pins its own copy. A register without
/// one serves `quorum none`: its checkpoints are served as signed. A
/// mirror's is its upstream's to say: 404.
pub fn witness_policy<B: DirBackend>(reg: &RegisterState<B>) -> Result<Response, ApiError> {
    if let Err(upstream) = reg.sequencer() {
        return Err(ApiError::not_found(
            "no-witness-policy",
            format!(
                "register {} is a mirror: its checkpoints are {upstream}'s, whose witness \
                 policy is at its own witness-policy",
                reg.name
            ),
        ));
    }
    let bytes = match reg.witnessed() {
        Some(witnessed) => Bytes::copy_from_slice(witnessed.policy().bytes()),
        None => Bytes::from_static(b"quorum none\n"),
    };
    Ok(http::ok("text/plain; charset=utf-8", http::SHORT, bytes))
}
