//! Links between registers: the values of an item that name a record of a
//! register (`spec/formats.md`, "Links").
//!
//! A value is a link when its field's definition has a `register`
//! attribute (the value is a key of that register: a local authority's
//! `local-authority-type`, a field's `datatype`), or when the field is of
//! datatype `curie` and the value is `register:key` (`country:GB`). Every
//! value of a cardinality-n field is a link of its own. Not links: an empty
//! value, a `curie` that is a reference alone (it names no register), and a
//! register's own primary-key field, whose definition names the register
//! itself (the record's key, not a reference to another record).

use std::collections::BTreeMap;

use crate::datatype::Datatype;
use crate::item::Item;
use crate::schema::Schema;

/// One value of an item that names a record of a register.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Link {
    /// The field the value is in.
    pub field: String,
    /// The value as the item holds it (`GB`, or `country:GB`).
    pub value: String,
    /// The register it names.
    pub register: String,
    /// The key of the record it names in that register.
    pub key: String,
}

/// The links of `item` under `schema`, in the item's field order (values
/// of a cardinality-n field in their order). Fields the schema does not
/// define are not links.
pub fn links(schema: &Schema, item: &Item) -> Vec<Link> {
    let own = schema.name();
    let mut found = Vec::new();
    for (name, value) in item.fields() {
        let Some(field) = schema.field(&name) else {
            continue;
        };
        let primary_key = own == Some(name.as_ref()) && field.register.as_deref() == own;
        if primary_key {
            continue;
        }
        for text in value.strings() {
            let target = match (&field.datatype, text.split_once(':')) {
                (_, _) if text.is_empty() => None,
                (Datatype::Curie, Some((register, key))) => Some((register, key)),
                _ => field.register.as_deref().map(|register| (register, text)),
            };
            if let Some((register, key)) = target.filter(|(r, k)| !r.is_empty() && !k.is_empty()) {
                found.push(Link {
                    field: name.to_string(),
                    value: text.to_owned(),
                    register: register.to_owned(),
                    key: key.to_owned(),
                });
            }
        }
    }
    found
}

/// Whether any field `schema` defines can hold a link: one with a
/// `register` attribute (but the register's own primary key) or of
/// datatype `curie`. When none can, no item has links.
pub fn may_link(schema: &Schema) -> bool {
    schema.fields().any(|field| {
        let primary_key = schema.name() == Some(field.name.as_str())
            && field.register.as_deref() == schema.name();
        field.datatype == Datatype::Curie || (field.register.is_some() && !primary_key)
    })
}

/// What a link resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The target register holds a record of the key.
    Found,
    /// The target register is known and holds no record of the key.
    Dangling,
    /// The target register is neither served beside this one nor declared:
    /// the link cannot be checked.
    Unresolvable,
}

/// The links of a register's records, counted by what they resolve to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkCensus {
    /// Every link of every record.
    pub links: u64,
    /// Links to a record its (known) register does not hold.
    pub dangling: u64,
    /// Links to a register neither served nor declared.
    pub unresolvable: u64,
    /// Each dangling or unresolvable link, with the record it is in, up to
    /// [`LinkCensus::LISTED`] of them.
    pub listed: Vec<(String, Link, Resolution)>,
    /// Links by target register: (links, dangling, unresolvable).
    pub by_register: BTreeMap<String, (u64, u64, u64)>,
}

impl LinkCensus {
    /// The most links [`LinkCensus::listed`] keeps.
    pub const LISTED: usize = 1000;

    /// Counts the links of record `key`, each resolved by `resolve`.
    pub fn add<E>(
        &mut self,
        key: &str,
        links: Vec<Link>,
        mut resolve: impl FnMut(&Link) -> Result<Resolution, E>,
    ) -> Result<(), E> {
        for link in links {
            let resolution = resolve(&link)?;
            let counts = self.by_register.entry(link.register.clone()).or_default();
            self.links += 1;
            counts.0 += 1;
            match resolution {
                Resolution::Found => continue,
                Resolution::Dangling => {
                    self.dangling += 1;
                    counts.1 += 1;
                }
                Resolution::Unresolvable => {
                    self.unresolvable += 1;
                    counts.2 += 1;
                }
            }
            if self.listed.len() < Self::LISTED {
                self.listed.push((key.to_owned(), link, resolution));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(json: &str) -> Item {
        Item::from_canonical(json).unwrap()
    }

    fn schema() -> Schema {
        let mut schema = Schema::named("school");
        for field in [
            r#"{"cardinality":"1","datatype":"string","field":"school","register":"school"}"#,
            r#"{"cardinality":"1","datatype":"string","field":"local-authority","register":"local-authority-eng"}"#,
            r#"{"cardinality":"n","datatype":"curie","field":"areas"}"#,
            r#"{"cardinality":"n","datatype":"string","field":"fields","register":"field"}"#,
            r#"{"cardinality":"1","datatype":"string","field":"name"}"#,
        ] {
            let item = item(field);
            let name = item.get_one("field").unwrap().into_owned();
            schema.apply(&format!("field:{name}"), &item).unwrap();
        }
        schema
    }

    fn link(field: &str, value: &str, register: &str, key: &str) -> Link {
        Link {
            field: field.into(),
            value: value.into(),
            register: register.into(),
            key: key.into(),
        }
    }

    #[test]
    fn finds_register_fields_curies_and_every_value_of_many() {
        let found = links(
            &schema(),
            &item(
                r#"{"areas":["country:GB","","local","territory:"],"fields":["name","school"],"local-authority":"CMD","name":"X","school":"1"}"#,
            ),
        );
        assert_eq!(
            found,
            vec![
                link("areas", "country:GB", "country", "GB"),
                link("fields", "name", "field", "name"),
                link("fields", "school", "field", "school"),
                link("local-authority", "CMD", "local-authority-eng", "CMD"),
            ]
        );
        assert!(links(&schema(), &item(r#"{"local-authority":"","school":"1"}"#)).is_empty());
        assert!(may_link(&schema()));
        let mut plain = Schema::named("school");
        let key = r#"{"cardinality":"1","datatype":"string","field":"school","register":"school"}"#;
        plain.apply("field:school", &item(key)).unwrap();
        assert!(!may_link(&plain));
    }

    #[test]
    fn a_census_counts_and_lists_what_does_not_resolve() {
        let mut census = LinkCensus::default();
        let found = vec![
            link("a", "x:1", "x", "1"),
            link("a", "x:2", "x", "2"),
            link("b", "y:1", "y", "1"),
        ];
        census
            .add("k", found, |link| {
                Ok::<_, ()>(match (link.register.as_str(), link.key.as_str()) {
                    ("x", "1") => Resolution::Found,
                    ("x", _) => Resolution::Dangling,
                    _ => Resolution::Unresolvable,
                })
            })
            .unwrap();
        assert_eq!(
            (census.links, census.dangling, census.unresolvable),
            (3, 1, 1)
        );
        assert_eq!(census.by_register["x"], (2, 1, 0));
        assert_eq!(census.listed.len(), 2);
    }
}
