//! The validity rules of loading: the reference implementation's own load
//! fixtures (`serialized-negative/`), each accepted or rejected as it was,
//! with the line and the reason; and the policy rules on real and made-up
//! documents. A rejected load changes nothing.

use regis_model::rsf::{Policy, RsfError, RsfErrorKind};
use regis_model::{EntryType, ItemError, Register, ValidationError};

fn fixture(name: &str) -> Vec<u8> {
    regis_fixtures::read(format!(
        "registers/openregister-java/serialized-negative/{name}"
    ))
}

/// Loads `bytes` into `register`, checking that a failure leaves it as it was.
fn load(register: &mut Register, bytes: &[u8], policy: Policy) -> Result<(), RsfError> {
    let before = (
        register.item_count(),
        register.size(EntryType::User),
        register.size(EntryType::System),
    );
    let result = register.load_rsf(bytes, policy).map(|_| ());
    if result.is_err() {
        let after = (
            register.item_count(),
            register.size(EntryType::User),
            register.size(EntryType::System),
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
    assert_eq!(register.size(EntryType::User), 2);
    assert_eq!(register.item_count(), 2);

    let mut register = Register::new();
    load(
        &mut register,
        &fixture("valid-register-escaped.tsv"),
        Policy::IMPORT,
    )
    .unwrap();
    let record = register.record(EntryType::User, "402019").unwrap();
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

#[test]
fn an_orphan_item_is_rejected() {
    let error = load(
        &mut Register::new(),
        &fixture("register-register-orphan-rsf.tsv"),
        Policy::IMPORT,
    )
    .unwrap_err();
    assert_eq!(error.line, 2);
    let RsfErrorKind::OrphanItem(hash) = &error.kind else {
        panic!("{error}")
    };
    // The hash the reference implementation named in its error.
    assert_eq!(
        hash.to_string(),
        "sha-256:d00d4b610e9b5af160a7e5e836eec9e12626cac61823eda1c3ec9a59a78eefaa"
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
    assert_eq!(register.size(EntryType::User), 1);
    // The same items pass as history, where only RSF's own rules hold.
    load(
        &mut register,
        user_entry("blue", r#"{"colour":"blue","wavelength":"4.5e2"}"#).as_bytes(),
        Policy::IMPORT,
    )
    .unwrap();
    let error = register.schema().validate(
        "blue",
        register.record(EntryType::User, "blue").unwrap().items[0],
    );
    assert!(
        matches!(error, Err(ValidationError::Datatype { ref field, .. }) if field == "wavelength")
    );
}

#[test]
fn system_entries_must_be_definitions() {
    let mut register = colour_register();
    let bad = user_entry("x", r#"{"a":"b"}"#).replace("\tuser\tx\t", "\tsystem\tcolour\t");
    let error = load(&mut register, bad.as_bytes(), Policy::IMPORT).unwrap_err();
    assert!(
        error.to_string().contains("`colour` is not a system key"),
        "{error}"
    );
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
