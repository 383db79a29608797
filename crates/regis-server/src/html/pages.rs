//! The pages' handlers. Each loads what its page shows from one store
//! snapshot, as the API handlers do, then renders it ([`views`]).

use std::collections::BTreeSet;

use axum::response::Response;
use regis_model::format_hash;
use regis_store::{DirBackend, Log};

use super::views::{
    self, History, Home, Listed, LogKey, RecordShown, RecordsTable, Shown, WitnessKey, Witnesses,
};
use super::{Asset, layout, respond, see_other};
use crate::api;
use crate::app::{App, RegisterState};
use crate::error::ApiError;
use crate::request::{Ctx, Page, RegisterRead, one_page, parse_entry};
use crate::urls;

/// A request for a page of one register: the request, the register as
/// read for it, and what every page of the register shows of it.
pub(super) struct RegisterPage<'a, B: DirBackend> {
    ctx: &'a Ctx<'a>,
    read: RegisterRead<'a, B>,
    shown: Shown,
}

impl<'a, B: DirBackend> RegisterPage<'a, B> {
    /// A page of `reg`, one of `app`'s registers.
    pub(super) fn new(
        app: &App<B>,
        ctx: &'a Ctx<'a>,
        reg: &'a RegisterState<B>,
    ) -> Result<Self, ApiError> {
        let read = RegisterRead::new(reg)?;
        // A field naming a register hosted here links to its records.
        let hosted: BTreeSet<String> = app
            .registers()
            .into_iter()
            .map(|reg| reg.name.to_string())
            .collect();
        let shown = Shown::new(read.name(), read.schema()?.clone(), hosted);
        Ok(RegisterPage { ctx, read, shown })
    }

    /// The witnesses of the register's policy (the one its checkpoints are
    /// witnessed under), which the pages list and the record page checks
    /// cosignatures against; none without a policy.
    fn witnesses(&self) -> Witnesses {
        let Some(witnessed) = self.read.reg.witnessed() else {
            return Witnesses::default();
        };
        let policy = witnessed.policy().policy();
        Witnesses {
            keys: policy
                .witnesses()
                .iter()
                .map(|witness| WitnessKey {
                    name: witness.name.clone(),
                    verifier: witness.verifier.to_string(),
                })
                .collect(),
            required: policy.requires_cosignatures(),
        }
    }

    fn log_key(&self, log: Log) -> LogKey {
        LogKey {
            origin: self.read.reg.origin(log).to_owned(),
            verifier: self.read.reg.verifier(log).to_owned(),
        }
    }
}

