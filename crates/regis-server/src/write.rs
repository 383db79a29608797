//! The write API. Each write is answered only once it is durable and
//! covered by a signed checkpoint, so the answer is a receipt:
//!
//! - `POST B/entries`: `[{"key":…,"item":{…}}]`, stamped by the server,
//!   validated against the register's fields; the answer lists each entry's
//!   number, item hash and leaf hash, and the signed checkpoint covering
//!   them. An entry whose item is already its key's record (a no-op) is
//!   refused unless `?allow-no-op=true`.
//! - `POST B/load-rsf`: an RSF document, spooled to disk as it arrives (at
//!   most `limits.max-rsf-bytes`), then appended all or nothing under the
//!   same rules, asserts checked; system entries in it change the schema,
//!   checked as any definition is. Published history's slips are refused
//!   here (`Policy::APPEND`): an item no entry references (in the old
//!   service's words, `Orphan add item (line:N): <hash>`), a system entry of
//!   no known key.
//! - `POST /registers` (admin token): a new register from a name, text,
//!   custodian and field definitions; the answer carries its verifier keys
//!   and a write token for it, shown this once.
//!
//! A register with a witness policy answers a write as soon as it is
//! durable and signed too; with `?wait=witnessed` the answer waits (at most
//! three witness timeouts, without holding a write slot) until a checkpoint
//! its witnesses cosigned covers the write, and carries it as
//! `witnessed-checkpoint`. If none does in time, a 504 `not-witnessed`
//! whose body still holds the receipt: the write is durable all the same.
//!
//! Every write needs `Authorization: Bearer <token>` (401 without a valid
//! one, 403 with another register's). Writes to one register are bounded
//! (`limits.max-writes-in-flight`, then 503 with `Retry-After`); a body must
//! arrive within `limits.body-timeout-seconds` (408) and be within its size
//! limit (413). Nothing is written unless the whole request is.

