//! Publishes Regis registers to object storage as static files, so that a
//! bucket behind a CDN serves every read a verifying client needs: each
//! register's hash tiles and entry bundles (both logs), its RSF in chunks
//! aligned to entry numbers, `B/register`, its witness policy, and its
//! checkpoints, at exactly the server's own paths (`spec/static.md`).
//!
//! - [`plan`](mod@plan): which objects a publication from one pair of sizes to the next
//!   uploads, and which superseded folders it clears (pure).
//! - [`target`]: the [`Target`] trait (tests inject faults through it) and
//!   [`ObjectStoreTarget`], over Apache Arrow's `object_store`.
//! - [`state`]: the durable state file (the last pair published per
//!   target).
//! - [`publish`](mod@publish): start-up (resume point, the target's checkpoints
//!   checked) and one publication, in an order that never shows a
//!   checkpoint whose objects are missing.
//! - [`Publisher`]: continuous publication on a thread it owns, with
//!   coalescing, back-off and a [`Status`] per register.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod plan;
pub mod publish;
pub mod publisher;
pub mod state;
pub mod target;

pub use plan::{Object, Plan, Superseded, plan};
pub use publish::{
    LogKey, Publication, PublishError, RenderRegister, Request, Requests, Resume, Settings,
    SharedStatus, SnapshotOf, Source, Status, publishable,
};
pub use publisher::{Publisher, RegisterStatus, Served};
pub use target::{Headers, ObjectStoreTarget, Target, TargetError, TargetUrlError};
