//! GOV.UK's Ruby client (govuk-registers-api-client, unchanged, from
//! `$REGIS_CLIENTS`) against a live `regis serve`, over real HTTP: it loads
//! a register through `download-rsf/0` and, on `refresh_data`, through
//! `download-rsf/{n}`; what it then shows (records, entries, items,
//! histories, the register's definition, custodian and fields) must be
//! what the RSF says. Runs `interop/ruby/read_register.rb`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use common::http::exchange;
use common::{ok, regis, serve};
use regis_model::rsf::Policy;
use regis_model::{Entry, EntryType, Item, Register};
use serde_json::{Map, Value, json};

/// A register served from RSF files loaded in order, and what the Ruby
/// client must show as its custodian, when the case pins it.
struct Case {
    name: &'static str,
    files: &'static [&'static str],
    custodian: Option<&'static str>,
}

const CASES: &[Case] = &[
    // The client's own fixture pair: the update ends with a new custodian
    // appended after the last user entry.
    Case {
        name: "country",
        files: &[
            "api-client/country_register.rsf",
            "api-client/country_register_update.rsf",
        ],
        custodian: Some("Joseph Bloggs"),
    },
    Case {
        name: "local-authority-eng",
        files: &["registry-data/local-authority-eng.rsf"],
        custodian: None,
    },
    Case {
        name: "country",
        files: &["registry-data/country.rsf"],
        custodian: None,
    },
];

fn fixture(relative: &str) -> PathBuf {
    regis_fixtures::path(format!("registers/{relative}"))
}

