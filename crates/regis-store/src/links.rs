//! A register's links counted (`regis fsck --links`, the server's
//! `B/links` page): every link of every current record, resolved against
//! the registers a caller has snapshots of (`spec/store.md`, "Links").

use std::collections::BTreeMap;
use std::sync::Arc;

use regis_model::{Item, Link, LinkCensus, Resolution, Schema, links};

use crate::keys::corrupt;
use crate::store::item_text;
use crate::{KvSnapshot, Log, Snapshot, StoreError};

/// Records read per page while counting.
const PAGE: u64 = 1000;

/// The links of every record of the register `snapshot` holds (its records
/// at the snapshot, not their history), under `schema`, each resolved by
/// `resolve`. Memory: one page of records and the census's list.
pub fn link_census<S: KvSnapshot, E: From<StoreError>>(
    snapshot: &Snapshot<S>,
    schema: &Schema,
    mut resolve: impl FnMut(&Link) -> Result<Resolution, E>,
) -> Result<LinkCensus, E> {
    let mut census = LinkCensus::default();
    let mut after: Option<String> = None;
    loop {
        let page = snapshot.records_after(Log::User, after.as_deref(), PAGE)?;
        let Some(last) = page.last() else {
            return Ok(census);
        };
        after = Some(last.key.clone());
        for record in &page {
            let json = snapshot.item(&record.item_hash)?.ok_or_else(|| {
                corrupt(format!("the item of record {:?} is missing", record.key))
            })?;
            let item = Item::from_canonical(item_text(&record.item_hash, &json)?)
                .map_err(|error| corrupt(format!("record {:?}: {error}", record.key)))?;
            census.add(&record.key, links(schema, &item), &mut resolve)?;
        }
    }
}

/// Resolves `link` against `registers`: [`Resolution::Found`] if the
/// register it names is among them and holds a record of its key at its
/// signed checkpoint, [`Resolution::Dangling`] if it is among them and does
/// not, [`Resolution::Unresolvable`] if it is not among them.
pub fn resolve_among<S: KvSnapshot>(
    registers: &BTreeMap<String, Arc<Snapshot<S>>>,
    link: &Link,
) -> Result<Resolution, StoreError> {
    let Some(target) = registers.get(&link.register) else {
        return Ok(Resolution::Unresolvable);
    };
    let size = target
        .checkpoint(Log::User)?
        .map_or(0, |checkpoint| checkpoint.size);
    Ok(match target.record_at(Log::User, &link.key, size)? {
        Some(_) if size > 0 => Resolution::Found,
        _ => Resolution::Dangling,
    })
}