use std::io::{BufReader, Seek as _};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt as _;
use regis_model::rsf::{Policy, RsfError, RsfErrorKind, RsfReader};
use regis_model::{
    DefinitionError, Item, ItemHash, PerLog, RegisterName, Schema, definition_commands,
};
use regis_store::{
    Commands, DirBackend, Log, Receipt, Request, Scope, SequencerError, SequencerHandle,
    SignedTree, system_clock,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::OwnedSemaphorePermit;

use crate::app::{App, RegisterState};
use crate::error::{ApiError, Doing};
use crate::http::{self, Query, quote};
use crate::links::{self, LinkMode, LinkSettings};
use crate::metrics::Outcome;
use crate::routes::{Matched, Post};
use crate::urls;

/// Answers a `POST` to a write route.
pub async fn post<B: DirBackend>(
    app: &Arc<App<B>>,
    post: Post,
    matched: &Matched,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let result = match post {
        Post::AppendEntries => append_entries(app, matched, query, headers, body).await,
        Post::LoadRsf => load_rsf(app, matched, query, headers, body).await,
        Post::CreateRegister => create_register(app, headers, body).await,
    };
    let outcome = match &result {
        Ok(_) => Outcome::Done,
        Err(error) if error.status == StatusCode::SERVICE_UNAVAILABLE => Outcome::Refused,
        Err(error) if error.status.is_client_error() => Outcome::Rejected,
        Err(_) => Outcome::Failed,
    };
    app.write_metrics.outcome(outcome);
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The register a write names, with the caller's right to write to it
/// checked and a write slot taken.
async fn writable<B: DirBackend>(
    app: &Arc<App<B>>,
    matched: &Matched,
    headers: &HeaderMap,
    body_limit: u64,
) -> Result<(Arc<RegisterState<B>>, OwnedSemaphorePermit), ApiError> {
    let name = matched
        .params
        .first()
        .ok_or_else(|| ApiError::internal("a write route without {name}"))?;
    let reg = app.register(name)?;
    // A mirror takes no writes: say so before asking for a token.
    sequencer_of(&reg)?;
    authorize(app, headers, &Scope::Register(reg.name.clone())).await?;
    refuse_while_stopping(app)?;
    // The body's stated length, or the most it may be.
    let incoming = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
        .map_or(body_limit, |length| length.min(body_limit));
    app.room.check(
        app.registry.data_dir(),
        &app.registry.dir(&reg.name),
        &app.limits,
        incoming,
    )?;
    let permit = Arc::clone(&reg.writes).try_acquire_owned().map_err(|_| {
        ApiError::unavailable(
            "busy",
            format!(
                "register {} has {} writes in flight, its limit; retry",
                reg.name, app.limits.max_writes_in_flight
            ),
        )
    })?;
    Ok((reg, permit))
}

/// 503 once the server is stopping: what is in flight finishes, nothing new
/// starts.
fn refuse_while_stopping<B: DirBackend>(app: &App<B>) -> Result<(), ApiError> {
    if app.is_stopping() {
        return Err(ApiError::unavailable(
            "stopping",
            "the server is shutting down; retry when it is back",
        ));
    }
    Ok(())
}

/// Checks that the bearer token allows `wanted`: 401 without a token or
/// with one this server never minted, 403 with a token for something else.
async fn authorize<B: DirBackend>(
    app: &Arc<App<B>>,
    headers: &HeaderMap,
    wanted: &Scope,
) -> Result<(), ApiError> {
    let unauthorized = |code, message: &str| ApiError::new(StatusCode::UNAUTHORIZED, code, message);
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "no-token",
            "writes need `Authorization: Bearer <token>`; `regis token` mints one",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(bearer_token)
        .ok_or_else(|| {
            unauthorized(
                "bad-authorization",
                "the Authorization header must be `Bearer <token>`",
            )
        })?
        .to_owned();
    // The token file is read again only when it changed: one stat.
    let checked = {
        let app = Arc::clone(app);
        tokio::task::spawn_blocking(move || app.tokens.scope(&token))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?
    };
    let Some(scope) = checked else {
        return Err(unauthorized(
            "bad-token",
            "the bearer token is not one this server minted",
        ));
    };
    if scope == *wanted {
        return Ok(());
    }
    let message = match (scope, wanted) {
        (Scope::Register(other), Scope::Register(wanted)) => {
            format!("this token writes to register {other}, not {wanted}")
        }
        (Scope::Admin, Scope::Register(wanted)) => {
            format!("an admin token creates registers; writing to {wanted} needs its own token")
        }
        (Scope::Register(other), _) => {
            format!(
                "this token writes to register {other}; creating registers needs an admin token"
            )
        }
        (Scope::Admin, Scope::Admin) => return Ok(()),
    };
    Err(ApiError::new(StatusCode::FORBIDDEN, "wrong-token", message))
}

/// The token of `Bearer <token>`; the scheme's name is case-insensitive
/// (RFC 9110, section 11.1), so `bearer` and `BEARER` are accepted.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Refuses a body declared as something other than JSON.
fn expect_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let media = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    if media.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad-content-type",
            format!("the body must be application/json, not {}", quote(media)),
        ))
    }
}

/// Where a request body goes as it arrives.
trait BodySink {
    async fn put(&mut self, chunk: Bytes) -> Result<(), ApiError>;
}

impl BodySink for Vec<u8> {
    async fn put(&mut self, chunk: Bytes) -> Result<(), ApiError> {
        self.extend_from_slice(&chunk);
        Ok(())
    }
}

impl BodySink for tokio::io::BufWriter<tokio::fs::File> {
    async fn put(&mut self, chunk: Bytes) -> Result<(), ApiError> {
        self.write_all(&chunk).await.map_err(spool_failed)
    }
}

