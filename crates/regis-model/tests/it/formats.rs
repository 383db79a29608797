//! The v1 API bodies against the reference implementation's expected
//! responses (`openregister-java/api-shapes/`), and the custodians' TSV
//! files (`source-tsv-yaml/`) imported into entries whose items are exactly
//! those of the published registers.

use std::collections::HashSet;

use regis_model::api::{entries_csv, entries_json, items_csv, records_csv, records_json};
use regis_model::import::{Format, ImportErrorKind, Importer, commands};
use regis_model::rsf::{Command, Policy, RsfReader};
use regis_model::{Entry, Item, ItemHash, Log, Record, Register, Timestamp};
use serde_json::Value as Json;

fn shape(name: &str) -> String {
    regis_fixtures::read_string(format!("registers/openregister-java/api-shapes/{name}"))
}

fn shape_json(name: &str) -> Json {
    serde_json::from_str(&shape(name)).unwrap()
}

/// The two entries and items of the reference's API tests.
fn api_register() -> (Vec<Entry>, Vec<Item>) {
    let items = [
        r#"{"text":"The Entry 1","fields":["field1"],"register":"value1"}"#,
        r#"{"text":"The Entry 2","fields":["field1","field2"],"register":"value2"}"#,
    ]
    .map(|json| Item::parse(json).unwrap());
    let entries = [
        ("value1", "2016-03-01T01:02:03Z"),
        ("value2", "2016-03-02T02:03:04Z"),
    ]
    .iter()
    .zip(&items)
    .map(|((key, time), item)| Entry::new(Log::User, *key, time.parse().unwrap(), item.hash()))
    .collect();
    (entries, items.to_vec())
}

const FIELDS: [&str; 6] = [
    "register",
    "text",
    "registry",
    "phase",
    "copyright",
    "fields",
];

fn fields() -> Vec<String> {
    FIELDS.map(String::from).to_vec()
}

#[test]
fn item_hashes_are_those_of_the_reference() {
    let (entries, items) = api_register();
    let expected = [
        "sha-256:877d8bd1ab71dc6e48f64b4ca83c6d7bf645a1eb56b34d50fa8a833e1101eb18",
        "sha-256:63e5a0453b088e39265ca9f20fd03e2b206422e32989649adaca84426b531cd7",
    ];
    for ((entry, item), hash) in entries.iter().zip(&items).zip(expected) {
        assert_eq!(item.hash().to_string(), hash);
        assert_eq!(entry.item_hashes, vec![hash.parse::<ItemHash>().unwrap()]);
    }
    let item: Json = serde_json::from_str(items[0].as_str()).unwrap();
    assert_eq!(item, shape_json("item.json"));
}

#[test]
fn entries_bodies_byte_for_byte() {
    let (entries, _) = api_register();
    let numbered = || (1..).zip(&entries);
    assert_eq!(entries_json(numbered()), shape("entries.json").trim_end());
    assert_eq!(
        entries_json(numbered().take(1)),
        shape("entry.json").trim_end()
    );
    assert_eq!(
        entries_json(numbered().take(1)),
        shape("record-entries.json").trim_end()
    );
    assert_eq!(entries_csv(numbered()), shape("entries.csv"));
    assert_eq!(entries_csv(numbered().take(1)), shape("record-entries.csv"));
}

#[test]
fn records_bodies() {
    let (entries, items) = api_register();
    let record = |index: usize| Record {
        number: index as u64 + 1,
        entry: &entries[index],
        items: vec![&items[index]],
    };
    let json = |body: String| -> Json { serde_json::from_str(&body).unwrap() };
    assert_eq!(json(records_json([record(0)])), shape_json("record.json"));
    assert_eq!(
        json(records_json([record(1), record(0)])),
        shape_json("list.json")
    );
    assert_eq!(records_csv(&fields(), [record(0)]), shape("record.csv"));
    assert_eq!(
        records_csv(&fields(), [record(1), record(0)]),
        shape("list.csv")
    );
    assert_eq!(items_csv(&fields(), [&items[0]]), shape("item.csv"));
    // The same bodies from a register loaded through RSF.
    let mut register = Register::new();
    let rsf: Vec<Command> = items
        .iter()
        .cloned()
        .map(Command::AddItem)
        .chain(entries.iter().cloned().map(Command::AppendEntry))
        .collect();
    register.apply(rsf, Policy::IMPORT).unwrap();
    let records: Vec<_> = register.records(Log::User).collect();
    assert_eq!(records, vec![record(0), record(1)]);
    assert_eq!(
        json(records_json(records.into_iter().rev())),
        shape_json("list.json")
    );
}

