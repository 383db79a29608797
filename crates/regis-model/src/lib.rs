//! The GOV.UK Registers data model, as Regis serves it.
//!
//! - [`Item`]: a flat JSON object of strings and string arrays, in canonical
//!   JSON, identified by [`ItemHash`] (`sha-256:<hex>` of those bytes).
//! - [`Entry`]: a key taking some items' value at a time, in the user or
//!   system log ([`Log`]); its v1 leaf bytes are the input of the log's
//!   RFC 6962 tree ([`regis_merkle`]).
//! - [`Schema`]: the register's definition, folded from system entries, with
//!   [`Datatype`] validators; it validates user items.
//! - [`rsf`]: the Register Serialisation Format, read as a stream, loaded
//!   with every validity rule, and written (full dump and delta).
//! - [`import`]: custodians' TSV and CSV files into entries; [`api`]: the v1
//!   API's JSON and CSV bodies.
//! - [`links`]: the values of an item that name a record of a register.
//! - [`RegisterName`] and the [`origin`] of each of a register's logs;
//!   [`definition_commands`] defines a new register by name and fields.
//! - [`Register`]: a whole register in memory (records, histories, proofs),
//!   for tests and small tools.
//!
//! Pure: no I/O beyond the readers and writers a caller passes in, no clock
//! (timestamps come from the caller), no panic on any input.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod api;
mod datatype;
mod define;
mod digest;
mod entry;
pub mod import;
mod item;
mod json;
mod links;
mod name;
mod register;
pub mod rsf;
mod schema;

pub use datatype::Datatype;
pub use define::{DefinitionError, definition_commands};
pub use digest::{HashError, ItemHash, format_hash, hash_text, parse_hash};
pub use entry::{
    Entry, KeyError, LeafError, Log, MAX_LEAF_BYTES, PerLog, Timestamp, TimestampError, check_key,
    check_key_syntax, entry_number, leaf_index,
};
pub use item::{Fields, Item, ItemError, Value};
pub use json::compare_keys;
pub use links::{Link, LinkCensus, Resolution, links, may_link};
pub use name::{InvalidRegisterName, RegisterName, origin};
pub use register::{DeltaError, Record, Register};
pub use schema::{
    Cardinality, Field, MAX_NAME_BYTES, MAX_TEXT_BYTES, RegisterDefinition, Schema, SchemaError,
    SystemKey, ValidationError,
};
