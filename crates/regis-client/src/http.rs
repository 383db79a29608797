//! Bounded HTTP GETs under a register's base URL, and the hash tiles of
//! its user log as a [`TileSource`].

use std::time::Duration;

use regis_merkle::TileSource;
use regis_merkle::tile::{TILE_WIDTH, TileKind, TilePath};

/// Bounds on every response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest a whole request (connect, send, read) may take.
    pub timeout: Duration,
    /// The largest checkpoint, proof or item accepted, in bytes.
    pub document_bytes: u64,
    /// Records asked for per `B/records` page by the records check
    /// (`Client::check_records`); a server's own maximum is 5,000 unless
    /// configured lower.
    pub records_page: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(30),
            // A proof carries a leaf of at most 64 KiB in base64 and a
            // checkpoint of at most 100 signature lines: 1 MiB is ample.
            document_bytes: 1 << 20,
            records_page: 1000,
        }
    }
}

/// The largest entry bundle: 256 entries of at most 2^16 - 1 bytes, each
/// with its 2-byte length.
const MAX_BUNDLE_BYTES: u64 = TILE_WIDTH as u64 * (2 + u16::MAX as u64);

/// Why a fetch failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("GET {url}: {failure}")]
pub struct FetchError {
    /// The URL asked for.
    pub url: String,
    /// What went wrong.
    pub failure: FetchFailure,
}

impl FetchError {
    /// Whether the answer was 404 or 403: what a static copy answers for a
    /// path it holds no object at (S3 answers 403 to a reader without
    /// permission to list the bucket).
    pub fn is_missing(&self) -> bool {
        matches!(self.failure, FetchFailure::Status(404 | 403))
    }
}

/// A 404 or 403 answer to [`Http::document_or_missing`].
#[derive(Debug)]
pub(crate) struct Missing {
    /// The answer, as an error.
    pub(crate) error: FetchError,
    /// The `code` of its JSON error body, if it is one (an origin's).
    pub(crate) code: Option<String>,
}

/// The most of an error body read to find its code.
const ERROR_BODY_BYTES: u64 = 64 << 10;

/// What went wrong with a fetch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchFailure {
    /// The server answered with a status other than 200.
    #[error("status {0}")]
    Status(u16),
    /// The body was larger than allowed.
    #[error("the response is larger than {0} bytes")]
    TooLarge(u64),
    /// Connecting, sending or reading failed, or timed out.
    #[error("{0}")]
    Transport(String),
}

/// GETs under one register's base URL.
#[derive(Clone, Debug)]
pub(crate) struct Http {
    agent: ureq::Agent,
    base: String,
    limits: Limits,
}

