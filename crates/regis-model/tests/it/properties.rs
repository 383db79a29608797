//! Properties: canonical JSON is a fixed point that round-trips any item
//! (against serde_json as an independent reader), and RSF, leaf bytes and
//! timestamps read back exactly what was written.

use std::borrow::Cow;
use std::collections::BTreeMap;

use proptest::prelude::*;
use regis_model::rsf::{Command, RsfReader, RsfWriter};
use regis_model::{Entry, Item, ItemHash, Log, Timestamp, Value, compare_keys};

/// Strings with the characters that matter to canonical JSON well
/// represented: quotes, backslashes, every control character, `/`, non-ASCII
/// in and beyond the BMP, around U+E000–U+FFFF.
fn text() -> impl Strategy<Value = String> {
    let char = prop_oneof![
        4 => proptest::char::range('a', 'e'),
        1 => Just('"'),
        1 => Just('\\'),
        1 => Just('/'),
        1 => proptest::char::range('\u{0}', '\u{1F}'),
        1 => Just('\u{7F}'),
        1 => Just('é'),
        1 => Just('\u{2028}'),
        1 => proptest::char::range('\u{E000}', '\u{E002}'),
        1 => Just('\u{FF21}'),
        1 => Just('😀'),
        1 => any::<char>(),
    ];
    proptest::collection::vec(char, 0..8).prop_map(|chars| chars.into_iter().collect())
}

fn value() -> impl Strategy<Value = Value<'static>> {
    prop_oneof![
        text().prop_map(Value::one),
        proptest::collection::vec(text(), 0..4).prop_map(Value::many),
    ]
}

fn fields() -> impl Strategy<Value = BTreeMap<String, Value<'static>>> {
    proptest::collection::btree_map(text(), value(), 0..6)
}

fn item() -> impl Strategy<Value = Item> {
    fields().prop_map(|fields| Item::from_fields(fields.into_iter().collect()).unwrap())
}

fn as_serde(value: &Value<'_>) -> serde_json::Value {
    match value {
        Value::One(text) => serde_json::Value::String(text.to_string()),
        Value::Many(texts) => texts
            .iter()
            .map(|text| serde_json::Value::String(text.to_string()))
            .collect(),
    }
}

fn entry() -> impl Strategy<Value = Entry> {
    let key = "[^\\x00-\\x1f\\x7f]{1,12}";
    let time = 0..=253_402_300_799i64;
    let hashes = proptest::collection::vec(any::<[u8; 32]>().prop_map(ItemHash), 1..4);
    (any::<bool>(), key, time, hashes).prop_map(|(system, key, seconds, item_hashes)| Entry {
        log: if system { Log::System } else { Log::User },
        key,
        timestamp: Timestamp::from_unix_seconds(seconds).unwrap(),
        item_hashes,
    })
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        item().prop_map(Command::AddItem),
        entry().prop_map(Command::AppendEntry),
        any::<[u8; 32]>().prop_map(Command::AssertRootHash),
    ]
}

proptest! {
    #[test]
    fn canonical_form_is_a_fixed_point(fields in fields()) {
        let item = Item::from_fields(fields.clone().into_iter().collect()).unwrap();
        prop_assert_eq!(Item::from_canonical(item.as_str()), Ok(item.clone()));
        prop_assert_eq!(Item::parse(item.as_str()), Ok(item.clone()));
        // The fields come back, in canonical order.
        let mut expected: Vec<(String, Value<'static>)> = fields.clone().into_iter().collect();
        expected.sort_by(|(a, _), (b, _)| compare_keys(a, b));
        let decoded: Vec<(String, Value<'static>)> =
            item.fields().map(|(name, value)| (name.into_owned(), value.into_owned())).collect();
        prop_assert_eq!(&decoded, &expected);
        // An independent JSON reader sees the same object.
        let serde: serde_json::Map<String, serde_json::Value> = serde_json::from_str(item.as_str()).unwrap();
        let expected: serde_json::Map<String, serde_json::Value> =
            fields.iter().map(|(name, value)| (name.clone(), as_serde(value))).collect();
        prop_assert_eq!(serde, expected.clone());
        // Any other spelling of the same object canonicalises to it.
        let pretty = serde_json::to_string_pretty(&expected).unwrap();
        prop_assert_eq!(Item::parse(&pretty), Ok(item.clone()));
        if pretty != item.as_str() {
            let refused = matches!(Item::from_canonical(&pretty), Err(regis_model::ItemError::NotCanonical { .. }));
            prop_assert!(refused);
        }
        let reversed: Vec<(Cow<'_, str>, Value<'_>)> = item.fields().collect::<Vec<_>>().into_iter().rev().collect();
        prop_assert_eq!(Item::from_fields(reversed), Ok(item));
    }

    #[test]
    fn key_order_is_utf16_order(a in text(), b in text()) {
        prop_assert_eq!(compare_keys(&a, &b), a.encode_utf16().cmp(b.encode_utf16()));
    }

    #[test]
    fn rsf_write_then_read_is_the_identity(commands in proptest::collection::vec(command(), 0..20)) {
        let mut writer = RsfWriter::new(Vec::new());
        for command in &commands {
            writer.write_command(command).unwrap();
        }
        let bytes = writer.into_inner();
        let read: Vec<Command> = RsfReader::new(&bytes[..]).map(|result| result.unwrap().1).collect();
        prop_assert_eq!(read, commands);
    }

    #[test]
    fn leaves_read_back(entry in entry(), number in 1..u64::MAX) {
        let leaf = entry.leaf_bytes(number);
        prop_assert_eq!(Entry::parse_leaf(entry.log, &leaf), Ok((number, entry)));
    }

    #[test]
    fn timestamps_round_trip(seconds in -62_167_219_200..=253_402_300_799i64) {
        let timestamp = Timestamp::from_unix_seconds(seconds).unwrap();
        prop_assert_eq!(timestamp.unix_seconds(), seconds);
        prop_assert_eq!(Timestamp::parse(timestamp.as_str()), Ok(timestamp));
    }
}
