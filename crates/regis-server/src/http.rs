//! Strict parsing of what arrives in a URL (path segments, numbers, query
//! parameters), content negotiation, and response helpers.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Caching for content that never changes at its URL.
pub const IMMUTABLE: &str = "public, max-age=604800, immutable";
/// Caching for content that changes as the log grows.
pub const NO_STORE: &str = "no-store";
/// Caching for lists and records: may change at any commit.
pub const SHORT: &str = "public, max-age=5";

/// At most this many characters of client input are quoted in an error.
const QUOTE: usize = 64;

/// `text` as quoted in an error message: at most 64 characters, escaped.
pub fn quote(text: &str) -> String {
    let short: String = text.chars().take(QUOTE).collect();
    let mut quoted = format!("{short:?}");
    if text.chars().count() > QUOTE {
        quoted.push('…');
    }
    quoted
}

/// Percent-decodes one path segment (or query component, with `plus` for
/// `+` as space), and requires UTF-8. `what` names the part in errors.
pub fn decode(raw: &str, what: &str, plus: bool) -> Result<String, ApiError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "bad-encoding",
                            format!("{what}: '%' must be followed by two hex digits"),
                        )
                    })?;
                out.push(hex);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| {
        ApiError::bad_request(
            "not-utf8",
            format!("{what} {} is not UTF-8 once percent-decoded", quote(raw)),
        )
    })
}

/// A decimal number without sign or leading zeros, from `min` to `max`.
pub fn number(text: &str, what: &str, min: u64, max: u64) -> Result<u64, ApiError> {
    let canonical = !text.is_empty()
        && text.len() <= 20
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    let value = canonical
        .then(|| text.parse::<u64>().ok())
        .flatten()
        .filter(|n| (min..=max).contains(n));
    value.ok_or_else(|| {
        ApiError::bad_request(
            "bad-number",
            format!(
                "{what} must be a decimal number from {min} to {max} without sign or leading zeros, not {}",
                quote(text)
            ),
        )
    })
}

/// The query string's parameters, decoded. A name given twice is a 400.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

/// At most this many query parameters are read.
const MAX_PARAMETERS: usize = 32;

impl Query {
    /// Parses `query` (the part after `?`).
    pub fn parse(query: Option<&str>) -> Result<Query, ApiError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for part in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            if pairs.len() == MAX_PARAMETERS {
                return Err(ApiError::bad_request(
                    "bad-query",
                    format!("at most {MAX_PARAMETERS} query parameters"),
                ));
            }
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            let name = decode(name, "a query parameter name", true)?;
            let value = decode(value, &format!("query parameter {name}"), true)?;
            if pairs.iter().any(|(n, _)| *n == name) {
                return Err(ApiError::bad_request(
                    "bad-query",
                    format!("query parameter {} is given twice", quote(&name)),
                ));
            }
            pairs.push((name, value));
        }
        Ok(Query { pairs })
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `name` as a number from `min` to `max`, or `default`.
    pub fn number(&self, name: &str, min: u64, max: u64, default: u64) -> Result<u64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => number(text, &format!("query parameter {name}"), min, max),
        }
    }
}

/// The representation a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/json` (the default).
    Json,
    /// `text/csv`, by `.csv` or `Accept: text/csv`.
    Csv,
    /// C2SP tlog-proof text, by `.tlog-proof` or an Accept naming it.
    TlogProof,
    /// A page for people, by `Accept: text/html` (what browsers send).
    Html,
}

/// The format suffix of a path's last segment, if any: the segment without
/// it, and the format.
pub fn split_suffix(segment: &str) -> Option<(&str, Format)> {
    [
        (".json", Format::Json),
        (".csv", Format::Csv),
        (".tlog-proof", Format::TlogProof),
    ]
    .into_iter()
    .find_map(|(suffix, format)| {
        segment
            .strip_suffix(suffix)
            .filter(|rest| !rest.is_empty())
            .map(|rest| (rest, format))
    })
}

/// The format from the `Accept` header when the path gave none.
pub fn accepted(headers: &HeaderMap) -> Format {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let types: Vec<&str> = accept
        .split(',')
        .map(|t| t.split(';').next().unwrap_or("").trim())
        .collect();
    if types.iter().any(|t| t.contains("tlog-proof")) {
        Format::TlogProof
    } else if types
        .iter()
        .any(|t| t.eq_ignore_ascii_case("text/csv") || t.eq_ignore_ascii_case("application/csv"))
    {
        Format::Csv
    } else if types.iter().any(|t| t.eq_ignore_ascii_case("text/html")) {
        Format::Html
    } else {
        Format::Json
    }
}

/// A 200 response with `body`, its content type and caching.
pub fn ok(content_type: &'static str, cache: &'static str, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// A 301 to `location`, a path built from the request's own (so valid in
/// a header), with no body.
pub fn moved_permanently(location: &str) -> Result<Response, ApiError> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    let value = HeaderValue::from_str(location).map_err(ApiError::internal)?;
    response.headers_mut().insert(header::LOCATION, value);
    Ok(response)
}