/// Reads a request body of at most `limit` bytes into `sink` within the
/// body deadline: 413 beyond the limit (at once when `Content-Length` says
/// so), 408 when it arrives too slowly.
async fn read_body(
    limits: &crate::Limits,
    headers: &HeaderMap,
    body: Body,
    limit: u64,
    sink: &mut impl BodySink,
) -> Result<(), ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!("the body is larger than {limit} bytes, this request's limit"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let timeout = limits.body_timeout();
    let read = async {
        let mut stream = body.into_data_stream();
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| {
                ApiError::bad_request("bad-body", format!("reading the body failed: {error}"))
            })?;
            total = total.saturating_add(chunk.len() as u64);
            if total > limit {
                return Err(too_large());
            }
            sink.put(chunk).await?;
        }
        Ok(())
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "slow-body",
            format!("the body did not arrive within {} s", timeout.as_secs()),
        )
    })?
}

/// A body held in memory (JSON writes: at most `limits.max-body-bytes`).
async fn body_bytes(
    limits: &crate::Limits,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<u8>, ApiError> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(limits.max_body_bytes).unwrap_or(u64::MAX);
    read_body(limits, headers, body, limit, &mut bytes).await?;
    Ok(bytes)
}

/// One entry of a `POST B/entries` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostedEntry {
    key: String,
    item: Box<RawValue>,
}

/// Parses a `POST B/entries` body into keys and canonical items; errors name
/// the entry (1-based) and its key.
fn parse_entries(body: &[u8]) -> Result<Vec<(String, Item)>, ApiError> {
    let posted: Vec<PostedEntry> = serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request(
            "bad-json",
            format!("the body must be a JSON array of {{\"key\",\"item\"}} objects: {error}"),
        )
    })?;
    if posted.is_empty() {
        return Err(ApiError::bad_request(
            "no-entries",
            "the body is an empty array: nothing to append",
        ));
    }
    posted
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let item = Item::parse(entry.item.get()).map_err(|error| {
                ApiError::bad_request(
                    "bad-item",
                    format!("entry {} (key {}): {error}", index + 1, quote(&entry.key)),
                )
            })?;
            Ok((entry.key, item))
        })
        .collect()
}

/// `?allow-no-op=true|false`.
fn allow_no_op(query: &Query) -> Result<bool, ApiError> {
    match query.get("allow-no-op") {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::bad_request(
            "bad-query",
            format!(
                "query parameter allow-no-op must be true or false, not {}",
                quote(other)
            ),
        )),
    }
}

/// `?wait=witnessed`: whether the answer waits for a witnessed checkpoint;
/// 400 for another value, or for a register without a witness policy.
fn wait_witnessed<B: DirBackend>(query: &Query, reg: &RegisterState<B>) -> Result<bool, ApiError> {
    match query.get("wait") {
        None => Ok(false),
        Some("witnessed") if reg.witnessed().is_some() => Ok(true),
        Some("witnessed") => Err(ApiError::bad_request(
            "no-witness-policy",
            format!(
                "register {} has no witness policy: its checkpoints are not witnessed, so \
                 wait=witnessed cannot be met",
                reg.name
            ),
        )),
        Some(other) => Err(ApiError::bad_request(
            "bad-query",
            format!(
                "query parameter wait must be witnessed, not {}",
                quote(other)
            ),
        )),
    }
}

/// Waits until `reg`'s witnessed checkpoints cover `sizes` (`None`: that
/// log need not be covered), at most `limit`: on the witnessing's watch
/// channel, never polling. The witnessed checkpoints then, or `None` if
/// the time ran out.
async fn witnessed_covering<B: DirBackend>(
    reg: &RegisterState<B>,
    sizes: PerLog<Option<u64>>,
    limit: std::time::Duration,
) -> Option<PerLog<Option<SignedTree>>> {
    let mut witnessed = reg.witnessed()?.subscribe();
    let covers = |served: &PerLog<Option<SignedTree>>| {
        sizes.iter().all(|(log, size)| {
            size.is_none_or(|size| served[log].as_ref().is_some_and(|tree| tree.size >= size))
        })
    };
    let waited = tokio::time::timeout(limit, witnessed.wait_for(covers)).await;
    match waited {
        Ok(Ok(served)) => Some(served.clone()),
        _ => None,
    }
}

