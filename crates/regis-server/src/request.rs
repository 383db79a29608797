//! What a read handler is given, the API's and the pages' alike: the
//! request ([`Ctx`]: its path, query, format and the server's bounds, and
//! the paging and log its query names) and the register it reads
//! ([`RegisterRead`]: one snapshot, the schema as of it, and what loads
//! entries, items and records from it), with the `Link` headers of paged
//! lists.

use std::cell::OnceCell;
use std::fmt;
use std::sync::Arc;

use axum::http::{HeaderValue, header};
use axum::response::Response;
use regis_merkle::Hash;
use regis_model::{Entry, Item, Schema, format_hash, parse_hash};
use regis_store::{DirBackend, KvBackend, Log, Record, RecordEntry, Snapshot};

use crate::app::RegisterState;
use crate::config::Limits;
use crate::error::ApiError;
use crate::http::{self, Format, Query, quote};
use crate::urls::Href;

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

/// How many records a `page-index` page may start past. Reaching an offset
/// means stepping over every record before it (the indexes are ordered by
/// key, not numbered), so without a bound one request could walk a whole
/// register; `?after=KEY` pages by key in `O(page)` however deep.
pub const MAX_PAGE_OFFSET: u64 = 100_000;

impl Ctx<'_> {
    /// The log `?type=` names (the user log by default).
    pub fn log(&self) -> Result<Log, ApiError> {
        match self.query.get("type") {
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

    /// `page-size` and `page-index`, bounded: 400 for a page that starts
    /// more than [`MAX_PAGE_OFFSET`] records in.
    pub fn page(&self) -> Result<Page, ApiError> {
        let page = self.page_unbounded()?;
        page.within_depth()?;
        Ok(page)
    }

    /// `page-size` and `page-index`, however deep the page starts: for a
    /// list that answers a page past its end before [`Page::within_depth`].
    pub fn page_unbounded(&self) -> Result<Page, ApiError> {
        let size = self.query.number(
            "page-size",
            1,
            self.limits.max_page_size,
            self.limits.default_page_size,
        )?;
        let index = self.query.number("page-index", 1, u64::MAX, 1)?;
        Ok(Page { index, size })
    }

    /// The entries a list of them asks for (`?type`, `?start`, `?limit`,
    /// bounded by the page limits). `start` may be 0: see
    /// [`RegisterRead::entries`].
    pub fn entries_page(&self) -> Result<EntriesPage, ApiError> {
        let log = self.log()?;
        let start = self.query.number("start", 0, u64::MAX, 1)?;
        let limit = self.query.number(
            "limit",
            1,
            self.limits.max_page_size,
            self.limits.default_page_size,
        )?;
        Ok(EntriesPage { log, start, limit })
    }
}

/// Sets the `Link` header to the `next` and `previous` pages there are.
/// The previous page is two values, `rel="previous"` as GOV.UK Registers
/// sent it and `rel="prev"` as RFC 8288 registers it, so that parsers
/// keying links by their `rel` text (Python's requests) find either.
pub fn link(response: &mut Response, next: Option<Href>, previous: Option<Href>) {
    let links: Vec<String> = next
        .map(|href| format!("<{href}>; rel=\"next\""))
        .into_iter()
        .chain(previous.into_iter().flat_map(|href| {
            [
                format!("<{href}>; rel=\"previous\""),
                format!("<{href}>; rel=\"prev\""),
            ]
        }))
        .collect();
    if !links.is_empty()
        && let Ok(value) = HeaderValue::from_str(&links.join(", "))
    {
        response.headers_mut().insert(header::LINK, value);
    }
}

/// A page of a list paged by `page-index` and `page-size`.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    /// Its number, from 1.
    pub index: u64,
    /// How many it holds at most.
    pub size: u64,
}

impl Page {
    /// How many come before it.
    pub fn offset(&self) -> u64 {
        (self.index - 1).saturating_mul(self.size)
    }

