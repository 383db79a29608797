//! The route table: every path the server answers, as the templates
//! `spec/openapi.yaml` documents, and the strict matcher that maps a
//! request path onto one of them.
//!
//! Paths are matched segment by segment on the raw (percent-encoded) path,
//! so that no decoding can create a `/` or `..`; a parameter segment is then
//! percent-decoded and must be UTF-8. `{tile}` takes the rest of the path
//! (a C2SP tile path such as `0/x001/234.p/5`), parsed strictly later. A
//! route marked `formats` also answers with a `.json`, `.csv` (or for the
//! record proof `.tlog-proof`) suffix on its last segment. Literal segments
//! win over parameters: `records/{key}/entries` and `records/{key}/proof`
//! before `records/{field}/{value}`. The singular paths GOV.UK Registers
//! moved to plural ones (`record/{key}`, `entry/{number}`…) are routes of
//! their own, answered 301 to the plural path ([`moved_to`]).

use std::sync::LazyLock;

use regis_store::Log;

use crate::error::ApiError;
use crate::html::Asset;
use crate::http::{Format, decode, split_suffix};

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// `GET /`: HTML list of registers.
    Home,
    /// `GET /registers`: JSON catalogue.
    Catalogue,
    /// `GET /metrics`.
    Metrics,
    /// `GET /healthz`.
    Healthz,
    /// `GET /readyz`.
    Readyz,
    /// `GET B`: HTML.
    RegisterHome,
    /// `GET B/register`.
    Register,
    /// `GET B/records`.
    Records,
    /// `GET B/records/{key}`.
    Record,
    /// `GET B/records/{key}/entries`.
    RecordEntries,
    /// `GET B/records/{key}/proof`.
    RecordProof,
    /// `GET B/records/{field}/{value}`.
    RecordsByField,
    /// `GET B/entries`.
    Entries,
    /// `GET B/entries/{number}`.
    Entry,
    /// `GET B/items/{item-hash}`.
    Item,
    /// `GET B/proof/register/merkle:sha-256`.
    RegisterProof,
    /// `GET B/proof/entries/{number}/{size}/merkle:sha-256`.
    EntryProof,
    /// `GET B/proof/consistency/{old}/{new}/merkle:sha-256`.
    ConsistencyProof,
    /// `GET B/download-rsf`.
    DownloadRsf,
    /// `GET B/download-rsf/{start}`.
    DownloadRsfFrom,
    /// `GET B/download-rsf/{start}/{end}`.
    DownloadRsfRange,
    /// `GET B/log/checkpoint`, `B/system-log/checkpoint`.
    Checkpoint(Log),
    /// `GET B/events`: new checkpoints as Server-Sent Events.
    Events,
    /// `GET B/witness-policy`: the register's witness policy.
    WitnessPolicy,
    /// `GET B/links`: the register's links, counted, and those that do not
    /// resolve.
    Links,
    /// `GET B/log/tile/{tile}`, `B/system-log/tile/{tile}`.
    Tile(Log),
    /// `GET /assets/…`: a script or stylesheet of the HTML pages.
    Asset(Asset),
    /// `POST B/load-rsf`: append an RSF document.
    LoadRsf,
    /// `GET B/record/{key}`, `B/entry/{number}`…: GOV.UK Registers' old
    /// singular paths, answered 301 to the plural ones as it answered.
    Moved,
}

/// What a `POST` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Post {
    /// `POST /registers`: create a register (admin token).
    CreateRegister,
    /// `POST B/entries`: append JSON items.
    AppendEntries,
    /// `POST B/load-rsf`: append an RSF document.
    LoadRsf,
}

impl Route {
    /// Whether the route answers `GET` and `HEAD`.
    pub fn gets(self) -> bool {
        self != Route::LoadRsf
    }

    /// What a `POST` to the route does, if it takes one.
    pub fn post(self) -> Option<Post> {
        match self {
            Route::Catalogue => Some(Post::CreateRegister),
            Route::Entries => Some(Post::AppendEntries),
            Route::LoadRsf => Some(Post::LoadRsf),
            _ => None,
        }
    }

    /// The `Allow` header of the route.
    pub fn allow(self) -> &'static str {
        match (self.gets(), self.post().is_some()) {
            (true, true) => "GET, HEAD, POST",
            (false, _) => "POST",
            (true, false) => "GET, HEAD",
        }
    }
}

/// One route: its template and whether it takes a format suffix.
#[derive(Clone, Copy, Debug)]
pub struct RouteSpec {
    /// The route.
    pub route: Route,
    /// Its path template, as in `spec/openapi.yaml`.
    pub template: &'static str,
    /// Whether the last segment may carry `.json` / `.csv`.
    pub formats: bool,
}

