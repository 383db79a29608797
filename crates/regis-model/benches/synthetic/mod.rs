//! A synthetic register for benchmarks: `n` user entries in authoring order
//! (each `add-item` of a ~200-byte item followed by its `append-entry`),
//! between two `assert-root-hash` lines; and a load target that keeps
//! nothing, so that a load measures parsing, hashing and the tree alone.

use std::convert::Infallible;
use std::io::{self, Write};

use regis_merkle::Hash;
use regis_model::rsf::{LoadTarget, RsfWriter};
use regis_model::{Entry, Item, ItemHash, Log, Timestamp, Value};

/// Writes the synthetic RSF of `entries` user entries; returns the root.
pub fn write_synthetic(out: impl Write, entries: u64) -> io::Result<Hash> {
    let mut writer = RsfWriter::new(io::BufWriter::with_capacity(1 << 16, out));
    writer.assert_root_hash()?;
    for number in 1..=entries {
        let key = format!("E{number:08}");
        let item = Item::from_fields(vec![
            (
                "end-date",
                Value::one(format!(
                    "20{:02}-{:02}-{:02}",
                    number % 100,
                    number % 12 + 1,
                    number % 28 + 1
                )),
            ),
            (
                "name",
                Value::one(format!("Synthetic authority number {number}")),
            ),
            (
                "official-name",
                Value::one(format!("The Synthetic Borough Council of Number {number}")),
            ),
            ("start-date", Value::one("1974-04-01")),
            ("synthetic", Value::one(key.as_str())),
            ("text", Value::one("Made up for benchmarks.")),
        ])
        .map_err(io::Error::other)?;
        let timestamp = Timestamp::from_unix_seconds(1_459_862_585 + number as i64)
            .ok_or_else(|| io::Error::other("time"))?;
        writer.add_item(&item)?;
        writer.append_entry(&Entry::new(Log::User, key, timestamp, item.hash()))?;
    }
    writer.assert_root_hash()?;
    let root = writer.user_log().root();
    writer.into_inner().flush()?;
    Ok(root)
}

/// A target that keeps nothing: entries may use only items added in the
/// same document, and a load must have no system entries.
#[derive(Debug, Default)]
pub struct Discard;

impl LoadTarget for Discard {
    type Error = Infallible;

    fn contains_item(&self, _: &ItemHash) -> Result<bool, Infallible> {
        Ok(false)
    }

    fn item(&self, _: &ItemHash) -> Result<Option<Item>, Infallible> {
        Ok(None)
    }

    fn record_is(&self, _: Log, _: &str, _: &[ItemHash]) -> Result<bool, Infallible> {
        Ok(false)
    }

    fn add_item(&mut self, _: ItemHash, _: Item) -> Result<bool, Infallible> {
        Ok(true)
    }

    fn append_entry(&mut self, _: u64, _: Entry, _: Hash) -> Result<(), Infallible> {
        Ok(())
    }
}
