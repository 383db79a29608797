//! Where a static copy is stored: a [`Target`], a small trait over object
//! storage (so that tests can make it fail, hang or lie), and
//! [`ObjectStoreTarget`], the one over Apache Arrow's `object_store` (S3
//! and S3-compatible stores, local directories; GCS and Azure with their
//! features).

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt as _;
use futures_util::future::BoxFuture;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, ObjectStore, ObjectStoreExt as _, ObjectStoreScheme, PutOptions,
    PutPayload,
};

/// `Cache-Control` of what never changes: tiles, bundles, full RSF chunks.
pub const IMMUTABLE: &str = "public, max-age=604800, immutable";

/// `Cache-Control` of what a newer publication replaces: checkpoints, the
/// RSF tail, `B/register`, `B/witness-policy`.
pub const NO_CACHE: &str = "no-cache";

/// How an object is stored: its `Cache-Control` and `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headers {
    /// `Cache-Control`.
    pub cache_control: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
}

/// A request to a target that failed.
#[derive(Debug, thiserror::Error)]
#[error("{operation} {path}: {message}")]
pub struct TargetError {
    /// What was asked: `PUT`, `GET`, `LIST` or `DELETE`.
    pub operation: &'static str,
    /// The path below the target.
    pub path: String,
    /// Why.
    pub message: String,
}

/// A store of objects under a URL prefix. Every method is idempotent.
pub trait Target: fmt::Debug + Send + Sync {
    /// The target's URL, as configured (it names the state file).
    fn url(&self) -> &str;

    /// Stores `bytes` at `path` (below the target) with `headers`.
    fn put<'a>(
        &'a self,
        path: &'a str,
        bytes: Bytes,
        headers: Headers,
    ) -> BoxFuture<'a, Result<(), TargetError>>;

    /// The object at `path`; `None` if there is none.
    fn get<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, TargetError>>;

    /// The paths of the objects below `folder` (which ends in `/`).
    fn list<'a>(&'a self, folder: &'a str) -> BoxFuture<'a, Result<Vec<String>, TargetError>>;

    /// Deletes the object at `path`; deleting nothing is no error.
    fn delete<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), TargetError>>;
}

/// Why a target URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetUrlError {
    /// Not a URL.
    #[error("{url} is not a URL: {error}")]
    Url {
        /// As given.
        url: String,
        /// Why.
        error: url::ParseError,
    },
    /// A URL `object_store` does not serve, or options it refuses.
    #[error("{url}: {error}")]
    Store {
        /// As given.
        url: String,
        /// Why.
        error: object_store::Error,
    },
}

/// A [`Target`] over `object_store`: `s3://bucket/prefix` (credentials,
/// region and endpoint from `options` and the usual `AWS_*` environment),
/// `file:///srv/regis-static`, or any URL `object_store::parse_url_opts`
/// takes.
pub struct ObjectStoreTarget {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// Whether the store keeps `Cache-Control` and `Content-Type` (a local
    /// directory does not: the web server in front of it sets them).
    attributes: bool,
}

impl fmt::Debug for ObjectStoreTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreTarget")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ObjectStoreTarget {
    /// The target at `url`, with `object_store` configuration `options`
    /// (`aws_endpoint`, `aws_region`, `aws_allow_http`…) beside what the
    /// environment gives (`AWS_ACCESS_KEY_ID`…; `options` win).
    pub fn new(url: &str, options: &[(String, String)]) -> Result<Self, TargetUrlError> {
        // S3 over rustls with ring: install it as the process's provider
        // (an error only says one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let parsed = url::Url::parse(url).map_err(|error| TargetUrlError::Url {
            url: url.to_owned(),
            error,
        })?;
        let store_error = |error: object_store::Error| TargetUrlError::Store {
            url: url.to_owned(),
            error,
        };
        let (scheme, _) = ObjectStoreScheme::parse(&parsed)
            .map_err(|error| store_error(object_store::Error::from(error)))?;
        let mut settings: Vec<(String, String)> = Vec::new();
        if scheme == ObjectStoreScheme::AmazonS3 {
            settings.extend(
                std::env::vars()
                    .filter(|(key, _)| key.starts_with("AWS_"))
                    .map(|(key, value)| (key.to_ascii_lowercase(), value)),
            );
        }
        settings.extend(options.iter().cloned());
        let (store, prefix) =
            object_store::parse_url_opts(&parsed, settings).map_err(store_error)?;
        Ok(ObjectStoreTarget {
            url: url.to_owned(),
            store: Arc::from(store),
            prefix,
            attributes: scheme != ObjectStoreScheme::Local,
        })
    }

    fn full(&self, path: &str) -> Path {
        path.split('/')
            .filter(|part| !part.is_empty())
            .fold(self.prefix.clone(), |full, part| full.join(part))
    }

    fn failed(
        operation: &'static str,
        path: &str,
    ) -> impl FnOnce(object_store::Error) -> TargetError {
        let path = path.to_owned();
        move |error| TargetError {
            operation,
            path,
            message: error.to_string(),
        }
    }
}

impl Target for ObjectStoreTarget {
    fn url(&self) -> &str {
        &self.url
    }

    fn put<'a>(
        &'a self,
        path: &'a str,
        bytes: Bytes,
        headers: Headers,
    ) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(async move {
            let mut attributes = Attributes::new();
            if self.attributes {
                attributes.insert(Attribute::CacheControl, headers.cache_control.into());
                attributes.insert(Attribute::ContentType, headers.content_type.into());
            }
            let options = PutOptions {
                attributes,
                ..PutOptions::default()
            };
            self.store
                .put_opts(&self.full(path), PutPayload::from_bytes(bytes), options)
                .await
                .map(drop)
                .map_err(Self::failed("PUT", path))
        })
    }

    fn get<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, TargetError>> {
        Box::pin(async move {
            let result = match self.store.get(&self.full(path)).await {
                Ok(result) => result,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(error) => return Err(Self::failed("GET", path)(error)),
            };
            result
                .bytes()
                .await
                .map(Some)
                .map_err(Self::failed("GET", path))
        })
    }

    fn list<'a>(&'a self, folder: &'a str) -> BoxFuture<'a, Result<Vec<String>, TargetError>> {
        Box::pin(async move {
            let base = self.prefix.as_ref();
            let skip = if base.is_empty() { 0 } else { base.len() + 1 };
            self.store
                .list(Some(&self.full(folder)))
                .map_ok(|meta| meta.location.as_ref().get(skip..).unwrap_or("").to_owned())
                .try_collect()
                .await
                .map_err(Self::failed("LIST", folder))
        })
    }

    fn delete<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(async move {
            match self.store.delete(&self.full(path)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(error) => Err(Self::failed("DELETE", path)(error)),
            }
        })
    }
}
