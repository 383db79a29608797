//! The request pipeline: match the route strictly; answer a point read on
//! the event loop and any other read on a blocking thread, bounded by a
//! concurrency permit and a timeout, each over one store snapshot; finish
//! the response (`finish`); record metrics and a log line. And the
//! connections: counted, per client address too, with bounded buffers and
//! a write timeout.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt as _;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use regis_store::{DirBackend, Log};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

use crate::api;
use crate::app::App;
use crate::config::Limits;
use crate::error::{ApiError, ServerError};
use crate::http::{self, Format, Query};
use crate::metrics::{self, RegisterSizes, UNMATCHED};
use crate::request::{Ctx, RegisterRead};
use crate::routes::{Matched, ROUTES, Route, match_path, moved_to};
use crate::rsf::{self, Range};
use crate::{events, finish, html, tlog, write};

/// What every request reads: the app, and the slots of RSF downloads
/// streaming (`limits.max-rsf-streams`).
struct Served<B: regis_store::KvBackend> {
    app: Arc<App<B>>,
    rsf_streams: Arc<Semaphore>,
}

/// Serves `app` on `listener` until `shutdown` completes, then stops
/// accepting, lets the connections in flight finish (at most
/// `limits.drain_seconds`) and returns.
///
/// HTTP/1.1 through hyper directly (not `axum::serve`) so that every
/// connection has a header read timeout, a write timeout
/// (`limits.write-timeout-seconds`: a connection whose writes make no
/// progress for that long is closed) and a bounded buffer
/// ([`CONNECTION_BUFFER`]), and so that connections are counted: at most
/// `limits.max-connections` in all and `limits.max-connections-per-address`
/// per client address. Beyond either, a new connection is answered 503 and
/// closed at once: the accept loop never waits, so clients that hold
/// connections open (trickling headers, reading nothing) delay no one else.
pub async fn serve<B: DirBackend>(
    listener: TcpListener,
    app: Arc<App<B>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let limits = app.limits;
    let rsf_streams = Arc::new(Semaphore::new(limits.max_rsf_streams));
    let served = Arc::new(Served {
        app: Arc::clone(&app),
        rsf_streams,
    });
    let connections = Arc::new(Connections::new(&limits));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout())
        .max_buf_size(CONNECTION_BUFFER)
        .keep_alive(true);
    app.set_ready(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let admitted = match connections.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                tracing::debug!(%peer, ?refusal, "connection refused");
                refuse(&stream, refusal, &limits);
                continue;
            }
        };
        let io = TokioIo::new(WriteTimeout::new(stream, limits.write_timeout()));
        let served = Arc::clone(&served);
        let service = service_fn(move |request| dispatch(Arc::clone(&served), request));
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            drop(admitted);
        });
    }
    drop(listener);
    app.set_ready(false);
    app.stop();
    tracing::info!("shutting down: draining connections");
    if tokio::time::timeout(limits.drain(), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open after {} s were dropped",
            limits.drain_seconds
        );
    }
    Ok(())
}

/// What hyper buffers per connection, each way: a request head must fit
/// (larger is a 431), and a response body is polled for more only while
/// less than this waits to be written. So a connection holds at most this
/// read, this plus one body chunk to write, and its response's own buffer
/// (a streamed RSF body's: [`rsf::BUFFERED`]).
pub const CONNECTION_BUFFER: usize = 64 * 1024;

/// Why a new connection is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// `limits.max-connections` are open.
    Full,
    /// `limits.max-connections-per-address` are open from its address.
    Address,
}

/// The connections open: a slot each of `limits.max-connections`, and a
/// count per client address.
struct Connections {
    open: Arc<Semaphore>,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    max_per_address: usize,
}

/// An open connection's place in [`Connections`], given back on drop.
struct Admitted {
    connections: Arc<Connections>,
    address: IpAddr,
    _slot: OwnedSemaphorePermit,
}

