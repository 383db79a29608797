//! What every response gets on its way out, in one place rather than as
//! tower layers (each layer boxed a service and wrapped every body, which
//! cost a full tile a third of its rate): CORS headers, a 304 for an
//! `If-None-Match` that matches its ETag, and gzip where the client asks
//! and the content is text.

use std::cell::RefCell;
use std::io;

use async_compression::Level;
use async_compression::tokio::bufread::GzipEncoder;
use axum::body::Body;
use axum::http::header::GetAll;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use futures_util::TryStreamExt as _;
use http_body::Body as _;
use tokio_util::io::{ReaderStream, StreamReader};

use crate::http;

/// How long a browser may keep a preflight's answer: what GOV.UK Registers
/// sent.
const PREFLIGHT_MAX_AGE: &str = "1800";
/// The request headers a preflight allows: what GOV.UK Registers allowed.
const ALLOWED_HEADERS: &str = "x-requested-with,content-type,accept,origin";
/// Response headers a page on another origin may read.
const EXPOSED_HEADERS: &str = "link,etag";
/// Bodies shorter than this are sent as they are: gzip would not save.
const GZIP_MIN_BYTES: u64 = 32;
/// Bodies of known length up to this are gzipped whole, with a reused
/// compressor ([`gzip_whole`]); larger or streamed ones as they stream.
const GZIP_WHOLE_BYTES: u64 = 1 << 20;
/// Bytes read from a compressed body at a time.
const GZIP_CHUNK: usize = 16 * 1024;

/// What of a request its response's finishing depends on, taken before the
/// request's headers go to its handler.
#[derive(Debug)]
pub struct Asked {
    gzip: bool,
    /// Every `If-None-Match` line, joined.
    if_none_match: Option<String>,
}

impl Asked {
    /// What `headers` ask of the response.
    pub fn new(headers: &HeaderMap) -> Asked {
        Asked {
            gzip: http::accepts_gzip(headers),
            if_none_match: joined(headers.get_all(header::IF_NONE_MATCH)),
        }
    }
}

/// The values of a header given on one or several lines, as one list;
/// `None` if none is text.
fn joined(values: GetAll<'_, HeaderValue>) -> Option<String> {
    let texts: Vec<&str> = values.iter().filter_map(|v| v.to_str().ok()).collect();
    (!texts.is_empty()).then(|| texts.join(","))
}

/// The answer to any `OPTIONS` request: a CORS preflight allowing reads
/// from any origin.
pub fn preflight() -> Response {
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET,HEAD"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    response
}

/// `response` as sent: with CORS headers; gzipped if asked and it is
/// compressible text (its ETag then names the gzip variant); a 304 if its
/// ETag matches `If-None-Match`.
pub async fn finish(asked: &Asked, mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED_HEADERS),
    );
    let compressible = compressible(&response);
    if compressible {
        // Whether or not this client takes gzip, the body depends on it.
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    let gzip = asked.gzip && compressible;
    if gzip {
        gzip_headers(response.headers_mut());
    }
    if let Some(candidates) = &asked.if_none_match
        && let Some(tag) = response.headers().get(header::ETAG)
        && let Ok(tag) = tag.to_str()
        && http::etag_matches(candidates, tag)
    {
        return not_modified(response);
    }
    // A HEAD's body is left to hyper, which sends none but the headers GET
    // would have (and does not read it).
    if gzip {
        let (mut parts, body) = response.into_parts();
        let (body, length) = gzipped(body).await;
        if let Some(length) = length {
            parts.headers.insert(header::CONTENT_LENGTH, length.into());
        }
        response = Response::from_parts(parts, body);
    }
    response
}

/// Whether `response` is worth gzipping: a 200 of text not already
/// encoded, not an event stream (each event must reach its reader as it
/// happens), and not known to be tiny.
fn compressible(response: &Response) -> bool {
    let headers = response.headers();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let text = content_type.starts_with("text/") && !content_type.starts_with("text/event-stream")
        || content_type.starts_with("application/json")
        || content_type.starts_with("application/uk-gov-rsf")
        || content_type.starts_with("application/javascript");
    let tiny = response
        .body()
        .size_hint()
        .exact()
        .is_some_and(|len| len < GZIP_MIN_BYTES);
    response.status() == StatusCode::OK
        && text
        && !tiny
        && !headers.contains_key(header::CONTENT_ENCODING)
}

