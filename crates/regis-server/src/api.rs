//! The GOV.UK-compatible register API: metadata, records, entries, items,
//! in JSON and CSV, paged with one scheme and bounded page sizes.
//!
//! Every handler here is synchronous: it runs on a blocking thread over one
//! store snapshot, so a response is consistent with one commit.

use axum::http::{HeaderValue, header};
use axum::response::Response;
use regis_model::api::{entries_csv, items_csv, records_csv, records_json};
use regis_model::{Schema, format_hash};
use regis_store::{DirBackend, Log};
use serde_json::{Value, json};

use crate::app::App;
use crate::error::ApiError;
use crate::http::{self, Format, quote};
use crate::request::{Ctx, Loaded, RegisterRead, link, one_page, parse_entry};
use crate::urls::{self, Href};

/// The CSV columns: the register definition's fields, else every defined
/// field by name.
pub fn csv_fields(schema: &Schema) -> Vec<String> {
    match schema.definition() {
        Some(definition) => definition.fields.clone(),
        None => schema.fields().map(|f| f.name.clone()).collect(),
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
            Ok(http::tagged("application/json", http::SHORT, body))
        }
        Format::Csv => {
            let parsed = entries
                .iter()
                .map(|(number, leaf)| Ok((*number, parse_entry(log, *number, leaf)?)))
                .collect::<Result<Vec<_>, ApiError>>()?;
            Ok(http::csv(entries_csv(parsed.iter().map(|(n, e)| (*n, e)))))
        }
        Format::TlogProof | Format::Html => Err(not_acceptable("entries")),
    }
}

/// `GET B/records`: by `page-index`, or by key with `after` (the page of
/// keys after it, in `O(page)` reads however deep: for walking them all).
pub fn records<B: DirBackend>(
    read: &RegisterRead<'_, B>,
    ctx: &Ctx<'_>,
) -> Result<Response, ApiError> {
    let schema = read.schema()?;
    let page = ctx.page_unbounded()?;
    if let Some(after) = ctx.query.get("after") {
        if ctx.query.get("page-index").is_some() {
            return Err(ApiError::bad_request(
                "bad-query",
                "`after` and `page-index` both page the records: give one",
            ));
        }
        let after = Some(after).filter(|after| !after.is_empty());
        // One more than the page: whether there is a next one.
        let records = read
            .snapshot
            .records_after(Log::User, after, page.size.saturating_add(1))?;
        let (records, more) = one_page(records, page.size);
        let loaded = read.load_records(&records)?;
        let mut response = records_response(ctx, schema, &loaded)?;
        let next = records.last().filter(|_| more).map(|last| {
            Href::new(ctx.path)
                .param("after", &last.key)
                .param("page-size", page.size)
        });
        link(&mut response, next, None);
        return Ok(response);
    }
    let total = read.snapshot.record_count();
    if page.is_past(total) {
        return Err(page.past_the_last(&format!("the {total} records of register {}", read.name())));
    }
    page.within_depth()?;
    let (loaded, more) = read.records_page(page)?;
    let mut response = records_response(ctx, schema, &loaded)?;
    page.link(ctx.path, more, &mut response);
    Ok(response)
}

/// `GET B/records/{key}`.
pub fn record<B: DirBackend>(
    app: &App<B>,
    read: &RegisterRead<'_, B>,
    ctx: &Ctx<'_>,
    key: &str,
) -> Result<Response, ApiError> {
    let schema = read.schema()?;
    let loaded = read.load_record(key)?;
    let expand = crate::links::asked(ctx.query, "expand", "links")?;
    let mut response = match ctx.format {
        Format::Json if expand => {
            let mut body: Value = serde_json::from_str(&records_json([loaded.model()]))
                .map_err(ApiError::internal)?;
            body[key]["links"] = crate::links::expanded_json(app, read.reg, schema, &loaded)?;
            http::json(body.to_string())
        }
        Format::Csv if expand => {
            return Err(ApiError::new(
                axum::http::StatusCode::NOT_ACCEPTABLE,
                "not-acceptable",
                "a record with its links expanded is served as JSON (.json) only",
            ));
        }
        _ => records_response(ctx, schema, std::slice::from_ref(&loaded))?,
    };
    // Where the record's history is, as GOV.UK Registers said.
    let history = format!(
        "<{}>; rel=\"version-history\"",
        urls::record_entries(read.name(), key)
    );
    if let Ok(value) = HeaderValue::from_str(&history) {
        response.headers_mut().insert(header::LINK, value);
    }
    Ok(response)
}

