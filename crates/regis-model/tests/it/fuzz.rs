//! Fuzz harness (proptest) for everything in regis-model that reads
//! untrusted input: the RSF reader and loader, item JSON (canonical and
//! lenient), leaf bytes, timestamps, datatype values and tabular imports.
//! Arbitrary bytes and mutations of real lines and documents; nothing may
//! panic, and whatever parses must re-serialise to what was read.
//!
//! CI runs the default case count; a long run is
//! `PROPTEST_CASES=1000000 cargo test --release -p regis-model --test fuzz`.

use std::sync::OnceLock;

use proptest::prelude::*;
use regis_model::import::{Format, Importer};
use regis_model::rsf::{Command, Policy, RsfReader, RsfWriter};
use regis_model::{Datatype, Entry, Item, Log, Register, Timestamp};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000)
}

/// Every line of every real RSF file.
fn real_lines() -> &'static [Vec<u8>] {
    static LINES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    LINES.get_or_init(|| {
        regis_fixtures::files("registers", ".rsf")
            .iter()
            .flat_map(|path| {
                let bytes = std::fs::read(path).unwrap();
                bytes
                    .split(|&b| b == b'\n')
                    .map(<[u8]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .filter(|line| !line.is_empty())
            .collect()
    })
}

/// Small real documents, whole.
fn real_documents() -> &'static [Vec<u8>] {
    static DOCUMENTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        [
            "api-client/country_register.rsf",
            "api-client/country_register_update.rsf",
            "registry-data/datatype.rsf",
        ]
        .iter()
        .map(|file| regis_fixtures::read(format!("registers/{file}")))
        .chain(
            regis_fixtures::files("registers/openregister-java/serialized-negative", "")
                .iter()
                .map(|path| std::fs::read(path).unwrap()),
        )
        .collect()
    })
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    Duplicate(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop_oneof![
        Just(b'\t'),
        Just(b'\n'),
        Just(b'\r'),
        Just(b'"'),
        Just(b'\\'),
        Just(b'{'),
        Just(b'['),
        Just(b';'),
        Just(b':'),
        Just(b'u'),
        Just(0xFF),
        any::<u8>(),
    ];
    prop_oneof![
        (any::<usize>(), interesting.clone()).prop_map(|(at, byte)| Mutation::Flip(at, byte)),
        (any::<usize>(), interesting).prop_map(|(at, byte)| Mutation::Insert(at, byte)),
        (any::<usize>(), 1..16usize).prop_map(|(at, len)| Mutation::Delete(at, len)),
        (any::<usize>(), 1..64usize).prop_map(|(at, len)| Mutation::Duplicate(at, len)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        let len = bytes.len().max(1);
        match *mutation {
            Mutation::Flip(at, byte) if !bytes.is_empty() => bytes[at % len] = byte,
            Mutation::Insert(at, byte) => bytes.insert(at % (bytes.len() + 1), byte),
            Mutation::Delete(at, count) if !bytes.is_empty() => {
                let start = at % len;
                bytes.drain(start..(start + count).min(bytes.len()));
            }
            Mutation::Duplicate(at, count) if !bytes.is_empty() => {
                let start = at % len;
                let copy = bytes[start..(start + count).min(bytes.len())].to_vec();
                bytes.splice(start..start, copy);
            }
            Mutation::Truncate(at) => bytes.truncate(at % (bytes.len() + 1)),
            _ => {}
        }
    }
    bytes
}

/// Reads `bytes` as RSF; every command read writes back to its line.
fn read_all(bytes: &[u8]) {
    for result in RsfReader::new(bytes) {
        let Ok((_, command)) = result else { break };
        let mut writer = RsfWriter::new(Vec::new());
        // An entry the writer refuses (none can be read) would be a bug here.
        writer.write_command(&command).unwrap();
        let written = writer.into_inner();
        let reread: Vec<Command> = RsfReader::new(&written[..])
            .map(|result| result.unwrap().1)
            .collect();
        assert_eq!(reread, vec![command]);
    }
}

/// Loads `bytes` under both policies; failures must leave the register as it was.
fn load_all(bytes: &[u8]) {
    for policy in [Policy::IMPORT, Policy::APPEND] {
        let mut register = Register::named("country");
        if register.load_rsf(bytes, policy).is_err() {
            assert_eq!(register.item_count(), 0);
            assert_eq!(register.size(Log::User), 0);
        }
    }
}

fn check_item_text(text: &str) {
    if let Ok(item) = Item::parse(text) {
        assert_eq!(Item::from_canonical(item.as_str()), Ok(item.clone()));
        assert_eq!(Item::from_fields(item.fields().collect()), Ok(item.clone()));
    }
    if let Ok(item) = Item::from_canonical(text) {
        assert_eq!(item.as_str(), text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_bytes_as_rsf(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        read_all(&bytes);
        load_all(&bytes);
    }

    #[test]
    fn mutated_real_lines(
        lines in proptest::collection::vec(any::<prop::sample::Index>(), 1..6),
        mutations in proptest::collection::vec(mutation(), 0..4),
    ) {
        let pool = real_lines();
        let mut document = Vec::new();
        for line in lines {
            document.extend_from_slice(line.get::<Vec<u8>>(pool));
            document.push(b'\n');
        }
        let document = mutate(document, &mutations);
        read_all(&document);
        load_all(&document);
        if let Some(json) = document.strip_prefix(b"add-item\t")
            && let Ok(text) = std::str::from_utf8(json)
        {
            check_item_text(text.trim_end_matches('\n'));
        }
    }

    #[test]
    fn mutated_real_documents(
        document in any::<prop::sample::Index>(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let document = mutate(document.get(real_documents()).clone(), &mutations);
        read_all(&document);
        load_all(&document);
    }

    #[test]
    fn arbitrary_item_json(text in any::<String>()) {
        check_item_text(&text);
    }

    #[test]
    fn json_like_item_text(pieces in proptest::collection::vec(prop_oneof![
        Just("{"), Just("}"), Just("["), Just("]"), Just(","), Just(":"), Just("\""), Just("\\"),
        Just("\\u"), Just("D83D"), Just("DE00"), Just("00"), Just("1F"), Just(" "), Just("a"), Just("é"),
        Just("\"a\""), Just("\"b\""), Just("1"), Just("null"),
    ], 0..24)) {
        check_item_text(&pieces.concat());
    }

    #[test]
    fn arbitrary_leaf_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256), mutations in proptest::collection::vec(mutation(), 1..3)) {
        let _ = Entry::parse_leaf(Log::User, &bytes);
        let leaf = br#"{"index-entry-number":"7","entry-number":"7","entry-timestamp":"2016-04-05T13:23:05Z","key":"a\"b","item-hash":["sha-256:e94c4a9ab00d951dadde848ee2c9fe51628b22ff2e0a88bff4cca6e4e6086d7a"]}"#;
        let mutated = mutate(leaf.to_vec(), &mutations);
        if let Ok((number, entry)) = Entry::parse_leaf(Log::User, &mutated) {
            prop_assert_eq!(entry.leaf_bytes(number), mutated);
        }
    }

    #[test]
    fn arbitrary_values_of_every_datatype(text in any::<String>(), timestamp in "[0-9:TZ-]{0,22}") {
        for name in ["string", "text", "integer", "datetime", "timestamp", "period", "curie", "url", "point", "hash", "x"] {
            let _ = Datatype::from_name(name).check(&text);
            let _ = Datatype::from_name(name).check(&timestamp);
        }
        if let Ok(parsed) = Timestamp::parse(&timestamp) {
            prop_assert_eq!(parsed.as_str(), timestamp.as_str());
            prop_assert_eq!(Timestamp::from_unix_seconds(parsed.unix_seconds()).map(|t| t.unix_seconds()), Some(parsed.unix_seconds()));
        }
    }

    #[test]
    fn arbitrary_tabular_files(bytes in proptest::collection::vec(any::<u8>(), 0..256), csv: bool) {
        let mut register = Register::new();
        register.load_rsf(&regis_fixtures::read("registers/registry-data/local-authority-type.rsf")[..], Policy::IMPORT).unwrap();
        let mut input = b"local-authority-type\tname\n".to_vec();
        input.extend_from_slice(&bytes);
        let format = if csv { Format::Csv } else { Format::Tsv };
        let timestamp: Timestamp = "2020-01-01T00:00:00Z".parse().unwrap();
        for input in [&input[..], &bytes[..]] {
            let _ = Importer::new(input, format, register.schema(), timestamp).map(Iterator::count);
        }
    }
}
