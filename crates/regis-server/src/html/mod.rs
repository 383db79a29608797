//! Register pages for people: server-rendered HTML (maud, which escapes
//! every value) at the same URLs as the API, served when a browser asks
//! (`Accept: text/html`; a `.json` or `.csv` suffix still wins), plus the
//! few static assets they use, all compiled into the binary.
//!
//! Pages: `/` and `/registers` (the registers hosted), `B` (a register's
//! home, with a live feed of its checkpoints), `B/records` (a paged,
//! sortable table with search), `B/records/{field}/{value}`,
//! `B/records/{key}` and `B/records/{key}/entries` (a record, its history
//! as field diffs, and its proof checked in the browser by
//! `/assets/verify.js`), `B/entries` and `B/entries/{n}`,
//! `B/items/sha-256:{hex}`.
//!
//! A page's handler (`pages`) reads the register as the API handlers do
//! ([`crate::request`]), loads what the page shows, and hands it to its
//! view (`views`), which renders plain data and never reads the store.
//! Every path a page links to comes from [`crate::urls`].
//!
//! Every page works without JavaScript; the scripts only add the in-browser
//! verification and the live feed. The `Content-Security-Policy` allows
//! scripts, styles and connections from this server only, and no inline
//! script or style at all.

pub mod diff;
mod pages;
mod views;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use maud::{DOCTYPE, Markup, html};
use regis_store::DirBackend;

use crate::app::App;
use crate::error::ApiError;
use crate::http::{self, Format};
use crate::request::Ctx;
use crate::routes::{Matched, Route};
use crate::urls;

/// What every page may load: its own scripts and stylesheet, nothing
/// inline, nothing from elsewhere; forms submit only here; no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

/// Caching for the assets: their URLs carry no version, so not immutable.
const ASSET_CACHE: &str = "public, max-age=3600";

/// A static file the pages use, compiled into the binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Asset {
    /// `/assets/verify.js`: checks a record's proof in the browser.
    VerifyScript,
    /// `/assets/live.js`: the register home's live checkpoint feed.
    LiveScript,
    /// `/assets/regis.css`: the one stylesheet.
    Stylesheet,
}

impl Asset {
    /// Its path.
    pub fn path(self) -> &'static str {
        match self {
            Asset::VerifyScript => "/assets/verify.js",
            Asset::LiveScript => "/assets/live.js",
            Asset::Stylesheet => "/assets/regis.css",
        }
    }

    /// Its bytes.
    pub fn text(self) -> &'static str {
        match self {
            Asset::VerifyScript => include_str!("../../assets/verify.js"),
            Asset::LiveScript => include_str!("../../assets/live.js"),
            Asset::Stylesheet => include_str!("../../assets/regis.css"),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Asset::VerifyScript | Asset::LiveScript => "text/javascript; charset=utf-8",
            Asset::Stylesheet => "text/css; charset=utf-8",
        }
    }

    /// Its response.
    pub fn response(self) -> Response {
        let mut response = http::ok(self.content_type(), ASSET_CACHE, self.text());
        response.headers_mut().insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }
}

/// The format an API handler is given: a browser's request for a route
/// without a page is answered as any other client's, in JSON.
pub fn api_format(format: Format) -> Format {
    match format {
        Format::Html => Format::Json,
        other => other,
    }
}

/// The page for `matched` if it has one in `ctx.format`: always for `/`,
/// `B` and the assets; for the other page routes when HTML was asked for.
/// An error on a page route is answered as an HTML page with its status.
pub fn page<B: DirBackend>(app: &App<B>, matched: &Matched, ctx: &Ctx<'_>) -> Option<Response> {
    let html = ctx.format == Format::Html;
    let result = match matched.route {
        Route::Asset(asset) => return Some(asset.response()),
        Route::Home => pages::registers(app),
        Route::Catalogue if html => pages::registers(app),
        Route::RegisterHome => register_page(app, matched, ctx),
        Route::Register
        | Route::Records
        | Route::RecordsByField
        | Route::Record
        | Route::RecordEntries
        | Route::Entries
        | Route::Entry
        | Route::Item
        | Route::Links
            if html =>
        {
            register_page(app, matched, ctx)
        }
        _ => return None,
    };
    Some(result.unwrap_or_else(|error| error_page(&error)))
}

