//! Loading RSF: applying commands to a register and enforcing what makes a
//! document valid.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::BufRead;

use regis_merkle::{Frontier, Hash, leaf_hash};

use crate::digest::ItemHash;
use crate::entry::{Entry, Log, MAX_LEAF_BYTES, PerLog, check_key};
use crate::item::{Item, Value, excerpt};
use crate::rsf::{Command, RsfError, RsfErrorKind, RsfReader};
use crate::schema::{Schema, SchemaError, SystemKey};

/// Where a [`Loader`] puts what it accepts, and what it needs to know about
/// the register it loads into (a store, or the in-memory
/// [`Register`](crate::Register)).
pub trait LoadTarget {
    /// Why the target failed.
    type Error: Into<Box<dyn std::error::Error + Send + Sync>>;

    /// Whether the target already holds an item (entries may use items
    /// loaded before this document).
    fn contains_item(&self, hash: &ItemHash) -> Result<bool, Self::Error>;

    /// An item the target holds (including those added by this document).
    fn item(&self, hash: &ItemHash) -> Result<Option<Item>, Self::Error>;

    /// Whether the record of `key` in the `log` points at exactly `items`.
    fn record_is(&self, log: Log, key: &str, items: &[ItemHash]) -> Result<bool, Self::Error>;

    /// Keeps an item; returns whether it was new. Items arrive when their
    /// line is read, before any entry uses them; on a load error the caller
    /// discards everything the load gave.
    fn add_item(&mut self, hash: ItemHash, item: Item) -> Result<bool, Self::Error>;

    /// Appends entry `number` of its log, with the leaf hash of its v1 leaf
    /// bytes.
    fn append_entry(
        &mut self,
        number: u64,
        entry: Entry,
        leaf_hash: Hash,
    ) -> Result<(), Self::Error>;
}

/// Which rules beyond RSF's own a load enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Accept an entry whose items are already its key's record. Real
    /// histories have such entries (user and system), so an import must keep
    /// them or the roots would not reproduce.
    pub allow_repeated_items: bool,
    /// Hold user keys to [`check_key`].
    pub check_keys: bool,
    /// Validate user items against the register's definition
    /// ([`Schema::validate`]).
    pub validate_items: bool,
    /// Hold system items to the rules of new definitions
    /// ([`Schema::check_definition`]: names, lengths, no control
    /// characters, known datatypes; published definitions break some).
    pub check_definitions: bool,
    /// GOV.UK's "invalid entry ordering": once user entries exist, a system
    /// entry `register:<name>` of the register itself may change only the
    /// definition's `text`; and a field keeps its datatype and cardinality.
    pub freeze_definition: bool,
    /// Keep a system entry whose key is none of the five kinds
    /// ([`SystemKey`]) in the system log, with a warning; it defines
    /// nothing. A custodian's slip the old service accepted: production's
    /// `government-domain` register has two entries keyed
    /// `government-domain`, each followed by the `register:government-domain`
    /// meant. Refused otherwise.
    pub allow_unknown_system_keys: bool,
    /// Accept an `add-item` that no entry after it references, with a
    /// warning. GOV.UK's registers-cli wrote such patches; the old service
    /// refused them. The target keeps the item, which it was given when its
    /// line was read (`spec/store.md`, "Items no entry references").
    /// Refused otherwise.
    pub allow_orphan_items: bool,
}

impl Policy {
    /// For history: take the document as it is (apart from RSF's own rules).
    pub const IMPORT: Policy = Policy {
        allow_repeated_items: true,
        check_keys: false,
        validate_items: false,
        check_definitions: false,
        freeze_definition: false,
        allow_unknown_system_keys: true,
        allow_orphan_items: true,
    };

    /// For history, refusing the slips [`Policy::IMPORT`] keeps with a
    /// warning (`regis load --strict`).
    pub const IMPORT_STRICT: Policy = Policy {
        allow_unknown_system_keys: false,
        allow_orphan_items: false,
        ..Policy::IMPORT
    };

