//! The GOV.UK-compatible register API: metadata, records, entries, items,
//! in JSON and CSV, paged with one scheme and bounded page sizes.
//!
//! Every handler here is synchronous: it runs on a blocking thread over one
//! store snapshot, so a response is consistent with one commit.

use axum::http::{HeaderValue, header};
use axum::response::Response;
use regis_merkle::Hash;
use regis_model::api::{entries_csv, items_csv, records_csv, records_json};
use regis_model::{Entry, Item, Schema, format_hash, parse_hash};
use regis_store::{DirBackend, KvSnapshot, Log, Record, Snapshot};
use serde_json::{Value, json};

use crate::app::{App, RegisterState};
use crate::config::Limits;
use crate::error::ApiError;
use crate::http::{self, Format, Query, quote};

/// What a handler needs from the request.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The request path, raw (for `Link` headers).
    pub path: &'a str,
    /// Its query.
    pub query: &'a Query,
    /// The representation asked for.
    pub format: Format,
    /// The server's bounds.
    pub limits: Limits,
}

/// An entry with its number and items, loaded from the store.
#[derive(Debug)]
pub struct Loaded {
    /// Its number.
    pub number: u64,
    /// The entry.
    pub entry: Entry,
    /// Its leaf bytes.
    pub leaf: Vec<u8>,
    /// Its items.
    pub items: Vec<Item>,
}

impl Loaded {
    fn model(&self) -> regis_model::Record<'_> {
        regis_model::Record {
            number: self.number,
            entry: &self.entry,
            items: self.items.iter().collect(),
        }
    }
}

/// Entry `number` of `log`, parsed; `None` beyond the log.
pub fn load_entry<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    log: Log,
    number: u64,
) -> Result<Option<(Entry, Vec<u8>)>, ApiError> {
    let Some(leaf) = snapshot.entry(log, number)? else {
        return Ok(None);
    };
    let (_, entry) = Entry::parse_leaf(log, &leaf)
        .map_err(|e| ApiError::internal(format!("{log} entry {number}: {e}")))?;
    Ok(Some((entry, leaf)))
}

/// An item, parsed; `None` if not stored.
pub fn load_item<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    hash: &Hash,
) -> Result<Option<Item>, ApiError> {
    let Some(json) = snapshot.item(hash)? else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&json)
        .map_err(|_| ApiError::internal(format!("item {} is not UTF-8", format_hash(hash))))?;
    Item::from_canonical(text)
        .map(Some)
        .map_err(|e| ApiError::internal(format!("item {}: {e}", format_hash(hash))))
}

/// A user entry with its items.
pub fn load<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    log: Log,
    number: u64,
) -> Result<Loaded, ApiError> {
    let (entry, leaf) = load_entry(snapshot, log, number)?
        .ok_or_else(|| ApiError::internal(format!("{log} entry {number} is missing")))?;
    let mut items = Vec::with_capacity(entry.item_hashes.len());
    for hash in &entry.item_hashes {
        items.push(load_item(snapshot, hash.as_bytes())?.ok_or_else(|| {
            ApiError::internal(format!("item {} is missing", format_hash(hash.as_bytes())))
        })?);
    }
    Ok(Loaded {
        number,
        entry,
        leaf,
        items,
    })
}

pub(crate) fn load_records<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    records: &[Record],
) -> Result<Vec<Loaded>, ApiError> {
    records
        .iter()
        .map(|record| load(snapshot, Log::User, record.entry_number))
        .collect()
}

/// The CSV columns: the register definition's fields, else every defined
/// field by name.
pub fn csv_fields(schema: &Schema) -> Vec<String> {
    match schema.definition() {
        Some(definition) => definition.fields.clone(),
        None => schema.fields().map(|f| f.name.clone()).collect(),
    }
}