impl Connections {
    fn new(limits: &Limits) -> Connections {
        Connections {
            open: Arc::new(Semaphore::new(limits.max_connections)),
            per_address: Mutex::new(HashMap::new()),
            max_per_address: limits.max_connections_per_address,
        }
    }

    /// A place for a connection from `peer`, if both bounds allow one.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admitted, Refusal> {
        let address = client_address(peer);
        let mut per_address = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        if per_address
            .get(&address)
            .is_some_and(|&count| count >= self.max_per_address)
        {
            return Err(Refusal::Address);
        }
        let slot = Arc::clone(&self.open)
            .try_acquire_owned()
            .map_err(|_| Refusal::Full)?;
        // Only open connections have an entry: the map holds at most
        // `max-connections`.
        *per_address.entry(address).or_insert(0) += 1;
        Ok(Admitted {
            connections: Arc::clone(self),
            address,
            _slot: slot,
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut per_address = self
            .connections
            .per_address
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = per_address.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_address.remove(&self.address);
            }
        }
    }
}

/// The address a connection's bound counts it under: an IPv4 address (also
/// when mapped into IPv6), or an IPv6 address's /64, which one host
/// usually has whole.
fn client_address(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

/// Answers a refused connection 503 in one non-blocking write (a new
/// socket's empty send buffer takes it whole; if not, the client sees the
/// connection closed) and closes it, holding nothing.
fn refuse(stream: &TcpStream, refusal: Refusal, limits: &Limits) {
    let error = match refusal {
        Refusal::Full => ApiError::unavailable(
            "too-many-connections",
            format!(
                "the server has {} connections open, its limit; retry",
                limits.max_connections
            ),
        ),
        Refusal::Address => ApiError::unavailable(
            "too-many-connections",
            format!(
                "{} connections are open from your address, the limit; close one or retry",
                limits.max_connections_per_address
            ),
        ),
    };
    let body = error.body();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         cache-control: no-store\r\nretry-after: 1\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

/// A connection's socket, whose writes fail with `TimedOut` once they have
/// made no progress for `timeout`: hyper then closes the connection and
/// drops the response, so a client that stops reading holds its
/// connection, and what its response holds (an RSF stream's slot and
/// buffers, an event stream's), for at most that long after its socket's
/// buffers fill.
struct WriteTimeout {
    stream: TcpStream,
    timeout: Duration,
    /// Armed while a write waits for the socket.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl WriteTimeout {
    fn new(stream: TcpStream, timeout: Duration) -> WriteTimeout {
        WriteTimeout {
            stream,
            timeout,
            stalled: None,
        }
    }

    /// Passes on a write's outcome; while the socket takes nothing, fails
    /// once `timeout` has passed since it last took something.
    fn progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let timeout = self.timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for the write timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for WriteTimeout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteTimeout {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.progress(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.progress(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_flush(cx);
        self.progress(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_shutdown(cx);
        self.progress(cx, poll)
    }
}

/// Binds `addr`.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| ServerError::Bind { addr, error })
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Pauses before a read that met a disk error is tried again.
const READ_RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(10), Duration::from_millis(100)];

/// Answers one request: preflights at once, anything else through
/// [`respond`], then [`finish::finish`]; records its metrics and log line.
/// A panic is answered 500, never a dropped connection.
async fn dispatch<B: DirBackend>(
    served: Arc<Served<B>>,
    request: Request<Incoming>,
) -> Result<Response, Infallible> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    if method == Method::OPTIONS {
        return Ok(finish::preflight());
    }
    let asked = finish::Asked::new(&headers);
    let answered = AssertUnwindSafe(respond(&served, &method, &uri, headers, Body::new(body)))
        .catch_unwind()
        .await;
    let (template, response) = answered.unwrap_or_else(|_| {
        (
            UNMATCHED,
            ApiError::internal("a handler panicked").into_response(),
        )
    });
    let response = finish::finish(&asked, response).await;
    let elapsed = started.elapsed();
    let status = response.status();
    served
        .app
        .metrics
        .record(template, status.as_u16(), elapsed);
    tracing::info!(
        method = %method,
        path = uri.path(),
        route = template,
        status = status.as_u16(),
        micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    Ok(response)
}

async fn respond<B: DirBackend>(
    served: &Served<B>,
    method: &Method,
    uri: &Uri,
    headers: HeaderMap,
    body: Body,
) -> (&'static str, Response) {
    let app = &served.app;
    let matched = match match_path(uri.path()) {
        Ok(Some(matched)) => matched,
        Ok(None) => return (UNMATCHED, unmatched(method, uri)),
        Err(error) => return (UNMATCHED, error.into_response()),
    };
    let template = matched.template;
    let route = matched.route;
    let reads = (method == Method::GET || method == Method::HEAD) && route.gets();
    let post = (method == Method::POST).then(|| route.post()).flatten();
    if !reads && post.is_none() {
        let mut response = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            format!("{template} answers {}, not {method}", route.allow()),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(route.allow()));
        return (template, response);
    }
    if route == Route::Moved {
        // The query goes along as sent: the path moved to reads it.
        let location = moved_to(template, uri.path(), uri.query());
        let response = http::moved_permanently(&location);
        return (
            template,
            response.unwrap_or_else(IntoResponse::into_response),
        );
    }
    let query = match Query::parse(uri.query()) {
        Ok(query) => query,
        Err(error) => return (template, error.into_response()),
    };
    if let Some(post) = post {
        // Writes are bounded by their register's in-flight limit, not by
        // the read permits, and wait for their commit, not for a timeout.
        let response = write::post(app, post, &matched, &query, &headers, body).await;
        return (template, response);
    }
    match matched.route {
        Route::Healthz => return (template, http::ok("text/plain", http::NO_STORE, "ok\n")),
        Route::Readyz => return (template, readyz(app)),
        _ => {}
    }
    // A full tile already read needs no store and no blocking thread.
    if let Route::Tile(log) = matched.route
        && let (Ok(register), Ok(rest)) = (param(&matched, 0), param(&matched, 1))
        && let Some(response) = tlog::cached_tile(
            &app.tiles,
            register,
            log,
            rest,
            http::accepts_gzip(&headers),
        )
    {
        return (template, response);
    }
    let negotiated = matched.format.is_none()
        && ROUTES
            .iter()
            .any(|spec| spec.template == template && spec.formats);
    let format = matched.format.unwrap_or_else(|| http::accepted(&headers));
    let path = uri.path();
    let mut response = if point_read(&matched, &query, format) {
        match handle(
            app,
            &matched,
            &query,
            format,
            &headers,
            path,
            &served.rsf_streams,
        ) {
            Ok(response) => response,
            // Tried again on the blocking pool, after its pause.
            Err(error) if error.code == "disk-error" => {
                on_blocking_thread(served, matched, query, format, headers, path).await
            }
            Err(error) => error.into_response(),
        }
    } else {
        on_blocking_thread(served, matched, query, format, headers, path).await
    };
    if negotiated {
        // The representation depended on `Accept`.
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("Accept"));
    }
    (template, response)
}

/// Whether a read is a point read: a few reads of its register's own files
/// and indexes (`O(log n)`), a small answer, nothing remote. These are
/// answered on the event loop, as nginx serves a file: handing a request
/// to a blocking thread and back costs two context switches, more than
/// such a read of the page cache, where a server's hot set lives. So a
/// point read that goes to the disk holds its event-loop thread for that
/// read. Lists, pages, streams and link resolution (which may ask another
/// server) go to the blocking pool, bounded by permits and a timeout, as
/// does a point read that met a disk error, to be tried again there.
fn point_read(matched: &Matched, query: &Query, format: Format) -> bool {
    let own_data = query.get("links").is_none() && query.get("expand").is_none();
    let point = matches!(
        matched.route,
        Route::RecordProof
            | Route::Record
            | Route::Entry
            | Route::Item
            | Route::RegisterProof
            | Route::EntryProof
            | Route::ConsistencyProof
            | Route::Checkpoint(_)
            | Route::Tile(_)
    );
    point && own_data && format != Format::Html
}

/// Answers a read on a blocking thread, within a permit
/// (`limits.concurrency`: beyond it a 503 `busy`) and the request timeout;
/// a read that met a disk error is tried again after a pause.
async fn on_blocking_thread<B: DirBackend>(
    served: &Served<B>,
    matched: Matched,
    query: Query,
    format: Format,
    headers: HeaderMap,
    path: &str,
) -> Response {
    let app = &served.app;
    let Ok(permit) = Arc::clone(&app.permits).try_acquire_owned() else {
        let error = ApiError::unavailable(
            "busy",
            format!(
                "the server is handling {} requests, its limit; retry",
                app.limits.concurrency
            ),
        );
        return error.into_response();
    };
    let work = {
        let app = Arc::clone(app);
        let rsf_streams = Arc::clone(&served.rsf_streams);
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            // The permit bounds the work of building a response, not the
            // time its client takes to read it: it goes once the head is
            // ready. A streamed RSF body holds an RSF stream slot instead.
            let _permit = permit;
            let read = || {
                handle(
                    &app,
                    &matched,
                    &query,
                    format,
                    &headers,
                    &path,
                    &rsf_streams,
                )
            };
            // A read that met the store failing on the disk is tried again
            // after a pause: the committer reopens the store meanwhile (its
            // first attempt at once), and a read of the reopened store
            // succeeds. Reads change nothing, so trying again is safe.
            let mut answer = read();
            for pause in READ_RETRY_PAUSES {
                match &answer {
                    Err(error) if error.code == "disk-error" => {
                        std::thread::sleep(pause);
                        answer = read();
                    }
                    _ => break,
                }
            }
            answer
        })
    };
    match tokio::time::timeout(app.limits.request_timeout(), work).await {
        Ok(Ok(Ok(response))) => response,
        Ok(Ok(Err(error))) => error.into_response(),
        Ok(Err(join)) => ApiError::internal(join).into_response(),
        Err(_) => ApiError::unavailable(
            "timeout",
            format!(
                "the request took longer than {} s",
                app.limits.request_timeout_seconds
            ),
        )
        .into_response(),
    }
}

