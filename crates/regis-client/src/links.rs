//! A record with the records it links to, each proved in its own register
//! (`B/records/{key}/proof?links=1`, `spec/formats.md`, "Links bundle").

use std::collections::BTreeMap;

use regis_model::api::path_segment;
use regis_model::{Entry, Item, ItemHash, Link};
use regis_note::Verifier;
use serde_json::Value;

use crate::client::{
    Client, VerifiedCheckpoint, VerifiedRecord, checked_item, verify_record_proof,
};
use crate::error::Error;
use crate::http::FetchFailure;

/// What became of one link of a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkOutcome {
    /// The target record, proved against its register's checkpoint signed
    /// by the key given for that register.
    Verified(Box<VerifiedRecord>),
    /// The server says the target register holds no such record. Absence
    /// is not proved: this is the server's word.
    Dangling,
    /// The server says the target register is neither on it nor declared
    /// to it, so it cannot resolve the link.
    Unresolvable,
    /// The server could not reach or verify the target register (its
    /// reason): the link is not verified.
    Unavailable(String),
}

/// One link of a record and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkCheck {
    /// The link: field, value, target register and key.
    pub link: Link,
    /// Its target's base URL, as the server named it.
    pub url: Option<String>,
    /// What it resolved to.
    pub outcome: LinkOutcome,
}

/// A record verified with its links.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkedRecord {
    /// The record, verified as [`Client::record`] verifies it.
    pub record: VerifiedRecord,
    /// Its links, in the order of the record's fields and values.
    pub links: Vec<LinkCheck>,
}

/// Where the verifier keys of linked registers come from: keys pinned by
/// register name, and optionally a trusted register of registers (its own
/// key pinned) whose record for a register gives that register's key in
/// its `log-public-key` field. A pinned key wins.
#[derive(Debug, Default)]
pub struct LinkKeys {
    pinned: BTreeMap<String, Verifier>,
    registry: Option<Client>,
    found: BTreeMap<String, Option<Verifier>>,
}

/// The field of a register of registers' record that holds the register's
/// user-log verifier key.
pub const KEY_FIELD: &str = "log-public-key";

impl LinkKeys {
    /// Keys pinned by register name.
    pub fn pinned(keys: BTreeMap<String, Verifier>) -> Self {
        LinkKeys {
            pinned: keys,
            ..LinkKeys::default()
        }
    }

    /// Also trusts `registry`, a register of registers read with its own
    /// pinned key: a register without a pinned key takes the
    /// `log-public-key` of its record there, verified as any record is.
    pub fn with_registry(mut self, registry: Client) -> Self {
        self.registry = Some(registry);
        self
    }

    /// `register`'s key: pinned, or from the registry (`None` if neither
    /// has one).
    fn key(&mut self, register: &str) -> Result<Option<Verifier>, Error> {
        if let Some(key) = self.pinned.get(register) {
            return Ok(Some(key.clone()));
        }
        let Some(registry) = &self.registry else {
            return Ok(None);
        };
        if let Some(found) = self.found.get(register) {
            return Ok(found.clone());
        }
        let checkpoint = registry.checkpoint()?;
        let found = match registry.record(register, &checkpoint) {
            Err(Error::Fetch(error)) if error.failure == FetchFailure::Status(404) => None,
            Err(error) => return Err(error),
            Ok(record) => {
                let text = record
                    .items
                    .iter()
                    .find_map(|item| item.get_one(KEY_FIELD))
                    .ok_or_else(|| Error::LinkBundle {
                        key: register.to_owned(),
                        reason: format!("its record in the registry has no {KEY_FIELD}"),
                    })?;
                Some(Verifier::parse(&text).map_err(|e| Error::LinkBundle {
                    key: register.to_owned(),
                    reason: format!("its {KEY_FIELD} in the registry: {e}"),
                })?)
            }
        };
        self.found.insert(register.to_owned(), found.clone());
        Ok(found)
    }
}

impl Client {
    /// Fetches record `key` with the proofs of the records it links to
    /// (`B/records/{key}/proof.json?links=1`) and verifies all of it: the
    /// record as [`Client::record`] does (its items from the bundle,
    /// re-hashed), that each link's field and value are in the record's
    /// item, and each target record's tlog-proof against the key `keys`
    /// gives for its register (pinned, or from a trusted registry) (with no witness policy: the policy pinned
    /// is this register's). A target proved without a key given for its
    /// register is an error ([`Error::LinkKey`]), as is any that does not
    /// verify ([`Error::Link`]). That the server listed every link of the
    /// record is its word: the client does not read the schema.
    pub fn record_with_links(
        &self,
        key: &str,
        trusted: &VerifiedCheckpoint,
        keys: &mut LinkKeys,
    ) -> Result<LinkedRecord, Error> {
        let path = format!("records/{}/proof.json?links=1", path_segment(key));
        let source = format!("{}/{path}", self.base_url());
        let bytes = self.document(&path)?;
        let bad = |reason: String| Error::LinkBundle {
            key: key.to_owned(),
            reason,
        };
        let bundle: Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
        let proof = string(&bundle, "tlog-proof").map_err(bad)?;
        let (proved, number, entry) = verify_record_proof(
            key,
            proof.as_bytes(),
            self.key(),
            self.witness_policy(),
            &source,
        )?;
        let items = bundled_items(&bundle, &entry).map_err(bad)?;
        if proved.size() <= trusted.size() {
            self.consistency(&proved, trusted)?;
        } else {
            self.consistency(trusted, &proved)?;
        }
        let links = match bundle.get("links") {
            Some(Value::Array(links)) => links,
            _ => return Err(bad("it has no `links` array".to_owned())),
        };
        let checks = links
            .iter()
            .map(|value| check_link(key, value, &items, &mut *keys, &source))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LinkedRecord {
            record: VerifiedRecord {
                number,
                entry,
                items,
                checkpoint: proved,
            },
            links: checks,
        })
    }
}

