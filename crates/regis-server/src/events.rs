//! `B/events`: each checkpoint the register's sequencer publishes, as a
//! Server-Sent Event, so that mirrors and auditors need not poll.
//!
//! On connecting, a client gets the current checkpoint of each log, then
//! one event per log each time that log's checkpoint grows:
//!
//! ```text
//! event: checkpoint
//! data: {"log":"user","size":208,"root-hash":"sha-256:…","checkpoint":"<signed note>"}
//! ```
//!
//! A comment line every 15 seconds keeps proxies from closing an idle
//! stream. Streams are bounded (`limits.max-event-streams`, then 503) and
//! end when the server stops.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use regis_model::format_hash;
use regis_store::{DirBackend, Log, SignedTree};
use tokio::sync::mpsc;

use crate::app::{App, RegisterState};
use crate::error::ApiError;
use crate::http;

/// Time between keep-alive comments.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

fn event(log: Log, checkpoint: &SignedTree) -> Bytes {
    let data = serde_json::json!({
        "log": log.to_string(),
        "size": checkpoint.size,
        "root-hash": format_hash(&checkpoint.root),
        "checkpoint": checkpoint.text,
    });
    Bytes::from(format!("event: checkpoint\ndata: {data}\n\n"))
}

/// Starts an event stream for `reg`.
pub fn events<B: DirBackend>(
    app: &Arc<App<B>>,
    reg: Arc<RegisterState<B>>,
) -> Result<Response, ApiError> {
    let permit = Arc::clone(&app.event_permits)
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::unavailable(
                "busy",
                format!(
                    "the server holds {} event streams, its limit; retry",
                    app.limits.max_event_streams
                ),
            )
        })?;
    let runtime = tokio::runtime::Handle::try_current().map_err(ApiError::internal)?;
    let mut checkpoints = reg.sequencer.checkpoints();
    let mut stopping = app.stopping();
    let (sender, mut receiver) = mpsc::channel::<Result<Bytes, Infallible>>(8);
    runtime.spawn(async move {
        let _permit = permit;
        let mut sent: [Option<u64>; 2] = [None, None];
        loop {
            if *stopping.borrow() {
                break;
            }
            let current = checkpoints.borrow_and_update().clone();
            for (slot, log) in [Log::User, Log::System].into_iter().enumerate() {
                if sent[slot] != Some(current[slot].size) {
                    if sender.send(Ok(event(log, &current[slot]))).await.is_err() {
                        return;
                    }
                    sent[slot] = Some(current[slot].size);
                }
            }
            tokio::select! {
                changed = checkpoints.changed() => if changed.is_err() { break },
                _ = stopping.changed() => break,
                () = sender.closed() => break,
                () = tokio::time::sleep(KEEP_ALIVE) => {
                    if sender.send(Ok(Bytes::from_static(b": keep-alive\n\n"))).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    let mut response = http::ok(
        "text/event-stream",
        http::NO_STORE,
        Body::from_stream(stream),
    );
    response.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    Ok(response)
}
