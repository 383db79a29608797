//! The Register Serialisation Format: reading, loading and writing.
//!
//! RSF is UTF-8 text, one command per line, fields separated by TAB, with no
//! escaping layer (canonical JSON never holds a raw TAB or newline):
//!
//! ```text
//! add-item→{"country":"GB","name":"United Kingdom"}
//! append-entry→user→GB→2016-04-05T13:23:05Z→sha-256:6b18…
//! assert-root-hash→sha-256:3bac…
//! ```
//!
//! (`→` is a TAB.)
//!
//! - `add-item<TAB><JSON>`: the JSON must already be canonical.
//! - `append-entry<TAB>user|system<TAB><key><TAB><timestamp><TAB><hashes>`,
//!   where `<hashes>` is one `sha-256:<hex>` or several joined by `;` (as the
//!   reference implementation allowed). Two historical forms are read as user
//!   entries: `append-entry<TAB><timestamp><TAB><hash><TAB><key>` (2016 to May
//!   2017) and `append-entry<TAB><key><TAB><timestamp><TAB><hash>` (one week
//!   of May 2017); they are told apart by where the hash stands.
//! - `assert-root-hash<TAB>sha-256:<hex>`: the root of the user log as it
//!   stands at that line (system entries are in no GOV.UK tree). Anywhere.
//!
//! Lines may end with CRLF, the last one may lack its newline.
//!
//! [`RsfReader`] turns bytes into [`Command`]s, streaming: it holds one line.
//! [`Loader`] applies commands to a [`LoadTarget`] and enforces what makes a
//! document valid (canonical items, no orphan item, no dangling entry, every
//! assertion true, and the rules of its [`Policy`]); published history's
//! slips (an orphan item, a system entry of no known key) pass as
//! [`LoadWarning`]s under [`Policy::IMPORT`]. [`RsfWriter`] writes.
//!
//! # Layouts
//!
//! **Full dump** ([`write_dump`]), byte for byte GOV.UK's `download-rsf`:
//!
//! 1. `assert-root-hash` of the empty tree;
//! 2. `add-item` for every item the system entries use, then for every
//!    item the user entries use (an item both use appears in both blocks,
//!    as in GOV.UK's dumps, which kept system and user items apart);
//! 3. every system entry, in order;
//! 4. every user entry, in order;
//! 5. `assert-root-hash` of the user log.
//!
//! GOV.UK wrote each block of items in its database's order, which no rule
//! recovers, so the caller passes the items in the order it wants; Regis
//! uses the order in which entries first use them.
//!
//! **Delta** `{a}/{b}` (`download-rsf/{a}/{b}?system-size={s}`, `0 <= a
//! <= b <=` user size, `0 <= s <=` system size), Regis's design. Unlike
//! GOV.UK's it carries system entries, so a consumer keeping up through
//! deltas also keeps the register's definition. `s` is how many system
//! entries the consumer holds; without it, none when `a` is 0, otherwise
//! those appended while the user log had at most `a` entries (what a
//! download ending at user size `a` carried, if no system entry was
//! appended at that size since).
//!
//! 1. `assert-root-hash` of the user log at size `a`;
//! 2. user entries `a + 1` to `b` and the system entries after the first
//!    `s` that were appended while the user log had at most `b` entries,
//!    in the order they were appended: a system entry appended when the
//!    user log had `p` entries comes after user entry `p` (at once if `p
//!    <= a`); each entry is immediately preceded by an `add-item` line for
//!    each of its items, repeated if an item is used again (content
//!    addressing makes a repeat harmless), so neither the writer nor a
//!    reader needs memory or look-ahead;
//! 3. `assert-root-hash` of the user log at size `b`.
//!
//! So a consumer that starts from `download-rsf` (or `download-rsf/0`,
//! the same bytes) and asks each time for the delta from the sizes it
//! holds, `{a}/{b}?system-size={s}`, ends with every entry of both logs
//! exactly once, including the system entries appended after the latest
//! user entry. Without `system-size`, a chain of deltas holds each system
//! entry once too, except one appended at user size `a` after the
//! download that ended at `a`: the next delta assumes it held, and it is
//! missed.
//! A GOV.UK reader applies a delta as any authoring-style RSF.
//!
//! **What a cache may assume.** Once the user log has more than `b`
//! entries, no system entry can be appended at user size `b` or below, so
//! the delta `{a}/{b}` (with a given `system-size`, or none) never changes:
//! it can be cached like a full tile. While `b` is the current size it can
//! still grow: system entries appended at size `b` join its end, before
//! the final assertion, which stays the same. (A store serving deltas
//! keeps, for each system entry, the user-log size when it was appended.)

mod loader;
mod reader;
mod writer;

pub use loader::{
    LoadSummary, LoadTarget, LoadWarning, LoadWarningKind, LoadWarnings, Loader, Policy,
};
pub use reader::{DEFAULT_MAX_LINE, RsfReader};
pub use writer::{RsfWriter, write_dump};

use regis_merkle::Hash;

use crate::digest::{HashError, ItemHash, format_hash};
use crate::entry::{Entry, KeyError, TimestampError};
use crate::item::{Item, ItemError};
use crate::schema::{SchemaError, ValidationError};

/// The numbers of the system entries the delta `a/b` carries (see
/// "Delta" above): those after the first `held` (by default, none held
/// when `a` is 0, otherwise those appended at user size `a` or below), up
/// to the last appended at user size `b` or below. `appended_through(n)`
/// is how many system entries were appended while the user log had at
/// most `n` entries.
pub fn delta_system_entries<E>(
    a: u64,
    b: u64,
    held: Option<u64>,
    mut appended_through: impl FnMut(u64) -> Result<u64, E>,
) -> Result<std::ops::Range<u64>, E> {
    let held = match held {
        Some(held) => held,
        None if a == 0 => 0,
        None => appended_through(a)?,
    };
    let last = appended_through(b)?.max(held);
    Ok(held.saturating_add(1)..last.saturating_add(1))
}