/// The register the RSF `documents` make, loaded in order.
fn register_of(name: &str, documents: &[Vec<u8>]) -> Register {
    let mut register = Register::named(name);
    for document in documents {
        register
            .load_rsf(&document[..], Policy::IMPORT)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    register
}

fn entry_json(number: u64, entry: &Entry) -> Value {
    let hashes: Vec<String> = entry.item_hashes.iter().map(|h| h.to_string()).collect();
    json!({
        "entry-number": number,
        "key": entry.key,
        "timestamp": entry.timestamp.as_str(),
        "item-hash": hashes.join(";"),
    })
}

fn item_json(item: &Item) -> Value {
    serde_json::from_str(item.as_str()).unwrap()
}

/// A system record as the client shows it: its entry and item.
fn system_record(register: &Register, key: &str) -> Value {
    let record = register
        .record(EntryType::System, key)
        .unwrap_or_else(|| panic!("no system record {key}"));
    let mut json = entry_json(record.number, record.entry);
    json["item"] = item_json(record.items[0]);
    json
}

/// What the Ruby client must show for `register` (named `name`), in the shape
/// `read_register.rb` prints; `system_entries` is how many system entries
/// it took (it takes them on its first load only).
fn expected(register: &Register, name: &str, system_entries: u64) -> Map<String, Value> {
    let user = register.entries(EntryType::User);
    let mut records: Vec<Value> = register
        .records(EntryType::User)
        .map(|record| {
            let mut json = entry_json(record.number, record.entry);
            json["item"] = item_json(record.items[0]);
            json
        })
        .collect();
    records.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
    let entries: Vec<Value> = (1..).zip(user).map(|(n, e)| entry_json(n, e)).collect();
    let mut items = Map::new();
    for entry in user.iter().chain(register.entries(EntryType::System)) {
        for hash in &entry.item_hashes {
            let item = register.item(hash).unwrap();
            items.insert(hash.to_string(), item_json(item));
        }
    }
    let mut history = Map::new();
    for entry in user {
        history.entry(entry.key.clone()).or_insert_with(|| {
            Value::Array(
                register
                    .history(EntryType::User, &entry.key)
                    .map(|record| entry_json(record.number, record.entry))
                    .collect(),
            )
        });
    }
    let definition = system_record(register, &format!("register:{name}"));
    let fields: Vec<Value> = definition["item"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|field| system_record(register, &format!("field:{}", field.as_str().unwrap())))
        .collect();
    let custodian = system_record(register, "custodian")["item"]["custodian"].clone();
    json!({
        "records": records,
        "entries": entries,
        "items": items,
        "history": history,
        "metadata-entries": system_entries,
        "register-definition": definition,
        "custodian": custodian,
        "field-definitions": fields,
    })
    .as_object()
    .unwrap()
    .clone()
}

/// `read_register.rb` running against a base URL: it prints what the
/// client sees once loaded, then again after each line sent.
struct RubyClient {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    stderr: PathBuf,
}

impl RubyClient {
    fn start(url: &str, stderr: PathBuf) -> RubyClient {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/ruby/read_register.rb");
        let lib = regis_fixtures::clients().join("govuk-registers-api-client/lib");
        assert!(lib.is_dir(), "{} is missing", lib.display());
        let mut child = Command::new("ruby")
            .arg(script)
            .arg(lib)
            .arg(url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("ruby is not installed: apt-get install ruby ruby-rest-client");
        RubyClient {
            input: child.stdin.take().unwrap(),
            output: BufReader::new(child.stdout.take().unwrap()),
            child,
            stderr,
        }
    }

    /// The next JSON line the script prints.
    fn seen(&mut self) -> Map<String, Value> {
        let mut line = String::new();
        self.output.read_line(&mut line).unwrap();
        match serde_json::from_str(&line) {
            Ok(Value::Object(map)) => map,
            _ => panic!(
                "the Ruby client printed {line:?}; its stderr: {}",
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            ),
        }
    }

    /// `refresh_data`, then what the client sees.
    fn refresh(&mut self) -> Map<String, Value> {
        self.input.write_all(b"refresh\n").unwrap();
        self.input.flush().unwrap();
        self.seen()
    }

    /// Ends the script (its input closed) and checks it exited cleanly.
    fn finish(self) {
        let RubyClient {
            mut child,
            input,
            stderr,
            ..
        } = self;
        drop(input);
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "{}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
    }
}

/// Each of `expected`'s fields equals what the client `seen`.
fn assert_same(what: &str, seen: &Map<String, Value>, expected: &Map<String, Value>) {
    let mut seen = seen.clone();
    if let Some(Value::Array(records)) = seen.get_mut("records") {
        records.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
    }
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{what}"
    );
    for (field, value) in expected {
        assert_eq!(seen[field], *value, "{what}: {field}");
    }
}

/// POSTs one new user entry to `B/entries` with a write token.
fn post_entry(addr: &str, data: &Path, name: &str) {
    let token = ok(regis(&[
        "token",
        "--data",
        data.to_str().unwrap(),
        "--register",
        name,
    ]));
    let token = token.lines().last().unwrap();
    let body = json!([{"key": "ZZZ", "item": {name: "ZZZ", "name": "Interop"}}]).to_string();
    let request = format!(
        "POST /registers/{name}/entries HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = exchange(addr, request.as_bytes()).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
}

#[test]
fn the_ruby_client_sees_what_the_rsf_says() {
    for case in CASES {
        let what = format!("{} from {:?}", case.name, case.files);
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut documents = Vec::new();
        for file in case.files {
            let path = fixture(file);
            ok(regis(&[
                "load",
                "--data",
                data.to_str().unwrap(),
                "--register",
                case.name,
                path.to_str().unwrap(),
            ]));
            documents.push(std::fs::read(&path).unwrap());
        }
        let register = register_of(case.name, &documents);
        let server = serve(&data, "127.0.0.1:0");
        let addr = server.url.trim_start_matches("http://").to_owned();
        let base = format!("{}/registers/{}/", server.url, case.name);

        let mut client = RubyClient::start(&base, dir.path().join("stderr"));
        let system_entries = register.size(EntryType::System);
        let seen = client.seen();
        assert_same(
            &what,
            &seen,
            &expected(&register, case.name, system_entries),
        );
        if let Some(custodian) = case.custodian {
            assert_eq!(seen["custodian"], custodian, "{what}");
        }

        // A new entry, then `refresh_data`: the client reads the delta from
        // the size it holds and shows what the server's RSF now says.
        post_entry(&addr, &data, case.name);
        let seen = client.refresh();
        let answer =
            common::http::get_answer(&addr, &format!("/registers/{}/download-rsf", case.name))
                .unwrap();
        assert_eq!(answer.status, 200);
        let now = register_of(case.name, &[answer.body]);
        assert_eq!(
            now.size(EntryType::User),
            register.size(EntryType::User) + 1
        );
        assert_same(
            &format!("{what}, refreshed"),
            &seen,
            &expected(&now, case.name, system_entries),
        );
        client.finish();
    }
}