    /// For new appends: every rule.
    pub const APPEND: Policy = Policy {
        allow_repeated_items: false,
        check_keys: true,
        validate_items: true,
        check_definitions: true,
        freeze_definition: true,
        allow_unknown_system_keys: false,
        allow_orphan_items: false,
    };
}

/// Something a load took that new writes refuse (its [`Policy`] allowed
/// it), and the line where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadWarning {
    /// 1-based line number (for an orphan item, the line that added it).
    pub line: u64,
    /// What was taken.
    pub kind: LoadWarningKind,
}

impl fmt::Display for LoadWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RSF line {}: {}", self.line, self.kind)
    }
}

/// What a [`LoadWarning`] is about.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadWarningKind {
    /// A system entry whose key is none of the five kinds
    /// ([`Policy::allow_unknown_system_keys`]).
    #[error(
        "`{key}` is not a system key (expected name, register-name, custodian, field:<name> or register:<name>); the entry is kept in the system log and defines nothing"
    )]
    UnknownSystemKey {
        /// The key (at most 200 characters of it).
        key: String,
    },
    /// An item no entry after its line references
    /// ([`Policy::allow_orphan_items`]).
    #[error("item {0} is added but no entry after it references it; the item is kept, in no log")]
    OrphanItem(ItemHash),
}

/// A load's warnings: how many, and the first [`LoadWarnings::KEPT`] by
/// line, so that a document with a million slips does not hold a million
/// warnings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadWarnings {
    count: u64,
    first: Vec<LoadWarning>,
}

impl LoadWarnings {
    /// How many warnings are kept.
    pub const KEPT: usize = 20;

    /// How many warnings there were.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The first [`Self::KEPT`] warnings (at most), in line order.
    pub fn first(&self) -> &[LoadWarning] {
        &self.first
    }

    /// Whether there were none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Counts `warning`, and keeps it if it is among the first by line.
    fn add(&mut self, warning: LoadWarning) {
        self.count += 1;
        let at = self.first.partition_point(|kept| kept.line <= warning.line);
        if at < Self::KEPT {
            self.first.insert(at, warning);
            self.first.truncate(Self::KEPT);
        }
    }
}

/// What a load did, and where it left the logs.
#[derive(Clone, Debug)]
pub struct LoadSummary {
    /// Items the target did not hold before.
    pub items_added: u64,
    /// Entries appended to each log.
    pub appended: PerLog<u64>,
    /// `assert-root-hash` lines checked.
    pub assertions: u64,
    /// Each log's tree after the load.
    pub logs: PerLog<Frontier>,
    /// The register's definition after the load.
    pub schema: Schema,
    /// What the load took that new writes refuse.
    pub warnings: LoadWarnings,
}

/// Applies RSF commands to a [`LoadTarget`], checking as it goes: items
/// canonical (the reader's part), every entry's items added before it or
/// already held, no item added without an entry after it, every assertion
/// true, system entries well-formed definitions, and the [`Policy`] (which
/// may let some of these pass with a [`LoadWarning`]).
///
/// Memory: the two trees (O(log n)), the definition, and the hashes of the
/// items added but not yet used (in a dump, which adds every item before
/// any entry, that is every item; in authoring order, a handful).
#[derive(Debug)]
pub struct Loader<'t, T> {
    target: &'t mut T,
    policy: Policy,
    logs: PerLog<Frontier>,
    schema: Schema,
    /// Items added and not yet used, with the line that added them.
    pending: HashMap<ItemHash, u64>,
    leaf: String,
    items_added: u64,
    entries: PerLog<u64>,
    assertions: u64,
    warnings: LoadWarnings,
}

impl<'t, T: LoadTarget> Loader<'t, T> {
    /// A loader into an empty register.
    pub fn new(target: &'t mut T, policy: Policy) -> Self {
        Loader::resume(target, policy, PerLog::default(), Schema::new())
    }

    /// A loader into a register whose logs and definition stand as given.
    pub fn resume(
        target: &'t mut T,
        policy: Policy,
        logs: PerLog<Frontier>,
        schema: Schema,
    ) -> Self {
        Loader {
            target,
            policy,
            logs,
            schema,
            pending: HashMap::new(),
            leaf: String::with_capacity(256),
            items_added: 0,
            entries: PerLog::default(),
            assertions: 0,
            warnings: LoadWarnings::default(),
        }
    }

