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
//! Events are framed by axum's `Sse`; a comment line every 15 seconds keeps
//! proxies from closing an idle stream. Streams are bounded (`limits.max-event-streams`, then 503), hold
//! at most 8 events waiting for their client, and end when the server stops
//! or when their client has read nothing for `limits.write-timeout-seconds`
//! (the connection's write timeout closes it, and the send here fails).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use regis_model::{PerLog, format_hash};
use regis_store::{DirBackend, Log, SignedTree};
use tokio::sync::mpsc;

use crate::app::{App, RegisterState};
use crate::error::ApiError;
use crate::http;

/// Time between keep-alive comments.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How long a client waits before reconnecting (the `retry:` field).
const RETRY: Duration = Duration::from_secs(2);

/// Events held for a client that reads slowly.
const BACKLOG: usize = 8;

fn event(log: Log, checkpoint: &SignedTree, sizes: PerLog<u64>) -> Event {
    let data = serde_json::json!({
        "log": log.to_string(),
        "size": checkpoint.size,
        "root-hash": format_hash(&checkpoint.root),
        "checkpoint": checkpoint.text,
    });
    let PerLog { user, system } = sizes;
    // Serialized JSON holds no raw line break (the checkpoint's are escaped),
    // and the id is two numbers: neither can make `Event` panic.
    Event::default()
        .event("checkpoint")
        .id(format!("{user}.{system}"))
        .data(data.to_string())
}

/// The log sizes a `Last-Event-ID` says the client has seen.
fn last_seen(headers: &HeaderMap) -> Result<PerLog<Option<u64>>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(PerLog::default());
    };
    let bad = || {
        ApiError::bad_request(
            "bad-last-event-id",
            "Last-Event-ID must be an id this stream sent: <user size>.<system size>",
        )
    };
    let text = value.to_str().map_err(|_| bad())?;
    if text.is_empty() {
        return Ok(PerLog::default());
    }
    let (user, system) = text.split_once('.').ok_or_else(bad)?;
    let size = |text: &str| http::number(text, "a size in Last-Event-ID", 0, u64::MAX);
    Ok(PerLog {
        user: Some(size(user)?),
        system: Some(size(system)?),
    })
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
    let (sender, mut receiver) = mpsc::channel::<Result<Event, Infallible>>(BACKLOG);
    runtime.spawn(async move {
        let _permit = permit;
        let mut sent = seen;
        if sender
            .send(Ok(Event::default().retry(RETRY)))
            .await
            .is_err()
        {
            return;
        }
        loop {
            if *stopping.borrow() {
                break;
            }
            let current = checkpoints.borrow_and_update().clone();
            for (log, checkpoint) in current.iter() {
                if sent[log] != Some(checkpoint.size) {
                    sent[log] = Some(checkpoint.size);
                    let sizes = sent.map(|log, size| size.unwrap_or(current[log].size));
                    if sender
                        .send(Ok(event(log, checkpoint, sizes)))
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
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    let keep_alive = KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive");
    let mut response = Sse::new(stream).keep_alive(keep_alive).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(http::NO_STORE),
    );
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}