/// A write's answer: its receipt `body` (a JSON object); with `wait`, once
/// the witnessed checkpoints cover `sizes` (added as `witnessed-checkpoint`
/// and `witnessed-system-checkpoint`), or a 504 `not-witnessed` carrying the
/// receipt all the same.
async fn answer_witnessed<B: DirBackend>(
    app: &App<B>,
    reg: &RegisterState<B>,
    wait: bool,
    sizes: PerLog<Option<u64>>,
    mut body: serde_json::Value,
) -> Response {
    if !wait {
        return json(StatusCode::OK, &body);
    }
    let limit = app.witness.wait_limit();
    let Some(witnessed) = witnessed_covering(reg, sizes, limit).await else {
        let error = ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "not-witnessed",
            format!(
                "the write is durable and signed (the receipt is below), but no checkpoint \
                 cosigned by the witnesses register {}'s policy requires covered it within \
                 {} s",
                reg.name,
                limit.as_secs()
            ),
        );
        body["error"] = serde_json::json!({"code": error.code, "message": error.message});
        return json(error.status, &body);
    };
    for (log, size) in sizes.iter() {
        if size.is_some()
            && let Some(tree) = &witnessed[log]
        {
            let field = match log {
                Log::User => "witnessed-checkpoint",
                Log::System => "witnessed-system-checkpoint",
            };
            body[field] = serde_json::Value::String(tree.text.clone());
        }
    }
    json(StatusCode::OK, &body)
}

/// The sequencer of `reg`; 405 for a mirror, which its upstream writes.
fn sequencer_of<B: DirBackend>(reg: &RegisterState<B>) -> Result<&SequencerHandle, ApiError> {
    reg.sequencer().map_err(|upstream| {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "read-only-mirror",
            format!(
                "register {} is a read-only mirror of {upstream}; write to that register",
                reg.name
            ),
        )
    })
}

/// Submits `request` to `reg`'s sequencer and waits for its receipt.
async fn run<B: DirBackend>(
    reg: &RegisterState<B>,
    request: Request,
    describe: impl Fn(&RsfError) -> String,
) -> Result<Receipt, ApiError> {
    let ticket = sequencer_of(reg)?
        .try_submit(request)
        .map_err(|error| refused(error, &describe))?;
    ticket
        .await
        .map_err(|_| refused(SequencerError::Stopped, &describe))?
        .map_err(|error| refused(error, &describe))
}

/// A failure writing the spool file: a full disk is a 507, as for the
/// store itself.
fn spool_failed(error: std::io::Error) -> ApiError {
    ApiError::store(&regis_store::StoreError::Io(error), Doing::Spool)
}