    /// Reads and applies a whole document, then [`Self::finish`]es.
    pub fn load<R: BufRead>(mut self, reader: RsfReader<R>) -> Result<LoadSummary, RsfError> {
        for command in reader {
            let (line, command) = command?;
            self.apply(line, command)?;
        }
        self.finish()
    }

    /// Applies the command of line `line`.
    pub fn apply(&mut self, line: u64, command: Command) -> Result<(), RsfError> {
        let result = match command {
            Command::AddItem(item) => self.add_item(line, item),
            Command::AppendEntry(entry) => self.append_entry(line, entry),
            Command::AssertRootHash(asserted) => self.assert_root(asserted),
        };
        result.map_err(|kind| kind.at(line))
    }

    /// Ends the document: every item added must have been used (or, if
    /// the policy allows orphans, is reported).
    pub fn finish(mut self) -> Result<LoadSummary, RsfError> {
        if self.policy.allow_orphan_items {
            for (hash, line) in self.pending.drain() {
                self.warnings.add(LoadWarning {
                    line,
                    kind: LoadWarningKind::OrphanItem(hash),
                });
            }
        } else if let Some((hash, line)) = self.pending.iter().min_by_key(|(_, line)| **line) {
            return Err(RsfErrorKind::OrphanItem(*hash).at(*line));
        }
        Ok(LoadSummary {
            items_added: self.items_added,
            appended: self.entries,
            assertions: self.assertions,
            logs: self.logs,
            schema: self.schema,
            warnings: self.warnings,
        })
    }

    fn add_item(&mut self, line: u64, item: Item) -> Result<(), RsfErrorKind> {
        let hash = item.hash();
        if self.pending.contains_key(&hash) {
            return Ok(());
        }
        self.pending.insert(hash, line);
        if self.target.add_item(hash, item).map_err(target)? {
            self.items_added += 1;
        }
        Ok(())
    }

    fn append_entry(&mut self, line: u64, entry: Entry) -> Result<(), RsfErrorKind> {
        let system_key = match entry.log {
            Log::User if self.policy.check_keys => {
                check_key(&entry.key)?;
                None
            }
            Log::User => None,
            Log::System => match SystemKey::parse(&entry.key) {
                Ok(key) => Some(key),
                Err(SchemaError::UnknownKey { key }) if self.policy.allow_unknown_system_keys => {
                    self.warnings.add(LoadWarning {
                        line,
                        kind: LoadWarningKind::UnknownSystemKey { key },
                    });
                    None
                }
                Err(error) => return Err(error.into()),
            },
        };
        for hash in &entry.item_hashes {
            if self.pending.remove(hash).is_none()
                && !self.target.contains_item(hash).map_err(target)?
            {
                return Err(RsfErrorKind::DanglingEntry(*hash));
            }
        }
        if !self.policy.allow_repeated_items
            && self
                .target
                .record_is(entry.log, &entry.key, &entry.item_hashes)
                .map_err(target)?
        {
            return Err(RsfErrorKind::RepeatedItem {
                key: excerpt(&entry.key),
            });
        }
        match (entry.log, system_key) {
            (_, Some(key)) => self.define(&entry, &key)?,
            (Log::User, None) if self.policy.validate_items => {
                for hash in &entry.item_hashes {
                    let item = self.read_item(hash)?;
                    self.schema.validate(&entry.key, &item).map_err(|error| {
                        RsfErrorKind::Invalid {
                            key: excerpt(&entry.key),
                            error,
                        }
                    })?;
                }
            }
            _ => {}
        }
        let log = &mut self.logs[entry.log];
        let number = log.size() + 1;
        self.leaf.clear();
        entry.push_leaf(number, &mut self.leaf);
        if self.leaf.len() > MAX_LEAF_BYTES {
            return Err(RsfErrorKind::EntryTooLong {
                len: self.leaf.len(),
                key_len: entry.key.len(),
            });
        }
        let hash = leaf_hash(self.leaf.as_bytes());
        log.push_hash(hash, |_, _, _| {})
            .map_err(|_| RsfErrorKind::LogFull)?;
        self.entries[entry.log] += 1;
        self.target
            .append_entry(number, entry, hash)
            .map_err(target)
    }