impl Http {
    pub(crate) fn new(base: &str, limits: Limits) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(limits.timeout))
            // Statuses are reported as `FetchFailure::Status`, with the URL.
            .http_status_as_error(false)
            .build();
        Http {
            agent: config.into(),
            base: base.trim_end_matches('/').to_owned(),
            limits,
        }
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// The limit on each request's time (on each read, for streams).
    pub(crate) fn timeout(&self) -> Duration {
        self.limits.timeout
    }

    pub(crate) fn records_page(&self) -> u64 {
        self.limits.records_page.max(1)
    }

    /// `GET <base>/<path>`: a checkpoint, proof or item.
    pub(crate) fn document(&self, path: &str) -> Result<Vec<u8>, FetchError> {
        self.get(path, self.limits.document_bytes)
    }

    /// `GET <base>/<log>/<tile>` (`log` is `log` or `system-log`): a hash
    /// tile (at most `width` hashes) or an entry bundle.
    pub(crate) fn tile(&self, log: &str, tile: &TilePath) -> Result<Vec<u8>, FetchError> {
        let limit = match tile.kind() {
            // A longer hash tile is refused unread; the reader checks the
            // exact length of a shorter one.
            TileKind::Hashes { .. } => u64::from(tile.width()) * 32,
            TileKind::Entries => MAX_BUNDLE_BYTES,
        };
        self.get(&format!("{log}/{tile}"), limit)
    }

    fn get(&self, path: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        let url = format!("{}/{path}", self.base);
        let mut response = self.call(&url, self.agent.get(&url).call())?;
        response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(transport(&url))
    }

    /// As [`Self::document`], for a document an origin serves and a static
    /// copy does not: a 404 or 403 is `Ok(Err(_))`, with the `code` of the
    /// JSON error body (`{"error":{"code":…}}`) if the answer is one, which
    /// tells an origin's "no such thing" from a static copy's missing key.
    pub(crate) fn document_or_missing(
        &self,
        path: &str,
    ) -> Result<Result<Vec<u8>, Missing>, FetchError> {
        let url = format!("{}/{path}", self.base);
        let mut response = self.agent.get(&url).call().map_err(transport(&url))?;
        let status = response.status().as_u16();
        if status == 200 {
            let body = response
                .body_mut()
                .with_config()
                .limit(self.limits.document_bytes);
            return body.read_to_vec().map(Ok).map_err(transport(&url));
        }
        let error = FetchError {
            url: url.clone(),
            failure: FetchFailure::Status(status),
        };
        if !error.is_missing() {
            return Err(error);
        }
        // An error body is small; one that is not is no JSON error.
        let body = response
            .body_mut()
            .with_config()
            .limit(ERROR_BODY_BYTES)
            .read_to_vec()
            .unwrap_or_default();
        let code = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|json| json["error"]["code"].as_str().map(str::to_owned));
        Ok(Err(Missing { error, code }))
    }

    /// `GET <base>/<path>` as a stream of any length (an RSF delta, an
    /// event stream): no overall deadline, but each read must arrive within
    /// `idle` (the server sends something at least that often), so a dead
    /// peer cannot hold the caller for ever.
    pub(crate) fn stream(&self, path: &str, idle: Duration) -> Result<HttpStream, FetchError> {
        let url = format!("{}/{path}", self.base);
        let request = self
            .agent
            .get(&url)
            .config()
            .timeout_global(None)
            .timeout_connect(Some(self.limits.timeout))
            .timeout_recv_response(Some(self.limits.timeout))
            .timeout_per_read(Some(idle))
            .build();
        let response = self.call(&url, request.call())?;
        Ok(HttpStream {
            reader: response.into_body().into_reader(),
        })
    }

    fn call(
        &self,
        url: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<ureq::http::Response<ureq::Body>, FetchError> {
        let response = result.map_err(transport(url))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(FetchError {
                url: url.to_owned(),
                failure: FetchFailure::Status(status),
            });
        }
        Ok(response)
    }
}

fn transport(url: &str) -> impl Fn(ureq::Error) -> FetchError + '_ {
    move |e| FetchError {
        url: url.to_owned(),
        failure: match e {
            ureq::Error::BodyExceedsLimit(limit) => FetchFailure::TooLarge(limit),
            other => FetchFailure::Transport(other.to_string()),
        },
    }
}

/// A response body read as it arrives.
pub(crate) struct HttpStream {
    reader: ureq::BodyReader<'static>,
}

impl std::fmt::Debug for HttpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpStream").finish_non_exhaustive()
    }
}

impl std::io::Read for HttpStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reader.read(buf)
    }
}

/// The hash tiles of one of a register's logs, over HTTP. Untrusted: read
/// them through a [`regis_merkle::TileHashReader`].
#[derive(Clone, Debug)]
pub struct HttpTiles {
    http: Http,
    log: &'static str,
}

impl HttpTiles {
    /// `log` is the path segment: `log` or `system-log`.
    pub(crate) fn new(http: Http, log: &'static str) -> Self {
        HttpTiles { http, log }
    }
}

impl TileSource for HttpTiles {
    type Error = FetchError;

    fn fetch_tile(&self, tile: &TilePath) -> Result<Vec<u8>, FetchError> {
        self.http.tile(self.log, tile)
    }
}