/// How many records a `page-index` page may start past. Reaching an offset
/// means stepping over every record before it (the indexes are ordered by
/// key, not numbered), so without a bound one request could walk a whole
/// register; `?after=KEY` pages by key in `O(page)` however deep.
pub const MAX_PAGE_OFFSET: u64 = 100_000;

/// Page size and index from `page-size` and `page-index`, bounded: 400 for
/// a page that starts more than [`MAX_PAGE_OFFSET`] records in.
pub(crate) fn page(ctx: &Ctx<'_>) -> Result<(u64, u64), ApiError> {
    let (index, size) = page_params(ctx)?;
    within_depth(index, size)?;
    Ok((index, size))
}

/// Page index and size from `page-index` and `page-size`, unbounded.
fn page_params(ctx: &Ctx<'_>) -> Result<(u64, u64), ApiError> {
    let size = ctx.query.number(
        "page-size",
        1,
        ctx.limits.max_page_size,
        ctx.limits.default_page_size,
    )?;
    let index = ctx.query.number("page-index", 1, u64::MAX, 1)?;
    Ok((index, size))
}

/// 400 for a page that starts more than [`MAX_PAGE_OFFSET`] records in.
fn within_depth(index: u64, size: u64) -> Result<(), ApiError> {
    let offset = (index - 1).saturating_mul(size);
    if offset > MAX_PAGE_OFFSET {
        return Err(ApiError::bad_request(
            "page-too-deep",
            format!(
                "page-index {index} of page-size {size} starts {offset} records in, and \
                 page-index pages start at most {MAX_PAGE_OFFSET} in; B/records pages by key \
                 however deep with ?after=KEY (each page's Link header names the next)"
            ),
        ));
    }
    Ok(())
}

/// 404 for a page of records past the last one (the first page is there
/// even when empty): how GOV.UK Registers ended a listing, and what
/// clients that page until a 404 wait for. `what` names the list.
fn past_the_last_page(what: &str, index: u64, size: u64) -> ApiError {
    ApiError::not_found(
        "no-page",
        format!("{what} end before page-index {index} of page-size {size}"),
    )
}

/// `Link` values for the previous page at `url`: `rel="previous"` as
/// GOV.UK Registers sent it and `rel="prev"` as RFC 8288 registers it,
/// each a value of its own, so that parsers keying links by their `rel`
/// text (Python's requests) find either.
pub(crate) fn previous_links(url: &str) -> [String; 2] {
    [
        format!("<{url}>; rel=\"previous\""),
        format!("<{url}>; rel=\"prev\""),
    ]
}

/// `Link` header for a paged list: `next` if there is more, `previous`
/// (also `prev`) if not on the first page.
pub(crate) fn link(ctx: &Ctx<'_>, index: u64, size: u64, more: bool, response: &mut Response) {
    let mut links = Vec::new();
    if more && let Some(next) = index.checked_add(1) {
        links.push(format!(
            "<{}?page-index={next}&page-size={size}>; rel=\"next\"",
            ctx.path
        ));
    }
    if index > 1 {
        links.extend(previous_links(&format!(
            "{}?page-index={}&page-size={size}",
            ctx.path,
            index - 1
        )));
    }
    if !links.is_empty()
        && let Ok(value) = HeaderValue::from_str(&links.join(", "))
    {
        response.headers_mut().insert(header::LINK, value);
    }
}

fn records_response(
    ctx: &Ctx<'_>,
    schema: &Schema,
    loaded: &[Loaded],
) -> Result<Response, ApiError> {
    let records = loaded.iter().map(Loaded::model);
    match ctx.format {
        Format::Json => Ok(http::json(records_json(records))),
        Format::Csv => Ok(http::csv(records_csv(&csv_fields(schema), records))),
        // Pages are rendered by `html`; an API handler is never asked for one.
        Format::TlogProof | Format::Html => Err(not_acceptable("records")),
    }
}

