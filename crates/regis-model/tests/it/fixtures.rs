//! The real GOV.UK Registers data in `../shared/fixtures/registers`: every
//! RSF file's items, entries and roots against `expected.json`, computed
//! twice (from the leaf bytes directly, and through the loader, which checks
//! every `assert-root-hash`); writing back byte for byte; the published
//! proofs; the incremental pair; dumps and deltas that reload to the same
//! register; and the real data validating under its own definitions.

use std::collections::HashSet;

use regis_merkle::{
    Edge, Frontier, Hash, consistency_proof, inclusion_proof, leaf_hash, verify_consistency,
    verify_inclusion,
};
use regis_model::rsf::{Command, Policy, RsfReader, RsfWriter, write_dump};
use regis_model::{DeltaError, Entry, Item, Log, Register, format_hash, parse_hash};
use serde_json::Value as Json;

fn expected() -> Json {
    regis_fixtures::read_json("registers/expected.json")
}

fn commands(relative: &str) -> Vec<(u64, Command)> {
    let bytes = regis_fixtures::read(format!("registers/{relative}"));
    RsfReader::new(&bytes[..])
        .collect::<Result<_, _>>()
        .unwrap_or_else(|error| panic!("{relative}: {error}"))
}

fn hash(json: &Json) -> Hash {
    parse_hash(json.as_str().unwrap()).unwrap()
}

fn load(relative: &str) -> Register {
    load_onto(Register::new(), relative)
}

fn load_onto(mut register: Register, relative: &str) -> Register {
    let bytes = regis_fixtures::read(format!("registers/{relative}"));
    register
        .load_rsf(&bytes[..], Policy::IMPORT)
        .unwrap_or_else(|error| panic!("{relative}: {error}"));
    register
}

/// The files that are not self-contained: they extend another one.
fn base_of(relative: &str) -> Option<String> {
    let pair = &expected()["incremental_rsf_pair"];
    (pair["update"] == relative).then(|| pair["base"].as_str().unwrap().to_string())
}

#[test]
fn expected_json_lists_every_rsf_file() {
    let listed: HashSet<String> = expected()["rsf_roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["file"].as_str().unwrap().to_string())
        .collect();
    let root = regis_fixtures::path("registers");
    for path in regis_fixtures::files("registers", ".rsf") {
        let relative = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            listed.contains(&relative),
            "{relative} is not in expected.json"
        );
    }
    assert_eq!(listed.len(), 16);
}

/// Straight from the leaf bytes and regis-merkle, without the loader: the
/// counts, the root at every assertion line and at the end.
#[test]
fn counts_and_roots_from_the_leaves() {
    for expected in expected()["rsf_roots"].as_array().unwrap() {
        let file = expected["file"].as_str().unwrap();
        let mut items = HashSet::new();
        let (mut tree, mut system_entries) = (Frontier::new(), 0);
        let mut assertions = Vec::new();
        for (_, command) in commands(file) {
            match command {
                Command::AddItem(item) => {
                    items.insert(item.hash());
                }
                Command::AppendEntry(entry) if entry.log == Log::User => {
                    tree.push(&entry.leaf_bytes(tree.size() + 1)).unwrap();
                }
                Command::AppendEntry(_) => system_entries += 1,
                Command::AssertRootHash(asserted) => {
                    assertions.push((tree.size(), asserted, tree.root()))
                }
            }
        }
        assert_eq!(items.len() as u64, expected["items"], "{file}");
        assert_eq!(tree.size(), expected["user_entries"], "{file}");
        assert_eq!(system_entries, expected["system_entries"], "{file}");
        assert_eq!(
            format_hash(&tree.root()),
            expected["v1_root_hash"],
            "{file}"
        );
        let expected_assertions = expected["assert_root_hash_lines_in_file"]
            .as_array()
            .unwrap();
        assert_eq!(assertions.len(), expected_assertions.len(), "{file}");
        for ((size, asserted, computed), expected) in assertions.iter().zip(expected_assertions) {
            assert_eq!(*size, expected["after_user_entries"], "{file}");
            assert_eq!(*asserted, hash(&expected["hash"]), "{file}");
            if base_of(file).is_none() {
                assert_eq!(computed, asserted, "{file}: assertion at {size}");
            }
        }
    }
}

