//! The pages themselves. Each reads one store snapshot, as the API
//! handlers do, and renders with maud (every value escaped).

use std::cmp::Ordering;
use std::collections::BTreeSet;

use axum::response::Response;
use maud::{Markup, html};
use regis_model::{Datatype, EntryType, Item, Schema, Value, format_hash, parse_hash};
use regis_store::{DirBackend, KvSnapshot, Log, Snapshot};

use super::diff::{FieldChange, diff};
use super::{Asset, layout, respond, see_other};
use crate::api::{self, Ctx, Loaded};
use crate::app::{App, RegisterState};
use crate::error::ApiError;
use crate::http::{self, Query, encode_segment, quote};

/// The path of register `name`.
fn register_href(name: &str) -> String {
    format!("/registers/{name}")
}

/// The path of record `key` of register `name`.
fn record_href(name: &str, key: &str) -> String {
    format!("/registers/{name}/records/{}", encode_segment(key))
}

/// The path of an item of register `name`.
fn item_href(name: &str, hash: &str) -> String {
    format!("/registers/{name}/items/{hash}")
}

/// The path of entry `number` of `log` of register `name`.
fn entry_href(name: &str, log: Log, number: u64) -> String {
    match log {
        Log::User => format!("/registers/{name}/entries/{number}"),
        Log::System => format!("/registers/{name}/entries/{number}?type=system"),
    }
}

/// The names of the registers this server hosts: a field naming one of
/// them links to its records.
fn hosted<B: DirBackend>(app: &App<B>) -> BTreeSet<String> {
    app.registers()
        .into_iter()
        .map(|reg| reg.name.to_string())
        .collect()
}

/// Turns field values into links where they name a record this server
/// holds: a `curie` `register:key`, or a value of a field whose
/// definition names a register.
struct Linker<'a> {
    schema: &'a Schema,
    hosted: BTreeSet<String>,
}

impl Linker<'_> {
    fn href(&self, field: &str, text: &str) -> Option<String> {
        let definition = self.schema.field(field)?;
        match &definition.datatype {
            // `register:key`; a CURIE without a prefix is relative to the
            // field's register, as for any other field.
            Datatype::Curie if text.contains(':') => {
                let (prefix, reference) = text.split_once(':')?;
                (!reference.is_empty() && self.hosted.contains(prefix))
                    .then(|| record_href(prefix, reference))
            }
            // Only web addresses: never `javascript:` or `data:`.
            Datatype::Url => (text.starts_with("https://") || text.starts_with("http://"))
                .then(|| text.to_owned()),
            _ => definition
                .register
                .as_deref()
                .filter(|register| self.hosted.contains(*register))
                .map(|register| record_href(register, text)),
        }
    }

    fn text(&self, field: &str, text: &str) -> Markup {
        match self.href(field, text) {
            Some(href) => html! { a href=(href) { (text) } },
            None => html! { (text) },
        }
    }

    fn value(&self, field: &str, value: &Value<'_>) -> Markup {
        match value {
            Value::One(text) => self.text(field, text),
            Value::Many(texts) => html! {
                ul class="values" {
                    @for text in texts { li { (self.text(field, text)) } }
                }
            },
        }
    }
}

/// A value as one line of text (for sorting).
fn flat(value: &Value<'_>) -> String {
    value.strings().collect::<Vec<_>>().join("; ")
}

/// What a register's pages show about it.
struct About {
    title: String,
    custodian: Option<String>,
    description: Option<String>,
}

fn about<B: DirBackend>(reg: &RegisterState<B>, schema: &Schema) -> About {
    About {
        title: api::register_title(schema, reg.name.as_str()),
        custodian: schema.custodian().map(str::to_owned),
        description: schema
            .definition()
            .and_then(|d| d.item.get_one("text").map(|t| t.into_owned())),
    }
}

/// The breadcrumb trail to a register.
fn trail_to(name: &str, title: &str) -> Vec<(String, String)> {
    vec![(title.to_owned(), register_href(name))]
}

fn borrowed(trail: &[(String, String)]) -> Vec<(&str, String)> {
    trail
        .iter()
        .map(|(text, href)| (text.as_str(), href.clone()))
        .collect()
}