/// A register holding only the system entries (the definition) of a
/// published RSF file; and the hashes of all its items.
fn definition_of(rsf: &str) -> (Register, HashSet<ItemHash>) {
    let bytes = regis_fixtures::read(format!("registers/{rsf}"));
    let commands: Vec<Command> = RsfReader::new(&bytes[..])
        .map(|result| result.unwrap().1)
        .collect();
    let mut all_items = HashSet::new();
    let mut system_items = HashSet::new();
    for command in &commands {
        match command {
            Command::AddItem(item) => {
                all_items.insert(item.hash());
            }
            Command::AppendEntry(entry) if entry.log == Log::System => {
                system_items.extend(entry.item_hashes.iter().copied());
            }
            _ => {}
        }
    }
    let definition = commands.into_iter().filter(|command| match command {
        Command::AddItem(item) => system_items.remove(&item.hash()),
        Command::AppendEntry(entry) => entry.log == Log::System,
        Command::AssertRootHash(_) => false,
    });
    let mut register = Register::new();
    register.apply(definition, Policy::IMPORT).unwrap();
    (register, all_items)
}

fn timestamp() -> Timestamp {
    "2021-03-01T12:00:00Z".parse().unwrap()
}

#[test]
fn custodian_tsv_files_import_to_the_published_items() {
    let pairs = [
        (
            "country-data_countries.tsv",
            "registry-data/country.rsf",
            206,
        ),
        (
            "country-data_territories.tsv",
            "registry-data/territory.rsf",
            79,
        ),
        (
            "local-authority-data_local-authority-eng.tsv",
            "registry-data/local-authority-eng.rsf",
            354,
        ),
        (
            "local-authority-data_local-authority-type.tsv",
            "registry-data/local-authority-type.rsf",
            11,
        ),
    ];
    for (tsv, rsf, rows) in pairs {
        let (mut register, published) = definition_of(rsf);
        let input = regis_fixtures::read(format!("registers/source-tsv-yaml/{tsv}"));
        let importer =
            Importer::new(&input[..], Format::Tsv, register.schema(), timestamp()).unwrap();
        let imported: Vec<(Item, Entry)> = importer.collect::<Result<_, _>>().unwrap();
        assert_eq!(imported.len(), rows, "{tsv}");
        for (item, entry) in &imported {
            assert!(
                published.contains(&item.hash()),
                "{tsv}: {item} is not a published item"
            );
            assert_eq!(entry.timestamp, timestamp());
        }
        // As new appends, every rule holds.
        let importer =
            Importer::new(&input[..], Format::Tsv, register.schema(), timestamp()).unwrap();
        let rsf: Vec<Command> = commands(importer).collect::<Result<_, _>>().unwrap();
        let summary = register
            .apply(rsf, Policy::APPEND)
            .unwrap_or_else(|error| panic!("{tsv}: {error}"));
        assert_eq!(summary.appended.user, rows as u64, "{tsv}");
    }
}

fn address_register() -> Register {
    let mut definition = vec![r#"{"name":"address"}"#.to_string()];
    let fields = [
        ("address", "string"),
        ("parent-address", "string"),
        ("primary-address", "string"),
        ("street", "string"),
        ("name", "string"),
        ("name-cy", "string"),
        ("point", "point"),
        ("end-date", "datetime"),
    ];
    for (field, datatype) in fields {
        definition.push(format!(
            r#"{{"cardinality":"1","datatype":"{datatype}","field":"{field}"}}"#
        ));
    }
    let names: Vec<String> = fields
        .iter()
        .map(|(field, _)| format!("\"{field}\""))
        .collect();
    definition.push(format!(
        r#"{{"fields":[{}],"register":"address"}}"#,
        names.join(",")
    ));
    let keys = ["name".to_string()]
        .into_iter()
        .chain(fields.iter().map(|(field, _)| format!("field:{field}")))
        .chain(["register:address".to_string()]);
    let rsf: Vec<Command> = definition
        .iter()
        .zip(keys)
        .flat_map(|(json, key)| {
            let item = Item::from_canonical(json).unwrap();
            let entry = Entry::new(Log::System, key, timestamp(), item.hash());
            [Command::AddItem(item), Command::AppendEntry(entry)]
        })
        .collect();
    let mut register = Register::new();
    register.apply(rsf, Policy::APPEND).unwrap();
    register
}

#[test]
fn tsv_has_no_escaping() {
    let mut register = address_register();
    let input = regis_fixtures::read("registers/source-tsv-yaml/serialization_address-small.tsv");
    let importer = Importer::new(&input[..], Format::Tsv, register.schema(), timestamp()).unwrap();
    let rsf: Vec<Command> = commands(importer).collect::<Result<_, _>>().unwrap();
    register.apply(rsf, Policy::APPEND).unwrap();
    let history: Vec<_> = register.history(Log::User, "9AQZJ3K").collect();
    let names: Vec<_> = history
        .iter()
        .map(|record| record.items[0].get_one("name").unwrap().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "THE \"PALLADIAN\" CHURCH",
            "\"ST MARYS CHURCH\"",
            "THE PALLADIAN CHURCH"
        ]
    );
    let remains = register.record(Log::User, "9AQZJ3M").unwrap();
    assert_eq!(
        remains.items[0].as_str(),
        r#"{"address":"9AQZJ3M","name":"ST LAWRENCE CHURCH REMAINS OF","point":"[51.8377189,-0.2673113]","street":"43070006"}"#
    );
}