/// The answer to a write the sequencer did not do.
fn refused(error: SequencerError, describe: &impl Fn(&RsfError) -> String) -> ApiError {
    match error {
        SequencerError::Rejected(error) => {
            let (status, code) = match &error.kind {
                RsfErrorKind::Io(_) | RsfErrorKind::Target(_) => {
                    return ApiError::internal(error);
                }
                RsfErrorKind::RootMismatch { .. } => (StatusCode::CONFLICT, "root-mismatch"),
                RsfErrorKind::RepeatedItem { .. } => (StatusCode::CONFLICT, "no-op-entry"),
                RsfErrorKind::DefinitionChanged { .. } | RsfErrorKind::FieldChanged { .. } => {
                    (StatusCode::CONFLICT, "definition-changed")
                }
                RsfErrorKind::EntryTooLong { .. } => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "entry-too-long")
                }
                RsfErrorKind::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-item"),
                RsfErrorKind::Key(_) => (StatusCode::UNPROCESSABLE_ENTITY, "bad-key"),
                RsfErrorKind::Schema(_) => (StatusCode::UNPROCESSABLE_ENTITY, "bad-definition"),
                _ => (StatusCode::BAD_REQUEST, "bad-rsf"),
            };
            let mut message = describe(&error);
            if code == "no-op-entry" {
                message.push_str("; add ?allow-no-op=true to record it anyway");
            }
            ApiError::new(status, code, message)
        }
        SequencerError::WrongRegister { .. } => {
            ApiError::new(StatusCode::CONFLICT, "wrong-register", error.to_string())
        }
        SequencerError::Busy => ApiError::unavailable("busy", error.to_string()),
        SequencerError::Stopped => ApiError::unavailable("stopping", error.to_string()),
        SequencerError::Store(error) => ApiError::store(&error, Doing::Write),
        SequencerError::Clock => ApiError::unavailable("clock", error.to_string()),
        SequencerError::Sign(_) => {
            tracing::error!(%error, "signing failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "signing-failed",
                "signing the new checkpoint failed; nothing was acknowledged",
            )
        }
    }
}

/// A JSON response with `status`.
fn json(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_string(body) {
        Ok(text) => {
            let mut response = http::ok("application/json", http::NO_STORE, text);
            *response.status_mut() = status;
            response
        }
        // Only a failing `Serialize` impl could get here; none of the
        // answers has one (no maps with non-string keys, no fallible fields).
        Err(error) => ApiError::internal(error).into_response(),
    }
}

async fn append_entries<B: DirBackend>(
    app: &Arc<App<B>>,
    matched: &Matched,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let allow_repeated = allow_no_op(query)?;
    expect_json(headers)?;
    let limit = app.limits.max_body_bytes as u64;
    let (reg, permit) = writable(app, matched, headers, limit).await?;
    let wait = wait_witnessed(query, &reg)?;
    let body = body_bytes(&app.limits, headers, body).await?;
    let entries = tokio::task::spawn_blocking(move || parse_entries(&body))
        .await
        .map_err(ApiError::internal)??;
    let link_warnings = links::check_entries(app, &reg, &entries).await?;
    let keys: Vec<String> = entries.iter().map(|(key, _)| key.clone()).collect();
    let describe = |error: &RsfError| {
        // "Lines" of an append are its entries' positions.
        let key = usize::try_from(error.line)
            .ok()
            .and_then(|line| keys.get(line.checked_sub(1)?));
        match (key, &error.kind) {
            // Its message would name the key a second time.
            (Some(key), RsfErrorKind::Invalid { error: invalid, .. }) => {
                format!("entry {} (key {}): {invalid}", error.line, quote(key))
            }
            (Some(key), kind) => format!("entry {} (key {}): {kind}", error.line, quote(key)),
            (None, _) => error.to_string(),
        }
    };
    let receipt = run(
        &reg,
        Request::Append {
            entries,
            allow_repeated,
        },
        describe,
    )
    .await?;
    app.write_metrics
        .committed(receipt.appended.user, &receipt.timing);
    // Waiting for witnesses holds no write slot.
    drop(permit);
    let answer = AppendAnswer {
        entries: receipt
            .entries
            .iter()
            .map(|entry| AppendedEntry {
                entry_number: entry.number,
                key: &entry.key,
                item_hash: HashText(entry.item_hash),
                leaf_hash: HashText(entry.leaf_hash),
            })
            .collect(),
        checkpoint: &receipt.checkpoints.user.text,
    };
    let mut body = serde_json::to_value(&answer).map_err(ApiError::internal)?;
    with_link_warnings(&mut body, link_warnings);
    let sizes = PerLog {
        user: Some(receipt.checkpoints.user.size),
        system: None,
    };
    Ok(answer_witnessed(app, &reg, wait, sizes, body).await)
}

