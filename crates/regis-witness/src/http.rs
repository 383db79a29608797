//! The witness over HTTP/1.1: `POST /add-checkpoint` and
//! `GET /<origin hash>/checkpoint` (C2SP tlog-witness, the submission and
//! monitoring prefixes both `/`), and `GET /healthz`. Errors are plain
//! text saying what is wrong.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt as _;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::witness::{Answer, TEXT, Witness};

/// Bounds on what one request may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body. A checkpoint note with its signatures
    /// and 63 proof lines is a few KiB; beyond this, 413.
    pub max_body: usize,
    /// How long a client may take to send a request's head, and then its
    /// body (408 for a body).
    pub request_timeout: Duration,
    /// On shutdown, how long requests in flight may take to finish.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 64 * 1024,
            request_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(10),
        }
    }
}

#[derive(Debug)]
struct Served {
    witness: Arc<Witness>,
    limits: Limits,
}

/// The witness's routes.
pub fn router(witness: Arc<Witness>, limits: Limits) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/{origin_hash}/checkpoint", get(checkpoint))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(Arc::new(Served { witness, limits }))
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            )],
            self.body,
        )
            .into_response()
    }
}

async fn healthz() -> Answer {
    Answer::text(200, "ok")
}

async fn not_found() -> Answer {
    Answer::text(
        404,
        "not found: a witness serves POST /add-checkpoint, GET /<origin hash>/checkpoint and GET /healthz",
    )
}

async fn method_not_allowed() -> Answer {
    Answer::text(
        405,
        "method not allowed: POST /add-checkpoint, GET /<origin hash>/checkpoint, GET /healthz",
    )
}

async fn add_checkpoint(
    State(served): State<Arc<Served>>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    match read_body(&headers, body, &served.limits).await {
        Ok(bytes) => served.witness.add_checkpoint(&bytes).await,
        Err(answer) => answer,
    }
}

async fn checkpoint(State(served): State<Arc<Served>>, Path(origin_hash): Path<String>) -> Answer {
    match served.witness.checkpoint(&origin_hash) {
        Some(note) => Answer {
            status: 200,
            content_type: TEXT,
            body: note.as_str().to_owned(),
        },
        None => Answer::text(
            404,
            format_args!(
                "no checkpoint cosigned for the log whose origin hashes to {origin_hash:?} (lowercase hex SHA-256 of the origin)"
            ),
        ),
    }
}

/// The body, at most `limits.max_body` bytes (413 beyond, before reading
/// it when the length is declared) within `limits.request_timeout` (408).
async fn read_body(headers: &HeaderMap, body: Body, limits: &Limits) -> Result<Vec<u8>, Answer> {
    let too_large = || {
        Answer::text(
            413,
            format_args!(
                "the request body is over {} bytes, more than any add-checkpoint request needs",
                limits.max_body
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limits.max_body as u64) {
        return Err(too_large());
    }
    let read = async {
        let mut stream = body.into_data_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|e| Answer::text(400, format_args!("reading the request body: {e}")))?;
            if bytes.len() + chunk.len() > limits.max_body {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    tokio::time::timeout(limits.request_timeout, read)
        .await
        .unwrap_or_else(|_| {
            Err(Answer::text(
                408,
                format_args!(
                    "the request body did not arrive within {} s",
                    limits.request_timeout.as_secs_f64()
                ),
            ))
        })
}

/// Serves the witness on `listener` until `shutdown` completes, then stops
/// accepting and gives the requests in flight `limits.drain` to finish. A
/// request's head must arrive within `limits.request_timeout`; connections
/// are kept alive between requests (tlog-witness asks for it).
pub async fn serve(
    listener: TcpListener,
    witness: Arc<Witness>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let router = router(witness, limits);
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause, go on.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still in flight after {} s were dropped",
            limits.drain.as_secs_f64()
        );
    }
}

/// Runs the witness on `listen`, on a runtime of its own, until `shutdown`
/// completes: binds, calls `on_listen` with the address bound, serves
/// ([`serve`]). A request still writing when the drain time is up is
/// abandoned: its state is the old or the new, and it was not answered.
pub fn run(
    witness: Witness,
    listen: SocketAddr,
    limits: Limits,
    on_listen: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let listener = TcpListener::bind(listen).await?;
        on_listen(listener.local_addr()?);
        serve(listener, Arc::new(witness), limits, shutdown).await;
        Ok(())
    });
    runtime.shutdown_timeout(limits.drain);
    result
}