const fn spec(route: Route, template: &'static str, formats: bool) -> RouteSpec {
    RouteSpec {
        route,
        template,
        formats,
    }
}

/// Every route, in matching order (literals before parameters).
pub const ROUTES: &[RouteSpec] = &[
    spec(Route::Home, "/", false),
    spec(Route::Catalogue, "/registers", true),
    spec(Route::Metrics, "/metrics", false),
    spec(Route::Healthz, "/healthz", false),
    spec(
        Route::Asset(Asset::VerifyScript),
        "/assets/verify.js",
        false,
    ),
    spec(Route::Asset(Asset::LiveScript), "/assets/live.js", false),
    spec(Route::Asset(Asset::Stylesheet), "/assets/regis.css", false),
    spec(Route::Readyz, "/readyz", false),
    spec(Route::RegisterHome, "/registers/{name}", false),
    spec(Route::Register, "/registers/{name}/register", true),
    spec(Route::Records, "/registers/{name}/records", true),
    spec(Route::Record, "/registers/{name}/records/{key}", true),
    spec(
        Route::RecordEntries,
        "/registers/{name}/records/{key}/entries",
        true,
    ),
    spec(
        Route::RecordProof,
        "/registers/{name}/records/{key}/proof",
        true,
    ),
    spec(
        Route::RecordsByField,
        "/registers/{name}/records/{field}/{value}",
        true,
    ),
    spec(Route::Entries, "/registers/{name}/entries", true),
    spec(Route::Entry, "/registers/{name}/entries/{number}", true),
    spec(Route::Item, "/registers/{name}/items/{item-hash}", true),
    spec(
        Route::RegisterProof,
        "/registers/{name}/proof/register/merkle:sha-256",
        false,
    ),
    spec(
        Route::EntryProof,
        "/registers/{name}/proof/entries/{number}/{size}/merkle:sha-256",
        false,
    ),
    spec(
        Route::ConsistencyProof,
        "/registers/{name}/proof/consistency/{old}/{new}/merkle:sha-256",
        false,
    ),
    spec(Route::DownloadRsf, "/registers/{name}/download-rsf", false),
    spec(
        Route::DownloadRsfFrom,
        "/registers/{name}/download-rsf/{start}",
        false,
    ),
    spec(
        Route::DownloadRsfRange,
        "/registers/{name}/download-rsf/{start}/{end}",
        false,
    ),
    spec(
        Route::Checkpoint(Log::User),
        "/registers/{name}/log/checkpoint",
        false,
    ),
    spec(
        Route::Tile(Log::User),
        "/registers/{name}/log/tile/{tile}",
        false,
    ),
    spec(
        Route::Checkpoint(Log::System),
        "/registers/{name}/system-log/checkpoint",
        false,
    ),
    spec(
        Route::Tile(Log::System),
        "/registers/{name}/system-log/tile/{tile}",
        false,
    ),
    spec(Route::Events, "/registers/{name}/events", false),
    spec(
        Route::WitnessPolicy,
        "/registers/{name}/witness-policy",
        false,
    ),
    spec(Route::Links, "/registers/{name}/links", true),
    spec(Route::LoadRsf, "/registers/{name}/load-rsf", false),
    // A format suffix stays in the path moved to.
    spec(Route::Moved, "/registers/{name}/record/{key}", true),
    spec(Route::Moved, "/registers/{name}/record/{key}/entries", true),
    spec(Route::Moved, "/registers/{name}/entry/{number}", true),
    spec(Route::Moved, "/registers/{name}/item/{item-hash}", true),
    spec(
        Route::Moved,
        "/registers/{name}/proof/entry/{number}/{size}/merkle:sha-256",
        false,
    ),
];

/// The singular segments GOV.UK Registers once used, and their plurals.
const SINGULAR: [(&str, &str); 3] = [
    ("record", "records"),
    ("entry", "entries"),
    ("item", "items"),
];

/// Where a [`Route::Moved`] request goes: its raw path with the template's
/// first singular segment made plural, the rest (a format suffix, the
/// percent-encoding) as sent, and its raw query kept. GOV.UK Registers
/// rewrote its request URL the same way (`/record/` to `/records/`).
pub fn moved_to(template: &str, path: &str, query: Option<&str>) -> String {
    let mut plural_done = false;
    let mut segments = Vec::new();
    let mut parts = template.split('/');
    for segment in path.split('/') {
        let plural = match parts.next() {
            Some(part) if !plural_done => SINGULAR
                .iter()
                .find(|(singular, _)| *singular == part)
                .map(|(_, plural)| *plural),
            _ => None,
        };
        plural_done |= plural.is_some();
        segments.push(plural.unwrap_or(segment));
    }
    let mut location = segments.join("/");
    if let Some(query) = query {
        location.push('?');
        location.push_str(query);
    }
    location
}

