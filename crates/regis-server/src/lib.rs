//! The Regis HTTP API, on hyper and tokio (with axum's body and response types).
//!
//! One server hosts many registers; `B` is `/registers/{name}`. The routes
//! ([`routes::ROUTES`], documented in `spec/openapi.yaml`):
//!
//! - GOV.UK-compatible reads in JSON and CSV: `B/register`, `B/records`,
//!   `B/records/{key}`, `B/records/{key}/entries`, `B/records/{field}/{value}`,
//!   `B/entries`, `B/entries/{n}`, `B/items/sha-256:{hex}`, `/registers`;
//! - both logs as C2SP tlog-tiles: `B/log/checkpoint`, `B/log/tile/…`,
//!   `B/system-log/…`;
//! - proofs: `B/proof/register|entries|consistency/…/merkle:sha-256`, and
//!   `B/records/{key}/proof` (JSON or C2SP tlog-proof) to verify offline;
//! - `B/download-rsf[/{a}[/{b}]]`, streamed;
//! - `B/events`: each new checkpoint as a Server-Sent Event;
//! - writes ([`write`](mod@write)), with a bearer token: `POST B/entries`,
//!   `POST B/load-rsf`, `POST /registers`, each answered once durable and
//!   signed;
//! - `/metrics`, `/healthz`, `/readyz`;
//! - with `[publish]` ([`publishing`]), a static copy of every register in
//!   object storage, kept up to date;
//! - with a witness policy ([`witnessing`]), checkpoints cosigned by
//!   witnesses (C2SP tlog-witness): `B/log/checkpoint` and record proofs
//!   serve the newest one that meets the policy, `?wait=witnessed` on a
//!   write waits for it, and `B/witness-policy` serves the policy;
//! - pages for people ([`html`]) at `/`, `B`, and the read URLs above when
//!   a browser asks (`Accept: text/html`), with their `/assets/…`.
//!
//! Every input is bounded (page sizes, path numbers, segments, query
//! parameters, body size, time, requests in flight); bad input is a 4xx
//! with `{"error":{"code","message"}}`; handlers never panic.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod api;
pub mod app;
pub mod config;
pub mod demo;
pub mod error;
pub mod events;
mod finish;
pub mod html;
pub mod http;
pub mod links;
pub mod metrics;
pub mod publishing;
pub mod request;
mod room;
pub mod routes;
pub mod rsf;
pub mod server;
pub mod tile_cache;
pub mod tlog;
pub mod urls;
pub mod witnessing;
pub mod write;

pub use app::{App, Opened, RegisterState, Started};
pub use config::{Config, Limits};
pub use error::{ApiError, ServerError};
pub use server::{bind, serve, shutdown_signal};
pub use witnessing::{PolicyFile, WitnessSettings};

use std::net::SocketAddr;

use regis_store::{DirBackend, Registry};

/// Runs a server for `config` until Ctrl-C or SIGTERM: reads the witness
/// policy, opens every register under `config.data` (starting their
/// sequencers and witnessings), starts publishing if `[publish]` says
/// where, listens, calls `on_listen` with the bound address, serves,
/// drains, and stops the publishing, the witnessings and the sequencers.
pub fn run<B: DirBackend>(
    config: &Config,
    on_listen: impl FnOnce(SocketAddr, &App<B>),
) -> Result<(), ServerError> {
    config.check()?;
    let registry = Registry::new(&config.data, &config.host);
    let opened = App::<B>::open_with(&registry, config.limits, config.witness_settings()?)?;
    if let Some(publish) = &config.publish {
        let publishing = publishing::Publishing::start(publish, &opened.app)?;
        opened.app.set_publishing(publishing);
    }
    // Every read handler and RSF stream runs on a blocking thread: the
    // pool holds all the limits allow, and some for file I/O and writes.
    let blocking = config.limits.concurrency + config.limits.max_rsf_streams + 64;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(blocking)
        .enable_all()
        .build()
        .map_err(ServerError::Serve)?;
    let result = runtime.block_on(async {
        let listener = bind(config.listen).await?;
        let addr = listener.local_addr().map_err(ServerError::Serve)?;
        on_listen(addr, &opened.app);
        serve(
            listener,
            std::sync::Arc::clone(&opened.app),
            shutdown_signal(),
        )
        .await
    });
    // Blocking work still running (an RSF download to a client that went
    // quiet) is given a bounded time, then abandoned.
    runtime.shutdown_timeout(config.limits.drain());
    opened.shutdown();
    result
}