/// The format suffixes GOV.UK Registers retired in 2018, answered 410.
const RETIRED_FORMATS: [&str; 4] = [".tsv", ".ttl", ".xlsx", ".yaml"];

/// The answer to a path no route has: as GOV.UK Registers answered, a read
/// of a route's path with a trailing `/` is a 301 to the path without it
/// (query kept), and of a path in a retired format a 410; else a 404.
/// Only a route's path is a place to go: `//host/` or `/\host/` would send
/// a browser to another host.
fn unmatched(method: &Method, uri: &Uri) -> Response {
    let path = uri.path();
    let reads = method == Method::GET || method == Method::HEAD;
    if reads
        && let Some(trimmed) = path.strip_suffix('/')
        && matches!(match_path(trimmed), Ok(Some(_)))
    {
        let location = match uri.query() {
            Some(query) => format!("{trimmed}?{query}"),
            None => trimmed.to_owned(),
        };
        return http::moved_permanently(&location).unwrap_or_else(IntoResponse::into_response);
    }
    let last = path.rsplit('/').next().unwrap_or(path);
    let retired = RETIRED_FORMATS
        .iter()
        .find(|suffix| last.len() > suffix.len() && last.ends_with(*suffix));
    let error = match retired {
        Some(suffix) if reads => ApiError::new(
            StatusCode::GONE,
            "retired-format",
            format!("{suffix} was a format of GOV.UK Registers until 2018; ask for .json or .csv"),
        ),
        _ => ApiError::not_found("no-route", format!("no resource at {}", http::quote(path))),
    };
    error.into_response()
}

