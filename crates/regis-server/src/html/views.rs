//! What the pages show, rendered with maud (every value escaped) from data
//! already loaded: nothing here reads the store.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::Arc;

use axum::response::Response;
use maud::{Markup, html};
use regis_model::{Datatype, Entry, Item, Log, Schema, Value, format_hash};

use super::diff::{FieldChange, diff};
use super::{Asset, layout, respond};
use crate::api;
use crate::error::ApiError;
use crate::http::{Query, quote};
use crate::request::{Ctx, EntriesPage, Loaded, Page};
use crate::urls::{self, Href};

/// Turns field values into links where they name a record this server
/// holds: a `curie` `register:key`, or a value of a field whose
/// definition names a register.
pub(super) struct Linker {
    schema: Arc<Schema>,
    /// The registers this server hosts.
    hosted: BTreeSet<String>,
}

impl Linker {
    fn href(&self, field: &str, text: &str) -> Option<String> {
        let definition = self.schema.field(field)?;
        match &definition.datatype {
            // `register:key`; a CURIE without a prefix is relative to the
            // field's register, as for any other field.
            Datatype::Curie if text.contains(':') => {
                let (prefix, reference) = text.split_once(':')?;
                (!reference.is_empty() && self.hosted.contains(prefix))
                    .then(|| urls::record(prefix, reference).to_string())
            }
            // Only web addresses: never `javascript:` or `data:`.
            Datatype::Url => (text.starts_with("https://") || text.starts_with("http://"))
                .then(|| text.to_owned()),
            _ => definition
                .register
                .as_deref()
                .filter(|register| self.hosted.contains(*register))
                .map(|register| urls::record(register, text).to_string()),
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

/// What every page of a register shows of it.
pub(super) struct Shown {
    name: String,
    home: Href,
    title: String,
    custodian: Option<String>,
    description: Option<String>,
    links: Linker,
}

impl Shown {
    /// Register `name` as `schema` defines it, among the `hosted` ones.
    pub(super) fn new(name: &str, schema: Arc<Schema>, hosted: BTreeSet<String>) -> Shown {
        Shown {
            name: name.to_owned(),
            home: urls::register(name),
            title: api::register_title(&schema, name),
            custodian: schema.custodian().map(str::to_owned),
            description: schema
                .definition()
                .and_then(|d| d.item.get_one("text").map(|t| t.into_owned())),
            links: Linker { schema, hosted },
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn title(&self) -> &str {
        &self.title
    }

    fn schema(&self) -> &Schema {
        &self.links.schema
    }

    /// What a record's key is called: the register's key field.
    fn key_label(&self) -> &str {
        self.schema().name().unwrap_or("key")
    }

    /// A page of this register: titled `title`, its breadcrumbs the
    /// register's and then `crumbs` (text and path, the last this page's).
    pub(super) fn page(
        &self,
        title: &str,
        crumbs: &[(&str, &str)],
        main: Markup,
        scripts: &[Asset],
    ) -> Response {
        let mut trail = vec![(self.title.as_str(), self.home.as_str())];
        trail.extend_from_slice(crumbs);
        respond(layout(title, &trail, main, scripts))
    }
}

/// A log's origin and verifier key.
pub(super) struct LogKey {
    pub(super) origin: String,
    pub(super) verifier: String,
}

/// A witness of the register's policy: its name there and its
/// cosignature/v1 verifier key.
pub(super) struct WitnessKey {
    pub(super) name: String,
    pub(super) verifier: String,
}

/// The witnesses of the register's policy (none without one), and whether
/// its quorum requires any cosignature.
#[derive(Default)]
pub(super) struct Witnesses {
    pub(super) keys: Vec<WitnessKey>,
    pub(super) required: bool,
}

/// The witness keys, as a table (nothing when there are none).
fn witness_table(witnesses: &Witnesses) -> Markup {
    html! {
        @if !witnesses.keys.is_empty() {
            div class="table-scroll" {
                table id="witness-keys" {
                    caption { "Witnesses of the register's policy" }
                    thead { tr { th scope="col" { "Witness" } th scope="col" { "Verifier key" } } }
                    tbody {
                        @for witness in &witnesses.keys {
                            tr { th scope="row" { (witness.name) } td { code { (witness.verifier) } } }
                        }
                    }
                }
            }
        }
    }
}

/// One row of the list of registers.
pub(super) struct Listed {
    pub(super) name: String,
    pub(super) title: String,
    pub(super) records: u64,
    pub(super) entries: u64,
    pub(super) updated: Option<String>,
}

/// `/`: the registers hosted.
pub(super) fn registers(rows: &[Listed]) -> Markup {
    html! {
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
                        @for row in rows {
                            tr {
                                th scope="row" { a href=(urls::register(&row.name)) { (row.name) } }
                                td { (row.title) }
                                td { (row.records) }
                                td { (row.entries) }
                                td { (row.updated.as_deref().unwrap_or("never")) }
                            }
                        }
                    }
                }
            }
        }
        p { "For programs: " a href=(Href::new(urls::CATALOGUE).suffixed("json")) { "this list as JSON" } "." }
    }
}

/// The search forms of a register: by key, and by a field's value. Both
/// submit to `B/records`, which redirects to `B/records/{key}` or
/// `B/records/{field}/{value}`.
fn search_forms(shown: &Shown) -> Markup {
    let action = urls::records(&shown.name);
    let fields = api::csv_fields(shown.schema());
    html! {
        form method="get" action=(action) role="search" aria-label="Find a record by key" {
            div {
                label for="search-key" { "Find a record by " (shown.key_label()) }
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

/// What a register's home shows beyond [`Shown`].
pub(super) struct Home {
    pub(super) records: u64,
    pub(super) entries: u64,
    pub(super) system_entries: u64,
    pub(super) updated: Option<String>,
    /// The user log's signed checkpoint, if there is one yet.
    pub(super) checkpoint: Option<String>,
    /// The first keys, in key order.
    pub(super) first: Vec<String>,
    pub(super) user: LogKey,
    pub(super) system: LogKey,
    pub(super) witnesses: Witnesses,
}

/// `B`: the register's home.
pub(super) fn home(shown: &Shown, home: &Home) -> Markup {
    let name = shown.name.as_str();
    let schema = shown.schema();
    let fields: Vec<_> = api::csv_fields(schema)
        .iter()
        .filter_map(|field| schema.field(field))
        .collect();
    let entries = urls::entries(name);
    html! {
        h1 { (shown.title) }
        @if let Some(description) = &shown.description {
            p class="lede" { (description) }
        }
        dl class="summary" {
            dt { "Register" } dd { code { (name) } }
            dt { "Custodian" } dd { (shown.custodian.as_deref().unwrap_or("not stated")) }
            dt { "Records" } dd { (home.records) }
            dt { "Entries" } dd id="total-entries" { (home.entries) }
            dt { "System entries" } dd { (home.system_entries) }
            dt { "Last updated" } dd { (home.updated.as_deref().unwrap_or("never")) }
        }
        (search_forms(shown))
        @if !home.first.is_empty() {
            nav aria-label="Records by key" {
                ul class="keys" {
                    @for key in &home.first {
                        li { a href=(urls::record(name, key)) { (key) } }
                    }
                }
            }
        }
        p { a href=(urls::records(name)) { "Browse all " (home.records) " records" } }

        h2 { "Download" }
        ul {
            li { a href=(urls::records(name).suffixed("csv")) { "Records as CSV" } " (a page at a time: " code { "?page-index=N&page-size=M" } ")" }
            li { a href=(urls::records(name).suffixed("json")) { "Records as JSON" } }
            li { a href=(urls::download_rsf(name)) { "The whole register as RSF" } " (every entry and item, to replay and check)" }
            li { a href=(urls::metadata(name).suffixed("json")) { "Its definition as JSON" } }
            li { a href=(entries) { "Every entry" } ", and the " a href=(entries.clone().log(Log::System)) { "system entries" } " that define it" }
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
                                        @if shown.links.hosted.contains(register) {
                                            a href=(urls::register(register)) { (register) }
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
        @match &home.checkpoint {
            Some(text) => pre { code id="checkpoint-text" { (text) } },
            None => p { "No checkpoint is signed yet." },
        }
        section id="live" hidden data-events-url=(urls::events(name)) aria-labelledby="live-heading" {
            h3 id="live-heading" { "Live" }
            p id="live-status" class="status" role="status" aria-live="polite" { "Connecting\u{2026}" }
            ol id="live-feed" class="feed" {}
        }
        h2 { "Verifier keys" }
        dl class="summary" {
            dt { "Entries log" } dd { code { (home.user.verifier) } }
            dt { "Origin" } dd { code { (home.user.origin) } }
            dt { "System log" } dd { code { (home.system.verifier) } }
            dt { "Origin" } dd { code { (home.system.origin) } }
        }
        @if !home.witnesses.keys.is_empty() {
            h2 { "Witnesses" }
            p {
                "Witnesses cosign the checkpoints of both logs, each after checking that the log only grew since the last one it cosigned. "
                @if home.witnesses.required {
                    "Readers require cosignatures from these witnesses, as many as the register's policy asks for."
                } @else {
                    "The register's policy requires no cosignature."
                }
            }
            (witness_table(&home.witnesses))
        }
        p {
            "Verify from the command line: "
            code {
                "regis verify <url> --key " (home.user.verifier)
                @if !home.witnesses.keys.is_empty() { " --witness-policy <file>" }
            }
        }
    }
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

    /// `href` sorted this way.
    fn params(&self, href: Href) -> Href {
        href.param("sort", self.column.as_deref().unwrap_or("key"))
            .param("order", if self.descending { "desc" } else { "asc" })
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

/// A value as one line of text (for sorting).
fn flat(value: &Value<'_>) -> String {
    value.strings().collect::<Vec<_>>().join("; ")
}

/// A page of a register's records as a table: its columns, the sort, the
/// list's path (`base`) and the page's place in it.
pub(super) struct RecordsTable<'a> {
    shown: &'a Shown,
    columns: Vec<String>,
    sort: Sort,
    base: Href,
    pub(super) page: Page,
}

impl<'a> RecordsTable<'a> {
    /// The table of `shown`'s records listed at `base`, paged and sorted as
    /// `ctx` asks.
    pub(super) fn new(shown: &'a Shown, ctx: &Ctx<'_>, base: Href) -> Result<Self, ApiError> {
        let columns = columns(shown.schema());
        let sort = Sort::parse(ctx.query, &columns)?;
        Ok(RecordsTable {
            shown,
            columns,
            sort,
            base,
            page: ctx.page()?,
        })
    }

    /// Page `index` of the list, sorted by `sort`.
    fn href(&self, index: u64, sort: &Sort) -> Href {
        sort.params(self.page.href(self.base.as_str(), index))
    }

    /// The records as a table, its column headers linking to the page
    /// sorted by them.
    fn table(&self, loaded: &[Loaded], caption: &str) -> Markup {
        let RecordsTable {
            shown,
            columns,
            sort,
            page,
            ..
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
            html! {
                th scope="col" aria-sort=[aria] {
                    a href=(self.href(page.index, &next)) { (label) }
                    @if current { @if sort.descending { " \u{2193}" } @else { " \u{2191}" } }
                }
            }
        };
        html! {
            div class="table-scroll" {
                table {
                    caption { (caption) }
                    thead { tr {
                        (header(shown.key_label(), None))
                        @for column in columns { (header(column, Some(column))) }
                    } }
                    tbody {
                        @for loaded in rows {
                            tr {
                                th scope="row" { a href=(urls::record(&shown.name, &loaded.entry.key)) { (loaded.entry.key) } }
                                @for column in columns {
                                    td {
                                        @if let Some(value) = loaded.items.first().and_then(|item| item.get(column)) {
                                            (shown.links.value(column, &value))
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
        let index = self.page.index;
        html! {
            nav class="pager" aria-label="Pages" {
                @if index > 1 {
                    a href=(self.href(index - 1, &self.sort)) rel="prev" { "\u{2190} Previous page" }
                } @else { span {} }
                span { "Page " (index) }
                @if more {
                    @if let Some(next) = index.checked_add(1) {
                        a href=(self.href(next, &self.sort)) rel="next" { "Next page \u{2192}" }
                    }
                } @else { span {} }
            }
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

/// `B/records`: a page of records, of `total`.
pub(super) fn records(
    table: &RecordsTable<'_>,
    loaded: &[Loaded],
    total: u64,
    more: bool,
) -> Markup {
    let shown = table.shown;
    let Page { index, .. } = table.page;
    let offset = table.page.offset();
    let caption = if loaded.is_empty() {
        format!("No records on page {index}")
    } else {
        format!(
            "Records {} to {} of {total}",
            offset + 1,
            offset + loaded.len() as u64
        )
    };
    let this = |suffix: &str| {
        table
            .page
            .href(table.base.clone().suffixed(suffix).as_str(), index)
    };
    html! {
        h1 { "Records" }
        p class="lede" { (shown.title) ": " (total) " records, the latest entry for each key." }
        (search_forms(shown))
        (table.table(loaded, &caption))
        (table.pager(more))
        p {
            "This page as "
            a href=(this("csv")) { "CSV" } " or "
            a href=(this("json")) { "JSON" } "; "
            "the whole register as " a href=(urls::download_rsf(&shown.name)) { "RSF" } "."
        }
    }
}

/// `B/records/{field}/{value}`: a page of the records whose `field` has
/// `value`, under `caption`.
pub(super) fn records_by_field(
    table: &RecordsTable<'_>,
    loaded: &[Loaded],
    more: bool,
    caption: &str,
) -> Markup {
    let shown = table.shown;
    html! {
        h1 { (caption) }
        (search_forms(shown))
        @if loaded.is_empty() {
            p { "No record of " (shown.title) " has this value." }
        } @else {
            (table.table(loaded, caption))
            (table.pager(more))
        }
        p { "As " a href=(table.base.clone().suffixed("csv")) { "CSV" } " or " a href=(table.base.clone().suffixed("json")) { "JSON" } "." }
    }
}

/// An item's fields as a table.
fn item_table(linker: &Linker, item: &Item, caption: &str) -> Markup {
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
fn changes_table(linker: &Linker, changes: &[FieldChange]) -> Markup {
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

/// A page of a record's history: its entries, oldest first, and the entry
/// before the page's first (to diff against) when there is one.
pub(super) struct History {
    pub(super) page: Page,
    pub(super) entries: Vec<Loaded>,
    pub(super) previous: Option<Loaded>,
    pub(super) more: bool,
}

/// What a record's page shows.
pub(super) struct RecordShown<'a> {
    pub(super) key: &'a str,
    /// Its current entry.
    pub(super) current: Loaded,
    /// The hash of its item.
    pub(super) item_hash: String,
    pub(super) history: History,
    /// The user log's, which its proof is checked against.
    pub(super) log: LogKey,
    /// The witnesses whose cosignatures on the proof's checkpoint are
    /// checked.
    pub(super) witnesses: Witnesses,
    /// Its links, as this server resolved them.
    pub(super) links: Vec<crate::links::LinkShown>,
}

/// `B/records/{key}`: the record, its history as diffs, and its proof
/// checked in the browser.
pub(super) fn record(shown: &Shown, record: &RecordShown<'_>) -> Markup {
    let name = shown.name.as_str();
    let RecordShown {
        key,
        current,
        item_hash,
        history,
        log,
        witnesses,
        links,
    } = record;
    let History {
        page,
        entries,
        previous,
        more,
    } = history;
    let (index, more) = (page.index, *more);
    let href = urls::record(name, key);
    let proof = urls::record_proof(name, key);
    let linker = &shown.links;
    html! {
        h1 { (key) }
        dl class="summary" {
            dt { "Register" } dd { a href=(shown.home) { (shown.title) } }
            dt { "Latest entry" } dd { a href=(urls::entry(name, Log::User, current.number)) { "Entry " (current.number) } }
            dt { "Updated" } dd { (current.entry.timestamp.as_str()) }
            dt { "Item" } dd { a href=(urls::item(name, item_hash)) { code { (item_hash) } } }
        }
        @for (position, item) in current.items.iter().enumerate() {
            (item_table(linker, item, if position == 0 { "The record's fields" } else { "Another item of the entry" }))
        }
        @if !links.is_empty() {
            section id="links" aria-labelledby="links-heading" {
                h2 id="links-heading" { "Links" }
                p {
                    "Each value that names a record of a register, as this server resolved it. Your browser then checks each target it found: its proof against the signed checkpoint of its own register, with that register's verifier key as this server gives it (one on this server, or the key pinned for one on another). "
                    code { "regis get <url> " (key) " --key " (log.verifier) " --links --link-key REGISTER=VKEY" }
                    " checks them against keys you pin yourself."
                }
                table class="links" {
                    thead { tr { th scope="col" { "Field" } th scope="col" { "Value" } th scope="col" { "Status" } } }
                    tbody {
                        @for (index, shown) in links.iter().enumerate() {
                            tr class=(if shown.verified { "link-verified" } else { "link-unverified" })
                                data-link-index=(index)
                                data-link-field=(shown.link.field)
                                data-link-value=(shown.link.value)
                                data-link-key=(shown.link.key)
                                data-verifier-key=[shown.verifier.as_deref()]
                            {
                                td { (shown.link.field) }
                                td {
                                    @match &shown.href {
                                        Some(target) => a href=(target) { (shown.link.value) },
                                        None => (shown.link.value),
                                    }
                                }
                                td class="link-status" { (shown.status) }
                            }
                        }
                    }
                }
            }
        }
        section id="verify" hidden
            aria-labelledby="verify-heading"
            data-proof-url=(proof)
            data-verifier-key=(log.verifier)
            data-log-origin=(log.origin)
            data-key=(key)
            data-entry-number=(current.number)
            data-item-hash=(item_hash)
            data-witnesses-required=(witnesses.required)
            data-links=(!links.is_empty())
        {
            h2 id="verify-heading" { "Verification" }
            p id="verify-status" class="status" role="status" aria-live="polite" { "Checking\u{2026}" }
            @if !witnesses.keys.is_empty() {
                ul id="verify-witnesses" class="witnesses" aria-label="Witness cosignatures" {
                    @for witness in &witnesses.keys {
                        li data-witness-name=(witness.name) data-witness-key=(witness.verifier) {
                            (witness.name) ": not checked yet"
                        }
                    }
                }
            }
            details {
                summary { "What your browser checks" }
                ol {
                    li { "The item's SHA-256 is the entry's item hash, and the entry names this key." }
                    li { "The entry's leaf hash, and the audit path from it to the signed root (RFC 9162)." }
                    li { "The custodian's Ed25519 signature on the checkpoint, against the verifier key " code { (log.verifier) } "." }
                    @if !links.is_empty() {
                        li { "For each link this server found, the same of the target record's proof (its C2SP tlog-proof in " code { "?links=1" } "), against its own register's checkpoint and verifier key; each link's row says what was found." }
                    }
                    @if !witnesses.keys.is_empty() {
                        li {
                            "Each witness's cosignature on the checkpoint (C2SP cosignature/v1: Ed25519 over the checkpoint and the time it was made), against the witness's key listed below; none may fail or be dated in the future"
                            @if witnesses.required { ", and at least one must be there" }
                            ". The full quorum of the register's policy is checked by "
                            code { "regis get --witness-policy" } "."
                        }
                    }
                }
                (witness_table(witnesses))
                p { "The proof it checks: " a href=(proof.clone().suffixed("json")) { "JSON" } ", " a href=(proof.clone().suffixed("tlog-proof")) { "tlog-proof" } "." }
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
                        a href=(urls::entry(name, Log::User, entry.number)) { "Entry " (entry.number) }
                        ", " (entry.entry.timestamp.as_str())
                        @if before.is_none() { " (first)" }
                    }
                    (changes_table(linker, &changes))
                }
            }
        }
        @if index > 1 || more {
            nav class="pager" aria-label="History pages" {
                @if index > 1 { a href=(page.href(href.as_str(), index - 1)) rel="prev" { "\u{2190} Earlier entries" } } @else { span {} }
                @if more { a href=(page.href(href.as_str(), index + 1)) rel="next" { "Later entries \u{2192}" } } @else { span {} }
            }
        }
        p {
            "This record as " a href=(href.clone().suffixed("json")) { "JSON" } " or " a href=(href.clone().suffixed("csv")) { "CSV" }
            "; its history as " a href=(urls::record_entries(name, key).suffixed("json")) { "JSON" } "."
        }
    }
}

/// The title of a run of `log`'s entries.
pub(super) fn entries_title(log: Log) -> &'static str {
    match log {
        Log::User => "Entries",
        Log::System => "System entries",
    }
}

/// `B/entries`: a run of a log's `rows`, of `size` entries in all.
pub(super) fn entries(
    shown: &Shown,
    run: &EntriesPage,
    size: u64,
    rows: &[(u64, Entry)],
) -> Markup {
    let name = shown.name.as_str();
    let EntriesPage { log, start, limit } = *run;
    let base = urls::entries(name);
    let href = |from: u64| run.href(base.as_str(), from);
    let latest = size.saturating_sub(limit).saturating_add(1).max(1);
    let title = entries_title(log);
    html! {
        h1 { (title) }
        p class="lede" {
            @match log {
                Log::User => { "Every change to " (shown.title) ", in the order the log holds it: " (size) " entries. " a href=(base.clone().log(Log::System)) { "System entries" } " define the register." }
                Log::System => { "The register's own definition (name, custodian, fields), in a log of its own: " (size) " entries. " a href=(base) { "User entries" } " hold the data." }
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
                        @for (number, entry) in rows {
                            tr {
                                th scope="row" { a href=(urls::entry(name, log, *number)) { (number) } }
                                td { (entry.timestamp.as_str()) }
                                td { (entry_key(name, log, entry)) }
                                td { (item_links(name, entry)) }
                            }
                        }
                    }
                }
            }
        }
        nav class="pager" aria-label="Pages" {
            @if let Some(from) = run.previous() { a href=(href(from)) rel="prev" { "\u{2190} Earlier entries" } } @else { span {} }
            @if latest > start { a href=(href(latest)) { "Latest entries" } } @else { span {} }
            @if let Some(next) = run.next(size) { a href=(href(next)) rel="next" { "Later entries \u{2192}" } } @else { span {} }
        }
    }
}

/// An entry's key: a link to its record in the user log.
fn entry_key(name: &str, log: Log, entry: &Entry) -> Markup {
    html! {
        @if log == Log::User {
            a href=(urls::record(name, &entry.key)) { (entry.key) }
        } @else {
            code { (entry.key) }
        }
    }
}

/// Links to an entry's items.
fn item_links(name: &str, entry: &Entry) -> Markup {
    html! {
        @for hash in &entry.item_hashes {
            a href=(urls::item(name, &hash.to_string())) { code { (hash.to_string()) } } " "
        }
    }
}

/// `B/entries/{number}`: entry `loaded` of `log`, of `size` entries.
pub(super) fn entry(shown: &Shown, log: Log, size: u64, loaded: &Loaded) -> Markup {
    let name = shown.name.as_str();
    let number = loaded.number;
    let leaf = String::from_utf8_lossy(&loaded.leaf);
    let leaf_hash = format_hash(&regis_merkle::leaf_hash(&loaded.leaf));
    let kind = match loaded.entry.log {
        Log::User => "user",
        Log::System => "system",
    };
    let this = urls::entry(name, log, number);
    html! {
        h1 { "Entry " (number) @if log == Log::System { " of the system log" } }
        dl class="summary" {
            dt { "Register" } dd { a href=(shown.home) { (shown.title) } }
            dt { "Type" } dd { (kind) }
            dt { "Key" } dd { (entry_key(name, log, &loaded.entry)) }
            dt { "Timestamp" } dd { (loaded.entry.timestamp.as_str()) }
            dt { "Item hash" } dd { (item_links(name, &loaded.entry)) }
            dt { "Leaf hash" } dd { code { (leaf_hash) } }
        }
        @for item in &loaded.items {
            (item_table(&shown.links, item, "The entry's item"))
        }
        h2 { "Leaf bytes" }
        p { "The exact bytes hashed into the log (the leaf hash is SHA-256 of 0x00 and these)." }
        pre { code { (leaf) } }
        nav class="pager" aria-label="Entries" {
            @if number > 1 { a href=(urls::entry(name, log, number - 1)) rel="prev" { "\u{2190} Entry " (number - 1) } } @else { span {} }
            @if number < size { a href=(urls::entry(name, log, number + 1)) rel="next" { "Entry " (number + 1) " \u{2192}" } } @else { span {} }
        }
        p { "As " a href=(this.clone().suffixed("json")) { "JSON" } " or " a href=(this.suffixed("csv")) { "CSV" } "." }
    }
}

/// `B/items/{hash}`: the item `hash` (as text).
pub(super) fn item(shown: &Shown, hash: &str, item: &Item) -> Markup {
    let href = urls::item(&shown.name, hash);
    html! {
        h1 { "Item" }
        p { code { (hash) } }
        p { "An item is identified by the SHA-256 of its canonical JSON, so it never changes at this address." }
        (item_table(&shown.links, item, "Its fields"))
        h2 { "Canonical JSON" }
        pre { code { (item.as_str()) } }
        p { "As " a href=(href.clone().suffixed("json")) { "JSON" } " or " a href=(href.suffixed("csv")) { "CSV" } "." }
    }
}

/// `B/links`: the register's links counted by target register, and each
/// that does not resolve.
pub(super) fn links(shown: &Shown, census: &regis_model::LinkCensus) -> Markup {
    let href = urls::links(&shown.name);
    html! {
        h1 { "Links" }
        p {
            (census.links) " links in the register's records, " (census.dangling) " dangling (their register has no such record), "
            (census.unresolvable) " unresolvable (their register is not on this server). Each is resolved against the registers of this server at their signed checkpoints; registers on other servers are not asked for this page."
        }
        @if !census.by_register.is_empty() {
            table {
                caption { "By the register they name" }
                thead { tr { th scope="col" { "Register" } th scope="col" { "Links" } th scope="col" { "Dangling" } th scope="col" { "Unresolvable" } } }
                tbody {
                    @for (register, (links, dangling, unresolvable)) in &census.by_register {
                        tr { td { (register) } td { (links) } td { (dangling) } td { (unresolvable) } }
                    }
                }
            }
        }
        @if !census.listed.is_empty() {
            table {
                caption { "Links that do not resolve" @if census.listed.len() == regis_model::LinkCensus::LISTED { " (the first " (regis_model::LinkCensus::LISTED) ")" } }
                thead { tr { th scope="col" { "Record" } th scope="col" { "Field" } th scope="col" { "Value" } th scope="col" { "Status" } } }
                tbody {
                    @for (key, link, resolution) in &census.listed {
                        tr class="link-unverified" {
                            td { a href=(urls::record(&shown.name, key)) { (key) } }
                            td { (link.field) }
                            td { (link.value) }
                            td { @if *resolution == regis_model::Resolution::Dangling { "dangling" } @else { "unresolvable" } }
                        }
                    }
                }
            }
        }
        p { "As " a href=(href.suffixed("json")) { "JSON" } "; " code { "regis fsck --links" } " counts the same offline." }
    }
}