    /// 400 for a page that starts more than [`MAX_PAGE_OFFSET`] records in.
    pub fn within_depth(&self) -> Result<(), ApiError> {
        let (index, size, offset) = (self.index, self.size, self.offset());
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

    /// Whether this page is past the end of a list of `total` (the first
    /// page is there even when empty).
    pub fn is_past(&self, total: u64) -> bool {
        self.index > 1 && self.offset() >= total
    }

    /// The 404 for this page past the end of the list `what` names: how
    /// GOV.UK Registers ended a listing, and what clients that page until
    /// a 404 wait for.
    pub fn past_the_last(&self, what: &str) -> ApiError {
        ApiError::not_found(
            "no-page",
            format!(
                "{what} end before page-index {} of page-size {}",
                self.index, self.size
            ),
        )
    }

    /// Page `index` of the list at `base`, of this size.
    pub fn href(&self, base: &str, index: u64) -> Href {
        Href::new(base)
            .param("page-index", index)
            .param("page-size", self.size)
    }

    /// The `Link` header of this page of the list at `base`: the next page
    /// if there is `more`, the previous one past the first.
    pub fn link(&self, base: &str, more: bool, response: &mut Response) {
        let next = self
            .index
            .checked_add(1)
            .filter(|_| more)
            .map(|next| self.href(base, next));
        let previous = (self.index > 1).then(|| self.href(base, self.index - 1));
        link(response, next, previous);
    }
}

/// A run of one log's entries: `?start`, `?limit` and `?type`.
#[derive(Clone, Copy, Debug)]
pub struct EntriesPage {
    /// The log.
    pub log: Log,
    /// The first entry's number.
    pub start: u64,
    /// How many at most.
    pub limit: u64,
}

impl EntriesPage {
    /// Where the next run starts, if the log (of `size` entries) goes on.
    pub fn next(&self, size: u64) -> Option<u64> {
        let next = self.start.saturating_add(self.limit);
        (next <= size).then_some(next)
    }

    /// Where the previous run starts, if this one is not the first.
    pub fn previous(&self) -> Option<u64> {
        (self.start > 1).then(|| self.start.saturating_sub(self.limit).max(1))
    }

    /// The run from `start` of the list at `base`, of this limit and log.
    pub fn href(&self, base: &str, start: u64) -> Href {
        Href::new(base)
            .param("start", start)
            .param("limit", self.limit)
            .log(self.log)
    }

    /// The `Link` header of this run of the list at `base`, of a log of
    /// `size` entries.
    pub fn link(&self, base: &str, size: u64, response: &mut Response) {
        link(
            response,
            self.next(size).map(|start| self.href(base, start)),
            self.previous().map(|start| self.href(base, start)),
        );
    }
}

/// `rows` read one past a page of `size`: the page, and whether more follow.
pub fn one_page<T>(mut rows: Vec<T>, size: u64) -> (Vec<T>, bool) {
    let more = rows.len() as u64 > size;
    rows.truncate(usize::try_from(size).unwrap_or(usize::MAX));
    (rows, more)
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
    /// As the record it makes.
    pub fn model(&self) -> regis_model::Record<'_> {
        regis_model::Record {
            number: self.number,
            entry: &self.entry,
            items: self.items.iter().collect(),
        }
    }
}

/// Entry `number` of `log` from its stored leaf bytes: a leaf that does not
/// parse is a stored entry gone bad, a 500.
pub fn parse_entry(log: Log, number: u64, leaf: &[u8]) -> Result<Entry, ApiError> {
    Entry::parse_leaf(log, leaf)
        .map(|(_, entry)| entry)
        .map_err(|e| ApiError::internal(format!("{log} entry {number}: {e}")))
}

/// One register as one request reads it: the register, one snapshot of its
/// store (so that a response is consistent with one commit), and its schema
/// as of that snapshot, read when first asked for.
pub struct RegisterRead<'a, B: DirBackend> {
    /// The register.
    pub reg: &'a RegisterState<B>,
    /// The snapshot every read of the request is made in.
    pub snapshot: Arc<Snapshot<<B as KvBackend>::Snapshot>>,
    schema: OnceCell<Arc<Schema>>,
}

impl<B: DirBackend> fmt::Debug for RegisterRead<'_, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterRead")
            .field("register", &self.name())
            .field("user_size", &self.snapshot.size(Log::User))
            .field("system_size", &self.snapshot.size(Log::System))
            .finish_non_exhaustive()
    }
}

