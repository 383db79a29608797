//! Items: flat JSON objects of strings (cardinality 1) and arrays of strings
//! (cardinality n), identified by the SHA-256 of their canonical JSON.
//!
//! An [`Item`] holds only its canonical JSON, checked once when it is made;
//! its fields are decoded on demand. Two items are equal exactly when their
//! canonical bytes are, so items are content-addressed by [`Item::hash`].

use std::borrow::Cow;
use std::fmt;

use crate::digest::ItemHash;
use crate::json::{self, Parser};

/// A field's value: one string, or an ordered list of strings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value<'a> {
    /// Cardinality 1.
    One(Cow<'a, str>),
    /// Cardinality n; order is kept (it is part of the item's identity).
    Many(Vec<Cow<'a, str>>),
}

impl<'a> Value<'a> {
    /// A single string.
    pub fn one(text: impl Into<Cow<'a, str>>) -> Self {
        Value::One(text.into())
    }

    /// A list of strings.
    pub fn many<T: Into<Cow<'a, str>>>(texts: impl IntoIterator<Item = T>) -> Self {
        Value::Many(texts.into_iter().map(Into::into).collect())
    }

    /// The strings of the value: one, or each of the list.
    pub fn strings(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            Value::One(text) => (Some(text.as_ref()), &[][..]),
            Value::Many(texts) => (None, texts.as_slice()),
        };
        one.into_iter().chain(many.iter().map(AsRef::as_ref))
    }

    /// The value, owning its strings.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::One(text) => Value::One(Cow::Owned(text.into_owned())),
            Value::Many(texts) => Value::Many(
                texts
                    .into_iter()
                    .map(|text| Cow::Owned(text.into_owned()))
                    .collect(),
            ),
        }
    }
}

/// Why some text is not an item (or not a canonical one).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    /// Not JSON, or not a JSON object of the right shape.
    #[error("invalid item JSON at byte {offset}: expected {expected}")]
    Syntax {
        /// Byte offset of the problem in the text.
        offset: usize,
        /// What would have been valid there.
        expected: &'static str,
    },
    /// A field whose value is neither a string nor an array of strings.
    #[error("field `{field}`: a value must be a string or an array of strings, not {found}")]
    FieldValue {
        /// The field.
        field: String,
        /// What the value was.
        found: &'static str,
    },
    /// A field given twice.
    #[error("field `{field}` is given twice")]
    DuplicateField {
        /// The field.
        field: String,
    },
    /// Valid, but not in canonical form (where canonical form is required,
    /// as in RSF `add-item` lines).
    #[error(
        "item JSON is not canonical (first difference at byte {offset}); its canonical form is {}",
        excerpt(canonical)
    )]
    NotCanonical {
        /// Byte offset of the first difference from the canonical form.
        offset: usize,
        /// The canonical form.
        canonical: String,
    },
}

/// At most 200 characters of `text`, for error messages.
pub(crate) fn excerpt(text: &str) -> String {
    const LIMIT: usize = 200;
    match text.char_indices().nth(LIMIT) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// An item in canonical JSON.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Item {
    json: Box<str>,
    /// SHA-256 of `json`, worked out once: a write hashes each item where
    /// it is parsed (a request's thread), and then uses the hash several
    /// times.
    hash: ItemHash,
}

impl Item {
    /// An item of canonical JSON `json`.
    fn of_canonical(json: Box<str>) -> Item {
        let hash = ItemHash::of(json.as_bytes());
        Item { json, hash }
    }

    /// Accepts `json` only if it is already canonical (what an RSF `add-item`
    /// line must hold). The error says why not, and gives the canonical form
    /// when the JSON is otherwise valid.
    pub fn from_canonical(json: &str) -> Result<Item, ItemError> {
        if json::check_canonical(json).is_ok() {
            return Ok(Item::of_canonical(json.into()));
        }
        let item = Item::parse(json)?;
        match json
            .bytes()
            .zip(item.json.bytes())
            .position(|(a, b)| a != b)
        {
            Some(offset) => Err(ItemError::NotCanonical {
                offset,
                canonical: item.json.into(),
            }),
            None if json.len() != item.json.len() => Err(ItemError::NotCanonical {
                offset: json.len().min(item.json.len()),
                canonical: item.json.into(),
            }),
            None => Ok(item),
        }
    }

    /// Whether `json` is an item in canonical form (what an RSF `add-item`
    /// line must hold), without making the item.
    pub fn is_canonical(json: &[u8]) -> bool {
        std::str::from_utf8(json).is_ok_and(|text| json::check_canonical(text).is_ok())
    }