/// The most path segments a request may have (a tile path of a 2^64 index
/// has 11 below the register).
const MAX_SEGMENTS: usize = 24;

/// A matched request: the route, its decoded parameters in template order,
/// and the format its path asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matched {
    /// The route.
    pub route: Route,
    /// Its template.
    pub template: &'static str,
    /// Parameter values, decoded, in template order (`{tile}` raw).
    pub params: Vec<String>,
    /// The format a suffix asked for.
    pub format: Option<Format>,
}

/// Matches `path` (raw, as in the request line), or `Ok(None)` when no
/// route has its shape.
pub fn match_path(path: &str) -> Result<Option<Matched>, ApiError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Ok(None);
    };
    let mut segments: Vec<Segment<'_>> = Vec::new();
    if !rest.is_empty() {
        let mut offset = 0;
        for text in rest.split('/') {
            if segments.len() == MAX_SEGMENTS {
                return Err(ApiError::not_found(
                    "no-route",
                    format!("no route has more than {MAX_SEGMENTS} path segments"),
                ));
            }
            segments.push(Segment {
                text,
                tail: &rest[offset..],
            });
            offset += text.len() + 1;
        }
    }
    // With a suffix stripped first (a key may itself end in `.json`: ask
    // for `KEY.json.json`), then as it is.
    if let Some((last, format)) = segments.last().and_then(|last| split_suffix(last.text)) {
        let mut stripped = segments.clone();
        if let Some(slot) = stripped.last_mut() {
            slot.text = last;
        }
        for compiled in COMPILED.iter().filter(|c| c.spec.formats) {
            if let Some(params) = compiled.params(&stripped) {
                let allowed = match format {
                    Format::TlogProof => compiled.spec.route == Route::RecordProof,
                    Format::Json | Format::Csv => true,
                    // No suffix asks for a page: `Accept` does.
                    Format::Html => false,
                };
                if allowed {
                    return Ok(Some(compiled.matched(params, Some(format))?));
                }
            }
        }
    }
    for compiled in COMPILED.iter() {
        if let Some(params) = compiled.params(&segments) {
            return Ok(Some(compiled.matched(params, None)?));
        }
    }
    Ok(None)
}

/// One path segment, and the raw path from it to the end.
#[derive(Clone, Copy, Debug)]
struct Segment<'a> {
    text: &'a str,
    tail: &'a str,
}

