//! The validity rules of loading: the reference implementation's own load
//! fixtures (`serialized-negative/`), each accepted or rejected as it was,
//! with the line and the reason; and the policy rules on real and made-up
//! documents. A rejected load changes nothing. And the rules of register
//! names.

use regis_model::rsf::{
    LoadWarning, LoadWarningKind, LoadWarnings, Policy, RsfError, RsfErrorKind,
};
use regis_model::{
    InvalidRegisterName, ItemError, ItemHash, Log, Register, RegisterName, SchemaError,
    ValidationError, format_hash,
};

fn fixture(name: &str) -> Vec<u8> {
    regis_fixtures::read(format!(
        "registers/openregister-java/serialized-negative/{name}"
    ))
}

/// Loads `bytes` into `register`, checking that a failure leaves it as it was.
fn load(register: &mut Register, bytes: &[u8], policy: Policy) -> Result<(), RsfError> {
    let before = (
        register.item_count(),
        register.size(Log::User),
        register.size(Log::System),
    );
    let result = register.load_rsf(bytes, policy).map(|_| ());
    if result.is_err() {
        let after = (
            register.item_count(),
            register.size(Log::User),
            register.size(Log::System),
        );
        assert_eq!(before, after, "a failed load changed the register");
    }
    result
}

#[test]
fn valid_fixtures_load() {
    let mut register = Register::new();
    load(
        &mut register,
        &fixture("register-register-rsf.tsv"),
        Policy::IMPORT,
    )
    .unwrap();
    assert_eq!(register.size(Log::User), 2);
    assert_eq!(register.item_count(), 2);

    let mut register = Register::new();
    load(
        &mut register,
        &fixture("valid-register-escaped.tsv"),
        Policy::IMPORT,
    )
    .unwrap();
    let record = register.record(Log::User, "402019").unwrap();
    assert_eq!(
        record.items[0].get_one("name").as_deref(),
        Some("New College\\New College School")
    );
}

#[test]
fn a_non_canonical_item_is_rejected() {
    let error = load(
        &mut Register::new(),
        &fixture("register-register-non-canonical-item.tsv"),
        Policy::IMPORT,
    )
    .unwrap_err();
    assert_eq!(error.line, 1);
    let RsfErrorKind::Item(ItemError::NotCanonical { canonical, .. }) = &error.kind else {
        panic!("{error}")
    };
    assert_eq!(
        canonical,
        r#"{"register":"ft_openregister_test","text":"SomeText"}"#
    );
}

/// The reference implementation refused an orphan item; so does a strict
/// import (and new writes: `published_slips_load_with_warnings_and_strict_policies_refuse_them`).
/// An import of history takes it with a warning that names the same line
/// and item.
#[test]
fn an_orphan_item_is_refused_strictly_and_taken_with_a_warning_from_history() {
    // The hash the reference implementation named in its error.
    let orphan = "sha-256:d00d4b610e9b5af160a7e5e836eec9e12626cac61823eda1c3ec9a59a78eefaa";
    let bytes = fixture("register-register-orphan-rsf.tsv");
    let error = load(&mut Register::new(), &bytes, Policy::IMPORT_STRICT).unwrap_err();
    assert_eq!(error.line, 2);
    let RsfErrorKind::OrphanItem(hash) = &error.kind else {
        panic!("{error}")
    };
    assert_eq!(hash.to_string(), orphan);
    let mut register = Register::new();
    let summary = register.load_rsf(&bytes[..], Policy::IMPORT).unwrap();
    assert_eq!(summary.warnings.count(), 1);
    assert_eq!(
        summary.warnings.first()[0],
        LoadWarning {
            line: 2,
            kind: LoadWarningKind::OrphanItem(
                regis_model::parse_hash(orphan).map(ItemHash).unwrap()
            ),
        }
    );
    assert_eq!(
        summary.warnings.first()[0].to_string(),
        format!(
            "RSF line 2: item {orphan} is added but no entry after it references it; the item is kept, in no log"
        )
    );
    // Kept, as the target had it from its line on.
    assert!(
        register
            .item(&ItemHash(regis_model::parse_hash(orphan).unwrap()))
            .is_some()
    );
}