    /// Reads any JSON object of strings and string arrays (whitespace, any
    /// escapes, any key order) and canonicalises it.
    pub fn parse(json: &str) -> Result<Item, ItemError> {
        let mut parser = Parser::lenient(json);
        let mut fields = Vec::new();
        while let Some(field) = parser.next_field()? {
            fields.push(field);
        }
        Item::from_fields(fields)
    }

    /// The item with these fields (in any order; names must be distinct).
    pub fn from_fields<K: AsRef<str>>(mut fields: Vec<(K, Value<'_>)>) -> Result<Item, ItemError> {
        fields.sort_by(|(a, _), (b, _)| json::compare_keys(a.as_ref(), b.as_ref()));
        if let Some(pair) = fields
            .windows(2)
            .find(|pair| pair[0].0.as_ref() == pair[1].0.as_ref())
        {
            return Err(ItemError::DuplicateField {
                field: pair[0].0.as_ref().to_string(),
            });
        }
        let mut out = String::new();
        json::push_object(&mut out, &fields);
        Ok(Item::of_canonical(out.into()))
    }

    /// The canonical JSON.
    pub fn as_str(&self) -> &str {
        &self.json
    }

    /// `SHA-256` of the canonical JSON.
    pub fn hash(&self) -> ItemHash {
        self.hash
    }

    /// The fields, in canonical order.
    pub fn fields(&self) -> Fields<'_> {
        Fields(Parser::strict(&self.json))
    }

    /// The fields of `json` that is already known to be a canonical item
    /// (one a store checked when it kept it), without checking it again:
    /// on anything else the iteration ends early.
    pub fn fields_of_canonical(json: &str) -> Fields<'_> {
        Fields(Parser::strict(json))
    }

    /// The value of one field.
    pub fn get(&self, name: &str) -> Option<Value<'_>> {
        self.fields()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value)
    }

    /// The value of a field when it is a single string.
    pub fn get_one(&self, name: &str) -> Option<Cow<'_, str>> {
        match self.get(name)? {
            Value::One(text) => Some(text),
            Value::Many(_) => None,
        }
    }
}

impl fmt::Debug for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Item({})", self.json)
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.json)
    }
}

/// The fields of an [`Item`], in canonical order.
#[derive(Debug)]
pub struct Fields<'a>(Parser<'a>);

impl<'a> Iterator for Fields<'a> {
    type Item = (Cow<'a, str>, Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        // An item's JSON was checked when the item was made, so this cannot
        // fail; if it somehow did, the iteration would simply end.
        self.0.next_field().ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_item_hashes() {
        let item = Item::parse(r#"{"foo":"abc","bar":"xyz"}"#).unwrap();
        assert_eq!(item.as_str(), r#"{"bar":"xyz","foo":"abc"}"#);
        assert_eq!(
            item.hash().to_string(),
            "sha-256:5dd4fe3b0de91882dae86b223ca531b5c8f2335d9ee3fd0ab18dfdc2871d0c61"
        );
    }

    #[test]
    fn non_canonical_input_is_refused_with_its_canonical_form() {
        let error = Item::from_canonical(r#"{ "register":"x",   "text":"y" }"#).unwrap_err();
        assert_eq!(
            error,
            ItemError::NotCanonical {
                offset: 1,
                canonical: r#"{"register":"x","text":"y"}"#.into()
            }
        );
        assert!(Item::is_canonical(br#"{"register":"x","text":"y"}"#));
        assert!(!Item::is_canonical(br#"{"text":"y","register":"x"}"#));
        assert!(!Item::is_canonical(b"{\"a\":\"\xff\"}"));
        assert_eq!(
            Item::from_canonical(r#"{"a":"b","a":"c"}"#),
            Err(ItemError::DuplicateField { field: "a".into() })
        );
        assert_eq!(
            Item::from_canonical(r#"{"a":{"b":"c"}}"#),
            Err(ItemError::FieldValue {
                field: "a".into(),
                found: "an object"
            })
        );
        assert_eq!(
            Item::from_canonical(r#"{"a":["b",["c"]]}"#),
            Err(ItemError::FieldValue {
                field: "a".into(),
                found: "a nested array"
            })
        );
    }

    #[test]
    fn fields_decode_escapes() {
        let item = Item::from_canonical(r#"{"name":"New College\\New \"School\"","x":["a","b"]}"#)
            .unwrap();
        let fields: Vec<_> = item.fields().collect();
        assert_eq!(
            fields,
            vec![
                ("name".into(), Value::one("New College\\New \"School\"")),
                ("x".into(), Value::many(["a", "b"])),
            ]
        );
        assert_eq!(
            item.get_one("name").as_deref(),
            Some("New College\\New \"School\"")
        );
        assert_eq!(item.get_one("x"), None);
        assert_eq!(item.get("y"), None);
    }
}