/// `GET /`, and `GET /registers` for a browser: the registers hosted.
pub(super) fn registers<B: DirBackend>(app: &App<B>) -> Result<Response, ApiError> {
    let mut rows = Vec::new();
    for reg in app.registers() {
        let snapshot = reg.snapshot()?;
        let schema = reg.schema(snapshot.size(Log::System))?;
        let about = about(&reg, &schema);
        let user = snapshot.size(Log::User);
        let updated = api::load_entry(&snapshot, Log::User, user)?
            .map(|(entry, _)| entry.timestamp.as_str().to_owned());
        rows.push((
            reg.name.to_string(),
            about,
            snapshot.record_count(),
            user,
            updated,
        ));
    }
    let main = html! {
        h1 { "Registers" }
        p class="lede" {
            "Lists kept by one custodian and read by everyone else. Every change is an entry in a signed, append-only log."
        }
        @if rows.is_empty() {
            p { "This server hosts no registers yet." }
        } @else {
            div class="table-scroll" {
                table {
                    caption { (rows.len()) " registers on this server" }
                    thead { tr {
                        th scope="col" { "Register" }
                        th scope="col" { "Title" }
                        th scope="col" { "Records" }
                        th scope="col" { "Entries" }
                        th scope="col" { "Last updated" }
                    } }
                    tbody {
                        @for (name, about, records, entries, updated) in &rows {
                            tr {
                                th scope="row" { a href=(register_href(name)) { (name) } }
                                td { (about.title) }
                                td { (records) }
                                td { (entries) }
                                td { (updated.as_deref().unwrap_or("never")) }
                            }
                        }
                    }
                }
            }
        }
        p { "For programs: " a href="/registers.json" { "this list as JSON" } "." }
    };
    Ok(respond(layout("Registers", &[], main, &[])))
}

/// The search forms of a register: by key, and by a field's value. Both
/// submit to `B/records`, which redirects to `B/records/{key}` or
/// `B/records/{field}/{value}`.
fn search_forms(name: &str, schema: &Schema, key_label: &str) -> Markup {
    let action = format!("/registers/{name}/records");
    let fields = api::csv_fields(schema);
    html! {
        form method="get" action=(action) role="search" aria-label="Find a record by key" {
            div {
                label for="search-key" { "Find a record by " (key_label) }
                input id="search-key" type="search" name="key" required autocomplete="off";
            }
            button type="submit" { "Find" }
        }
        @if !fields.is_empty() {
            form method="get" action=(action) role="search" aria-label="Find records by a field's value" {
                div {
                    label for="search-field" { "Field" }
                    select id="search-field" name="field" {
                        @for field in &fields { option value=(field) { (field) } }
                    }
                }
                div {
                    label for="search-value" { "has the value" }
                    input id="search-value" type="search" name="value" required autocomplete="off";
                }
                button type="submit" { "Search" }
            }
        }
    }
}

/// How many keys a register's home links to directly (the first, in key
/// order; the records pages page through the rest).
const HOME_KEYS: u64 = 100;