/// Ready when the server listens, serves at least one register, and every
/// register it has opened reads and takes writes and, if witnessed, has
/// its checkpoints cosigned; the body says which register is not and why
/// (no paths).
fn readyz<B: DirBackend>(app: &App<B>) -> Response {
    let mut problems = Vec::new();
    for (name, reason) in &app.unavailable {
        problems.push(serde_json::json!({"name": name, "state": "unavailable", "reason": reason}));
    }
    let registers = app.registers();
    let now = Instant::now();
    for register in &registers {
        if let Some(behind) = register.witnessed().and_then(|w| w.behind(now)) {
            let witnessed = match behind.witnessed {
                Some(size) => format!("its newest witnessed checkpoint (size {size})"),
                None => "it has no witnessed checkpoint: it".to_owned(),
            };
            let reason = format!(
                "the {} log is behind its witnesses: {witnessed} has not advanced for {} s \
                 while newer checkpoints wait for the quorum",
                behind.log,
                behind.waiting.as_secs()
            );
            let failing: Vec<_> = behind
                .failing
                .iter()
                .map(|(witness, error)| serde_json::json!({"witness": witness, "error": error}))
                .collect();
            problems.push(serde_json::json!({
                "name": register.name.as_str(), "state": "witnesses-behind", "reason": reason,
                "witnesses": failing,
            }));
        }
        let health = register.store.health();
        if let Some(what) = health.corrupt() {
            problems.push(serde_json::json!({
                "name": register.name.as_str(), "state": "corrupt", "reason": what,
            }));
        }
        // The reserve checked as for a write of nothing: a disk too full
        // to take writes makes the register not ready before one fails.
        if let Err(full) = app.room.check(
            app.registry.data_dir(),
            &app.registry.dir(&register.name),
            &app.limits,
            0,
        ) {
            problems.push(serde_json::json!({
                "name": register.name.as_str(), "state": "disk-full", "reason": full.message,
            }));
        } else if let Some(failure) = health.writes() {
            let state = if failure.disk_full {
                "disk-full"
            } else {
                "writes-failing"
            };
            problems.push(serde_json::json!({
                "name": register.name.as_str(), "state": state, "reason": failure.why,
            }));
        }
    }
    for (name, reason) in app.publish_problems() {
        problems.push(serde_json::json!({
            "name": name, "state": "publish-behind", "reason": reason,
        }));
    }
    let ready = app.is_ready() && !registers.is_empty() && problems.is_empty();
    let body = serde_json::json!({
        "ready": ready,
        "listening": app.is_ready(),
        "registers": registers.len(),
        "problems": problems,
    });
    let mut response = http::ok("application/json", http::NO_STORE, body.to_string());
    if !ready {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    response
}

fn metrics<B: DirBackend>(app: &App<B>) -> Result<Response, ApiError> {
    let sizes = app
        .registers()
        .into_iter()
        .map(|reg| {
            let snapshot = reg.snapshot()?;
            let witnessing = reg.witnessed().map(|witnessed| {
                let signed = reg.checkpoints().borrow().as_ref().map(|_, tree| tree.size);
                witnessed.sizes(signed)
            });
            Ok(RegisterSizes {
                name: reg.name.to_string(),
                user: snapshot.size(Log::User),
                system: snapshot.size(Log::System),
                records: snapshot.record_count(),
                witnessing,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let text = metrics::render(
        &app.metrics,
        &app.write_metrics,
        sizes,
        app.published_sizes(),
    )
    .map_err(ApiError::internal)?;
    Ok(http::ok(metrics::CONTENT_TYPE, http::NO_STORE, text))
}

/// The `system-size` query parameter of an RSF delta: the system entries
/// its reader holds.
fn system_size(query: &Query) -> Result<Option<u64>, ApiError> {
    query
        .get("system-size")
        .map(|text| http::number(text, "query parameter system-size", 0, u64::MAX))
        .transpose()
}

fn param(matched: &Matched, index: usize) -> Result<&str, ApiError> {
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
}

fn handle<B: DirBackend>(
    app: &Arc<App<B>>,
    matched: &Matched,
    query: &Query,
    format: Format,
    headers: &HeaderMap,
    path: &str,
    rsf_streams: &Arc<Semaphore>,
) -> Result<Response, ApiError> {
    let ctx = Ctx {
        path,
        query,
        format,
        limits: app.limits,
    };
    if let Some(page) = html::page(app, matched, &ctx) {
        return Ok(page);
    }
    let ctx = Ctx {
        format: html::api_format(format),
        ..ctx
    };
    match matched.route {
        Route::Catalogue => return api::catalogue(app, &ctx),
        Route::Metrics => return metrics(app),
        Route::Healthz | Route::Readyz => {
            return Err(ApiError::internal("health routes are answered before"));
        }
        _ => {}
    }
    let reg = app.register(param(matched, 0)?)?;
    let read = || RegisterRead::new(&reg);
    let limits = &app.limits;
    let size = |index: usize| -> Result<u64, ApiError> {
        http::number(param(matched, index)?, "the tree size", 0, u64::MAX)
    };
    match matched.route {
        Route::Register => api::register(&read()?, &ctx),
        Route::Records => api::records(&read()?, &ctx),
        Route::Record => api::record(app, &read()?, &ctx, param(matched, 1)?),
        Route::RecordEntries => api::record_entries(&read()?, &ctx, param(matched, 1)?),
        Route::RecordProof => tlog::record_proof(app, &reg, &ctx, param(matched, 1)?),
        Route::RecordsByField => {
            api::records_by_field(&read()?, &ctx, param(matched, 1)?, param(matched, 2)?)
        }
        Route::Entries => api::entries(&read()?, &ctx),
        Route::Entry => api::entry(&read()?, &ctx, param(matched, 1)?),
        Route::Item => api::item(&read()?, &ctx, param(matched, 1)?),
        Route::RegisterProof => tlog::register_proof(&reg),
        Route::EntryProof => tlog::entry_proof(&reg, param(matched, 1)?, param(matched, 2)?),
        Route::ConsistencyProof => {
            tlog::consistency_proof_response(&reg, param(matched, 1)?, param(matched, 2)?)
        }
        Route::DownloadRsf => rsf::download(reg, Range::Full, rsf_streams, limits),
        Route::DownloadRsfFrom => {
            let range = Range::open_ended(size(1)?, system_size(query)?);
            rsf::download(reg, range, rsf_streams, limits)
        }
        Route::DownloadRsfRange => {
            let range = Range::Delta {
                start: size(1)?,
                end: Some(size(2)?),
                held: system_size(query)?,
            };
            rsf::download(reg, range, rsf_streams, limits)
        }
        Route::Checkpoint(log) => tlog::checkpoint(&reg, log),
        Route::Events => events::events(app, reg, headers),
        Route::WitnessPolicy => tlog::witness_policy(&reg),
        Route::Links => crate::links::census_response(app, &reg, &ctx),
        Route::Tile(log) => {
            let gzip = http::accepts_gzip(headers);
            tlog::tile(&app.tiles, &reg, log, param(matched, 1)?, gzip)
        }
        Route::Home
        | Route::Catalogue
        | Route::Metrics
        | Route::Healthz
        | Route::Readyz
        | Route::RegisterHome
        | Route::Asset(_) => Err(ApiError::internal("server routes are answered before")),
        Route::LoadRsf => Err(ApiError::internal("write routes are answered before")),
        Route::Moved => Err(ApiError::internal("moved routes are answered before")),
    }
}
