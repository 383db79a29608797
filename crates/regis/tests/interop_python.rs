//! The Ministry of Justice's Python client of the GOV.UK Registers API
//! (PyPI `openregister-client`, pinned in `interop/python/requirements.txt`,
//! installed unchanged into a virtualenv under `target/`) against a live
//! `regis serve` holding the real `register`, `field`, `datatype` and
//! `country` registers. Given only where registers are, it discovers the
//! country register's fields and their types through the others, reads a
//! record, its history, an entry and an item through GOV.UK's old singular
//! paths (answered 301), and lists every record until the 404 past the last
//! page; what it saw is checked against what the RSF files say.

mod common;

use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ok, regis, serve, text};
use regis_model::EntryType;
use regis_model::rsf::{Command as Rsf, RsfReader};
use serde_json::{Value, json};

/// The registers served, from `registers/registry-data/`.
const REGISTERS: [&str; 4] = ["register", "field", "datatype", "country"];

/// A page size that makes the country register's 199 records several
/// pages, the last one short.
const PAGE_SIZE: u64 = 50;

/// A user entry as the RSF has it.
struct RsfEntry {
    number: u64,
    key: String,
    timestamp: String,
    item_hash: String,
}

/// What a register's RSF says: its items, and its user and system entries.
struct Register {
    items: BTreeMap<String, Value>,
    user: Vec<RsfEntry>,
    system: Vec<RsfEntry>,
}

impl Register {
    fn read(name: &str) -> Register {
        let bytes = regis_fixtures::read(format!("registers/registry-data/{name}.rsf"));
        let mut register = Register {
            items: BTreeMap::new(),
            user: Vec::new(),
            system: Vec::new(),
        };
        for command in RsfReader::new(BufReader::new(&bytes[..])) {
            match command.unwrap().1 {
                Rsf::AddItem(item) => {
                    let json = serde_json::from_str(item.as_str()).unwrap();
                    register.items.insert(item.hash().to_string(), json);
                }
                Rsf::AppendEntry(entry) => {
                    let log = match entry.entry_type {
                        EntryType::User => &mut register.user,
                        EntryType::System => &mut register.system,
                    };
                    log.push(RsfEntry {
                        number: log.len() as u64 + 1,
                        key: entry.key.clone(),
                        timestamp: entry.timestamp.as_str().to_owned(),
                        item_hash: entry.item_hashes[0].to_string(),
                    });
                }
                Rsf::AssertRootHash(_) => {}
            }
        }
        register
    }

    /// The latest entry of each key of `log`.
    fn records(log: &[RsfEntry]) -> BTreeMap<&str, &RsfEntry> {
        log.iter()
            .map(|entry| (entry.key.as_str(), entry))
            .collect()
    }

    /// The item of the latest entry of `key` in `log`.
    fn record_item(&self, log: &[RsfEntry], key: &str) -> &Value {
        &self.items[&Register::records(log)[key].item_hash]
    }
}

/// The class the client types a field of `datatype` with: its own
/// `Field.registry` (`openregister_client/fields.py`), the base `Field`
/// for a datatype it does not know.
fn client_class(datatype: &str) -> &'static str {
    match datatype {
        "string" => "StringField",
        "text" => "TextField",
        "url" => "URLField",
        "curie" => "CurieField",
        "integer" => "IntegerField",
        "datetime" => "DateTimeField",
        _ => "Field",
    }
}

/// The Python type the client gives a value of `datatype`.
fn client_type(datatype: &str, value: &str) -> &'static str {
    match (datatype, value.len()) {
        ("text", _) => "Text",
        ("curie", _) => "Curie",
        ("integer", _) => "int",
        ("datetime", 4) => "Year",
        ("datetime", 7) => "YearMonth",
        ("datetime", 10) => "date",
        ("datetime", _) => "datetime",
        _ => "str",
    }
}

/// The virtualenv with the pinned client, made by `interop/python/venv.sh`
/// (from PyPI) unless it is there already.
fn python() -> PathBuf {
    let interop = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/python");
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("interop-python");
    let made = Command::new("bash")
        .arg(interop.join("venv.sh"))
        .arg(&venv)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "interop/python/venv.sh {} failed (it needs python3 with venv, and PyPI):\n{}{}",
        venv.display(),
        text(&made.stdout),
        text(&made.stderr)
    );
    venv.join("bin/python")
}

