//! The router and the request pipeline: match the route strictly, bound
//! the request (concurrency permit, timeout), run the handler on a blocking
//! thread over one store snapshot, record metrics and a log line.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use regis_store::{DirBackend, Log};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
use tower_http::cors::{Any, CorsLayer};

use crate::api::{self, Ctx};
use crate::app::App;
use crate::error::{ApiError, ServerError};
use crate::http::{self, Format, Query};
use crate::metrics::UNMATCHED;
use crate::routes::{Matched, ROUTES, Route, match_path};
use crate::rsf::{self, Range};
use crate::{events, html, tlog, write};

/// The router serving `app`, with its layers: CORS `*` on reads, gzip for
/// text bodies, and a last-resort panic guard. (Request bodies are read
/// only by the write routes, each with its own size and time limits.)
pub fn router<B: DirBackend>(app: Arc<App<B>>) -> Router {
    Router::new()
        .fallback(dispatch::<B>)
        .with_state(app)
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("a handler panicked").into_response()
        }))
        .layer(CompressionLayer::new().compress_when(
            DefaultPredicate::new().and(NotForContentType::const_new("application/octet-stream")),
        ))
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET, Method::HEAD])
                .expose_headers([header::LINK, header::ETAG]),
        )
}

/// Serves `app` on `listener` until `shutdown` completes, then stops
/// accepting, lets the connections in flight finish (at most
/// `limits.drain_seconds`) and returns.
///
/// HTTP/1.1 through hyper directly (not `axum::serve`) so that every
/// connection has a header read timeout and their number is bounded.
pub async fn serve<B: DirBackend>(
    listener: TcpListener,
    app: Arc<App<B>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let limits = app.limits;
    let router = router(Arc::clone(&app));
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout())
        .keep_alive(true);
    app.set_ready(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
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
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            drop(permit);
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

async fn dispatch<B: DirBackend>(
    State(app): State<Arc<App<B>>>,
    request: axum::extract::Request,
) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let (template, mut response) = respond(&app, &method, &uri, headers, body).await;
    let elapsed = started.elapsed();
    let status = response.status();
    app.metrics.record(template, status.as_u16(), elapsed);
    tracing::info!(
        method = %method,
        path = uri.path(),
        route = template,
        status = status.as_u16(),
        micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    if method == Method::HEAD {
        *response.body_mut() = Body::empty();
    }
    response
}

async fn respond<B: DirBackend>(
    app: &Arc<App<B>>,
    method: &Method,
    uri: &Uri,
    headers: HeaderMap,
    body: Body,
) -> (&'static str, Response) {
    let matched = match match_path(uri.path()) {
        Ok(Some(matched)) => matched,
        Ok(None) => {
            let error = ApiError::not_found(
                "no-route",
                format!("no resource at {}", http::quote(uri.path())),
            );
            return (UNMATCHED, error.into_response());
        }
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
        && let Some(response) = tlog::cached_tile(&app.tiles, register, log, rest, &headers)
    {
        return (template, response);
    }
    let Ok(permit) = Arc::clone(&app.permits).try_acquire_owned() else {
        let error = ApiError::unavailable(
            "busy",
            format!(
                "the server is handling {} requests, its limit; retry",
                app.limits.concurrency
            ),
        );
        return (template, error.into_response());
    };
    let negotiated = matched.format.is_none()
        && ROUTES
            .iter()
            .any(|spec| spec.template == template && spec.formats);
    let format = matched.format.unwrap_or_else(|| http::accepted(&headers));
    let work = {
        let app = Arc::clone(app);
        let path = uri.path().to_owned();
        tokio::task::spawn_blocking(move || {
            handle(&app, &matched, &query, format, &headers, &path, permit)
        })
    };
    let response = match tokio::time::timeout(app.limits.request_timeout(), work).await {
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
    };
    let mut response = response;
    if negotiated {
        // The representation depended on `Accept`.
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("Accept"));
    }
    (template, response)
}

fn readyz<B: DirBackend>(app: &App<B>) -> Response {
    let ready = app.is_ready();
    let body = serde_json::json!({
        "ready": ready,
        "registers": app.registers().len(),
        "unavailable": app
            .unavailable
            .iter()
            .map(|(name, reason)| serde_json::json!({"name": name, "reason": reason}))
            .collect::<Vec<_>>(),
    });
    let mut response = http::ok("application/json", http::NO_STORE, body.to_string());
    if !ready {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    response
}

fn metrics<B: DirBackend>(app: &App<B>) -> Result<Response, ApiError> {
    let mut text = String::new();
    app.metrics.render(&mut text);
    app.write_metrics.render(&mut text);
    text.push_str("# HELP regis_log_size Entries in each register's logs.\n");
    text.push_str("# TYPE regis_log_size gauge\n");
    let mut records = String::from(
        "# HELP regis_records Records (distinct keys) in each register.\n# TYPE regis_records gauge\n",
    );
    for reg in app.registers() {
        let snapshot = reg.snapshot()?;
        for log in [Log::User, Log::System] {
            text.push_str(&format!(
                "regis_log_size{{register=\"{}\",log=\"{log}\"}} {}\n",
                reg.name,
                snapshot.size(log)
            ));
        }
        records.push_str(&format!(
            "regis_records{{register=\"{}\"}} {}\n",
            reg.name,
            snapshot.record_count()
        ));
    }
    text.push_str(&records);
    Ok(http::ok(
        "text/plain; version=0.0.4; charset=utf-8",
        http::NO_STORE,
        text,
    ))
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
    permit: OwnedSemaphorePermit,
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
    let patience = app.limits.request_timeout();
    let size = |index: usize| -> Result<u64, ApiError> {
        http::number(param(matched, index)?, "the tree size", 0, u64::MAX)
    };
    match matched.route {
        Route::Register => api::register(&reg, &ctx),
        Route::Records => api::records(&reg, &ctx),
        Route::Record => api::record(&reg, &ctx, param(matched, 1)?),
        Route::RecordEntries => api::record_entries(&reg, &ctx, param(matched, 1)?),
        Route::RecordProof => tlog::record_proof(&reg, &ctx, param(matched, 1)?),
        Route::RecordsByField => {
            api::records_by_field(&reg, &ctx, param(matched, 1)?, param(matched, 2)?)
        }
        Route::Entries => api::entries(&reg, &ctx),
        Route::Entry => api::entry(&reg, &ctx, param(matched, 1)?),
        Route::Item => api::item(&reg, &ctx, param(matched, 1)?),
        Route::RegisterProof => tlog::register_proof(&reg),
        Route::EntryProof => tlog::entry_proof(&reg, param(matched, 1)?, param(matched, 2)?),
        Route::ConsistencyProof => {
            tlog::consistency_proof_response(&reg, param(matched, 1)?, param(matched, 2)?)
        }
        Route::DownloadRsf => rsf::download(reg, Range::Full, permit, patience),
        Route::DownloadRsfFrom => rsf::download(reg, Range::From(size(1)?), permit, patience),
        Route::DownloadRsfRange => {
            rsf::download(reg, Range::Between(size(1)?, size(2)?), permit, patience)
        }
        Route::Checkpoint(log) => tlog::checkpoint(&reg, log),
        Route::Events => events::events(app, reg, headers),
        Route::Tile(log) => tlog::tile(&app.tiles, &reg, log, param(matched, 1)?, headers),
        Route::Home
        | Route::Catalogue
        | Route::Metrics
        | Route::Healthz
        | Route::Readyz
        | Route::RegisterHome
        | Route::Asset(_) => Err(ApiError::internal("server routes are answered before")),
        Route::LoadRsf => Err(ApiError::internal("write routes are answered before")),
    }
}