/// Through the loader (which checks each assertion itself): the same
/// numbers, and the register it builds.
#[test]
fn every_file_loads_with_its_assertions_checked() {
    for expected in expected()["rsf_roots"].as_array().unwrap() {
        let file = expected["file"].as_str().unwrap();
        let base = base_of(file).map(|base| load(&base)).unwrap_or_default();
        let before = (
            base.item_count() as u64,
            base.size(Log::User),
            base.size(Log::System),
        );
        let mut register = base;
        let bytes = regis_fixtures::read(format!("registers/{file}"));
        let summary = register
            .load_rsf(&bytes[..], Policy::IMPORT)
            .unwrap_or_else(|error| panic!("{file}: {error}"));
        let assertions = expected["assert_root_hash_lines_in_file"]
            .as_array()
            .unwrap()
            .len() as u64;
        assert_eq!(summary.assertions, assertions, "{file}");
        assert_eq!(summary.items_added, expected["items"], "{file}");
        assert_eq!(summary.appended.user, expected["user_entries"], "{file}");
        assert_eq!(
            summary.appended.system, expected["system_entries"],
            "{file}"
        );
        assert_eq!(
            register.item_count() as u64 - before.0,
            expected["items"],
            "{file}"
        );
        assert_eq!(
            register.size(Log::User) - before.1,
            expected["user_entries"],
            "{file}"
        );
        assert_eq!(
            register.size(Log::System) - before.2,
            expected["system_entries"],
            "{file}"
        );
        assert_eq!(summary.logs.user.root(), register.root(Log::User), "{file}");
        if base_of(file).is_none() {
            assert_eq!(
                format_hash(&register.root(Log::User)),
                expected["v1_root_hash"],
                "{file}"
            );
        }
    }
}

#[test]
fn the_incremental_pair_verifies_in_order() {
    let pair = &expected()["incremental_rsf_pair"];
    let base = load(pair["base"].as_str().unwrap());
    assert_eq!(base.root(Log::User), hash(&pair["base_root"]));
    let old = (base.size(Log::User), base.root(Log::User));
    let both = load_onto(base, pair["update"].as_str().unwrap());
    assert_eq!(both.root(Log::User), hash(&pair["root_after_update"]));
    assert_eq!(
        both.record(Log::System, "custodian").unwrap().items[0].as_str(),
        r#"{"custodian":"Joseph Bloggs"}"#
    );
    // The update extends the base: a consistency proof between the two holds.
    let new_size = both.size(Log::User);
    let edge = Edge::from_reader(both.hashes(Log::User), new_size).unwrap();
    let proof = consistency_proof(both.hashes(Log::User), &edge, old.0).unwrap();
    verify_consistency(old.0, new_size, &proof, &old.1, &both.root(Log::User)).unwrap();
    // Applying the update alone fails at its first line, which asserts the base's root.
    let update = regis_fixtures::read(format!("registers/{}", pair["update"].as_str().unwrap()));
    let error = Register::new()
        .load_rsf(&update[..], Policy::IMPORT)
        .unwrap_err();
    assert_eq!(error.line, 1);
    assert!(
        error
            .to_string()
            .contains("does not match the root of the 0 user entries"),
        "{error}"
    );
}

#[test]
fn published_proofs_of_the_country_register() {
    let register = load("openregister-java/country-data.rsf");
    let vectors = &expected()["published_vectors"];
    let published = |what: &str| -> &Json {
        &vectors
            .as_array()
            .unwrap()
            .iter()
            .find(|vector| vector["what"].as_str().unwrap().starts_with(what))
            .unwrap()["value"]
    };
    let hashes = |json: &Json| -> Vec<Hash> { json.as_array().unwrap().iter().map(hash).collect() };
    let stored = register.hashes(Log::User);
    assert_eq!(register.size(Log::User), 208);
    assert_eq!(
        register.root(Log::User),
        hash(published("root hash of country register at 208"))
    );

    let edge = Edge::from_reader(stored, 200).unwrap();
    let path = inclusion_proof(stored, &edge, 9).unwrap();
    assert_eq!(
        path,
        hashes(published(
            "entry proof (audit path) for entry 10 at log size 200"
        ))
    );
    let leaf = register.entry(Log::User, 10).unwrap().entry.leaf_hash(10);
    verify_inclusion(&leaf, 9, 200, &path, &edge.root()).unwrap();

    let consistency = consistency_proof(stored, &edge, 197).unwrap();
    assert_eq!(
        consistency,
        hashes(published("consistency proof 197 -> 200"))
    );
    let old_root = Edge::from_reader(stored, 197).unwrap().root();
    verify_consistency(197, 200, &consistency, &old_root, &edge.root()).unwrap();

    let example = &expected()["example_leaf"];
    let first = register.entry(Log::User, 1).unwrap().entry;
    assert_eq!(
        String::from_utf8(first.leaf_bytes(1)).unwrap(),
        example["leaf_input_utf8"].as_str().unwrap()
    );
    assert_eq!(
        format_hash(&first.leaf_hash(1)),
        format!(
            "sha-256:{}",
            example["leaf_hash_sha256_0x00"].as_str().unwrap()
        )
    );
}

