//! Key and value encodings (`spec/store.md`): big-endian integers, so that
//! byte order is numeric order, and length-prefixed strings, so that one
//! key's rows are a prefix no other key shares.

use regis_merkle::Hash;

use crate::{Log, StoreError};

/// Layout version written to `meta/format`. Version 2 added
/// `system_positions`; a version-1 store lacks what deltas need and is
/// refused (`spec/store.md`, "meta").
pub(crate) const FORMAT_VERSION: u32 = 2;
pub(crate) const META_FORMAT: &[u8] = b"format";
pub(crate) const META_HEAD: &[u8] = b"head";

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

pub(crate) fn hash_key(level: u8, index: u64) -> [u8; 9] {
    let mut key = [0; 9];
    key[0] = level;
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
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

/// Prefix of the `history` rows of one key: log ‖ len(key) ‖ key.
pub(crate) fn history_prefix(log: Log, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + key.len() + 8);
    out.push(log_byte(log));
    push_str(&mut out, key);
    out
}

pub(crate) fn history_key(log: Log, key: &str, number: u64) -> Vec<u8> {
    let mut out = history_prefix(log, key);
    out.extend_from_slice(&number.to_be_bytes());
    out
}

/// Prefix of the `field_index` rows of one (field, value).
pub(crate) fn field_prefix(field: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + field.len() + value.len());
    push_str(&mut out, field);
    push_str(&mut out, value);
    out
}

pub(crate) fn field_key(field: &str, value: &str, key: &str) -> Vec<u8> {
    let mut out = field_prefix(field, value);
    out.extend_from_slice(key.as_bytes());
    out
}

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

/// A `records` value: entry number ‖ item hash.
pub(crate) fn record_value(number: u64, item: &Hash) -> Vec<u8> {
    let mut out = Vec::with_capacity(40);
    out.extend_from_slice(&number.to_be_bytes());
    out.extend_from_slice(item);
    out
}

pub(crate) fn parse_record_value(bytes: &[u8]) -> Result<(u64, Hash), StoreError> {
    if bytes.len() != 40 {
        return Err(corrupt(format!(
            "record row of {} bytes, expected 40",
            bytes.len()
        )));
    }
    let (number, item) = bytes.split_at(8);
    Ok((
        read_u64(number, "record row")?,
        read_hash(item, "record row")?,
    ))
}

/// The entry number at the end of a `history` key whose prefix is known.
pub(crate) fn history_number(key: &[u8]) -> Result<u64, StoreError> {
    let tail = key
        .len()
        .checked_sub(8)
        .and_then(|start| key.get(start..))
        .ok_or_else(|| corrupt("history key shorter than an entry number"))?;
    read_u64(tail, "history key")
}

/// The sizes and record count one commit wrote together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Head {
    pub user: u64,
    pub system: u64,
    pub records: u64,
}

impl Head {
    pub fn size(&self, log: Log) -> u64 {
        match log {
            Log::User => self.user,
            Log::System => self.system,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        [self.user, self.system, self.records]
            .iter()
            .flat_map(|n| n.to_be_bytes())
            .collect()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        if bytes.len() != 24 {
            return Err(corrupt(format!(
                "meta/head of {} bytes, expected 24",
                bytes.len()
            )));
        }
        Ok(Head {
            user: read_u64(&bytes[..8], "meta/head")?,
            system: read_u64(&bytes[8..16], "meta/head")?,
            records: read_u64(&bytes[16..], "meta/head")?,
        })
    }
}

/// Splits a length-prefixed string off the front of `bytes`.
fn take_str<'a>(bytes: &'a [u8], what: &str) -> Result<(&'a str, &'a [u8]), StoreError> {
    let (len, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt(format!("{what}: truncated length")))?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return Err(corrupt(format!("{what}: truncated string")));
    }
    let (text, rest) = rest.split_at(len);
    let text = std::str::from_utf8(text).map_err(|_| corrupt(format!("{what}: not UTF-8")))?;
    Ok((text, rest))
}

/// A `history` key (after its log byte): the record key and entry number.
pub(crate) fn parse_history_key(key: &[u8]) -> Result<(&str, u64), StoreError> {
    let (text, rest) = take_str(key.get(1..).unwrap_or_default(), "history key")?;
    Ok((text, read_u64(rest, "history key")?))
}

/// A `field_index` key: field, value, record key.
pub(crate) fn parse_field_key(key: &[u8]) -> Result<(&str, &str, &str), StoreError> {
    let (field, rest) = take_str(key, "field index key")?;
    let (value, rest) = take_str(rest, "field index key")?;
    let record = std::str::from_utf8(rest).map_err(|_| corrupt("field index key: not UTF-8"))?;
    Ok((field, value, record))
}

/// Prefix of every `history` key of `log`.
pub(crate) fn history_log_prefix(log: Log) -> [u8; 1] {
    [log_byte(log)]
}