/// `GET /`, and `GET /registers` for a browser: the registers hosted.
pub(super) fn registers<B: DirBackend>(app: &App<B>) -> Result<Response, ApiError> {
    let rows = app
        .registers()
        .iter()
        .map(|reg| {
            let read = RegisterRead::new(reg)?;
            Ok(Listed {
                name: read.name().to_owned(),
                title: api::register_title(read.schema()?, read.name()),
                records: read.snapshot.record_count(),
                entries: read.snapshot.size(Log::User),
                updated: read.last_updated()?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(respond(layout(
        "Registers",
        &[],
        views::registers(&rows),
        &[],
    )))
}

/// How many keys a register's home links to directly (the first, in key
/// order; the records pages page through the rest).
const HOME_KEYS: u64 = 100;

/// `GET B`: the register's home page.
pub(super) fn register_home<B: DirBackend>(
    page: &RegisterPage<'_, B>,
) -> Result<Response, ApiError> {
    let snapshot = &page.read.snapshot;
    let home = Home {
        records: snapshot.record_count(),
        entries: snapshot.size(Log::User),
        system_entries: snapshot.size(Log::System),
        updated: page.read.last_updated()?,
        checkpoint: snapshot.checkpoint(Log::User)?.map(|signed| signed.text),
        first: snapshot
            .records(Log::User, 0, HOME_KEYS)?
            .into_iter()
            .map(|record| record.key)
            .collect(),
        user: page.log_key(Log::User),
        system: page.log_key(Log::System),
        witnesses: page.witnesses(),
    };
    let shown = &page.shown;
    let main = views::home(shown, &home);
    Ok(shown.page(shown.title(), &[], main, &[Asset::LiveScript]))
}

/// `GET B/records` for a browser: a page of records, sortable within the
/// page; also where the search forms submit to.
pub(super) fn records<B: DirBackend>(page: &RegisterPage<'_, B>) -> Result<Response, ApiError> {
    let (ctx, shown) = (page.ctx, &page.shown);
    let name = shown.name();
    if let Some(key) = ctx.query.get("key").filter(|key| !key.is_empty()) {
        return see_other(urls::record(name, key).as_str());
    }
    if let (Some(field), Some(value)) = (ctx.query.get("field"), ctx.query.get("value"))
        && !field.is_empty()
        && !value.is_empty()
    {
        return see_other(urls::records_by_field(name, field, value).as_str());
    }
    let base = urls::records(name);
    let table = RecordsTable::new(shown, ctx, base.clone())?;
    let (loaded, more) = page.read.records_page(table.page)?;
    let total = page.read.snapshot.record_count();
    let main = views::records(&table, &loaded, total, more);
    let title = format!("Records of {}", shown.title());
    let mut response = shown.page(&title, &[("Records", base.as_str())], main, &[]);
    table.page.link(ctx.path, more, &mut response);
    Ok(response)
}

/// `GET B/records/{field}/{value}` for a browser.
pub(super) fn records_by_field<B: DirBackend>(
    page: &RegisterPage<'_, B>,
    field: &str,
    value: &str,
) -> Result<Response, ApiError> {
    let (ctx, shown) = (page.ctx, &page.shown);
    page.read.check_field(field)?;
    let base = urls::records_by_field(shown.name(), field, value);
    let table = RecordsTable::new(shown, ctx, base.clone())?;
    let (loaded, more) = page.read.records_by_field_page(field, value, table.page)?;
    let caption = format!("Records whose {field} is \u{201c}{value}\u{201d}");
    let main = views::records_by_field(&table, &loaded, more, &caption);
    let (records, crumb) = (urls::records(shown.name()), format!("{field}: {value}"));
    let crumbs = [("Records", records.as_str()), (&crumb, base.as_str())];
    let mut response = shown.page(&caption, &crumbs, main, &[]);
    table.page.link(ctx.path, more, &mut response);
    Ok(response)
}

/// The history of `key` on `page`: each entry, with the entry before the
/// page's first (to diff against) when there is one.
fn history<B: DirBackend>(
    read: &RegisterRead<'_, B>,
    key: &str,
    page: Page,
) -> Result<History, ApiError> {
    let offset = page.offset();
    let before = u64::from(offset > 0);
    let rows = read.snapshot.history(
        Log::User,
        key,
        offset - before,
        page.size.saturating_add(1 + before),
    )?;
    let mut loaded = rows
        .iter()
        .map(|(number, _)| read.load(Log::User, *number))
        .collect::<Result<Vec<_>, _>>()?;
    let previous = if before == 1 && !loaded.is_empty() {
        Some(loaded.remove(0))
    } else {
        None
    };
    let (entries, more) = one_page(loaded, page.size);
    Ok(History {
        page,
        entries,
        previous,
        more,
    })
}

/// `GET B/records/{key}` (and `B/records/{key}/entries`) for a browser:
/// the record, its history as diffs, and its proof checked in the browser.
pub(super) fn record<B: DirBackend>(
    app: &App<B>,
    page: &RegisterPage<'_, B>,
    key: &str,
) -> Result<Response, ApiError> {
    let (ctx, read, shown) = (page.ctx, &page.read, &page.shown);
    let found = read.record(key)?;
    let current = read.load(Log::User, found.entry_number)?;
    let record = RecordShown {
        key,
        links: crate::links::shown(app, read.reg, read.schema()?, &current.items),
        current,
        item_hash: format_hash(&found.item_hash),
        history: history(read, key, ctx.page()?)?,
        log: page.log_key(Log::User),
        witnesses: page.witnesses(),
    };
    let main = views::record(shown, &record);
    let title = format!("{key} \u{2013} {}", shown.title());
    let (records, href) = (urls::records(shown.name()), urls::record(shown.name(), key));
    let crumbs = [("Records", records.as_str()), (key, href.as_str())];
    let mut response = shown.page(&title, &crumbs, main, &[Asset::VerifyScript]);
    let History {
        page: paging, more, ..
    } = record.history;
    paging.link(ctx.path, more, &mut response);
    Ok(response)
}

/// `GET B/entries?start&limit[&type=system]` for a browser: the log in
/// order, a page at a time.
pub(super) fn entries<B: DirBackend>(page: &RegisterPage<'_, B>) -> Result<Response, ApiError> {
    let (read, shown) = (&page.read, &page.shown);
    let run = page.ctx.entries_page()?;
    let size = read.snapshot.size(run.log);
    let rows = read
        .entries(&run)?
        .into_iter()
        .map(|(number, leaf)| Ok((number, parse_entry(run.log, number, &leaf)?)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let main = views::entries(shown, &run, size, &rows);
    let base = urls::entries(shown.name());
    let heading = views::entries_title(run.log);
    let title = format!("{heading} \u{2013} {}", shown.title());
    let mut response = shown.page(&title, &[(heading, base.as_str())], main, &[]);
    run.link(base.as_str(), size, &mut response);
    Ok(response)
}

/// `GET B/entries/{number}[?type=system]` for a browser.
pub(super) fn entry<B: DirBackend>(
    page: &RegisterPage<'_, B>,
    number: &str,
) -> Result<Response, ApiError> {
    let (read, shown) = (&page.read, &page.shown);
    let log = page.ctx.log()?;
    let number = read.entry_number(log, number)?;
    let loaded = read.load(log, number)?;
    let main = views::entry(shown, log, read.snapshot.size(log), &loaded);
    let heading = format!("Entry {number}");
    let title = format!("{heading} \u{2013} {}", shown.title());
    let href = urls::entry(shown.name(), log, number);
    Ok(shown.page(&title, &[(&heading, href.as_str())], main, &[]))
}

/// `GET B/items/sha-256:{hex}` for a browser.
pub(super) fn item<B: DirBackend>(
    page: &RegisterPage<'_, B>,
    hash: &str,
) -> Result<Response, ApiError> {
    let shown = &page.shown;
    let (hash, item) = page.read.find_item(hash)?;
    let main = views::item(shown, &hash, &item);
    let title = format!("Item \u{2013} {}", shown.title());
    let href = urls::item(shown.name(), &hash);
    Ok(shown.page(&title, &[("Item", href.as_str())], main, &[]))
}

/// `GET B/links` for a browser: the register's links counted, and each
/// that does not resolve.
pub(super) fn links<B: DirBackend>(
    app: &App<B>,
    page: &RegisterPage<'_, B>,
) -> Result<Response, ApiError> {
    let shown = &page.shown;
    let census = crate::links::census(app, page.read.reg)?;
    let main = views::links(shown, &census);
    let title = format!("Links \u{2013} {}", shown.title());
    let href = urls::links(shown.name());
    Ok(shown.page(&title, &[("Links", href.as_str())], main, &[]))
}