/// The page of one register that `matched` names.
fn register_page<B: DirBackend>(
    app: &App<B>,
    matched: &Matched,
    ctx: &Ctx<'_>,
) -> Result<Response, ApiError> {
    let param = |index: usize| {
        matched
            .params
            .get(index)
            .map(String::as_str)
            .ok_or_else(|| {
                ApiError::internal(format!(
                    "route {} lacks parameter {index}",
                    matched.template
                ))
            })
    };
    let reg = app.register(param(0)?)?;
    let page = pages::RegisterPage::new(app, ctx, &reg)?;
    match matched.route {
        Route::RegisterHome | Route::Register => pages::register_home(&page),
        Route::Records => pages::records(&page),
        Route::RecordsByField => pages::records_by_field(&page, param(1)?, param(2)?),
        Route::Record | Route::RecordEntries => pages::record(app, &page, param(1)?),
        Route::Entries => pages::entries(&page),
        Route::Entry => pages::entry(&page, param(1)?),
        Route::Item => pages::item(&page, param(1)?),
        Route::Links => pages::links(app, &page),
        _ => Err(ApiError::internal(format!(
            "route {} has no page",
            matched.template
        ))),
    }
}

/// A page's response: HTML, with the security policy.
fn respond(markup: Markup) -> Response {
    let mut response = http::ok(
        "text/html; charset=utf-8",
        http::SHORT,
        markup.into_string(),
    );
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// A 303 to `location` (a path this server built, percent-encoded).
fn see_other(location: &str) -> Result<Response, ApiError> {
    let mut response = respond(html! {
        p { "See " a href=(location) { (location) } "." }
    });
    *response.status_mut() = StatusCode::SEE_OTHER;
    let value = HeaderValue::from_str(location).map_err(ApiError::internal)?;
    response.headers_mut().insert(header::LOCATION, value);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(http::NO_STORE),
    );
    Ok(response)
}

/// An error as a page, with its status.
fn error_page(error: &ApiError) -> Response {
    let title = error
        .status
        .canonical_reason()
        .unwrap_or("Error")
        .to_owned();
    let mut response = respond(layout(
        &title,
        &[],
        html! {
            h1 { (title) }
            p class="lede" { (error.message) }
            p { "Error code: " code { (error.code) } }
            p { a href="/" { "All registers on this server" } }
        },
        &[],
    ));
    *response.status_mut() = error.status;
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(http::NO_STORE),
    );
    response
}

/// The frame of every page: head, header with breadcrumbs (`trail`: link
/// text and path, the last one being this page), main, footer.
fn layout(title: &str, trail: &[(&str, &str)], main: Markup, scripts: &[Asset]) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " \u{2013} Regis" }
                link rel="stylesheet" href=(Asset::Stylesheet.path());
                @for script in scripts {
                    script src=(script.path()) defer {}
                }
            }
            body {
                a class="skip" href="#main" { "Skip to main content" }
                header {
                    div class="wrap" {
                        a class="brand" href="/" { "Regis" }
                        @if !trail.is_empty() {
                            nav aria-label="Breadcrumb" {
                                ol {
                                    li { a href=(urls::CATALOGUE) { "Registers" } }
                                    @for (index, (text, href)) in trail.iter().enumerate() {
                                        li {
                                            @if index + 1 == trail.len() {
                                                a href=(href) aria-current="page" { (text) }
                                            } @else {
                                                a href=(href) { (text) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                main id="main" class="wrap" { (main) }
                footer {
                    div class="wrap" {
                        "A verifiable register served by Regis. Every entry is in a signed, append-only log: "
                        "check what you read instead of trusting a copy."
                    }
                }
            }
        }
    }
}