/// One segment of a template.
#[derive(Debug)]
enum Part {
    /// Itself.
    Literal(&'static str),
    /// `{name}`: any one segment, not empty.
    Param(&'static str),
    /// `{tile}`: every remaining segment, at least one.
    Tile,
}

/// A route's template split once into its parts, so that matching a path
/// against the table allocates nothing until a template fits.
#[derive(Debug)]
struct Compiled {
    spec: &'static RouteSpec,
    parts: Vec<Part>,
}

/// Every route of [`ROUTES`], compiled, in matching order.
static COMPILED: LazyLock<Vec<Compiled>> = LazyLock::new(|| {
    ROUTES
        .iter()
        .map(|spec| Compiled {
            spec,
            parts: spec
                .template
                .split('/')
                .filter(|part| !part.is_empty())
                .map(|part| match part {
                    "{tile}" => Part::Tile,
                    _ => match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                        Some(name) => Part::Param(name),
                        None => Part::Literal(part),
                    },
                })
                .collect(),
        })
        .collect()
});

impl Compiled {
    /// Whether `segments` has the template's shape.
    fn fits(&self, segments: &[Segment<'_>]) -> bool {
        let tile = matches!(self.parts.last(), Some(Part::Tile));
        let count_fits = if tile {
            segments.len() >= self.parts.len()
        } else {
            segments.len() == self.parts.len()
        };
        count_fits
            && self
                .parts
                .iter()
                .zip(segments)
                .all(|(part, segment)| match part {
                    Part::Literal(text) => *text == segment.text,
                    Part::Param(_) => !segment.text.is_empty(),
                    Part::Tile => !segment.tail.is_empty(),
                })
    }

    /// The raw parameter values if `segments` has the template's shape.
    fn params<'a>(&self, segments: &[Segment<'a>]) -> Option<Vec<&'a str>> {
        if !self.fits(segments) {
            return None;
        }
        let params = self
            .parts
            .iter()
            .zip(segments)
            .filter_map(|(part, segment)| match part {
                Part::Literal(_) => None,
                Part::Param(_) => Some(segment.text),
                Part::Tile => Some(segment.tail),
            })
            .collect();
        Some(params)
    }

    /// The match of `raw` parameter values: each percent-decoded but a
    /// tile path, parsed later as it is.
    fn matched(&self, raw: Vec<&str>, format: Option<Format>) -> Result<Matched, ApiError> {
        let names = self.parts.iter().filter_map(|part| match part {
            Part::Literal(_) => None,
            Part::Param(name) => Some(*name),
            Part::Tile => Some("tile"),
        });
        let mut params = Vec::with_capacity(raw.len());
        for (name, value) in names.zip(raw) {
            // A segment without `%` decodes to itself.
            if name == "tile" || !value.contains('%') {
                params.push(value.to_owned());
            } else {
                params.push(decode(value, &format!("path parameter {{{name}}}"), false)?);
            }
        }
        Ok(Matched {
            route: self.spec.route,
            template: self.spec.template,
            params,
            format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Option<(Route, Vec<String>, Option<Format>)> {
        match_path(path)
            .unwrap()
            .map(|m| (m.route, m.params, m.format))
    }

    #[test]
    fn matches_every_shape() {
        assert_eq!(route("/"), Some((Route::Home, vec![], None)));
        assert_eq!(
            route("/registers/country/records/GB.csv"),
            Some((
                Route::Record,
                vec!["country".into(), "GB".into()],
                Some(Format::Csv)
            ))
        );
        assert_eq!(
            route("/registers/country/records/GB/entries"),
            Some((
                Route::RecordEntries,
                vec!["country".into(), "GB".into()],
                None
            ))
        );
        assert_eq!(
            route("/registers/country/records/GB/proof.tlog-proof"),
            Some((
                Route::RecordProof,
                vec!["country".into(), "GB".into()],
                Some(Format::TlogProof)
            ))
        );
        assert_eq!(
            route("/registers/c/records/name/United%20Kingdom"),
            Some((
                Route::RecordsByField,
                vec!["c".into(), "name".into(), "United Kingdom".into()],
                None
            ))
        );
        assert_eq!(
            route("/registers/c/log/tile/0/x001/234.p/5"),
            Some((
                Route::Tile(Log::User),
                vec!["c".into(), "0/x001/234.p/5".into()],
                None
            ))
        );
        assert_eq!(
            route("/registers/c/system-log/tile/entries/000"),
            Some((
                Route::Tile(Log::System),
                vec!["c".into(), "entries/000".into()],
                None
            ))
        );
        assert_eq!(
            route("/registers/c/records/200010.11"),
            Some((Route::Record, vec!["c".into(), "200010.11".into()], None))
        );
        assert_eq!(route("/registers/c/records/"), None);
        assert_eq!(route("/registers/c/nothing"), None);
        assert_eq!(route("//registers"), None);
        assert_eq!(route("/registers/c/log/tile/"), None);
        assert_eq!(
            match_path("/registers/c/records/%FF").unwrap_err().code,
            "not-utf8"
        );
    }

    #[test]
    fn singular_paths_move_to_their_plurals() {
        let cases = [
            ("/registers/c/record/GB", None, "/registers/c/records/GB"),
            (
                "/registers/c/record/GB.json",
                Some("a=1&b"),
                "/registers/c/records/GB.json?a=1&b",
            ),
            (
                "/registers/c/record/A%2FB/entries.csv",
                None,
                "/registers/c/records/A%2FB/entries.csv",
            ),
            ("/registers/c/entry/7", None, "/registers/c/entries/7"),
            (
                "/registers/c/item/sha-256:ab.json",
                None,
                "/registers/c/items/sha-256:ab.json",
            ),
            (
                "/registers/c/proof/entry/1/2/merkle:sha-256",
                None,
                "/registers/c/proof/entries/1/2/merkle:sha-256",
            ),
            // Only the route's own segment: not a register or key so named.
            (
                "/registers/record/record/entry",
                None,
                "/registers/record/records/entry",
            ),
            (
                "/registers/entry/entry/item",
                None,
                "/registers/entry/entries/item",
            ),
        ];
        for (path, query, location) in cases {
            let matched = match_path(path).unwrap().expect(path);
            assert_eq!(matched.route, Route::Moved, "{path}");
            assert_eq!(moved_to(matched.template, path, query), location);
        }
        assert_eq!(route("/registers/c/record/"), None);
        assert_eq!(route("/registers/c/record/GB/proof"), None);
    }
}