#[test]
fn a_failed_root_assertion_rolls_the_load_back() {
    let error = load(
        &mut Register::new(),
        &fixture("register-register-rsf-invalid-root-hash.tsv"),
        Policy::IMPORT,
    )
    .unwrap_err();
    assert_eq!(error.line, 1);
    assert!(
        matches!(error.kind, RsfErrorKind::RootMismatch { size: 0, .. }),
        "{error}"
    );
}

/// The fixtures' items have no field definitions (the reference took them
/// from its environment), so only the ordering rule is added to import's.
const FREEZE: Policy = Policy {
    freeze_definition: true,
    ..Policy::IMPORT
};

#[test]
fn the_register_text_may_change_after_user_entries() {
    let mut register = Register::named("register");
    load(
        &mut register,
        &fixture("register-register-valid-entry-ordering.rsf"),
        FREEZE,
    )
    .unwrap();
    let definition = register.schema().register("register").unwrap();
    assert_eq!(
        definition.item.get_one("text").as_deref(),
        Some("Register of registers X")
    );
}

#[test]
fn other_definition_changes_after_user_entries_are_rejected() {
    let bytes = fixture("register-register-invalid-entry-ordering.rsf");
    let mut register = Register::named("register");
    let error = load(&mut register, &bytes, FREEZE).unwrap_err();
    assert_eq!(error.line, 14);
    assert_eq!(
        error.to_string(),
        "RSF line 14: system entry `register:register` changes `phase` after user entries exist; only `text` may change"
    );
    // As history, the same document loads.
    load(&mut Register::named("register"), &bytes, Policy::IMPORT).unwrap();
}

/// Real histories repeat an entry's item for the same key; history keeps
/// them, new appends may refuse them.
#[test]
fn repeated_items_are_a_policy() {
    let bytes = regis_fixtures::read("registers/registry-data/country.rsf");
    let policy = Policy {
        allow_repeated_items: false,
        ..Policy::IMPORT
    };
    let error = load(&mut Register::new(), &bytes, policy).unwrap_err();
    assert_eq!(error.line, 239);
    assert!(
        matches!(&error.kind, RsfErrorKind::RepeatedItem { key } if key == "field:country"),
        "{error}"
    );
}

/// A small register built in the test: a definition and some entries.
fn colour_register() -> Register {
    let items = [
        r#"{"name":"colour"}"#,
        r#"{"cardinality":"1","datatype":"string","field":"colour"}"#,
        r#"{"cardinality":"1","datatype":"integer","field":"wavelength"}"#,
        r#"{"fields":["colour","wavelength"],"register":"colour"}"#,
    ];
    let keys = [
        "name",
        "field:colour",
        "field:wavelength",
        "register:colour",
    ];
    let mut rsf = String::new();
    for (item, key) in items.iter().zip(keys) {
        let hash = regis_model::Item::from_canonical(item).unwrap().hash();
        rsf.push_str(&format!(
            "add-item\t{item}\nappend-entry\tsystem\t{key}\t2020-01-01T00:00:00Z\t{hash}\n"
        ));
    }
    let mut register = Register::new();
    register.load_rsf(rsf.as_bytes(), Policy::APPEND).unwrap();
    register
}

fn user_entry(key: &str, item: &str) -> String {
    let hash = regis_model::Item::from_canonical(item).unwrap().hash();
    format!("add-item\t{item}\nappend-entry\tuser\t{key}\t2020-01-02T00:00:00Z\t{hash}\n")
}