/// One RSF line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `add-item`: an item, canonical.
    AddItem(Item),
    /// `append-entry`: an entry (numbered by its position in its log).
    AppendEntry(Entry),
    /// `assert-root-hash`: the user log's root at this point.
    AssertRootHash(Hash),
}

/// An RSF document that cannot be read or loaded, and the line where it
/// went wrong.
#[derive(Debug, thiserror::Error)]
#[error("RSF line {line}: {kind}")]
pub struct RsfError {
    /// 1-based line number (for an orphan item, the line that added it).
    pub line: u64,
    /// What is wrong.
    pub kind: RsfErrorKind,
}

/// What is wrong with an RSF document.
#[derive(Debug, thiserror::Error)]
pub enum RsfErrorKind {
    /// Reading the input failed.
    #[error("reading failed: {0}")]
    Io(#[from] std::io::Error),
    /// A line longer than the reader's limit.
    #[error("the line is longer than {limit} bytes")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// A line that is not UTF-8.
    #[error("the line is not UTF-8")]
    NotUtf8,
    /// An empty line.
    #[error("the line is empty")]
    EmptyLine,
    /// An unknown command.
    #[error("unknown command `{0}` (expected add-item, append-entry or assert-root-hash)")]
    UnknownCommand(String),
    /// A command with the wrong number of TAB-separated fields.
    #[error("`{command}` takes {expected}, found {found} field(s)")]
    FieldCount {
        /// The command.
        command: &'static str,
        /// The forms it takes.
        expected: &'static str,
        /// How many fields the line has after the command.
        found: usize,
    },
    /// An entry type other than `user` or `system`.
    #[error("entry type `{0}` is neither `user` nor `system`")]
    Log(String),
    /// A bad timestamp.
    #[error("{0}")]
    Timestamp(#[from] TimestampError),
    /// A bad hash.
    #[error("{0}")]
    Hash(#[from] HashError),
    /// An `add-item` line whose JSON is not a canonical item.
    #[error("{0}")]
    Item(#[from] ItemError),
    /// A key that is empty or holds a control character, or a user key that
    /// breaks the key rule (when the policy checks keys).
    #[error("{0}")]
    Key(#[from] KeyError),
    /// A system entry that does not define what its key says.
    #[error("{0}")]
    Schema(#[from] SchemaError),
    /// A user item that its register's definition does not allow (when the
    /// policy validates items).
    #[error("entry `{key}`: {error}")]
    Invalid {
        /// The entry's key (at most 200 characters of it).
        key: String,
        /// What is wrong with its item.
        error: ValidationError,
    },
    /// An entry whose item was neither added before it nor already held.
    #[error("the entry references item {0}, which no add-item line before it added")]
    DanglingEntry(ItemHash),
    /// An item no entry references.
    #[error("item {0} is added but no entry after it references it")]
    OrphanItem(ItemHash),
    /// An item the target says it holds but does not give back.
    #[error("item {0} is held but could not be read back")]
    UnreadableItem(ItemHash),
    /// An `assert-root-hash` that does not hold.
    #[error(
        "assert-root-hash {} does not match the root of the {size} user entries so far, {}",
        format_hash(asserted),
        format_hash(computed)
    )]
    RootMismatch {
        /// Number of user entries at the assertion.
        size: u64,
        /// The root the line asserts.
        asserted: Hash,
        /// The root of the entries read.
        computed: Hash,
    },
    /// An entry whose items are already its key's record (when the policy
    /// refuses them).
    #[error("entry `{key}` points at the item its record already has")]
    RepeatedItem {
        /// The entry's key (at most 200 characters of it).
        key: String,
    },
    /// A late change to the register's own definition (when the policy
    /// freezes it): GOV.UK's "invalid entry ordering".
    #[error(
        "system entry `register:{register}` changes `{property}` after user entries exist; only `text` may change"
    )]
    DefinitionChanged {
        /// The register.
        register: String,
        /// The first property that differs.
        property: String,
    },
    /// A field's datatype or cardinality changed once user entries exist
    /// (when the policy freezes the definition): the entries already
    /// written would no longer be valid, nor could their keys be updated.
    #[error(
        "system entry `field:{field}` changes `{property}` from `{old}` to `{new}` after user entries exist; a field's datatype and cardinality are fixed once entries may use it"
    )]
    FieldChanged {
        /// The field.
        field: String,
        /// `datatype` or `cardinality`.
        property: &'static str,
        /// Its value so far.
        old: String,
        /// The value the entry gives.
        new: String,
    },
    /// An entry whose v1 leaf is longer than an entry bundle can hold (its
    /// length is a u16): in practice, a key far too long.
    #[error(
        "the entry's v1 leaf would be {len} bytes; an entry bundle holds at most {} (the key is {key_len} bytes)",
        crate::MAX_LEAF_BYTES
    )]
    EntryTooLong {
        /// The leaf's length.
        len: usize,
        /// The key's length.
        key_len: usize,
    },
    /// A log with 2^64 - 1 entries.
    #[error("the log is full")]
    LogFull,
    /// The load target failed.
    #[error("storing failed: {0}")]
    Target(Box<dyn std::error::Error + Send + Sync>),
}

impl RsfErrorKind {
    /// This error at `line`.
    pub fn at(self, line: u64) -> RsfError {
        RsfError { line, kind: self }
    }
}