impl<'a, B: DirBackend> RegisterRead<'a, B> {
    /// A read of `reg` as of now.
    pub fn new(reg: &'a RegisterState<B>) -> Result<Self, ApiError> {
        Ok(RegisterRead {
            snapshot: reg.snapshot()?,
            reg,
            schema: OnceCell::new(),
        })
    }

    /// A read of `reg` in `snapshot`.
    pub fn at(
        reg: &'a RegisterState<B>,
        snapshot: Arc<Snapshot<<B as KvBackend>::Snapshot>>,
    ) -> Self {
        RegisterRead {
            snapshot,
            reg,
            schema: OnceCell::new(),
        }
    }

    /// The register's name.
    pub fn name(&self) -> &str {
        self.reg.name.as_str()
    }

    /// The register's schema as of the snapshot.
    pub fn schema(&self) -> Result<&Arc<Schema>, ApiError> {
        if let Some(schema) = self.schema.get() {
            return Ok(schema);
        }
        let schema = self.reg.schema(self.snapshot.size(Log::System))?;
        Ok(self.schema.get_or_init(|| schema))
    }

    /// A 404 unless the schema defines `field`.
    pub fn check_field(&self, field: &str) -> Result<(), ApiError> {
        match self.schema()?.field(field) {
            Some(_) => Ok(()),
            None => Err(ApiError::not_found(
                "no-field",
                format!("register {} has no field {}", self.name(), quote(field)),
            )),
        }
    }

    /// The record `key`, or a 404 that names it.
    pub fn record(&self, key: &str) -> Result<Record, ApiError> {
        self.snapshot
            .record(Log::User, key)?
            .ok_or_else(|| self.no_record(key))
    }

    /// The 404 for a key with no record.
    pub fn no_record(&self, key: &str) -> ApiError {
        ApiError::not_found(
            "no-record",
            format!(
                "register {} has no record with key {}",
                self.name(),
                quote(key)
            ),
        )
    }

    /// Entry `number` (a path segment) of `log`: 404 for what is not an
    /// entry number or is beyond the log.
    pub fn entry_number(&self, log: Log, number: &str) -> Result<u64, ApiError> {
        let number =
            http::number(number, "the entry number", 1, u64::MAX).map_err(names_nothing)?;
        let size = self.snapshot.size(log);
        if number > size {
            return Err(ApiError::not_found(
                "no-entry",
                format!(
                    "the {log} log of register {} has {size} entries; there is no entry {number}",
                    self.name()
                ),
            ));
        }
        Ok(number)
    }

    /// The item `hash` (a path segment, `sha-256:{hex}`), and its hash as
    /// text: 404 for what is not an item hash or is not stored.
    pub fn find_item(&self, hash: &str) -> Result<(String, Item), ApiError> {
        let parsed = parse_hash(hash).map_err(|e| {
            names_nothing(ApiError::bad_request(
                "bad-item-hash",
                format!("{}: {e}", quote(hash)),
            ))
        })?;
        let text = format_hash(&parsed);
        let item = self.item(&parsed)?.ok_or_else(|| {
            ApiError::not_found(
                "no-item",
                format!("register {} holds no item {text}", self.name()),
            )
        })?;
        Ok((text, item))
    }

    /// Entry `number` of `log`, parsed, with its leaf bytes; `None` beyond
    /// the log.
    pub fn entry(&self, log: Log, number: u64) -> Result<Option<(Entry, Vec<u8>)>, ApiError> {
        let Some(leaf) = self.snapshot.entry(log, number)? else {
            return Ok(None);
        };
        Ok(Some((parse_entry(log, number, &leaf)?, leaf)))
    }

    /// The timestamp of the last user entry, if there is one.
    pub fn last_updated(&self) -> Result<Option<String>, ApiError> {
        Ok(self
            .entry(Log::User, self.snapshot.size(Log::User))?
            .map(|(entry, _)| entry.timestamp.as_str().to_owned()))
    }