#[test]
fn the_moj_python_client_reads_regis_unchanged() {
    let python = python();
    let data = tempfile::tempdir().unwrap();
    for name in REGISTERS {
        let file = regis_fixtures::path(format!("registers/registry-data/{name}.rsf"));
        ok(regis(&[
            "load",
            "--data",
            data.path().to_str().unwrap(),
            "--register",
            name,
            "--host",
            "regis.test",
            file.to_str().unwrap(),
        ]));
    }
    let server = serve(data.path(), "127.0.0.1:0");
    let template = format!("{}/registers/%(name)s/", server.url);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/python/client.py");
    // SU: a record whose item has a date, which the client types.
    let output = Command::new(&python)
        .arg(&script)
        .args([&template, "country", "SU", "NOPE", &PAGE_SIZE.to_string()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "client.py failed:\n{}",
        text(&output.stderr)
    );
    let saw: Value = serde_json::from_slice(&output.stdout).unwrap();

    let country = Register::read("country");
    let field = Register::read("field");
    let records = Register::records(&country.user);
    let su = records["SU"];

    // Discovery: through the register, field and datatype registers.
    assert_eq!(saw["discovered"], true, "{saw}");
    assert_eq!(saw["client"], "CountryRegister");
    assert_eq!(saw["total-records"], records.len());
    assert_eq!(saw["total-entries"], country.user.len());
    let definition = country.record_item(&country.system, "register:country");
    let fields: Vec<&str> = definition["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let mut expected_fields = serde_json::Map::new();
    for name in &fields {
        let defined = field.record_item(&field.user, name);
        let datatype = defined["datatype"].as_str().unwrap();
        expected_fields.insert(
            (*name).to_owned(),
            json!({
                "class": client_class(datatype),
                "cardinality": defined["cardinality"],
                "text": defined["text"],
            }),
        );
    }
    assert_eq!(saw["fields"], Value::Object(expected_fields));

    // A record (record/SU, moved to records/SU), typed by its fields.
    let su_item = &country.items[&su.item_hash];
    assert_eq!(
        saw["record"],
        json!({
            "index-entry-number": su.number.to_string(),
            "entry-number": su.number.to_string(),
            "entry-timestamp": su.timestamp,
            "key": "SU",
            "item": [su_item],
        })
    );
    let mut expected_typed = serde_json::Map::new();
    for (name, value) in su_item.as_object().unwrap() {
        let defined = field.record_item(&field.user, name);
        let value = value.as_str().unwrap();
        let datatype = defined["datatype"].as_str().unwrap();
        expected_typed.insert(
            name.clone(),
            json!({"type": client_type(datatype, value), "value": value}),
        );
    }
    assert_eq!(saw["record-typed"], Value::Object(expected_typed));
    assert!(
        saw["record-typed"]["end-date"]["type"] == "date",
        "{}",
        saw["record-typed"]
    );

    // Its history (record/SU/entries), `in`, and a record not there.
    let history: Vec<u64> = country
        .user
        .iter()
        .filter(|entry| entry.key == "SU")
        .map(|entry| entry.number)
        .collect();
    assert_eq!(saw["record-entries"], json!(history));
    assert_eq!(saw["contains"], json!({"SU": true, "NOPE": false}));
    assert_eq!(saw["missing-record"], Value::Null);

    // An entry (entry/1) and its item (item/sha-256:…); neither past them.
    let first = &country.user[0];
    assert_eq!(
        saw["entry"],
        json!({
            "index-entry-number": "1",
            "entry-number": "1",
            "entry-timestamp": first.timestamp,
            "key": first.key,
            "item-hash": [first.item_hash],
        })
    );
    assert_eq!(saw["missing-entry"], Value::Null);
    assert_eq!(saw["item-hash"], first.item_hash);
    assert_eq!(saw["item"], country.items[&first.item_hash]);
    assert_eq!(saw["missing-item"], Value::Null);

    // Every record once, in key order, over several pages, and the
    // listing ended at the 404 past the last one.
    assert!(records.len() as u64 > 2 * PAGE_SIZE);
    assert_eq!(saw["listing-ended"], true);
    assert_eq!(saw["listed"], json!(records.keys().collect::<Vec<_>>()));
}