/// The answer to `POST B/entries`: a receipt for each entry, and the
/// checkpoint that covers them all.
#[derive(Serialize)]
struct AppendAnswer<'a> {
    entries: Vec<AppendedEntry<'a>>,
    checkpoint: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct AppendedEntry<'a> {
    entry_number: u64,
    key: &'a str,
    item_hash: HashText,
    leaf_hash: HashText,
}

/// A hash as `sha-256:<hex>`, written straight into the answer (a 1000-entry
/// answer has 2000 of them).
struct HashText(regis_merkle::Hash);

impl Serialize for HashText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&ItemHash(self.0))
    }
}

async fn load_rsf<B: DirBackend>(
    app: &Arc<App<B>>,
    matched: &Matched,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let allow_repeated = allow_no_op(query)?;
    let (reg, permit) = writable(app, matched, headers, app.limits.max_rsf_bytes).await?;
    let wait = wait_witnessed(query, &reg)?;
    // Spooled to an unnamed file in the data directory (gone when closed,
    // whatever happens), so that the sequencer never waits on the network.
    let spool = {
        let dir = app.registry.data_dir().to_owned();
        tokio::task::spawn_blocking(move || tempfile::tempfile_in(dir))
            .await
            .map_err(ApiError::internal)?
            .map_err(spool_failed)?
    };
    let mut writer = tokio::io::BufWriter::new(tokio::fs::File::from_std(spool));
    read_body(
        &app.limits,
        headers,
        body,
        app.limits.max_rsf_bytes,
        &mut writer,
    )
    .await?;
    writer.flush().await.map_err(spool_failed)?;
    let mut file = writer.into_inner().into_std().await;
    file.rewind().map_err(spool_failed)?;
    let (posted, file) = {
        let reg = Arc::clone(&reg);
        tokio::task::spawn_blocking(move || {
            links::posted_rsf(&reg, &mut file).map(|posted| (posted, file))
        })
        .await
        .map_err(ApiError::internal)??
    };
    let link_warnings = links::check(app, &reg, posted).await?;
    let request = Request::Stream {
        commands: Commands::new(RsfReader::new(BufReader::new(file))),
        policy: Policy {
            allow_repeated_items: allow_repeated,
            ..Policy::APPEND
        },
    };
    let receipt = run(&reg, request, describe_load_error).await?;
    app.write_metrics.committed(
        receipt
            .appended
            .user
            .saturating_add(receipt.appended.system),
        &receipt.timing,
    );
    drop(permit);
    let mut body = serde_json::json!({
        "user-entries": receipt.appended.user,
        "system-entries": receipt.appended.system,
        "items-added": receipt.items_added,
        "assertions": receipt.assertions,
        "checkpoint": receipt.checkpoints.user.text,
        "system-checkpoint": receipt.checkpoints.system.text,
    });
    with_link_warnings(&mut body, link_warnings);
    // Each log the document appended to must be covered.
    let sizes =
        PerLog::from_fn(|log| (receipt.appended[log] > 0).then_some(receipt.checkpoints[log].size));
    Ok(answer_witnessed(app, &reg, wait, sizes, body).await)
}

/// Adds `link-warnings` to a write's answer when there are any (a register
/// whose `links` mode is `warn`).
fn with_link_warnings(body: &mut serde_json::Value, warnings: Vec<String>) {
    if !warnings.is_empty() {
        body["link-warnings"] = serde_json::json!(warnings);
    }
}

/// Why a `POST B/load-rsf` document was refused. An orphan item is a
/// custodian's mistake in a patch: said in the old service's words, which
/// its users' tooling may look for.
fn describe_load_error(error: &RsfError) -> String {
    match &error.kind {
        RsfErrorKind::OrphanItem(hash) => format!("Orphan add item (line:{}): {hash}", error.line),
        _ => error.to_string(),
    }
}

/// A `POST /registers` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRegister {
    name: String,
    text: String,
    #[serde(default)]
    custodian: Option<String>,
    fields: Vec<Box<RawValue>>,
}