    /// Folds a system entry into the definition.
    fn define(&mut self, entry: &Entry, key: &SystemKey) -> Result<(), RsfErrorKind> {
        for hash in &entry.item_hashes {
            let item = self.read_item(hash)?;
            if self.policy.check_definitions {
                Schema::check_definition(&entry.key, &item)?;
            }
            if self.policy.freeze_definition && self.logs.user.size() > 0 {
                self.check_frozen(key, &item)?;
            }
            self.schema.apply(&entry.key, &item)?;
        }
        Ok(())
    }

    /// What user entries already written rely on: the register's own
    /// definition but its `text`, and each field's datatype and
    /// cardinality (a changed primary-key datatype would make every
    /// existing key impossible to update).
    fn check_frozen(&self, key: &SystemKey, item: &Item) -> Result<(), RsfErrorKind> {
        match key {
            SystemKey::Register(name) if self.schema.name() == Some(name.as_str()) => {
                if let Some(current) = self.schema.register(name)
                    && let Some(property) = changed_property(&current.item, item)
                {
                    return Err(RsfErrorKind::DefinitionChanged {
                        register: name.clone(),
                        property,
                    });
                }
            }
            SystemKey::Field(name) => {
                if let Some(current) = self.schema.field(name) {
                    let fixed = [
                        ("datatype", current.datatype.name()),
                        ("cardinality", current.cardinality.as_str()),
                    ];
                    for (property, old) in fixed {
                        let new = item.get_one(property).unwrap_or_default();
                        if new != old {
                            return Err(RsfErrorKind::FieldChanged {
                                field: name.clone(),
                                property,
                                old: old.to_owned(),
                                new: excerpt(&new),
                            });
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn read_item(&self, hash: &ItemHash) -> Result<Item, RsfErrorKind> {
        self.target
            .item(hash)
            .map_err(target)?
            .ok_or(RsfErrorKind::UnreadableItem(*hash))
    }

    fn assert_root(&mut self, asserted: Hash) -> Result<(), RsfErrorKind> {
        let computed = self.logs.user.root();
        if computed != asserted {
            return Err(RsfErrorKind::RootMismatch {
                size: self.logs.user.size(),
                asserted,
                computed,
            });
        }
        self.assertions += 1;
        Ok(())
    }
}

fn target(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> RsfErrorKind {
    RsfErrorKind::Target(error.into())
}

/// The first property, other than `text`, whose value differs between two
/// definitions (present in one only counts).
fn changed_property(old: &Item, new: &Item) -> Option<String> {
    let without_text = |item: &Item| -> BTreeMap<String, Value<'static>> {
        item.fields()
            .filter(|(name, _)| name != "text")
            .map(|(name, value)| (Cow::into_owned(name), value.into_owned()))
            .collect()
    };
    let (old, new) = (without_text(old), without_text(new));
    old.keys()
        .chain(new.keys())
        .filter(|name| old.get(*name) != new.get(*name))
        .min()
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_text_may_change() {
        let item = |json| Item::from_canonical(json).unwrap();
        let old = item(r#"{"fields":["a"],"phase":"alpha","register":"r","text":"x"}"#);
        assert_eq!(
            changed_property(
                &old,
                &item(r#"{"fields":["a"],"phase":"alpha","register":"r","text":"y"}"#)
            ),
            None
        );
        assert_eq!(
            changed_property(
                &old,
                &item(r#"{"fields":["a"],"phase":"beta","register":"r","text":"x"}"#)
            ),
            Some("phase".into())
        );
        assert_eq!(
            changed_property(
                &old,
                &item(r#"{"copyright":"c","fields":["a"],"phase":"alpha","register":"r"}"#)
            ),
            Some("copyright".into())
        );
    }
}