    /// The entries of `run`: those numbered from its start up to start +
    /// limit (excluded). Numbers begin at 1, so `start=0` gives one fewer:
    /// a client counting from 0 gets a run that the next (`start=limit`)
    /// continues, as from GOV.UK Registers.
    pub fn entries(&self, run: &EntriesPage) -> Result<Vec<(u64, Vec<u8>)>, ApiError> {
        let entries = match run.start {
            0 => self.snapshot.entries(run.log, 1, run.limit - 1)?,
            start => self.snapshot.entries(run.log, start, run.limit)?,
        };
        Ok(entries)
    }

    /// An item, parsed; `None` if not stored.
    pub fn item(&self, hash: &Hash) -> Result<Option<Item>, ApiError> {
        let Some(json) = self.snapshot.item(hash)? else {
            return Ok(None);
        };
        let text = std::str::from_utf8(&json)
            .map_err(|_| ApiError::internal(format!("item {} is not UTF-8", format_hash(hash))))?;
        Item::from_canonical(text)
            .map(Some)
            .map_err(|e| ApiError::internal(format!("item {}: {e}", format_hash(hash))))
    }

    /// Entry `number` of `log`, which exists (the store names it), parsed,
    /// with its leaf bytes.
    pub fn existing_entry(&self, log: Log, number: u64) -> Result<(Entry, Vec<u8>), ApiError> {
        self.entry(log, number)?
            .ok_or_else(|| ApiError::internal(format!("{log} entry {number} is missing")))
    }

    /// Entry `number` of `log`, which exists, with its items.
    pub fn load(&self, log: Log, number: u64) -> Result<Loaded, ApiError> {
        let (entry, leaf) = self.existing_entry(log, number)?;
        self.load_entry(number, entry, leaf)
    }

    /// The current entry of record `key`, with its items: 404 if there is
    /// no such record.
    pub fn load_record(&self, key: &str) -> Result<Loaded, ApiError> {
        let size = self.snapshot.size(Log::User);
        let found = self
            .snapshot
            .record_with_leaf(Log::User, key, size)?
            .ok_or_else(|| self.no_record(key))?;
        self.load_found(found)
    }

    /// A record's entry as the store read and checked it, with its items.
    pub fn load_found(&self, found: RecordEntry) -> Result<Loaded, ApiError> {
        self.load_entry(found.record.entry_number, found.entry, found.leaf)
    }

    /// Entry `number` and its leaf bytes, with its items.
    fn load_entry(&self, number: u64, entry: Entry, leaf: Vec<u8>) -> Result<Loaded, ApiError> {
        let mut items = Vec::with_capacity(entry.item_hashes.len());
        for hash in &entry.item_hashes {
            items.push(self.item(hash.as_bytes())?.ok_or_else(|| {
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

    /// The current entry of each of `records`, with its items.
    pub fn load_records(&self, records: &[Record]) -> Result<Vec<Loaded>, ApiError> {
        records
            .iter()
            .map(|record| self.load(Log::User, record.entry_number))
            .collect()
    }

    /// Page `page` of the records in key order, loaded, and whether more
    /// follow.
    pub fn records_page(&self, page: Page) -> Result<(Vec<Loaded>, bool), ApiError> {
        let total = self.snapshot.record_count();
        let offset = page.offset();
        let records = if offset >= total {
            Vec::new()
        } else {
            self.snapshot.records(Log::User, offset, page.size)?
        };
        let more = offset.saturating_add(page.size) < total;
        Ok((self.load_records(&records)?, more))
    }

    /// Page `page` of the records whose `field` has `value`, loaded, and
    /// whether more follow.
    pub fn records_by_field_page(
        &self,
        field: &str,
        value: &str,
        page: Page,
    ) -> Result<(Vec<Loaded>, bool), ApiError> {
        // One more than the page: whether there is a next one.
        let records = self.snapshot.records_by_field(
            field,
            value,
            page.offset(),
            page.size.saturating_add(1),
        )?;
        let (records, more) = one_page(records, page.size);
        Ok((self.load_records(&records)?, more))
    }
}

/// `error` (a 400: the path segment does not parse) as a 404: what is not
/// an entry number or item hash names no entry or item, as GOV.UK Registers
/// answered, for pages and API alike.
fn names_nothing(error: ApiError) -> ApiError {
    ApiError {
        status: axum::http::StatusCode::NOT_FOUND,
        ..error
    }
}