/// A record's proof as fetched and verified: what a links bundle carries
/// of a target in another server's register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvedRecord {
    /// The record, verified (without a trusted checkpoint to be consistent
    /// with: its proof's checkpoint is signed by the pinned key).
    pub record: VerifiedRecord,
    /// The C2SP tlog-proof as served.
    pub tlog_proof: String,
}

impl Client {
    /// Fetches record `key`'s tlog-proof and items and verifies them;
    /// `None` if the register says it holds no such record (404
    /// `no-record`). A base URL that serves no proofs (a static copy) is
    /// an error: a bundle carries proofs.
    pub fn proved_record(&self, key: &str) -> Result<Option<ProvedRecord>, Error> {
        let path = format!("records/{}/proof.tlog-proof", path_segment(key));
        let bytes = match self.document_or_missing(&path)? {
            Ok(bytes) => bytes,
            Err(missing) if missing.code.as_deref() == Some("no-record") => return Ok(None),
            Err(missing) => return Err(missing.error.into()),
        };
        let source = format!("{}/{path}", self.base_url());
        let (proved, number, entry) =
            verify_record_proof(key, &bytes, self.key(), self.witness_policy(), &source)?;
        let items = entry
            .item_hashes
            .iter()
            .map(|hash| self.item(hash))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(ProvedRecord {
            record: VerifiedRecord {
                number,
                entry,
                items,
                checkpoint: proved,
            },
            tlog_proof: String::from_utf8_lossy(&bytes).into_owned(),
        }))
    }
}

/// `field` of `value` as a string, or why not.
fn string<'a>(value: &'a Value, field: &str) -> Result<&'a str, String> {
    value
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("`{field}` is missing or not a string"))
}

/// The `items` of a bundle, which must be exactly `entry`'s, each hashing
/// to its hash.
fn bundled_items(bundle: &Value, entry: &Entry) -> Result<Vec<Item>, String> {
    let texts = match bundle.get("items") {
        Some(Value::Array(texts)) => texts,
        _ => return Err("`items` is missing or not an array".to_owned()),
    };
    if texts.len() != entry.item_hashes.len() {
        return Err(format!(
            "{} items for an entry of {}",
            texts.len(),
            entry.item_hashes.len()
        ));
    }
    texts
        .iter()
        .zip(&entry.item_hashes)
        .map(|(text, hash): (&Value, &ItemHash)| {
            let text = text.as_str().ok_or("an item is not a string")?;
            checked_item(hash, text).map_err(|e| e.to_string())
        })
        .collect()
}

/// One link of the bundle, checked.
fn check_link(
    key: &str,
    value: &Value,
    items: &[Item],
    keys: &mut LinkKeys,
    source: &str,
) -> Result<LinkCheck, Error> {
    let bad = |reason: String| Error::LinkBundle {
        key: key.to_owned(),
        reason,
    };
    let text = |field: &str| string(value, field).map(str::to_owned).map_err(bad);
    let link = Link {
        field: text("field")?,
        value: text("value")?,
        register: text("register")?,
        key: text("key")?,
    };
    // The link must be one the record holds: its value in its field, and
    // its target read from that value.
    let held = items.iter().any(|item| {
        item.get(&link.field)
            .is_some_and(|values| values.strings().any(|v| v == link.value))
    });
    let derived = link.value == link.key || link.value == format!("{}:{}", link.register, link.key);
    if !held || !derived {
        return Err(bad(format!(
            "link {}={:?} to {}:{} is not a value of the record's item",
            link.field, link.value, link.register, link.key
        )));
    }
    let url = value
        .get("register-url")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let outcome = match text("status")?.as_str() {
        "dangling" => LinkOutcome::Dangling,
        "unresolvable" => LinkOutcome::Unresolvable,
        "unavailable" => LinkOutcome::Unavailable(text("error")?),
        "found" => {
            let verifier = keys.key(&link.register)?.ok_or_else(|| Error::LinkKey {
                key: key.to_owned(),
                register: link.register.clone(),
            })?;
            let failed = |error: Error| Error::Link {
                key: key.to_owned(),
                field: link.field.clone(),
                value: link.value.clone(),
                register: link.register.clone(),
                error: Box::new(error),
            };
            let proof = text("tlog-proof")?;
            let (proved, number, entry) =
                verify_record_proof(&link.key, proof.as_bytes(), &verifier, None, source)
                    .map_err(failed)?;
            let items = bundled_items(value, &entry).map_err(|reason| {
                failed(Error::LinkBundle {
                    key: link.key.clone(),
                    reason,
                })
            })?;
            LinkOutcome::Verified(Box::new(VerifiedRecord {
                number,
                entry,
                items,
                checkpoint: proved,
            }))
        }
        other => {
            return Err(bad(format!(
                "link status {other:?} is not one Regis serves"
            )));
        }
    };
    Ok(LinkCheck { link, url, outcome })
}