#[test]
fn computed_proofs_of_the_first_seven_entries() {
    let register = load("openregister-java/country-data.rsf");
    let leaves: Vec<Hash> = register.entries(Log::User)[..7]
        .iter()
        .zip(1..)
        .map(|(entry, number)| leaf_hash(&entry.leaf_bytes(number)))
        .collect();
    let stored = regis_merkle::MemoryHashes::from_leaf_hashes(leaves);
    let proofs = &expected()["computed_proofs"]["country_first_7"];
    for (size, root) in proofs["roots"].as_object().unwrap() {
        let size: u64 = size.parse().unwrap();
        assert_eq!(
            Edge::from_reader(&stored, size).unwrap().root(),
            hash(root),
            "root at {size}"
        );
    }
    let edge = Edge::from_reader(&stored, 7).unwrap();
    for (path, expected) in proofs["inclusion"].as_object().unwrap() {
        let number: u64 = path.split('/').next().unwrap().parse().unwrap();
        let proof = inclusion_proof(&stored, &edge, number - 1).unwrap();
        assert_eq!(
            proof,
            expected
                .as_array()
                .unwrap()
                .iter()
                .map(hash)
                .collect::<Vec<_>>(),
            "inclusion {path}"
        );
    }
    for (path, expected) in proofs["consistency"].as_object().unwrap() {
        let old: u64 = path.split('/').next().unwrap().parse().unwrap();
        let proof = consistency_proof(&stored, &edge, old).unwrap();
        assert_eq!(
            proof,
            expected
                .as_array()
                .unwrap()
                .iter()
                .map(hash)
                .collect::<Vec<_>>(),
            "consistency {path}"
        );
    }
}

#[test]
fn published_item_hashes() {
    for vector in expected()["published_vectors"].as_array().unwrap() {
        let what = vector["what"].as_str().unwrap();
        if let Some(json) = what.strip_prefix("v1 item hash of ") {
            let item = Item::from_canonical(json).unwrap();
            assert_eq!(item.hash().to_string(), vector["value"], "{what}");
        }
    }
}

/// Each command written back as it was read gives the file's bytes.
#[test]
fn every_file_writes_back_byte_for_byte() {
    let mut files = regis_fixtures::files("registers", ".rsf");
    files.extend(regis_fixtures::files(
        "registers/openregister-java/serialized-negative",
        ".tsv",
    ));
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let Ok(commands) = RsfReader::new(&bytes[..]).collect::<Result<Vec<_>, _>>() else {
            continue; // the deliberately malformed negative fixtures
        };
        let mut writer = RsfWriter::new(Vec::new());
        for (_, command) in &commands {
            writer.write_command(command).unwrap();
        }
        let mut original = bytes.clone();
        if !original.ends_with(b"\n") {
            original.push(b'\n');
        }
        assert_eq!(
            String::from_utf8(writer.into_inner()).unwrap(),
            String::from_utf8(original).unwrap(),
            "{}",
            path.display()
        );
    }
}

/// The production dumps are GOV.UK's full-dump layout (later authoring-style
/// additions apart): `write_dump`, given the dump's items in the dump's
/// order, reproduces that part byte for byte, and the rest follows as written.
#[test]
fn production_dumps_are_the_dump_layout() {
    for path in regis_fixtures::files("registers/registry-data", ".rsf") {
        let bytes = std::fs::read(&path).unwrap();
        let commands: Vec<Command> = RsfReader::new(&bytes[..])
            .map(|result| result.unwrap().1)
            .collect();
        // The dump ends at its second assertion.
        let dump_end = commands
            .iter()
            .enumerate()
            .filter(|(_, command)| matches!(command, Command::AssertRootHash(_)))
            .nth(1)
            .unwrap()
            .0
            + 1;
        let (dump, rest) = commands.split_at(dump_end);
        let items: Vec<&Item> = dump
            .iter()
            .filter_map(|command| match command {
                Command::AddItem(item) => Some(item),
                _ => None,
            })
            .collect();
        let entries = |log| -> Vec<&Entry> {
            dump.iter()
                .filter_map(|command| match command {
                    Command::AppendEntry(entry) if entry.log == log => Some(entry),
                    _ => None,
                })
                .collect()
        };
        let (out, root) =
            write_dump(Vec::new(), items, entries(Log::System), entries(Log::User)).unwrap();
        assert_eq!(dump.last(), Some(&Command::AssertRootHash(root)));
        let mut writer = RsfWriter::resume(out, Frontier::new());
        for command in rest {
            writer.write_command(command).unwrap();
        }
        assert_eq!(writer.into_inner(), bytes, "{}", path.display());
    }
}