/// `GET B`: the register's home page.
pub(super) fn register_home<B: DirBackend>(app: &App<B>, name: &str) -> Result<Response, ApiError> {
    let reg = app.register(name)?;
    let snapshot = reg.snapshot()?;
    let schema = reg.schema(snapshot.size(Log::System))?;
    let about = about(&reg, &schema);
    let user = snapshot.size(Log::User);
    let updated = api::load_entry(&snapshot, Log::User, user)?
        .map(|(entry, _)| entry.timestamp.as_str().to_owned());
    let checkpoint = snapshot.checkpoint(Log::User)?;
    let hosted = hosted(app);
    let key_label = schema.name().unwrap_or("key").to_owned();
    let fields: Vec<_> = api::csv_fields(&schema)
        .iter()
        .filter_map(|field| schema.field(field))
        .cloned()
        .collect();
    let base = register_href(name);
    let first = snapshot.records(Log::User, 0, HOME_KEYS)?;
    let main = html! {
        h1 { (about.title) }
        @if let Some(description) = &about.description {
            p class="lede" { (description) }
        }
        dl class="summary" {
            dt { "Register" } dd { code { (name) } }
            dt { "Custodian" } dd { (about.custodian.as_deref().unwrap_or("not stated")) }
            dt { "Records" } dd { (snapshot.record_count()) }
            dt { "Entries" } dd id="total-entries" { (user) }
            dt { "System entries" } dd { (snapshot.size(Log::System)) }
            dt { "Last updated" } dd { (updated.as_deref().unwrap_or("never")) }
        }
        (search_forms(name, &schema, &key_label))
        @if !first.is_empty() {
            nav aria-label="Records by key" {
                ul class="keys" {
                    @for record in &first {
                        li { a href=(record_href(name, &record.key)) { (record.key) } }
                    }
                }
            }
        }
        p { a href=(format!("{base}/records")) { "Browse all " (snapshot.record_count()) " records" } }

        h2 { "Download" }
        ul {
            li { a href=(format!("{base}/records.csv")) { "Records as CSV" } " (a page at a time: " code { "?page-index=N&page-size=M" } ")" }
            li { a href=(format!("{base}/records.json")) { "Records as JSON" } }
            li { a href=(format!("{base}/download-rsf")) { "The whole register as RSF" } " (every entry and item, to replay and check)" }
            li { a href=(format!("{base}/register.json")) { "Its definition as JSON" } }
            li { a href=(format!("{base}/entries")) { "Every entry" } ", and the " a href=(format!("{base}/entries?type=system")) { "system entries" } " that define it" }
        }

        h2 { "Fields" }
        div class="table-scroll" {
            table {
                caption { "What each record holds" }
                thead { tr {
                    th scope="col" { "Field" }
                    th scope="col" { "Datatype" }
                    th scope="col" { "Values" }
                    th scope="col" { "Description" }
                } }
                tbody {
                    @for field in &fields {
                        tr {
                            th scope="row" { code { (field.name) } }
                            td {
                                (field.datatype.name())
                                @if let Some(register) = &field.register {
                                    @if register != name {
                                        br;
                                        "a key of "
                                        @if hosted.contains(register) {
                                            a href=(register_href(register)) { (register) }
                                        } @else {
                                            (register)
                                        }
                                    }
                                }
                            }
                            td { @if field.cardinality.as_str() == "n" { "many" } @else { "one" } }
                            td { (field.text.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }

        h2 { "Signed checkpoint" }
        p {
            "The custodian signs the state of the log. Anyone holding the verifier key can check "
            "that a record is in the log this checkpoint commits to."
        }
        @match &checkpoint {
            Some(signed) => pre { code id="checkpoint-text" { (signed.text) } },
            None => p { "No checkpoint is signed yet." },
        }
        section id="live" hidden data-events-url=(format!("{base}/events")) aria-labelledby="live-heading" {
            h3 id="live-heading" { "Live" }
            p id="live-status" class="status" role="status" aria-live="polite" { "Connecting\u{2026}" }
            ol id="live-feed" class="feed" {}
        }
        h2 { "Verifier keys" }
        dl class="summary" {
            dt { "Entries log" } dd { code { (reg.verifier(Log::User)) } }
            dt { "Origin" } dd { code { (reg.origin(Log::User)) } }
            dt { "System log" } dd { code { (reg.verifier(Log::System)) } }
            dt { "Origin" } dd { code { (reg.origin(Log::System)) } }
        }
        p {
            "Verify from the command line: "
            code { "regis verify <url> --key " (reg.verifier(Log::User)) }
        }
    };
    let trail = trail_to(name, &about.title);
    Ok(respond(layout(
        &about.title,
        &borrowed(&trail),
        main,
        &[Asset::LiveScript],
    )))
}

/// How a records page is sorted: by key or by a field, within the page.
struct Sort {
    column: Option<String>,
    descending: bool,
}

impl Sort {
    fn parse(query: &Query, columns: &[String]) -> Result<Sort, ApiError> {
        let column = match query.get("sort") {
            None | Some("") | Some("key") => None,
            Some(field) if columns.iter().any(|c| c == field) => Some(field.to_owned()),
            Some(other) => {
                return Err(ApiError::bad_request(
                    "bad-query",
                    format!(
                        "records sort by \"key\" or by one of their fields, not {}",
                        quote(other)
                    ),
                ));
            }
        };
        let descending = match query.get("order") {
            None | Some("") | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(ApiError::bad_request(
                    "bad-query",
                    format!(
                        "query parameter order must be \"asc\" or \"desc\", not {}",
                        quote(other)
                    ),
                ));
            }
        };
        Ok(Sort { column, descending })
    }

    fn query(&self) -> String {
        format!(
            "sort={}&order={}",
            encode_segment(self.column.as_deref().unwrap_or("key")),
            if self.descending { "desc" } else { "asc" }
        )
    }

    fn apply(&self, rows: &mut [&Loaded]) {
        let value = |loaded: &Loaded| -> Option<String> {
            match &self.column {
                None => Some(loaded.entry.key.clone()),
                Some(field) => loaded
                    .items
                    .first()
                    .and_then(|item| item.get(field))
                    .map(|v| flat(&v)),
            }
        };
        rows.sort_by(|a, b| {
            let order = match (value(a), value(b)) {
                (Some(x), Some(y)) => x.cmp(&y),
                // Records without the field go last, whatever the order.
                (Some(_), None) => return Ordering::Less,
                (None, Some(_)) => return Ordering::Greater,
                (None, None) => Ordering::Equal,
            };
            if self.descending {
                order.reverse()
            } else {
                order
            }
        });
    }
}

/// How a page of records is shown: the register, its columns, the sort,
/// the page's path (`base`) and its place in the list.
struct RecordsTable<'a> {
    name: &'a str,
    linker: Linker<'a>,
    key_label: &'a str,
    columns: Vec<String>,
    sort: Sort,
    base: String,
    index: u64,
    size: u64,
}

impl<'a> RecordsTable<'a> {
    /// The table of register `name`'s records listed at `base`, paged and
    /// sorted as `ctx` asks.
    fn new<B: DirBackend>(
        app: &App<B>,
        ctx: &Ctx<'_>,
        name: &'a str,
        schema: &'a Schema,
        key_label: &'a str,
        base: String,
    ) -> Result<Self, ApiError> {
        let columns = columns(schema);
        let sort = Sort::parse(ctx.query, &columns)?;
        let (index, size) = api::page(ctx)?;
        Ok(RecordsTable {
            name,
            linker: Linker {
                schema,
                hosted: hosted(app),
            },
            key_label,
            columns,
            sort,
            base,
            index,
            size,
        })
    }

    /// How many records come before this page.
    fn offset(&self) -> u64 {
        (self.index - 1).saturating_mul(self.size)
    }

    /// The records as a table, its column headers linking to the page
    /// sorted by them.
    fn table(&self, loaded: &[Loaded], caption: &str) -> Markup {
        let RecordsTable {
            name,
            linker,
            key_label,
            columns,
            sort,
            base,
            index,
            size,
        } = self;
        let mut rows: Vec<&Loaded> = loaded.iter().collect();
        sort.apply(&mut rows);
        let header = |label: &str, column: Option<&str>| {
            let current = sort.column.as_deref() == column;
            let next = Sort {
                column: column.map(str::to_owned),
                descending: current && !sort.descending,
            };
            let aria = current.then_some(if sort.descending {
                "descending"
            } else {
                "ascending"
            });
            let href = format!(
                "{base}?page-index={index}&page-size={size}&{}",
                next.query()
            );
            html! {
                th scope="col" aria-sort=[aria] {
                    a href=(href) { (label) }
                    @if current { @if sort.descending { " \u{2193}" } @else { " \u{2191}" } }
                }
            }
        };
        html! {
            div class="table-scroll" {
                table {
                    caption { (caption) }
                    thead { tr {
                        (header(key_label, None))
                        @for column in columns { (header(column, Some(column))) }
                    } }
                    tbody {
                        @for loaded in rows {
                            tr {
                                th scope="row" { a href=(record_href(name, &loaded.entry.key)) { (loaded.entry.key) } }
                                @for column in columns {
                                    td {
                                        @if let Some(value) = loaded.items.first().and_then(|item| item.get(column)) {
                                            (linker.value(column, &value))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Previous and next page links, keeping the sort.
    fn pager(&self, more: bool) -> Markup {
        pager(&self.base, self.index, self.size, more, &self.sort)
    }
}

/// Previous and next page links, keeping the sort.
fn pager(base: &str, index: u64, size: u64, more: bool, sort: &Sort) -> Markup {
    let href = |to: u64| format!("{base}?page-index={to}&page-size={size}&{}", sort.query());
    html! {
        nav class="pager" aria-label="Pages" {
            @if index > 1 {
                a href=(href(index - 1)) rel="prev" { "\u{2190} Previous page" }
            } @else { span {} }
            span { "Page " (index) }
            @if more {
                @if let Some(next) = index.checked_add(1) {
                    a href=(href(next)) rel="next" { "Next page \u{2192}" }
                }
            } @else { span {} }
        }
    }
}

/// The columns of a records table: the register's fields but its key
/// field, which the key column shows.
fn columns(schema: &Schema) -> Vec<String> {
    api::csv_fields(schema)
        .into_iter()
        .filter(|field| Some(field.as_str()) != schema.name())
        .collect()
}

/// `GET B/records` for a browser: a page of records, sortable within the
/// page; also where the search forms submit to.
pub(super) fn records<B: DirBackend>(
    app: &App<B>,
    ctx: &Ctx<'_>,
    name: &str,
) -> Result<Response, ApiError> {
    let reg = app.register(name)?;
    if let Some(key) = ctx.query.get("key").filter(|key| !key.is_empty()) {
        return see_other(&record_href(name, key));
    }
    if let (Some(field), Some(value)) = (ctx.query.get("field"), ctx.query.get("value"))
        && !field.is_empty()
        && !value.is_empty()
    {
        return see_other(&format!(
            "/registers/{name}/records/{}/{}",
            encode_segment(field),
            encode_segment(value)
        ));
    }
    let snapshot = reg.snapshot()?;
    let schema = reg.schema(snapshot.size(Log::System))?;
    let key_label = schema.name().unwrap_or("key").to_owned();
    let base = format!("/registers/{name}/records");
    let view = RecordsTable::new(app, ctx, name, &schema, &key_label, base.clone())?;
    let (index, size) = (view.index, view.size);
    let total = snapshot.record_count();
    let offset = view.offset();
    let records = if offset >= total {
        Vec::new()
    } else {
        snapshot.records(Log::User, offset, size)?
    };
    let loaded = api::load_records(&snapshot, &records)?;
    let more = offset.saturating_add(size) < total;
    let about = about(&reg, &schema);
    let caption = if loaded.is_empty() {
        format!("No records on page {index}")
    } else {
        format!(
            "Records {} to {} of {total}",
            offset + 1,
            offset + loaded.len() as u64
        )
    };
    let main = html! {
        h1 { "Records" }
        p class="lede" { (about.title) ": " (total) " records, the latest entry for each key." }
        (search_forms(name, &schema, &key_label))
        (view.table(&loaded, &caption))
        (view.pager(more))
        p {
            "This page as "
            a href=(format!("{base}.csv?page-index={index}&page-size={size}")) { "CSV" } " or "
            a href=(format!("{base}.json?page-index={index}&page-size={size}")) { "JSON" } "; "
            "the whole register as " a href=(format!("/registers/{name}/download-rsf")) { "RSF" } "."
        }
    };
    let mut trail = trail_to(name, &about.title);
    trail.push(("Records".to_owned(), base.clone()));
    let mut response = respond(layout(
        &format!("Records of {}", about.title),
        &borrowed(&trail),
        main,
        &[],
    ));
    api::link(ctx, index, size, more, &mut response);
    Ok(response)
}

/// `GET B/records/{field}/{value}` for a browser.
pub(super) fn records_by_field<B: DirBackend>(
    app: &App<B>,
    ctx: &Ctx<'_>,
    name: &str,
    field: &str,
    value: &str,
) -> Result<Response, ApiError> {
    let reg = app.register(name)?;
    let snapshot = reg.snapshot()?;
    let schema = reg.schema(snapshot.size(Log::System))?;
    if schema.field(field).is_none() {
        return Err(ApiError::not_found(
            "no-field",
            format!("register {name} has no field {}", quote(field)),
        ));
    }
    let key_label = schema.name().unwrap_or("key").to_owned();
    let base = format!(
        "/registers/{name}/records/{}/{}",
        encode_segment(field),
        encode_segment(value)
    );
    let view = RecordsTable::new(app, ctx, name, &schema, &key_label, base.clone())?;
    let (index, size) = (view.index, view.size);
    let offset = view.offset();
    let mut records = snapshot.records_by_field(field, value, offset, size.saturating_add(1))?;
    let more = records.len() as u64 > size;
    records.truncate(usize::try_from(size).unwrap_or(usize::MAX));
    let loaded = api::load_records(&snapshot, &records)?;
    let about = about(&reg, &schema);
    let caption = format!("Records whose {field} is \u{201c}{value}\u{201d}");
    let main = html! {
        h1 { (caption) }
        (search_forms(name, &schema, &key_label))
        @if loaded.is_empty() {
            p { "No record of " (about.title) " has this value." }
        } @else {
            (view.table(&loaded, &caption))
            (view.pager(more))
        }
        p { "As " a href=(format!("{base}.csv")) { "CSV" } " or " a href=(format!("{base}.json")) { "JSON" } "." }
    };
    let mut trail = trail_to(name, &about.title);
    trail.push(("Records".to_owned(), format!("/registers/{name}/records")));
    trail.push((format!("{field}: {value}"), base.clone()));
    let mut response = respond(layout(&caption, &borrowed(&trail), main, &[]));
    api::link(ctx, index, size, more, &mut response);
    Ok(response)
}

/// An item's fields as a table.
fn item_table(linker: &Linker<'_>, item: &Item, caption: &str) -> Markup {
    html! {
        div class="table-scroll" {
            table {
                caption { (caption) }
                thead { tr { th scope="col" { "Field" } th scope="col" { "Value" } } }
                tbody {
                    @for (field, value) in item.fields() {
                        tr {
                            th scope="row" { code { (field) } }
                            td { (linker.value(&field, &value)) }
                        }
                    }
                }
            }
        }
    }
}

/// One entry's changes as a table.
fn changes_table(linker: &Linker<'_>, changes: &[FieldChange]) -> Markup {
    html! {
        @if changes.is_empty() {
            p { "No field changed (the same item again)." }
        } @else {
            div class="table-scroll" {
                table {
                    thead { tr {
                        th scope="col" { "Field" }
                        th scope="col" { "Change" }
                        th scope="col" { "Before" }
                        th scope="col" { "After" }
                    } }
                    tbody {
                        @for change in changes {
                            tr {
                                th scope="row" { code { (change.field()) } }
                                @match change {
                                    FieldChange::Added { field, value } => {
                                        td { "added" }
                                        td {}
                                        td class="added" { (linker.value(field, value)) }
                                    }
                                    FieldChange::Removed { field, value } => {
                                        td { "removed" }
                                        td class="removed" { (linker.value(field, value)) }
                                        td {}
                                    }
                                    FieldChange::Changed { field, before, after } => {
                                        td { "changed" }
                                        td class="removed" { (linker.value(field, before)) }
                                        td class="added" { (linker.value(field, after)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The history of `key` on page `index` of `size` entries: each entry with
/// the entry before the page's first (to diff against) when there is one.
fn history<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    key: &str,
    index: u64,
    size: u64,
) -> Result<(Vec<Loaded>, Option<Loaded>, bool), ApiError> {
    let offset = (index - 1).saturating_mul(size);
    let before = u64::from(offset > 0);
    let rows = snapshot.history(
        Log::User,
        key,
        offset - before,
        size.saturating_add(1 + before),
    )?;
    let mut loaded = rows
        .iter()
        .map(|(number, _)| api::load(snapshot, Log::User, *number))
        .collect::<Result<Vec<_>, _>>()?;
    let previous = if before == 1 && !loaded.is_empty() {
        Some(loaded.remove(0))
    } else {
        None
    };
    let more = loaded.len() as u64 > size;
    loaded.truncate(usize::try_from(size).unwrap_or(usize::MAX));
    Ok((loaded, previous, more))
}

/// `GET B/records/{key}` (and `B/records/{key}/entries`) for a browser:
/// the record, its history as diffs, and its proof checked in the browser.
pub(super) fn record<B: DirBackend>(
    app: &App<B>,
    ctx: &Ctx<'_>,
    name: &str,
    key: &str,
) -> Result<Response, ApiError> {
    let reg = app.register(name)?;
    let snapshot = reg.snapshot()?;
    let schema = reg.schema(snapshot.size(Log::System))?;
    let record = api::find_record(&snapshot, &reg, key)?;
    let current = api::load(&snapshot, Log::User, record.entry_number)?;
    let (index, size) = api::page(ctx)?;
    let (entries, previous, more) = history(&snapshot, key, index, size)?;
    let about = about(&reg, &schema);
    let linker = Linker {
        schema: &schema,
        hosted: hosted(app),
    };
    let href = record_href(name, key);
    let item_hash = format_hash(&record.item_hash);
    let history_href = |to: u64| format!("{href}?page-index={to}&page-size={size}");
    let main = html! {
        h1 { (key) }
        dl class="summary" {
            dt { "Register" } dd { a href=(register_href(name)) { (about.title) } }
            dt { "Latest entry" } dd { a href=(entry_href(name, Log::User, current.number)) { "Entry " (current.number) } }
            dt { "Updated" } dd { (current.entry.timestamp.as_str()) }
            dt { "Item" } dd { a href=(item_href(name, &item_hash)) { code { (item_hash) } } }
        }
        @for (position, item) in current.items.iter().enumerate() {
            (item_table(&linker, item, if position == 0 { "The record's fields" } else { "Another item of the entry" }))
        }
        section id="verify" hidden
            aria-labelledby="verify-heading"
            data-proof-url=(format!("{href}/proof"))
            data-verifier-key=(reg.verifier(Log::User))
            data-log-origin=(reg.origin(Log::User))
            data-key=(key)
            data-entry-number=(current.number)
            data-item-hash=(item_hash)
        {
            h2 id="verify-heading" { "Verification" }
            p id="verify-status" class="status" role="status" aria-live="polite" { "Checking\u{2026}" }
            details {
                summary { "What your browser checks" }
                ol {
                    li { "The item's SHA-256 is the entry's item hash, and the entry names this key." }
                    li { "The entry's leaf hash, and the audit path from it to the signed root (RFC 9162)." }
                    li { "The custodian's Ed25519 signature on the checkpoint, against the verifier key " code { (reg.verifier(Log::User)) } "." }
                }
                p { "The proof it checks: " a href=(format!("{href}/proof.json")) { "JSON" } ", " a href=(format!("{href}/proof.tlog-proof")) { "tlog-proof" } "." }
            }
        }
        h2 { "History" }
        p { "Every entry for this key, oldest first, with what changed." }
        ol class="history" {
            @for (position, entry) in entries.iter().enumerate() {
                @let before = if position == 0 { previous.as_ref() } else { entries.get(position - 1) };
                @let changes = match (entry.items.first(), before.and_then(|b| b.items.first())) {
                    (Some(after), before) => diff(before, after),
                    (None, _) => Vec::new(),
                };
                li {
                    h3 {
                        a href=(entry_href(name, Log::User, entry.number)) { "Entry " (entry.number) }
                        ", " (entry.entry.timestamp.as_str())
                        @if before.is_none() { " (first)" }
                    }
                    (changes_table(&linker, &changes))
                }
            }
        }
        @if index > 1 || more {
            nav class="pager" aria-label="History pages" {
                @if index > 1 { a href=(history_href(index - 1)) rel="prev" { "\u{2190} Earlier entries" } } @else { span {} }
                @if more { a href=(history_href(index + 1)) rel="next" { "Later entries \u{2192}" } } @else { span {} }
            }
        }
        p {
            "This record as " a href=(format!("{href}.json")) { "JSON" } " or " a href=(format!("{href}.csv")) { "CSV" }
            "; its history as " a href=(format!("{href}/entries.json")) { "JSON" } "."
        }
    };
    let mut trail = trail_to(name, &about.title);
    trail.push(("Records".to_owned(), format!("/registers/{name}/records")));
    trail.push((key.to_owned(), href.clone()));
    let mut response = respond(layout(
        &format!("{key} \u{2013} {}", about.title),
        &borrowed(&trail),
        main,
        &[Asset::VerifyScript],
    ));
    api::link(ctx, index, size, more, &mut response);
    Ok(response)
}

/// `GET B/entries?start&limit[&type=system]` for a browser: the log in
/// order, a page at a time.
pub(super) fn entries<B: DirBackend>(
    app: &App<B>,
    ctx: &Ctx<'_>,
    name: &str,
) -> Result<Response, ApiError> {
    let reg = app.register(name)?;
    let (log, start, limit) = api::entries_query(ctx)?;
    let snapshot = reg.snapshot()?;
    let size = snapshot.size(log);
    let rows = api::entries_from(&snapshot, log, start, limit)?
        .into_iter()
        .map(|(number, leaf)| {
            regis_model::Entry::parse_leaf(log, &leaf)
                .map(|(_, entry)| (number, entry))
                .map_err(|e| ApiError::internal(format!("{log} entry {number}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let schema = reg.schema(snapshot.size(Log::System))?;
    let about = about(&reg, &schema);
    let kind = match log {
        Log::User => "",
        Log::System => "&type=system",
    };
    let base = format!("/registers/{name}/entries");
    let href = |from: u64| format!("{base}?start={from}&limit={limit}{kind}");
    let next = start.saturating_add(limit);
    let previous = (start > 1).then(|| start.saturating_sub(limit).max(1));
    let latest = size.saturating_sub(limit).saturating_add(1).max(1);
    let title = match log {
        Log::User => "Entries",
        Log::System => "System entries",
    };
    let main = html! {
        h1 { (title) }
        p class="lede" {
            @match log {
                Log::User => { "Every change to " (about.title) ", in the order the log holds it: " (size) " entries. " a href=(format!("{base}?type=system")) { "System entries" } " define the register." }
                Log::System => { "The register's own definition (name, custodian, fields), in a log of its own: " (size) " entries. " a href=(base.clone()) { "User entries" } " hold the data." }
            }
        }
        @if rows.is_empty() {
            p { "No entries from " (start) " on." }
        } @else {
            div class="table-scroll" {
                table {
                    caption { (title) " " (rows.first().map_or(start, |(n, _)| *n)) " to " (rows.last().map_or(start, |(n, _)| *n)) " of " (size) }
                    thead { tr {
                        th scope="col" { "Entry" }
                        th scope="col" { "Timestamp" }
                        th scope="col" { "Key" }
                        th scope="col" { "Item" }
                    } }
                    tbody {
                        @for (number, entry) in &rows {
                            tr {
                                th scope="row" { a href=(entry_href(name, log, *number)) { (number) } }
                                td { (entry.timestamp.as_str()) }
                                td {
                                    @if log == Log::User {
                                        a href=(record_href(name, &entry.key)) { (entry.key) }
                                    } @else {
                                        code { (entry.key) }
                                    }
                                }
                                td {
                                    @for hash in &entry.item_hashes {
                                        a href=(item_href(name, &hash.to_string())) { code { (hash.to_string()) } } " "
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        nav class="pager" aria-label="Pages" {
            @if let Some(from) = previous { a href=(href(from)) rel="prev" { "\u{2190} Earlier entries" } } @else { span {} }
            @if latest > start { a href=(href(latest)) { "Latest entries" } } @else { span {} }
            @if next <= size { a href=(href(next)) rel="next" { "Later entries \u{2192}" } } @else { span {} }
        }
    };
    let mut trail = trail_to(name, &about.title);
    trail.push((title.to_owned(), base.clone()));
    let mut response = respond(layout(
        &format!("{title} \u{2013} {}", about.title),
        &borrowed(&trail),
        main,
        &[],
    ));
    let mut links = Vec::new();
    if next <= size {
        links.push(format!("<{}>; rel=\"next\"", href(next)));
    }
    if let Some(from) = previous {
        links.extend(api::previous_links(&href(from)));
    }
    if !links.is_empty()
        && let Ok(value) = axum::http::HeaderValue::from_str(&links.join(", "))
    {
        response
            .headers_mut()
            .insert(axum::http::header::LINK, value);
    }
    Ok(response)
}

/// `GET B/entries/{number}[?type=system]` for a browser.
pub(super) fn entry<B: DirBackend>(
    app: &App<B>,
    ctx: &Ctx<'_>,
    name: &str,
    number: &str,
) -> Result<Response, ApiError> {
    let reg = app.register(name)?;
    let log = api::log_of(ctx.query)?;
    let number = http::number(number, "the entry number", 1, u64::MAX)?;
    let snapshot = reg.snapshot()?;
    let size = snapshot.size(log);
    if number > size {
        return Err(ApiError::not_found(
            "no-entry",
            format!(
                "the {log} log of register {name} has {size} entries; there is no entry {number}"
            ),
        ));
    }
    let schema = reg.schema(snapshot.size(Log::System))?;
    let loaded = api::load(&snapshot, log, number)?;
    let about = about(&reg, &schema);
    let linker = Linker {
        schema: &schema,
        hosted: hosted(app),
    };
    let leaf = String::from_utf8_lossy(&loaded.leaf).into_owned();
    let leaf_hash = format_hash(&regis_merkle::leaf_hash(&loaded.leaf));
    let kind = match loaded.entry.entry_type {
        EntryType::User => "user",
        EntryType::System => "system",
    };
    let title = format!("Entry {number}");
    let href = entry_href(name, log, number);
    let suffixed = |suffix: &str| match log {
        Log::User => format!("/registers/{name}/entries/{number}.{suffix}"),
        Log::System => format!("/registers/{name}/entries/{number}.{suffix}?type=system"),
    };
    let main = html! {
        h1 { (title) @if log == Log::System { " of the system log" } }
        dl class="summary" {
            dt { "Register" } dd { a href=(register_href(name)) { (about.title) } }
            dt { "Type" } dd { (kind) }
            dt { "Key" } dd {
                @if log == Log::User {
                    a href=(record_href(name, &loaded.entry.key)) { (loaded.entry.key) }
                } @else {
                    code { (loaded.entry.key) }
                }
            }
            dt { "Timestamp" } dd { (loaded.entry.timestamp.as_str()) }
            dt { "Item hash" } dd {
                @for hash in &loaded.entry.item_hashes {
                    a href=(item_href(name, &hash.to_string())) { code { (hash.to_string()) } } " "
                }
            }
            dt { "Leaf hash" } dd { code { (leaf_hash) } }
        }
        @for item in &loaded.items {
            (item_table(&linker, item, "The entry's item"))
        }
        h2 { "Leaf bytes" }
        p { "The exact bytes hashed into the log (the leaf hash is SHA-256 of 0x00 and these)." }
        pre { code { (leaf) } }
        nav class="pager" aria-label="Entries" {
            @if number > 1 { a href=(entry_href(name, log, number - 1)) rel="prev" { "\u{2190} Entry " (number - 1) } } @else { span {} }
            @if number < size { a href=(entry_href(name, log, number + 1)) rel="next" { "Entry " (number + 1) " \u{2192}" } } @else { span {} }
        }
        p { "As " a href=(suffixed("json")) { "JSON" } " or " a href=(suffixed("csv")) { "CSV" } "." }
    };
    let mut trail = trail_to(name, &about.title);
    trail.push((title.clone(), href));
    Ok(respond(layout(
        &format!("{title} \u{2013} {}", about.title),
        &borrowed(&trail),
        main,
        &[],
    )))
}

/// `GET B/items/sha-256:{hex}` for a browser.
pub(super) fn item<B: DirBackend>(
    app: &App<B>,
    name: &str,
    hash: &str,
) -> Result<Response, ApiError> {
    let reg = app.register(name)?;
    let parsed = parse_hash(hash)
        .map_err(|e| ApiError::bad_request("bad-item-hash", format!("{}: {e}", quote(hash))))?;
    let snapshot = reg.snapshot()?;
    let item = api::load_item(&snapshot, &parsed)?.ok_or_else(|| {
        ApiError::not_found(
            "no-item",
            format!("register {name} holds no item {}", format_hash(&parsed)),
        )
    })?;
    let schema = reg.schema(snapshot.size(Log::System))?;
    let about = about(&reg, &schema);
    let linker = Linker {
        schema: &schema,
        hosted: hosted(app),
    };
    let text = format_hash(&parsed);
    let href = item_href(name, &text);
    let main = html! {
        h1 { "Item" }
        p { code { (text) } }
        p { "An item is identified by the SHA-256 of its canonical JSON, so it never changes at this address." }
        (item_table(&linker, &item, "Its fields"))
        h2 { "Canonical JSON" }
        pre { code { (item.as_str()) } }
        p { "As " a href=(format!("{href}.json")) { "JSON" } " or " a href=(format!("{href}.csv")) { "CSV" } "." }
    };
    let mut trail = trail_to(name, &about.title);
    trail.push(("Item".to_owned(), href));
    Ok(respond(layout(
        &format!("Item \u{2013} {}", about.title),
        &borrowed(&trail),
        main,
        &[],
    )))
}
