//! Errors: what a request did wrong (a 4xx with a JSON body that says what
//! and where), what the server could not do (5xx), and why a server could
//! not start.

use std::path::PathBuf;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error answered to a client as
/// `{"error":{"code":"…","message":"…"}}` with its status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code (`bad-number`, `not-found`…).
    pub code: &'static str,
    /// What was wrong, and where.
    pub message: String,
}

impl ApiError {
    /// An error with `status`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404: well-formed, but there is no such thing (yet).
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 500: the server failed at something that is not the store's disk.
    /// The error is logged, not sent (it may name files): the client
    /// learns that it was not its fault.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to handle the request; see its log",
        )
    }

    /// The store failed while the server was `doing` something: 507 when
    /// its disk is full (a write; nothing of it was stored), 503 when the
    /// disk failed otherwise (the store is being reopened from what is
    /// durable: retry), 500 `corrupt` naming the object a read found
    /// rotten, 500 otherwise. Messages say what failed, never a path.
    pub fn store(error: &regis_store::StoreError, doing: Doing) -> Self {
        use regis_store::StoreError;
        match error {
            // What a read found rotten is named (the store's messages name
            // objects, never paths), so that the client knows it was not
            // served; the register is marked unhealthy by the store.
            StoreError::Corrupt(what) => {
                tracing::error!(%what, "corrupt read");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "corrupt", what.clone())
            }
            StoreError::Io(io) if error.is_disk_full() => {
                tracing::error!(error = %io, doing = doing.as_str(), "disk full");
                Self::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "disk-full",
                    format!(
                        "{} failed: the register's disk is full; the request was not \
                         acknowledged",
                        doing.as_str()
                    ),
                )
            }
            StoreError::Io(io) => {
                tracing::error!(error = %io, doing = doing.as_str(), "disk error");
                Self::unavailable(
                    "disk-error",
                    format!(
                        "{} failed: the disk reported an error ({}); the store is reopened \
                         from what is durable, retry",
                        doing.as_str(),
                        io.kind()
                    ),
                )
            }
            other => {
                tracing::error!(error = %other, doing = doing.as_str(), "store error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("{} failed; see the server's log", doing.as_str()),
                )
            }
        }
    }

    /// 503: try again later.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::json!({"error": {"code": self.code, "message": self.message}}).to_string()
    }
}

/// What the server was doing when its store failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Doing {
    /// Reading the register.
    Read,
    /// Writing to it.
    Write,
    /// Spooling a request body to disk before writing it.
    Spool,
}

impl Doing {
    fn as_str(self) -> &'static str {
        match self {
            Doing::Read => "reading the register's store",
            Doing::Write => "writing to the register's store",
            Doing::Spool => "spooling the request body to disk",
        }
    }
}

/// A failure of the store's reads (handlers read through snapshots).
impl From<regis_store::StoreError> for ApiError {
    fn from(error: regis_store::StoreError) -> Self {
        ApiError::store(&error, Doing::Read)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            // What every resource answers; a route that takes more sets its own.
            headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"regis\""),
            );
        }
        response
    }
}

/// Why a server could not be configured or started.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration file could not be read.
    #[error("reading {path}: {error}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// The configuration is not valid TOML of the expected shape.
    #[error("configuration {path}: {error}")]
    Config {
        /// The file (or `<text>`).
        path: PathBuf,
        /// The error.
        error: String,
    },
    /// The listening socket could not be opened.
    #[error("listening on {addr}: {error}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        error: std::io::Error,
    },
    /// Serving failed.
    #[error("serving: {0}")]
    Serve(std::io::Error),
    /// The registers could not be listed.
    #[error(transparent)]
    Registry(Box<regis_store::RegistryError>),
    /// A mirror could not be served.
    #[error("mirror {name}: {error}")]
    Mirror {
        /// The mirror.
        name: String,
        /// Why.
        error: String,
    },
    /// A witness policy file could not be read or does not parse.
    #[error("witness policy {path}: {error}")]
    WitnessPolicy {
        /// The file.
        path: PathBuf,
        /// Why (for a policy that does not parse, with the line).
        error: String,
    },
    /// A register's witnessing could not start (its state is damaged or
    /// not its own).
    #[error("register {name}: witnessing: {error}")]
    Witnessing {
        /// The register.
        name: String,
        /// Why.
        error: String,
    },
    /// A register could not be published (`regis publish`).
    #[error(transparent)]
    Publish(Box<regis_publish::PublishError>),
    /// A register's sequencer could not start.
    #[error("register {name}: {error}")]
    Sequencer {
        /// The register.
        name: String,
        /// The error.
        error: Box<regis_store::SequencerError>,
    },
}

impl From<regis_store::RegistryError> for ServerError {
    fn from(error: regis_store::RegistryError) -> Self {
        ServerError::Registry(Box::new(error))
    }
}