fn same_register(a: &Register, b: &Register, what: &str) {
    for log in [Log::User, Log::System] {
        assert_eq!(a.entries(log), b.entries(log), "{what}: {log} entries");
        assert_eq!(a.root(log), b.root(log), "{what}: {log} root");
    }
    assert_eq!(a.item_count(), b.item_count(), "{what}: items");
    assert_eq!(a.schema(), b.schema(), "{what}: schema");
}

/// Regis's own dump of any register, and a chain of its deltas, reload to
/// the same register.
#[test]
fn dumps_and_deltas_reload_to_the_same_register() {
    for expected in expected()["rsf_roots"].as_array().unwrap() {
        let file = expected["file"].as_str().unwrap();
        let register = match base_of(file) {
            Some(base) => load_onto(load(&base), file),
            None => load(file),
        };
        let dump = register.write_dump(Vec::new()).unwrap();
        let mut reloaded = Register::new();
        reloaded
            .load_rsf(&dump[..], Policy::IMPORT)
            .unwrap_or_else(|error| panic!("{file}: dump: {error}"));
        same_register(&register, &reloaded, file);

        // A chain from 0 ends with every entry of both logs exactly once,
        // whether each delta is told the system size the reader holds or
        // assumes it (nothing is appended between the deltas here).
        let size = register.size(Log::User);
        for told in [true, false] {
            if !told && size / 3 == 0 {
                // Every delta of this chain is from 0, which by default
                // assumes nothing held.
                continue;
            }
            let mut chained = Register::new();
            for (a, b) in [(0, size / 3), (size / 3, size / 3), (size / 3, size)] {
                let held = told.then(|| chained.size(Log::System));
                let delta = register.write_delta(Vec::new(), a, b, held).unwrap();
                let text = String::from_utf8(delta.clone()).unwrap();
                assert!(
                    text.starts_with("assert-root-hash\t")
                        && text
                            .lines()
                            .last()
                            .unwrap()
                            .starts_with("assert-root-hash\t")
                );
                chained
                    .load_rsf(&delta[..], Policy::IMPORT)
                    .unwrap_or_else(|error| panic!("{file}: delta {a}/{b}: {error}"));
            }
            for log in [Log::User, Log::System] {
                assert_eq!(chained.entries(log), register.entries(log), "{file}");
                assert_eq!(chained.root(log), register.root(log), "{file}");
            }
            if size > 0 && file.starts_with("registry-data/") {
                same_register(&register, &chained, file);
            }
        }
        let system_size = register.size(Log::System);
        assert!(matches!(
            register.write_delta(Vec::new(), 0, size, Some(system_size + 1)),
            Err(DeltaError::SystemRange { .. })
        ));
    }
}

/// The real registers obey their own definitions: every user item validates
/// against the schema its system entries define, keys follow the key rule,
/// and every entry's key is its item's primary key.
#[test]
fn real_data_validates_under_its_definitions() {
    let policy = Policy {
        validate_items: true,
        check_keys: true,
        ..Policy::IMPORT
    };
    for path in regis_fixtures::files("registers/registry-data", ".rsf") {
        let bytes = std::fs::read(&path).unwrap();
        let mut register = Register::new();
        register
            .load_rsf(&bytes[..], policy)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let schema = register.schema();
        let name = schema.name().unwrap();
        assert_eq!(
            format!("register-{name}.rsf").trim_start_matches("register-"),
            path.file_name().unwrap().to_str().unwrap()
        );
        for field in &schema.definition().unwrap().fields {
            assert!(
                schema.field(field).is_some(),
                "{}: field {field}",
                path.display()
            );
        }
    }
}

#[test]
fn records_and_histories() {
    let register = load("registry-data/country.rsf");
    let records: Vec<_> = register.records(Log::User).collect();
    assert_eq!(records.len(), 199);
    let gb = register.record(Log::User, "GB").unwrap();
    assert_eq!(
        gb.items[0].get_one("name").as_deref(),
        Some("United Kingdom")
    );
    assert!(records.contains(&gb));
    let history: Vec<_> = register.history(Log::User, "CZ").collect();
    assert_eq!(history.len(), 2);
    assert_eq!(
        history.last(),
        Some(&register.record(Log::User, "CZ").unwrap())
    );
    assert_eq!(register.history(Log::User, "XX").count(), 0);
    // Entries are stored as their leaves; the leaves read back.
    for (number, entry) in (1..).zip(register.entries(Log::System)) {
        assert_eq!(
            Entry::parse_leaf(Log::System, &entry.leaf_bytes(number)),
            Ok((number, entry.clone()))
        );
    }
}
