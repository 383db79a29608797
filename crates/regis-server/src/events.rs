//! `B/events`: each checkpoint the register's sequencer publishes, as a
//! Server-Sent Event, so that mirrors and auditors need not poll.
//!
//! On connecting, a client gets the current checkpoint of each log, then
//! one event per log each time that log's checkpoint grows:
//!
//! ```text
//! event: checkpoint
//! id: 208.12
//! data: {"log":"user","size":208,"root-hash":"sha-256:…","checkpoint":"<signed note>"}
//! ```
//!
//! An event's id is `<user size>.<system size>` as of that event. A client
//! that reconnects with `Last-Event-ID` (EventSource does so by itself) is
//! sent only the checkpoints of logs that have grown since; a checkpoint
//! covers every entry before it, so nothing between is missed.
//!
//! A comment line every 15 seconds keeps proxies from closing an idle
//! stream. Streams are bounded (`limits.max-event-streams`, then 503), hold
//! at most 8 events waiting for their client, and end when the server stops
//! or when their client has read nothing for `limits.write-timeout-seconds`
//! (the connection's write timeout closes it, and the send here fails).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::HeaderMap;
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

/// How long a client waits before reconnecting (the `retry:` field).
const RETRY_MILLISECONDS: u64 = 2000;

fn event(log: Log, checkpoint: &SignedTree, sizes: [u64; 2]) -> Bytes {
    let data = serde_json::json!({
        "log": log.to_string(),
        "size": checkpoint.size,
        "root-hash": format_hash(&checkpoint.root),
        "checkpoint": checkpoint.text,
    });
    let [user, system] = sizes;
    Bytes::from(format!(
        "event: checkpoint\nid: {user}.{system}\ndata: {data}\n\n"
    ))
}

/// The log sizes a `Last-Event-ID` says the client has seen.
fn last_seen(headers: &HeaderMap) -> Result<[Option<u64>; 2], ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok([None, None]);
    };
    let bad = || {
        ApiError::bad_request(
            "bad-last-event-id",
            "Last-Event-ID must be an id this stream sent: <user size>.<system size>",
        )
    };
    let text = value.to_str().map_err(|_| bad())?;
    if text.is_empty() {
        return Ok([None, None]);
    }
    let (user, system) = text.split_once('.').ok_or_else(bad)?;
    let size = |text: &str| http::number(text, "a size in Last-Event-ID", 0, u64::MAX);
    Ok([Some(size(user)?), Some(size(system)?)])
}

/// Starts an event stream for `reg`.
pub fn events<B: DirBackend>(
    app: &Arc<App<B>>,
    reg: Arc<RegisterState<B>>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let seen = last_seen(headers)?;
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
    let mut checkpoints = reg.checkpoints();
    let mut stopping = app.stopping();
    let (sender, mut receiver) = mpsc::channel::<Result<Bytes, Infallible>>(8);
    runtime.spawn(async move {
        let _permit = permit;
        let mut sent = seen;
        let retry = Bytes::from(format!("retry: {RETRY_MILLISECONDS}\n\n"));
        if sender.send(Ok(retry)).await.is_err() {
            return;
        }
        loop {
            if *stopping.borrow() {
                break;
            }
            let current = checkpoints.borrow_and_update().clone();
            for (slot, log) in [Log::User, Log::System].into_iter().enumerate() {
                if sent[slot] != Some(current[slot].size) {
                    sent[slot] = Some(current[slot].size);
                    let sizes = [0, 1].map(|i| sent[i].unwrap_or(current[i].size));
                    if sender
                        .send(Ok(event(log, &current[slot], sizes)))
                        .await
                        .is_err()
                    {
                        return;
                    }
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
