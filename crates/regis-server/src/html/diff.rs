//! What changed between two versions of a record: the fields added,
//! removed and changed from one item to the next, for the history shown on
//! a record page.

use regis_model::{Item, Value, compare_keys};

/// One field's change from one item to the next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldChange {
    /// The field is new.
    Added {
        /// The field's name.
        field: String,
        /// Its value.
        value: Value<'static>,
    },
    /// The field is gone.
    Removed {
        /// The field's name.
        field: String,
        /// The value it had.
        value: Value<'static>,
    },
    /// The field holds another value.
    Changed {
        /// The field's name.
        field: String,
        /// The value it had.
        before: Value<'static>,
        /// The value it has.
        after: Value<'static>,
    },
}

impl FieldChange {
    /// The field's name.
    pub fn field(&self) -> &str {
        match self {
            FieldChange::Added { field, .. }
            | FieldChange::Removed { field, .. }
            | FieldChange::Changed { field, .. } => field,
        }
    }
}

/// The changes from `before` (none for a record's first entry) to `after`,
/// by field name. Both items list their fields in canonical order, which
/// is by name, so one merge pass finds them.
pub fn diff(before: Option<&Item>, after: &Item) -> Vec<FieldChange> {
    let old: Vec<(String, Value<'static>)> = before
        .map(|item| {
            item.fields()
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let new: Vec<(String, Value<'static>)> = after
        .fields()
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    let mut changes = Vec::new();
    let (mut old, mut new) = (old.into_iter().peekable(), new.into_iter().peekable());
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((a, _)), Some((b, _))) => compare_keys(a, b),
        };
        match order {
            std::cmp::Ordering::Less => {
                if let Some((field, value)) = old.next() {
                    changes.push(FieldChange::Removed { field, value });
                }
            }
            std::cmp::Ordering::Greater => {
                if let Some((field, value)) = new.next() {
                    changes.push(FieldChange::Added { field, value });
                }
            }
            std::cmp::Ordering::Equal => {
                if let (Some((field, before)), Some((_, after))) = (old.next(), new.next())
                    && before != after
                {
                    changes.push(FieldChange::Changed {
                        field,
                        before,
                        after,
                    });
                }
            }
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(json: &str) -> Item {
        Item::parse(json).unwrap()
    }

    #[test]
    fn first_entry_adds_every_field() {
        let changes = diff(None, &item(r#"{"b":"2","a":"1"}"#));
        assert_eq!(
            changes,
            vec![
                FieldChange::Added {
                    field: "a".into(),
                    value: Value::one("1")
                },
                FieldChange::Added {
                    field: "b".into(),
                    value: Value::one("2")
                },
            ]
        );
    }

    #[test]
    fn finds_added_removed_and_changed_fields() {
        let before = item(r#"{"name":"Czechoslovakia","gone":"x","same":"s","list":["a","b"]}"#);
        let after = item(r#"{"name":"Czechia","same":"s","list":["a"],"end-date":"1992"}"#);
        let changes = diff(Some(&before), &after);
        assert_eq!(
            changes,
            vec![
                FieldChange::Added {
                    field: "end-date".into(),
                    value: Value::one("1992")
                },
                FieldChange::Removed {
                    field: "gone".into(),
                    value: Value::one("x")
                },
                FieldChange::Changed {
                    field: "list".into(),
                    before: Value::many(["a", "b"]),
                    after: Value::many(["a"])
                },
                FieldChange::Changed {
                    field: "name".into(),
                    before: Value::one("Czechoslovakia"),
                    after: Value::one("Czechia")
                },
            ]
        );
        assert!(diff(Some(&after), &after).is_empty());
    }
}