#[test]
fn csv_quotes_and_cardinality_n() {
    let (mut register, _) = definition_of("registry-data/information-sharing-agreement-0001.rsf");
    let schema = register.schema().clone();
    let name = schema.name().unwrap().to_string();
    let many = schema
        .fields()
        .find(|field| field.cardinality == regis_model::Cardinality::Many)
        .unwrap()
        .name
        .clone();
    let csv = format!("{name},{many}\r\n\"k1\",\"a:1;b:2\"\r\nk2,c:3\r\n");
    let rows: Vec<_> = Importer::new(csv.as_bytes(), Format::Csv, &schema, timestamp())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows[0].0.get(&many),
        Some(regis_model::Value::many(["a:1", "b:2"]))
    );
    assert_eq!(rows[1].1.key, "k2");
    let rsf: Vec<Command> = commands(rows.into_iter().map(Ok))
        .collect::<Result<_, _>>()
        .unwrap();
    register.apply(rsf, Policy::IMPORT).unwrap();
    assert_eq!(register.size(Log::User), 2);
}

#[test]
fn import_errors_name_the_line() {
    let register = address_register();
    let schema = register.schema();
    let header_error =
        |text: &str| Importer::new(text.as_bytes(), Format::Tsv, schema, timestamp()).unwrap_err();
    let error = header_error("address\tcolour\n");
    assert!(
        matches!(&error.kind, ImportErrorKind::UnknownColumn(column) if column == "colour"),
        "{error}"
    );
    let error = header_error("name\tstreet\n");
    assert_eq!(
        error.to_string(),
        "line 1: no column is named `address`, the register's primary key"
    );
    let error = header_error("address\taddress\n");
    assert!(
        matches!(error.kind, ImportErrorKind::DuplicateColumn(_)),
        "{error}"
    );

    let rows = |text: &str| -> Vec<_> {
        Importer::new(text.as_bytes(), Format::Tsv, schema, timestamp())
            .unwrap()
            .collect()
    };
    let results = rows("address\tname\nA\tx\n\ty\n");
    assert!(results[0].is_ok());
    let error = results[1].as_ref().unwrap_err();
    assert_eq!(
        error.to_string(),
        "line 3: the primary-key column `address` is empty"
    );
    let results = rows("address\tname\nA\tx\nB\n");
    let error = results[1].as_ref().unwrap_err();
    assert_eq!(error.line, 3);
    assert!(matches!(error.kind, ImportErrorKind::Format(_)), "{error}");
    let unnamed = regis_model::Schema::new();
    let error = Importer::new(&b"a\n"[..], Format::Tsv, &unnamed, timestamp()).unwrap_err();
    assert!(matches!(error.kind, ImportErrorKind::Unnamed));
}

/// CSV cells are safe to open in a spreadsheet: formula triggers are
/// prefixed with `'` and quoted (negative numbers too, as OWASP's rule
/// says), control characters never appear raw; other cells are as before.
#[test]
fn csv_cells_cannot_be_formulas_or_hold_raw_control_characters() {
    let cases = [
        (
            r#"=HYPERLINK("http://x.test","y")"#,
            r#""'=HYPERLINK(""http://x.test"",""y"")""#,
        ),
        ("+1", r#""'+1""#),
        ("-5", r#""'-5""#),
        ("@SUM(A1)", r#""'@SUM(A1)""#),
        ("\t=1", r#""'\t=1""#),
        ("\r=1", r#""'\r=1""#),
        ("a\nb", r"a\nb"),
        ("a\r\nb,c", r#""a\r\nb,c""#),
        ("bell\u{7}", r"bell\u0007"),
        ("del\u{7f}", r"del\u007F"),
        ("c1\u{85}", r"c1\u0085"),
        ("a=b", "a=b"),
        ("5", "5"),
        ("plain", "plain"),
    ];
    for (value, cell) in cases {
        let item =
            regis_model::Item::from_fields(vec![("f", regis_model::Value::one(value))]).unwrap();
        let csv = items_csv(&["f".to_owned()], [&item]);
        assert_eq!(csv, format!("f\r\n{cell}\r\n"), "{value:?}");
        assert!(
            !csv.trim_end_matches("\r\n")
                .chars()
                .any(|c| c.is_control() && c != '\r' && c != '\n')
                && csv.matches("\r\n").count() == 2,
            "{value:?}: {csv:?}"
        );
    }
}