/// Parses a `POST /registers` body: the name, and each field definition
/// (an object shaped like a GOV.UK `field:<f>` item) checked as the
/// register's system log would check it.
fn parse_new_register(
    body: &[u8],
) -> Result<(RegisterName, NewRegister, Vec<regis_model::Field>), ApiError> {
    let new: NewRegister = serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request(
            "bad-json",
            format!(
                "the body must be {{\"name\",\"text\",\"custodian\"?,\"fields\":[{{\"field\",\"datatype\",\"cardinality\",\"text\"?,\"register\"?}}]}}: {error}"
            ),
        )
    })?;
    let name = RegisterName::new(&new.name).map_err(|_| {
        ApiError::bad_request(
            "bad-register-name",
            format!(
                "{} is not a register name: 1 to 64 of a-z, 0-9 and '-', not starting with '-'",
                quote(&new.name)
            ),
        )
    })?;
    let mut schema = Schema::named(name.as_str());
    let mut names = Vec::new();
    for (index, raw) in new.fields.iter().enumerate() {
        let bad = |message: String| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad-field",
                format!("field {}: {message}", index + 1),
            )
        };
        let item = Item::parse(raw.get()).map_err(|e| bad(e.to_string()))?;
        let field = item
            .get_one("field")
            .ok_or_else(|| bad("it has no \"field\" (its name)".to_owned()))?
            .into_owned();
        let key = format!("field:{field}");
        Schema::check_definition(&key, &item).map_err(|e| bad(e.to_string()))?;
        schema.apply(&key, &item).map_err(|e| bad(e.to_string()))?;
        names.push(field);
    }
    let fields = names
        .iter()
        .filter_map(|field| schema.field(field).cloned())
        .collect();
    Ok((name, new, fields))
}

async fn create_register<B: DirBackend>(
    app: &Arc<App<B>>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    expect_json(headers)?;
    authorize(app, headers, &Scope::Admin).await?;
    refuse_while_stopping(app)?;
    let body = body_bytes(&app.limits, headers, body).await?;
    let app = Arc::clone(app);
    let created = tokio::task::spawn_blocking(move || {
        let (name, new, fields) = parse_new_register(&body)?;
        let now = system_clock()()
            .ok_or_else(|| ApiError::internal("the server's clock is out of range"))?;
        let commands =
            definition_commands(&name, &fields, &new.text, new.custodian.as_deref(), now).map_err(
                |error| {
                    // The commands' line numbers mean nothing to the client.
                    let message = match error {
                        DefinitionError::Invalid(error) => error.kind.to_string(),
                        error => error.to_string(),
                    };
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-definition", message)
                },
            )?;
        // The durable marker of a register made here: its links are checked.
        if !app.registry.exists::<B>(&name) {
            LinkSettings::mark(&app.registry.dir(&name), LinkMode::Check)
                .map_err(ApiError::internal)?;
        }
        let (reg, receipt) = app.create_register(&name, |reg| {
            sequencer_of(reg)?
                .run(Request::Load {
                    commands,
                    policy: Policy::APPEND,
                })
                .map_err(|error| refused(error, &RsfError::to_string))
        })?;
        let token = app
            .tokens
            .mint(Scope::Register(name.clone()))
            .map_err(ApiError::internal)?;
        Ok::<_, ApiError>((reg, receipt, token.token))
    })
    .await
    .map_err(ApiError::internal)??;
    let (reg, receipt, token) = created;
    let mut response = json(
        StatusCode::CREATED,
        &serde_json::json!({
            "name": reg.name.as_str(),
            "log-origin": reg.origin(Log::User),
            "log-public-key": reg.verifier(Log::User),
            "system-log-origin": reg.origin(Log::System),
            "system-log-public-key": reg.verifier(Log::System),
            "system-checkpoint": receipt.checkpoints.system.text,
            "token": token,
        }),
    );
    if let Ok(location) = HeaderValue::from_str(urls::register(reg.name.as_str()).as_str()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}