/// `GET B/records/{key}/entries`: the key's history, oldest first.
pub fn record_entries<B: DirBackend>(
    read: &RegisterRead<'_, B>,
    ctx: &Ctx<'_>,
    key: &str,
) -> Result<Response, ApiError> {
    read.record(key)?;
    let page = ctx.page()?;
    let history =
        read.snapshot
            .history(Log::User, key, page.offset(), page.size.saturating_add(1))?;
    let (history, more) = one_page(history, page.size);
    let mut entries = Vec::with_capacity(history.len());
    for (number, _) in history {
        let (_, leaf) = read.existing_entry(Log::User, number)?;
        entries.push((number, leaf));
    }
    let mut response = entries_response(ctx, &entries, Log::User)?;
    page.link(ctx.path, more, &mut response);
    Ok(response)
}

/// `GET B/records/{field}/{value}`.
pub fn records_by_field<B: DirBackend>(
    read: &RegisterRead<'_, B>,
    ctx: &Ctx<'_>,
    field: &str,
    value: &str,
) -> Result<Response, ApiError> {
    read.check_field(field)?;
    let page = ctx.page()?;
    let (loaded, more) = read.records_by_field_page(field, value, page)?;
    if page.index > 1 && loaded.is_empty() {
        return Err(page.past_the_last(&format!(
            "the records of register {} whose {field} is {}",
            read.name(),
            quote(value)
        )));
    }
    let mut response = records_response(ctx, read.schema()?, &loaded)?;
    page.link(ctx.path, more, &mut response);
    Ok(response)
}

/// `GET B/entries?start&limit[&type=system]`.
pub fn entries<B: DirBackend>(
    read: &RegisterRead<'_, B>,
    ctx: &Ctx<'_>,
) -> Result<Response, ApiError> {
    let run = ctx.entries_page()?;
    let entries = read.entries(&run)?;
    let mut response = entries_response(ctx, &entries, run.log)?;
    run.link(ctx.path, read.snapshot.size(run.log), &mut response);
    Ok(response)
}

/// `GET B/entries/{number}[?type=system]`.
pub fn entry<B: DirBackend>(
    read: &RegisterRead<'_, B>,
    ctx: &Ctx<'_>,
    number: &str,
) -> Result<Response, ApiError> {
    let log = ctx.log()?;
    let number = read.entry_number(log, number)?;
    let (_, leaf) = read.existing_entry(log, number)?;
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
    read: &RegisterRead<'_, B>,
    ctx: &Ctx<'_>,
    hash: &str,
) -> Result<Response, ApiError> {
    let (_, item) = read.find_item(hash)?;
    match ctx.format {
        Format::Json => Ok(http::tagged(
            "application/json",
            http::IMMUTABLE,
            item.as_str().to_owned(),
        )),
        Format::Csv => Ok(http::csv(items_csv(&csv_fields(read.schema()?), [&item]))),
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
fn summary<B: DirBackend>(read: &RegisterRead<'_, B>) -> Result<Value, ApiError> {
    let schema = read.schema()?;
    let snapshot = &read.snapshot;
    let reg = read.reg;
    Ok(json!({
        "name": read.name(),
        "title": register_title(schema, read.name()),
        "custodian": schema.custodian(),
        "total-records": snapshot.record_count(),
        "total-entries": snapshot.size(Log::User),
        "total-system-entries": snapshot.size(Log::System),
        "last-updated": read.last_updated()?,
        "root-hash": format_hash(&snapshot.root(Log::User)?),
        "system-root-hash": format_hash(&snapshot.root(Log::System)?),
        "log-origin": reg.origin(Log::User),
        "log-public-key": reg.verifier(Log::User),
        "system-log-origin": reg.origin(Log::System),
        "system-log-public-key": reg.verifier(Log::System),
    }))
}

/// `GET B/register`: metadata, totals and both logs' origins and keys.
pub fn register<B: DirBackend>(
    read: &RegisterRead<'_, B>,
    ctx: &Ctx<'_>,
) -> Result<Response, ApiError> {
    if ctx.format != Format::Json {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_ACCEPTABLE,
            "not-acceptable",
            "register metadata is served as JSON only",
        ));
    }
    Ok(http::json(register_json(read)?))
}

/// The body of `GET B/register` (also what the publisher stores there).
pub fn register_json<B: DirBackend>(read: &RegisterRead<'_, B>) -> Result<String, ApiError> {
    let mut summary = summary(read)?;
    let schema = read.schema()?;
    let record = match schema.definition() {
        Some(definition) => {
            serde_json::from_str::<Value>(definition.item.as_str()).map_err(ApiError::internal)?
        }
        None => Value::Null,
    };
    let fields: Vec<Value> = csv_fields(schema)
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
    Ok(summary.to_string())
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
        let mut summary = summary(&RegisterRead::new(&reg)?)?;
        if let Value::Object(map) = &mut summary {
            map.insert(
                "url".into(),
                Value::from(urls::register(reg.name.as_str()).to_string()),
            );
        }
        list.push(summary);
    }
    Ok(http::json(Value::Array(list).to_string()))
}