/// The headers of a response about to be gzipped: its encoding, no length
/// (the compressed one is not known before it is sent), and the ETag of the gzip variant (RFC 9110 §8.8.3: a strong tag names one
/// encoding).
fn gzip_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    headers.remove(header::CONTENT_LENGTH);
    if let Some(tag) = headers.get(header::ETAG).and_then(|v| v.to_str().ok())
        && let Some(bare) = tag.strip_suffix('"')
        && let Ok(value) = HeaderValue::from_str(&format!("{bare}-gzip\""))
    {
        headers.insert(header::ETAG, value);
    }
}

/// `body` gzipped, and its length when it is known: a body of known,
/// modest length whole, any other as it streams.
async fn gzipped(body: Body) -> (Body, Option<usize>) {
    let whole = body
        .size_hint()
        .exact()
        .is_some_and(|len| len <= GZIP_WHOLE_BYTES);
    if !whole {
        return (gzip_body(body), None);
    }
    // A body of known length is in memory: this does not wait.
    match axum::body::to_bytes(body, GZIP_WHOLE_BYTES as usize).await {
        Ok(bytes) => {
            let gzipped = gzip_whole(&bytes);
            let length = gzipped.len();
            (Body::from(gzipped), Some(length))
        }
        // As the stream would have failed.
        Err(error) => {
            let failed: [Result<Bytes, io::Error>; 1] = [Err(io::Error::other(error))];
            (Body::from_stream(futures_util::stream::iter(failed)), None)
        }
    }
}

/// `bytes` gzipped (RFC 1952) with this thread's compressor, reset rather
/// than made anew: a deflate state is some 300 KiB to allocate and clear,
/// which for a record's few hundred bytes cost five times the rest of its
/// request. Entry bundles are gzipped with it too, once each.
pub(crate) fn gzip_whole(bytes: &[u8]) -> Vec<u8> {
    thread_local! {
        static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::fast(), false));
    }
    // ID1 ID2, deflate, no flags, no time, no extra flags, unknown OS.
    let mut out = Vec::with_capacity(bytes.len() / 2 + 64);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    DEFLATE.with_borrow_mut(|deflate| {
        deflate.reset();
        loop {
            // Room to progress: deflate stops only when its output is full.
            if out.capacity() - out.len() < 1024 {
                out.reserve(out.len().max(1024));
            }
            let read = usize::try_from(deflate.total_in()).unwrap_or(bytes.len());
            let rest = bytes.get(read..).unwrap_or_default();
            match deflate.compress_vec(rest, &mut out, FlushCompress::Finish) {
                Ok(Status::Ok | Status::BufError) => {}
                // Deflating memory into memory does not fail; were it to,
                // what was written is a gzip member its reader rejects.
                Ok(Status::StreamEnd) | Err(_) => break,
            }
        }
    });
    let mut crc = Crc::new();
    crc.update(bytes);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE: the length modulo 2^32, as RFC 1952 defines it.
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out
}

/// `body` gzipped as it streams, at the level nginx uses by default (1):
/// a register's text compresses well even so, and the work is done on the
/// event loop as the client reads.
fn gzip_body(body: Body) -> Body {
    let reader = StreamReader::new(body.into_data_stream().map_err(io::Error::other));
    let encoder = GzipEncoder::with_quality(reader, Level::Fastest);
    Body::from_stream(ReaderStream::with_capacity(encoder, GZIP_CHUNK))
}

/// The 304 for `response`: its status and the headers a 200 would carry
/// that matter to a cache (RFC 9110 §15.4.5), no body.
fn not_modified(response: Response) -> Response {
    let (parts, _) = response.into_parts();
    let mut answer = Response::new(Body::empty());
    *answer.status_mut() = StatusCode::NOT_MODIFIED;
    let headers = answer.headers_mut();
    for name in [
        header::ETAG,
        header::CACHE_CONTROL,
        header::VARY,
        header::CONTENT_LOCATION,
        header::EXPIRES,
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
    ] {
        for value in parts.headers.get_all(&name) {
            headers.append(name.clone(), value.clone());
        }
    }
    answer
}