#[test]
fn appends_are_validated_against_the_definition() {
    let mut register = colour_register();
    load(
        &mut register,
        user_entry("red", r#"{"colour":"red","wavelength":"700"}"#).as_bytes(),
        Policy::APPEND,
    )
    .unwrap();
    let cases = [
        (user_entry("red", r#"{"colour":"red","wavelength":"700"}"#), "points at the item its record already has"),
        (user_entry("blue", r#"{"colour":"blue","wavelength":"4.5e2"}"#), "`4.5e2` is not a valid integer"),
        (user_entry("blue", r#"{"colour":"blue","size":"1"}"#), "field `size` is not one of register `colour`'s fields"),
        (user_entry("blue", r#"{"colour":"red"}"#), "the primary-key field `colour` is `red` but the entry's key is `blue`"),
        (user_entry("bl ue", r#"{"colour":"bl ue"}"#), "key `bl ue` is not valid"),
        (
            "append-entry\tuser\tblue\t2020-01-02T00:00:00Z\tsha-256:0000000000000000000000000000000000000000000000000000000000000000\n".into(),
            "references item sha-256:0000000000000000000000000000000000000000000000000000000000000000, which no add-item line before it added",
        ),
        ("add-item\t{\"a\":\"b\"}\nadd-item\t{\"colour\":\"x\"}\n".into(), "RSF line 1: item sha-256:"),
    ];
    for (rsf, message) in cases {
        let error = load(&mut register, rsf.as_bytes(), Policy::APPEND).unwrap_err();
        assert!(error.to_string().contains(message), "{rsf}: {error}");
    }
    assert_eq!(register.size(Log::User), 1);
    // The same items pass as history, where only RSF's own rules hold.
    load(
        &mut register,
        user_entry("blue", r#"{"colour":"blue","wavelength":"4.5e2"}"#).as_bytes(),
        Policy::IMPORT,
    )
    .unwrap();
    let error = register
        .schema()
        .validate("blue", register.record(Log::User, "blue").unwrap().items[0]);
    assert!(
        matches!(error, Err(ValidationError::Datatype { ref field, .. }) if field == "wavelength")
    );
}

#[test]
fn system_entries_must_be_definitions() {
    let mut register = colour_register();
    let bad = user_entry("x", r#"{"a":"b"}"#).replace("\tuser\tx\t", "\tsystem\tcolour\t");
    for policy in [Policy::IMPORT_STRICT, Policy::APPEND] {
        let error = load(&mut register, bad.as_bytes(), policy).unwrap_err();
        assert!(
            error.to_string().contains("`colour` is not a system key"),
            "{error}"
        );
    }
    let bad = user_entry(
        "field:size",
        r#"{"cardinality":"2","datatype":"string","field":"size"}"#,
    )
    .replace("\tuser\t", "\tsystem\t");
    let error = load(&mut register, bad.as_bytes(), Policy::IMPORT).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("`cardinality` must be `1` or `n`"),
        "{error}"
    );
    let misnamed = user_entry(
        "field:size",
        r#"{"cardinality":"1","datatype":"string","field":"length"}"#,
    )
    .replace("\tuser\t", "\tsystem\t");
    let error = load(&mut register, misnamed.as_bytes(), Policy::APPEND).unwrap_err();
    assert!(
        error.to_string().contains("`field` must be `size`"),
        "{error}"
    );
    load(&mut register, misnamed.as_bytes(), Policy::IMPORT).unwrap();
}

/// An entry whose v1 leaf would not fit an entry bundle's u16 length is
/// refused by the loader, on every path and policy, naming the line and the
/// length; one byte shorter passes.
#[test]
fn an_entry_too_long_for_a_bundle_is_refused_at_its_line() {
    let timestamp = "2020-01-02T00:00:00Z".parse().unwrap();
    let hash = regis_model::ItemHash::of(b"{}");
    // Entry 2 of the user log, as the colour register's next entry is.
    let base = regis_model::Entry::new(Log::User, "", timestamp, hash)
        .leaf_bytes(2)
        .len();
    let longest = regis_model::MAX_LEAF_BYTES - base;
    for policy in [Policy::APPEND, Policy::IMPORT] {
        for (key_len, fits) in [(longest, true), (longest + 1, false), (70_000, false)] {
            let mut register = colour_register();
            load(
                &mut register,
                user_entry("red", r#"{"colour":"red","wavelength":"700"}"#).as_bytes(),
                policy,
            )
            .unwrap();
            let key = "k".repeat(key_len);
            let rsf = user_entry(&key, &format!(r#"{{"colour":"{key}"}}"#));
            let result = load(&mut register, rsf.as_bytes(), policy);
            if fits {
                result.unwrap();
                let record = register.record(Log::User, &key).unwrap();
                assert_eq!(
                    record.entry.leaf_bytes(2).len(),
                    regis_model::MAX_LEAF_BYTES
                );
                continue;
            }
            let error = result.unwrap_err();
            assert_eq!(error.line, 2, "{error}");
            assert!(
                matches!(error.kind, RsfErrorKind::EntryTooLong { len, key_len: k }
                    if len == base + key_len && k == key_len),
                "{error}"
            );
            assert!(
                error.to_string().contains(&format!(
                    "leaf would be {} bytes; an entry bundle holds at most 65535",
                    base + key_len
                )),
                "{error}"
            );
        }
    }
}

/// A system entry `key` of `item`, as commands (keys that RSF text cannot
/// carry, such as ones with a newline, are built directly).
fn system_entry(key: &str, item: &str) -> Vec<regis_model::rsf::Command> {
    use regis_model::rsf::Command;
    let item = regis_model::Item::parse(item).unwrap();
    let entry = regis_model::Entry::new(
        Log::System,
        key,
        "2020-01-03T00:00:00Z".parse().unwrap(),
        item.hash(),
    );
    vec![Command::AddItem(item), Command::AppendEntry(entry)]
}

/// New definitions (`Policy::APPEND`) hold short names and texts without
/// control characters, and known datatypes; published history
/// (`Policy::IMPORT`) keeps whatever it has. Boundaries: a name of 100
/// bytes and a text of 10,000 pass, one byte more does not.
#[test]
fn new_definitions_hold_short_printable_names_and_known_datatypes() {
    let name_ok = "n".repeat(regis_model::MAX_NAME_BYTES);
    let name_long = "n".repeat(regis_model::MAX_NAME_BYTES + 1);
    let name_huge = "n".repeat(70_000);
    let text_ok = "t".repeat(regis_model::MAX_TEXT_BYTES);
    let text_long = "t".repeat(regis_model::MAX_TEXT_BYTES + 1);
    let field = |name: &str, datatype: &str, text: &str| {
        (
            format!("field:{name}"),
            serde_json::json!({"cardinality": "1", "datatype": datatype, "field": name, "text": text})
                .to_string(),
        )
    };
    let cases: Vec<((String, String), Option<&str>)> = vec![
        (field(&name_ok, "string", &text_ok), None),
        (field("size", "integer", "Size in cm"), None),
        (
            field("a\nb\tc", "string", "x"),
            Some("`field` holds the control character U+000A"),
        ),
        (
            field(&name_long, "string", "x"),
            Some("`field` is 101 bytes long; at most 100 are allowed"),
        ),
        // (As history, too long a key for an entry bundle.)
        (
            field(&name_huge, "string", "x"),
            Some("`field` is 70000 bytes long; at most 100 are allowed"),
        ),
        (
            field("size", "string", &text_long),
            Some("`text` is 10001 bytes long; at most 10000 are allowed"),
        ),
        (
            field("size", "string", "one\u{7f}two"),
            Some("`text` holds the control character U+007F"),
        ),
        (
            field("size", "polygon", "x"),
            Some("datatype `polygon` is not one of string, text"),
        ),
        (
            ("custodian".into(), r#"{"custodian":"A\r\nB"}"#.into()),
            Some("`custodian` holds the control character U+000D"),
        ),
        (
            (
                "register:colour".into(),
                r#"{"fields":["colour",""],"register":"colour"}"#.into(),
            ),
            Some("`fields` is empty"),
        ),
    ];
    for ((key, item), refusal) in cases {
        let what = format!(
            "{}: {}",
            &key[..key.len().min(40)],
            &item[..item.len().min(80)]
        );
        let result = colour_register().apply(system_entry(&key, &item), Policy::APPEND);
        match refusal {
            None => {
                result.unwrap();
            }
            Some(message) => {
                let error = result.unwrap_err();
                assert_eq!(error.line, 2, "{what}: {error}");
                assert!(error.to_string().contains(message), "{what}: {error}");
                // History is taken as it is, if its leaf fits a bundle.
                match colour_register().apply(system_entry(&key, &item), Policy::IMPORT) {
                    Err(error) if key.len() > 65_000 => {
                        assert!(matches!(error.kind, RsfErrorKind::EntryTooLong { .. }))
                    }
                    result => {
                        result.unwrap();
                    }
                }
            }
        }
    }
}

/// Once user entries exist, new writes may not change a field's datatype
/// or cardinality (it would make the entries written invalid and their keys
/// impossible to update); its text may change, any change may before the
/// first user entry, and history (`Policy::IMPORT`) is taken as it is.
#[test]
fn a_fields_datatype_and_cardinality_are_fixed_once_entries_exist() {
    let field = |name: &str, cardinality: &str, datatype: &str| {
        system_entry(
            &format!("field:{name}"),
            &format!(
                r#"{{"cardinality":"{cardinality}","datatype":"{datatype}","field":"{name}","text":"changed"}}"#
            ),
        )
    };
    let with_entry = || {
        let mut register = colour_register();
        load(
            &mut register,
            user_entry("red", r#"{"colour":"red","wavelength":"700"}"#).as_bytes(),
            Policy::APPEND,
        )
        .unwrap();
        register
    };
    let cases = [
        (
            field("colour", "1", "integer"),
            Some("`field:colour` changes `datatype` from `string` to `integer`"),
        ),
        (
            field("wavelength", "n", "integer"),
            Some("`field:wavelength` changes `cardinality` from `1` to `n`"),
        ),
        (field("wavelength", "1", "integer"), None),
        (field("brightness", "n", "integer"), None),
    ];
    for (commands, refusal) in cases {
        let result = with_entry().apply(commands.clone(), Policy::APPEND);
        match refusal {
            None => {
                result.unwrap();
            }
            Some(message) => {
                let error = result.unwrap_err();
                assert!(
                    matches!(error.kind, RsfErrorKind::FieldChanged { .. }),
                    "{error}"
                );
                assert!(error.to_string().contains(message), "{error}");
                with_entry()
                    .apply(commands.clone(), Policy::IMPORT)
                    .unwrap();
                // Before any user entry, the definition is still open.
                colour_register().apply(commands, Policy::APPEND).unwrap();
            }
        }
    }
}

/// Each of the project's quirk fixtures (slips that published history
/// holds): an import loads it with its published roots and a warning at
/// each slip's line; a strict import and new writes refuse it at the first
/// slip. The slips change nothing but themselves: the document with their
/// lines taken out gives the same definition, the same user log, and (for
/// orphans) the same system log.
#[test]
fn published_slips_load_with_warnings_and_strict_policies_refuse_them() {
    for quirk in regis_fixtures::quirks() {
        let name = quirk.path.display().to_string();
        let bytes = std::fs::read(&quirk.path).unwrap();
        let mut register = Register::new();
        let summary = register
            .load_rsf(&bytes[..], Policy::IMPORT)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(
            [
                summary.items_added,
                summary.appended.user,
                summary.appended.system,
                summary.assertions
            ],
            [
                quirk.items,
                quirk.user_entries,
                quirk.system_entries,
                quirk.assertions
            ],
            "{name}"
        );
        assert_eq!(format_hash(&register.root(Log::User)), quirk.root, "{name}");
        assert_eq!(
            format_hash(&register.root(Log::System)),
            quirk.system_root,
            "{name}"
        );
        let warned: Vec<(u64, &str)> = summary
            .warnings
            .first()
            .iter()
            .map(|warning| {
                let kind = match &warning.kind {
                    LoadWarningKind::UnknownSystemKey { .. } => "unknown-system-key",
                    LoadWarningKind::OrphanItem(hash) => {
                        let expected = quirk.warnings.iter().find(|w| w.line == warning.line);
                        assert_eq!(
                            expected.and_then(|w| w.item.clone()),
                            Some(hash.to_string()),
                            "{name}"
                        );
                        "orphan-item"
                    }
                };
                (warning.line, kind)
            })
            .collect();
        let expected: Vec<(u64, &str)> = quirk
            .warnings
            .iter()
            .map(|w| (w.line, w.kind.as_str()))
            .collect();
        assert_eq!(warned, expected, "{name}");
        assert_eq!(summary.warnings.count(), expected.len() as u64, "{name}");

        let first = &quirk.warnings[0];
        for policy in [Policy::IMPORT_STRICT, Policy::APPEND] {
            let error = load(&mut Register::new(), &bytes, policy).unwrap_err();
            assert_eq!(error.line, first.line, "{name}: {error}");
            let refused = match &error.kind {
                RsfErrorKind::Schema(SchemaError::UnknownKey { .. }) => "unknown-system-key",
                RsfErrorKind::OrphanItem(_) => "orphan-item",
                _ => panic!("{name}: {error}"),
            };
            assert_eq!(refused, first.kind, "{name}");
        }

        let text = String::from_utf8(bytes).unwrap();
        let without: String = (1u64..)
            .zip(text.split_inclusive('\n'))
            .filter(|(line, _)| !quirk.warnings.iter().any(|w| w.line == *line))
            .map(|(_, text)| text)
            .collect();
        let mut clean = Register::new();
        let clean_summary = clean
            .load_rsf(without.as_bytes(), Policy::IMPORT_STRICT)
            .unwrap_or_else(|error| panic!("{name} without its slips: {error}"));
        assert!(clean_summary.warnings.is_empty(), "{name}");
        assert_eq!(clean.schema(), register.schema(), "{name}");
        assert_eq!(clean.root(Log::User), register.root(Log::User), "{name}");
        let slips = quirk.warnings.len();
        match first.kind.as_str() {
            "orphan-item" => {
                assert_eq!(clean.root(Log::System), register.root(Log::System));
                assert_eq!(clean.item_count() + slips, register.item_count(), "{name}");
            }
            _ => assert_eq!(
                clean.size(Log::System) + slips as u64,
                register.size(Log::System),
                "{name}"
            ),
        }
    }
}

/// A document with a thousand slips keeps a count and the first
/// `LoadWarnings::KEPT` by line, whichever kind they are and in whatever
/// order they were found (orphans are found at the end, in no order).
#[test]
fn warnings_are_counted_and_the_first_kept_in_line_order() {
    let item = r#"{"a":"b"}"#;
    let hash = regis_model::Item::from_canonical(item).unwrap().hash();
    let mut rsf =
        format!("add-item\t{item}\nappend-entry\tsystem\tslip\t2020-01-01T00:00:00Z\t{hash}\n");
    for n in 0..1000 {
        rsf.push_str(&format!("add-item\t{{\"n\":\"{n}\"}}\n"));
    }
    let summary = Register::new()
        .load_rsf(rsf.as_bytes(), Policy::IMPORT)
        .unwrap();
    assert_eq!(summary.warnings.count(), 1001);
    let lines: Vec<u64> = summary.warnings.first().iter().map(|w| w.line).collect();
    assert_eq!(
        lines,
        (2..2 + LoadWarnings::KEPT as u64).collect::<Vec<_>>()
    );
    assert!(matches!(
        &summary.warnings.first()[0].kind,
        LoadWarningKind::UnknownSystemKey { key } if key == "slip"
    ));
}

#[test]
fn register_names_are_path_safe() {
    for good in [
        "country",
        "local-authority-eng",
        "information-sharing-agreement-0001",
        "a",
        "0",
    ] {
        assert_eq!(RegisterName::new(good).unwrap().as_str(), good);
    }
    for bad in [
        "",
        "-x",
        "Country",
        "a/b",
        "..",
        ".",
        "a b",
        "a_b",
        "é",
        &"x".repeat(65),
    ] {
        assert!(
            matches!(RegisterName::new(bad), Err(InvalidRegisterName(name)) if name == bad),
            "{bad:?}"
        );
    }
}