/// `error` (the value in a path does not parse) as a 404: a path naming
/// no thing.
fn not_found(error: ApiError) -> ApiError {
    ApiError {
        status: axum::http::StatusCode::NOT_FOUND,
        ..error
    }
}

fn not_acceptable(what: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_ACCEPTABLE,
        "not-acceptable",
        format!("{what} are served as JSON (.json) or CSV (.csv) only"),
    )
}

fn entries_response(
    ctx: &Ctx<'_>,
    entries: &[(u64, Vec<u8>)],
    log: Log,
) -> Result<Response, ApiError> {
    match ctx.format {
        Format::Json => {
            // An entry's JSON is exactly its leaf bytes.
            let mut body =
                Vec::with_capacity(entries.iter().map(|(_, l)| l.len() + 1).sum::<usize>() + 2);
            body.push(b'[');
            for (index, (_, leaf)) in entries.iter().enumerate() {
                if index > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(leaf);
            }
            body.push(b']');
            Ok(http::ok("application/json", http::SHORT, body))
        }
        Format::Csv => {
            let parsed = entries
                .iter()
                .map(|(number, leaf)| {
                    Entry::parse_leaf(log, leaf)
                        .map(|(_, entry)| (*number, entry))
                        .map_err(|e| ApiError::internal(format!("{log} entry {number}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(http::csv(entries_csv(parsed.iter().map(|(n, e)| (*n, e)))))
        }
        Format::TlogProof | Format::Html => Err(not_acceptable("entries")),
    }
}

/// `GET B/records`: by `page-index`, or by key with `after` (the page of
/// keys after it, in `O(page)` reads however deep: for walking them all).
pub fn records<B: DirBackend>(reg: &RegisterState<B>, ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let snapshot = reg.snapshot()?;
    let schema = reg.schema(snapshot.size(Log::System))?;
    let (index, size) = page_params(ctx)?;
    if let Some(after) = ctx.query.get("after") {
        if ctx.query.get("page-index").is_some() {
            return Err(ApiError::bad_request(
                "bad-query",
                "`after` and `page-index` both page the records: give one",
            ));
        }
        let after = Some(after).filter(|after| !after.is_empty());
        // One more than the page: whether there is a next one.
        let mut records = snapshot.records_after(Log::User, after, size.saturating_add(1))?;
        let more = records.len() as u64 > size;
        records.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        let loaded = load_records(&snapshot, &records)?;
        let mut response = records_response(ctx, &schema, &loaded)?;
        if let Some(last) = records.last().filter(|_| more) {
            let next = format!(
                "<{}?after={}&page-size={size}>; rel=\"next\"",
                ctx.path,
                http::encode_segment(&last.key)
            );
            if let Ok(value) = HeaderValue::from_str(&next) {
                response.headers_mut().insert(header::LINK, value);
            }
        }
        return Ok(response);
    }
    let total = snapshot.record_count();
    let offset = (index - 1).saturating_mul(size);
    if index > 1 && offset >= total {
        return Err(past_the_last_page(
            &format!("the {total} records of register {}", reg.name),
            index,
            size,
        ));
    }
    within_depth(index, size)?;
    let records = if offset >= total {
        Vec::new()
    } else {
        snapshot.records(Log::User, offset, size)?
    };
    let loaded = load_records(&snapshot, &records)?;
    let mut response = records_response(ctx, &schema, &loaded)?;
    link(
        ctx,
        index,
        size,
        offset.saturating_add(size) < total,
        &mut response,
    );
    Ok(response)
}

/// `GET B/records/{key}`.
pub fn record<B: DirBackend>(
    reg: &RegisterState<B>,
    ctx: &Ctx<'_>,
    key: &str,
) -> Result<Response, ApiError> {
    let snapshot = reg.snapshot()?;
    let schema = reg.schema(snapshot.size(Log::System))?;
    let record = find_record(&snapshot, reg, key)?;
    let loaded = load(&snapshot, Log::User, record.entry_number)?;
    let mut response = records_response(ctx, &schema, std::slice::from_ref(&loaded))?;
    // Where the record's history is, as GOV.UK Registers said.
    let history = format!(
        "</registers/{}/records/{}/entries>; rel=\"version-history\"",
        reg.name,
        http::encode_segment(key)
    );
    if let Ok(value) = HeaderValue::from_str(&history) {
        response.headers_mut().insert(header::LINK, value);
    }
    Ok(response)
}

/// The record `key`, or a 404 that names it.
pub fn find_record<B: DirBackend, S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    reg: &RegisterState<B>,
    key: &str,
) -> Result<Record, ApiError> {
    snapshot.record(Log::User, key)?.ok_or_else(|| {
        ApiError::not_found(
            "no-record",
            format!(
                "register {} has no record with key {}",
                reg.name,
                quote(key)
            ),
        )
    })
}

/// `GET B/records/{key}/entries`: the key's history, oldest first.
pub fn record_entries<B: DirBackend>(
    reg: &RegisterState<B>,
    ctx: &Ctx<'_>,
    key: &str,
) -> Result<Response, ApiError> {
    let snapshot = reg.snapshot()?;
    find_record(&snapshot, reg, key)?;
    let (index, size) = page(ctx)?;
    let offset = (index - 1).saturating_mul(size);
    let mut history = snapshot.history(Log::User, key, offset, size.saturating_add(1))?;
    let more = history.len() as u64 > size;
    history.truncate(usize::try_from(size).unwrap_or(usize::MAX));
    let mut entries = Vec::with_capacity(history.len());
    for (number, _) in history {
        let (_, leaf) = load_entry(&snapshot, Log::User, number)?
            .ok_or_else(|| ApiError::internal(format!("user entry {number} is missing")))?;
        entries.push((number, leaf));
    }
    let mut response = entries_response(ctx, &entries, Log::User)?;
    link(ctx, index, size, more, &mut response);
    Ok(response)
}

/// `GET B/records/{field}/{value}`.
pub fn records_by_field<B: DirBackend>(
    reg: &RegisterState<B>,
    ctx: &Ctx<'_>,
    field: &str,
    value: &str,
) -> Result<Response, ApiError> {
    let snapshot = reg.snapshot()?;
    let schema = reg.schema(snapshot.size(Log::System))?;
    if schema.field(field).is_none() {
        return Err(ApiError::not_found(
            "no-field",
            format!("register {} has no field {}", reg.name, quote(field)),
        ));
    }
    let (index, size) = page(ctx)?;
    let offset = (index - 1).saturating_mul(size);
    let mut records = snapshot.records_by_field(field, value, offset, size.saturating_add(1))?;
    if index > 1 && records.is_empty() {
        return Err(past_the_last_page(
            &format!(
                "the records of register {} whose {} is {}",
                reg.name,
                field,
                quote(value)
            ),
            index,
            size,
        ));
    }
    let more = records.len() as u64 > size;
    records.truncate(usize::try_from(size).unwrap_or(usize::MAX));
    let loaded = load_records(&snapshot, &records)?;
    let mut response = records_response(ctx, &schema, &loaded)?;
    link(ctx, index, size, more, &mut response);
    Ok(response)
}

/// The log `?type=` names (the user log by default).
pub(crate) fn log_of(query: &Query) -> Result<Log, ApiError> {
    match query.get("type") {
        None | Some("user") => Ok(Log::User),
        Some("system") => Ok(Log::System),
        Some(other) => Err(ApiError::bad_request(
            "bad-query",
            format!(
                "query parameter type must be \"user\" or \"system\", not {}",
                quote(other)
            ),
        )),
    }
}

/// The log, first entry and count a list of entries asks for
/// (`?type`, `?start`, `?limit`, bounded by the page limits). `start` may
/// be 0: see [`entries_from`].
pub(crate) fn entries_query(ctx: &Ctx<'_>) -> Result<(Log, u64, u64), ApiError> {
    let log = log_of(ctx.query)?;
    let start = ctx.query.number("start", 0, u64::MAX, 1)?;
    let limit = ctx.query.number(
        "limit",
        1,
        ctx.limits.max_page_size,
        ctx.limits.default_page_size,
    )?;
    Ok((log, start, limit))
}

/// The entries of `log` numbered from `start` up to `start + limit`
/// (excluded). Numbers begin at 1, so `start=0` gives one fewer: a client
/// counting from 0 gets a page that the next (`start=limit`) continues,
/// as from GOV.UK Registers.
pub(crate) fn entries_from<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    log: Log,
    start: u64,
    limit: u64,
) -> Result<Vec<(u64, Vec<u8>)>, ApiError> {
    let entries = match start {
        0 => snapshot.entries(log, 1, limit - 1)?,
        _ => snapshot.entries(log, start, limit)?,
    };
    Ok(entries)
}

/// `GET B/entries?start&limit[&type=system]`.
pub fn entries<B: DirBackend>(reg: &RegisterState<B>, ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let (log, start, limit) = entries_query(ctx)?;
    let snapshot = reg.snapshot()?;
    let entries = entries_from(&snapshot, log, start, limit)?;
    let mut response = entries_response(ctx, &entries, log)?;
    let size = snapshot.size(log);
    let next = start.saturating_add(limit);
    let mut links = Vec::new();
    let kind = match log {
        Log::User => "",
        Log::System => "&type=system",
    };
    if next <= size {
        links.push(format!(
            "<{}?start={next}&limit={limit}{kind}>; rel=\"next\"",
            ctx.path
        ));
    }
    if start > 1 {
        let previous = start.saturating_sub(limit).max(1);
        links.extend(previous_links(&format!(
            "{}?start={previous}&limit={limit}{kind}",
            ctx.path
        )));
    }
    if !links.is_empty()
        && let Ok(value) = HeaderValue::from_str(&links.join(", "))
    {
        response.headers_mut().insert(header::LINK, value);
    }
    Ok(response)
}

/// `GET B/entries/{number}[?type=system]`.
pub fn entry<B: DirBackend>(
    reg: &RegisterState<B>,
    ctx: &Ctx<'_>,
    number: &str,
) -> Result<Response, ApiError> {
    let log = log_of(ctx.query)?;
    // What is not an entry's number names no entry: 404, as GOV.UK
    // Registers answered.
    let number = http::number(number, "the entry number", 1, u64::MAX).map_err(not_found)?;
    let snapshot = reg.snapshot()?;
    let Some((_, leaf)) = load_entry(&snapshot, log, number)? else {
        return Err(ApiError::not_found(
            "no-entry",
            format!(
                "the {log} log of register {} has {} entries; there is no entry {number}",
                reg.name,
                snapshot.size(log)
            ),
        ));
    };
    // An entry never changes once it exists.
    let mut response = entries_response(ctx, &[(number, leaf)], log)?;
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(http::IMMUTABLE),
    );
    Ok(response)
}

/// `GET B/items/sha-256:{hex}`.
pub fn item<B: DirBackend>(
    reg: &RegisterState<B>,
    ctx: &Ctx<'_>,
    hash: &str,
) -> Result<Response, ApiError> {
    // What is not an item hash names no item: 404, as GOV.UK Registers
    // answered.
    let parsed = parse_hash(hash)
        .map_err(|e| ApiError::not_found("bad-item-hash", format!("{}: {e}", quote(hash))))?;
    let snapshot = reg.snapshot()?;
    let item = load_item(&snapshot, &parsed)?.ok_or_else(|| {
        ApiError::not_found(
            "no-item",
            format!(
                "register {} holds no item {}",
                reg.name,
                format_hash(&parsed)
            ),
        )
    })?;
    match ctx.format {
        Format::Json => Ok(http::ok(
            "application/json",
            http::IMMUTABLE,
            item.as_str().to_owned(),
        )),
        Format::Csv => {
            let schema = reg.schema(snapshot.size(Log::System))?;
            Ok(http::csv(items_csv(&csv_fields(&schema), [&item])))
        }
        Format::TlogProof | Format::Html => Err(not_acceptable("items")),
    }
}

/// A register's title: its `register-name`, else its definition's text,
/// else its name.
pub(crate) fn register_title(schema: &Schema, name: &str) -> String {
    schema
        .register_name()
        .map(str::to_owned)
        .or_else(|| {
            schema
                .definition()
                .and_then(|d| d.item.get_one("text").map(|t| t.into_owned()))
        })
        .unwrap_or_else(|| name.to_owned())
}

/// The register's summary, as in `/registers` and `B/register`.
fn summary<B: DirBackend>(
    reg: &RegisterState<B>,
) -> Result<(Value, std::sync::Arc<Schema>), ApiError> {
    let snapshot = reg.snapshot()?;
    let schema = reg.schema(snapshot.size(Log::System))?;
    let user = snapshot.size(Log::User);
    let last_updated = match load_entry(&snapshot, Log::User, user)? {
        Some((entry, _)) => Value::from(entry.timestamp.as_str()),
        None => Value::Null,
    };
    let title = register_title(&schema, reg.name.as_str());
    let summary = json!({
        "name": reg.name.as_str(),
        "title": title,
        "custodian": schema.custodian(),
        "total-records": snapshot.record_count(),
        "total-entries": user,
        "total-system-entries": snapshot.size(Log::System),
        "last-updated": last_updated,
        "root-hash": format_hash(&snapshot.root(Log::User)?),
        "system-root-hash": format_hash(&snapshot.root(Log::System)?),
        "log-origin": reg.origin(Log::User),
        "log-public-key": reg.verifier(Log::User),
        "system-log-origin": reg.origin(Log::System),
        "system-log-public-key": reg.verifier(Log::System),
    });
    Ok((summary, schema))
}

/// `GET B/register`: metadata, totals and both logs' origins and keys.
pub fn register<B: DirBackend>(
    reg: &RegisterState<B>,
    ctx: &Ctx<'_>,
) -> Result<Response, ApiError> {
    if ctx.format != Format::Json {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_ACCEPTABLE,
            "not-acceptable",
            "register metadata is served as JSON only",
        ));
    }
    let (mut summary, schema) = summary(reg)?;
    let record = match schema.definition() {
        Some(definition) => {
            serde_json::from_str::<Value>(definition.item.as_str()).map_err(ApiError::internal)?
        }
        None => Value::Null,
    };
    let fields: Vec<Value> = csv_fields(&schema)
        .iter()
        .filter_map(|name| schema.field(name))
        .map(|field| {
            json!({
                "field": field.name,
                "datatype": field.datatype.name(),
                "cardinality": field.cardinality.as_str(),
                "register": field.register,
                "text": field.text,
            })
        })
        .collect();
    if let Value::Object(map) = &mut summary {
        map.insert("register-record".into(), record);
        map.insert("fields".into(), Value::Array(fields));
    }
    Ok(http::json(summary.to_string()))
}

/// `GET /registers`: every register's summary.
pub fn catalogue<B: DirBackend>(app: &App<B>, ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    if ctx.format != Format::Json {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_ACCEPTABLE,
            "not-acceptable",
            "the catalogue is served as JSON only",
        ));
    }
    let mut list = Vec::new();
    for reg in app.registers() {
        let (mut summary, _) = summary(&reg)?;
        if let Value::Object(map) = &mut summary {
            map.insert(
                "url".into(),
                Value::from(format!("/registers/{}", reg.name)),
            );
        }
        list.push(summary);
    }
    Ok(http::json(Value::Array(list).to_string()))
}
