//! Key and value encodings (`spec/store.md`): big-endian integers, so that
//! byte order is numeric order, and length-prefixed strings, so that one
//! key's rows are a prefix no other key shares.

use regis_merkle::Hash;

use crate::{Log, StoreError};

/// Layout version written to `meta/format`. Version 2 added
/// `system_positions`; version 3 moved entries, items and stored hashes
/// into append-only files; version 4 puts redb's small commits in two
/// recent databases beside the main one (a version-3 build would not read
/// them). Older stores are refused (`spec/store.md`,
/// "meta").
pub(crate) const FORMAT_VERSION: u32 = 4;
pub(crate) const META_FORMAT: &[u8] = b"format";
pub(crate) const META_HEAD: &[u8] = b"head";
pub(crate) const META_FIELD_RUNS: &[u8] = b"field-runs";

pub(crate) fn meta_checkpoint(log: Log) -> &'static [u8] {
    match log {
        Log::User => b"checkpoint/user",
        Log::System => b"checkpoint/system",
    }
}

fn log_byte(log: Log) -> u8 {
    match log {
        Log::User => 0,
        Log::System => 1,
    }
}

pub(crate) fn entry_key(number: u64) -> [u8; 8] {
    number.to_be_bytes()
}

/// `records` key: log ‖ record key.
pub(crate) fn record_key(log: Log, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + key.len());
    out.push(log_byte(log));
    out.extend_from_slice(key.as_bytes());
    out
}

/// Prefix of every `records` key of `log`.
pub(crate) fn records_prefix(log: Log) -> [u8; 1] {
    [log_byte(log)]
}

/// Prefix of the field-index rows of one (field, value): the first 8
/// bytes of SHA-256(len(field) ‖ field ‖ value). A digest keeps rows short
/// whatever the values; two pairs that share one are told apart by reading
/// the record's item (`field_index`).
pub(crate) fn field_prefix(field: &str, value: &str) -> [u8; FIELD_DIGEST] {
    use sha2::Digest;
    let mut text = Vec::with_capacity(4 + field.len() + value.len());
    push_str(&mut text, field);
    text.extend_from_slice(value.as_bytes());
    let digest = sha2::Sha256::digest(&text);
    let mut out = [0; FIELD_DIGEST];
    out.copy_from_slice(&digest[..FIELD_DIGEST]);
    out
}

/// Bytes of (field, value) digest before the record id.
pub(crate) const FIELD_DIGEST: usize = 8;

fn push_str(out: &mut Vec<u8>, text: &str) {
    // Keys and values come from bounded requests and RSF lines; a string of
    // 4 GiB cannot reach here, and if it did the store would refuse it by
    // the backend's own limits long before.
    out.extend_from_slice(&(text.len() as u32).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

pub(crate) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

pub(crate) fn read_u64(bytes: &[u8], what: &str) -> Result<u64, StoreError> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| corrupt(format!("{what}: expected 8 bytes, found {}", bytes.len())))?;
    Ok(u64::from_be_bytes(array))
}

pub(crate) fn read_hash(bytes: &[u8], what: &str) -> Result<Hash, StoreError> {
    bytes
        .try_into()
        .map_err(|_| corrupt(format!("{what}: expected 32 bytes, found {}", bytes.len())))
}

/// A `records` value: the key's latest entry ‖ its first entry (the
/// record's id in the field index, which never changes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordRow {
    pub latest: u64,
    pub first: u64,
}

impl RecordRow {
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..8].copy_from_slice(&self.latest.to_be_bytes());
        out[8..].copy_from_slice(&self.first.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        if bytes.len() != 16 {
            return Err(corrupt(format!(
                "record row of {} bytes, expected 16",
                bytes.len()
            )));
        }
        Ok(RecordRow {
            latest: read_u64(&bytes[..8], "record row")?,
            first: read_u64(&bytes[8..], "record row")?,
        })
    }
}

/// The sizes, record count and data-file length one commit wrote together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Head {
    pub user: u64,
    pub system: u64,
    pub records: u64,
    pub data: u64,
}

impl Head {
    pub fn size(&self, log: Log) -> u64 {
        match log {
            Log::User => self.user,
            Log::System => self.system,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        [self.user, self.system, self.records, self.data]
            .iter()
            .flat_map(|n| n.to_be_bytes())
            .collect()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        if bytes.len() != 32 {
            return Err(corrupt(format!(
                "meta/head of {} bytes, expected 32",
                bytes.len()
            )));
        }
        Ok(Head {
            user: read_u64(&bytes[..8], "meta/head")?,
            system: read_u64(&bytes[8..16], "meta/head")?,
            records: read_u64(&bytes[16..24], "meta/head")?,
            data: read_u64(&bytes[24..], "meta/head")?,
        })
    }
}