/// A JSON response, with its ETag.
pub fn json(body: String) -> Response {
    tagged("application/json", SHORT, body)
}

/// A CSV response, with its ETag.
pub fn csv(body: String) -> Response {
    tagged("text/csv; charset=utf-8", SHORT, body)
}

/// A 200 response with `body` and a strong ETag naming its bytes, so that
/// a client holding them is answered 304 (`finish`): what a record or page
/// of entries is changes only when its bytes do.
pub fn tagged(
    content_type: &'static str,
    cache: &'static str,
    body: impl AsRef<[u8]> + Into<Body>,
) -> Response {
    let tag = etag(&etag_digest(body.as_ref()), "");
    let mut response = ok(content_type, cache, body);
    if let Ok(value) = HeaderValue::from_str(&tag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// What the strong entity tag of `bytes` names: a prefix of their SHA-256
/// (kept beside content served often, so it is hashed once).
pub fn etag_digest(bytes: &[u8]) -> [u8; 16] {
    let mut prefix = [0; 16];
    prefix.copy_from_slice(&Sha256::digest(bytes)[..16]);
    prefix
}

/// The strong entity tag of the content whose [`etag_digest`] is `digest`,
/// in representation `variant` (`""`, or `"-gzip"` for its gzip encoding).
pub fn etag(digest: &[u8; 16], variant: &str) -> String {
    format!("\"{}{variant}\"", hex::encode(digest))
}

/// Whether an `If-None-Match` value (`candidates`, a list of tags or `*`)
/// matches `tag`, weakly, as RFC 9110 §13.1.2 asks for this header.
pub fn etag_matches(candidates: &str, tag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    candidates
        .split(',')
        .any(|candidate| candidate.trim() == "*" || bare(candidate) == bare(tag))
}

/// Whether the client accepts gzip.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                let p = p.trim();
                p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

pub use regis_model::api::path_segment as encode_segment;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_strict() {
        assert_eq!(number("1", "n", 1, 10).unwrap(), 1);
        assert_eq!(number("10", "n", 1, 10).unwrap(), 10);
        for bad in [
            "0",
            "11",
            "-1",
            "+1",
            "01",
            "",
            "1.0",
            "123456789012345678901234567890",
            "18446744073709551616",
        ] {
            let error = number(bad, "n", 1, 10).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        assert_eq!(
            number("18446744073709551615", "n", 0, u64::MAX).unwrap(),
            u64::MAX
        );
    }

    #[test]
    fn decoding_requires_utf8_and_whole_escapes() {
        assert_eq!(decode("a%20b", "x", false).unwrap(), "a b");
        assert_eq!(decode("a+b", "x", false).unwrap(), "a+b");
        assert_eq!(decode("a+b", "x", true).unwrap(), "a b");
        assert_eq!(decode("%C3%A9", "x", false).unwrap(), "é");
        assert_eq!(decode("%FF", "x", false).unwrap_err().code, "not-utf8");
        assert_eq!(decode("%F", "x", false).unwrap_err().code, "bad-encoding");
        assert_eq!(decode("%zz", "x", false).unwrap_err().code, "bad-encoding");
    }

    #[test]
    fn queries_refuse_repeats() {
        let q = Query::parse(Some("page-size=10&type=system")).unwrap();
        assert_eq!(q.get("type"), Some("system"));
        assert_eq!(q.number("page-size", 1, 100, 5).unwrap(), 10);
        assert_eq!(q.number("page-index", 1, 100, 5).unwrap(), 5);
        assert!(Query::parse(Some("a=1&a=2")).is_err());
    }

    #[test]
    fn suffixes_and_accept() {
        assert_eq!(split_suffix("GB.csv"), Some(("GB", Format::Csv)));
        assert_eq!(
            split_suffix("records.json"),
            Some(("records", Format::Json))
        );
        assert_eq!(split_suffix(".json"), None);
        assert_eq!(split_suffix("200010.11"), None);
        let mut headers = HeaderMap::new();
        assert_eq!(accepted(&headers), Format::Json);
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/csv;q=0.9"));
        assert_eq!(accepted(&headers), Format::Csv);
        // What a browser sends when it follows a link.
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            ),
        );
        assert_eq!(accepted(&headers), Format::Html);
        // What `fetch` sends by default.
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert_eq!(accepted(&headers), Format::Json);
    }

    #[test]
    fn etags_match_weakly() {
        let tag = etag(&etag_digest(b"abc"), "");
        assert!(!etag_matches("", &tag));
        assert!(etag_matches(&format!("\"x\", W/{tag}"), &tag));
        assert!(etag_matches(" * ", &tag));
        assert!(!etag_matches(
            &format!("\"x\", W/{tag}"),
            &etag(&etag_digest(b"abd"), "")
        ));
    }

    #[test]
    fn gzip_is_accepted_unless_refused() {
        let mut headers = HeaderMap::new();
        assert!(!accepts_gzip(&headers));
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip"),
        );
        assert!(accepts_gzip(&headers));
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0"),
        );
        assert!(!accepts_gzip(&headers));
    }
}
