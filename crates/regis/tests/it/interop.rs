//! Three independent clients against live `regis serve` children holding
//! every register in the shared fixtures, over real HTTP, each client's
//! view compared with what the RSF files say:
//!
//! - Go's own transparency-log code (`interop/go-tlog-verify`, built
//!   offline) checks both logs of every register: the checkpoint signed by
//!   the key `regis key` prints, its size and root those of the RSF, the
//!   root recomputed from tiles, every entry bundle, inclusion and
//!   consistency proofs; and refuses a checkpoint checked with another key.
//! - GOV.UK's Ruby client (`govuk-registers-api-client`, unchanged, from
//!   `$REGIS_CLIENTS`; `interop/ruby/read_register.rb`) loads every
//!   register through `download-rsf/0` and shows its records, entries,
//!   items, histories, definition, custodian and fields; then again after
//!   `refresh_data` through `download-rsf/{n}`, which brings it an entry
//!   POSTed meanwhile where the suite writes one.
//! - The Ministry of Justice's Python client (PyPI `openregister-client`,
//!   pinned in `interop/python/requirements.txt`, unchanged, in a
//!   virtualenv under `target/`; `interop/python/client.py`) discovers the
//!   country register's fields and their types through the `register`,
//!   `field` and `datatype` registers, reads a record, its history, an
//!   entry and an item through GOV.UK's old singular paths (answered 301),
//!   and lists every record of every register until the 404 past the last
//!   page.
//!
//! Why three servers: a server holds one register per name, and a load
//! checks that a document defines the register it is loaded into, so the
//! fixtures' three versions of `country` cannot share one. One server holds
//! the nine `registry-data` registers; one GOV.UK's client's own pair
//! (`api-client/country_register.rsf`, then its update, which ends with a
//! new custodian), where the Ruby client's refresh follows a `POST
//! B/entries` and the other two clients then check the register with that
//! entry; one openregister-java's `country-data.rsf`.
//! Each file is loaded once, with `regis load`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};

use crate::common::http::{exchange, get_answer};
use crate::common::{Serving, ok, regis, serve, text};
use regis_model::rsf::Policy;
use regis_model::{Entry, Item, Log, Record, Register};
use regis_note::Checkpoint;
use serde_json::{Map, Value, json};

/// The registers of `registers/registry-data/`, each `NAME.rsf`.
const REGISTRY_DATA: [&str; 9] = [
    "allergen",
    "country",
    "datatype",
    "field",
    "information-sharing-agreement-0001",
    "local-authority-eng",
    "local-authority-type",
    "register",
    "territory",
];

/// The Python client's page size: several pages for the larger registers
/// (country's 199 records, local-authority-eng's 366), the last one short.
const PAGE_SIZE: u64 = 50;

/// The key of the entry the suite POSTs.
const POSTED_KEY: &str = "ZZZ";

#[test]
fn every_client_reads_every_register() {
    let dir = tempfile::tempdir().unwrap();
    let registry_data: Vec<(&str, Vec<String>)> = REGISTRY_DATA
        .iter()
        .map(|name| (*name, vec![format!("registry-data/{name}.rsf")]))
        .collect();
    let main = Server::start(&dir.path().join("registry-data"), &registry_data);
    let mut api_client = Server::start(
        &dir.path().join("api-client"),
        &[(
            "country",
            vec![
                "api-client/country_register.rsf".to_owned(),
                "api-client/country_register_update.rsf".to_owned(),
            ],
        )],
    );
    let java = Server::start(
        &dir.path().join("openregister-java"),
        &[(
            "country",
            vec!["openregister-java/country-data.rsf".to_owned()],
        )],
    );

    // The Ruby client first, as its refresh follows an entry POSTed to the
    // api-client server, which the other clients then see.
    ruby_refreshes_after_a_post(&mut api_client, dir.path());
    for server in [&main, &java] {
        for register in &server.registers {
            ruby_reads(server, register, dir.path());
        }
    }

    let go = GoVerifier::build(dir.path());
    for server in [&main, &api_client, &java] {
        for register in &server.registers {
            for log in [Log::User, Log::System] {
                go.verifies(server, register, log);
            }
        }
    }
    go.refuses_another_key(&main, main.register("country"));

    let python = python();
    python_discovers_and_lists(&python, &main);
    for server in [&api_client, &java] {
        python_lists(&python, server, None);
    }
}

/// A register a server holds: what its RSF files say (and any entry the
/// suite POSTed since), and its logs' origins and verifier keys.
struct Served {
    name: &'static str,
    model: Register,
    /// For the user log, then the system log: `regis key`'s origin and
    /// verifier key.
    keys: [(String, String); 2],
}

impl Served {
    fn key(&self, log: Log) -> &(String, String) {
        match log {
            Log::User => &self.keys[0],
            Log::System => &self.keys[1],
        }
    }
}

/// A `regis serve` over a data directory where registers were loaded.
struct Server {
    data: PathBuf,
    serving: Serving,
    registers: Vec<Served>,
}

impl Server {
    /// Loads each register from its fixture files (under `registers/`), in
    /// order, with `regis load`, then serves them.
    fn start(data: &Path, registers: &[(&'static str, Vec<String>)]) -> Server {
        let data_arg = data.to_str().unwrap();
        let served = registers
            .iter()
            .map(|(name, files)| {
                let mut model = Register::named(*name);
                for file in files {
                    let path = regis_fixtures::path(format!("registers/{file}"));
                    ok(regis(&[
                        "load",
                        "--data",
                        data_arg,
                        "--register",
                        name,
                        path.to_str().unwrap(),
                    ]));
                    let bytes = regis_fixtures::read(format!("registers/{file}"));
                    model
                        .load_rsf(&bytes[..], Policy::IMPORT)
                        .unwrap_or_else(|e| panic!("{file}: {e}"));
                }
                let printed = ok(regis(&["key", "--data", data_arg, "--register", name]));
                let line = |label: &str| {
                    printed
                        .lines()
                        .find_map(|line| line.strip_prefix(&format!("{label}: ")))
                        .unwrap_or_else(|| panic!("regis key printed no {label}: {printed}"))
                        .to_owned()
                };
                Served {
                    name,
                    model,
                    keys: [
                        (line("log-origin"), line("log-public-key")),
                        (line("system-log-origin"), line("system-log-public-key")),
                    ],
                }
            })
            .collect();
        Server {
            data: data.to_owned(),
            serving: serve(data, "127.0.0.1:0"),
            registers: served,
        }
    }

    fn addr(&self) -> &str {
        self.serving.url.trim_start_matches("http://")
    }

    /// A register's base URL, with the trailing slash its clients need.
    fn base(&self, name: &str) -> String {
        format!("{}/registers/{name}/", self.serving.url)
    }

    fn register(&self, name: &str) -> &Served {
        self.registers
            .iter()
            .find(|register| register.name == name)
            .unwrap_or_else(|| panic!("no register {name}"))
    }

    /// The server's name in messages: its data directory's.
    fn what(&self, name: &str) -> String {
        let dir = self.data.file_name().unwrap().to_string_lossy();
        format!("{name} ({dir})")
    }

    /// POSTs one new user entry, `POSTED_KEY`, to `name` with a write token;
    /// then adds it to the register's model from the server's RSF delta,
    /// which must hold exactly that entry after the model's own root.
    fn post_entry(&mut self, name: &str) {
        let token = ok(regis(&[
            "token",
            "--data",
            self.data.to_str().unwrap(),
            "--register",
            name,
        ]));
        let token = token.lines().last().unwrap();
        let item = json!({name: POSTED_KEY, "name": "Interop"});
        let body = json!([{"key": POSTED_KEY, "item": item}]).to_string();
        let request = format!(
            "POST /registers/{name}/entries HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let answer = exchange(self.addr(), request.as_bytes()).unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
        let receipt = answer.json().unwrap();

        let addr = self.addr().to_owned();
        let served = self
            .registers
            .iter_mut()
            .find(|register| register.name == name)
            .unwrap();
        let (user, system) = (served.model.size(Log::User), served.model.size(Log::System));
        let delta = get_answer(
            &addr,
            &format!("/registers/{name}/download-rsf/{user}?system-size={system}"),
        )
        .unwrap();
        assert_eq!(delta.status, 200, "{}", delta.text());
        served
            .model
            .load_rsf(&delta.body[..], Policy::IMPORT)
            .unwrap_or_else(|e| panic!("the delta after the POST: {e}\n{}", delta.text()));
        assert_eq!(served.model.size(Log::User), user + 1);
        assert_eq!(served.model.size(Log::System), system);
        let posted = served.model.entry(Log::User, user + 1).unwrap();
        assert_eq!(posted.entry.key, POSTED_KEY);
        assert_eq!(item_json(posted.items[0]), item);
        assert_eq!(
            receipt["entries"][0]["item-hash"],
            posted.entry.item_hashes[0].to_string()
        );
    }
}

// Go: interop/go-tlog-verify.

/// `interop/go-tlog-verify`, built with Debian's Go packages, offline
/// (also run against a static copy, `static_copy.rs`).
pub struct GoVerifier {
    binary: PathBuf,
}

impl GoVerifier {
    pub fn build(dir: &Path) -> GoVerifier {
        GoVerifier {
            binary: crate::common::build_go_verifier(dir),
        }
    }

    fn run(&self, server: &Server, name: &str, log: Log, key: &str, origin: &str) -> Output {
        self.run_at(&server.base(name), log, key, origin)
    }

    /// Runs it on `log` of the register at `base` (ending with `/`).
    pub fn run_at(&self, base: &str, log: Log, key: &str, origin: &str) -> Output {
        let prefix = match log {
            Log::User => "log",
            Log::System => "system-log",
        };
        Command::new(&self.binary)
            .arg("-url")
            .arg(format!("{base}{prefix}"))
            .args(["-key", key, "-origin", origin])
            .output()
            .unwrap()
    }

    /// Checks `log` of `register`: its checkpoint is the RSF's size and
    /// root, signed with the key `regis key` printed, and every check the
    /// verifier makes passes.
    fn verifies(&self, server: &Server, register: &Served, log: Log) {
        let what = format!("{} {log} log", server.what(register.name));
        let (origin, key) = register.key(log);
        let output = self.run(server, register.name, log, key, origin);
        let stdout = text(&output.stdout);
        assert!(
            output.status.success(),
            "go-tlog-verify, {what}: {stdout}{}",
            text(&output.stderr)
        );
        let size = register.model.size(log);
        let checkpoint = Checkpoint::new(origin.as_str(), size, register.model.root(log))
            .unwrap()
            .to_string();
        let root = checkpoint.lines().nth(2).unwrap();
        assert_eq!(
            stdout,
            format!(
                "checkpoint: {origin}, size {size}, root {root}, signature ok\n\
                 root recomputed from tiles: ok\n\
                 entries: all {size} hash to their tile leaves\n\
                 inclusion and consistency proofs: ok\n"
            ),
            "go-tlog-verify, {what}"
        );
    }

    /// The user log's checkpoint checked with the system log's key fails.
    fn refuses_another_key(&self, server: &Server, register: &Served) {
        let (origin, _) = register.key(Log::User);
        let (_, system_key) = register.key(Log::System);
        let output = self.run(server, register.name, Log::User, system_key, origin);
        assert!(!output.status.success(), "{}", text(&output.stdout));
        assert!(
            text(&output.stderr).contains("checkpoint signature"),
            "{}",
            text(&output.stderr)
        );
    }
}

// Ruby: GOV.UK's client through interop/ruby/read_register.rb.

/// An entry as the Ruby client shows it.
fn ruby_entry_json(number: u64, entry: &Entry) -> Value {
    let hashes: Vec<String> = entry.item_hashes.iter().map(|h| h.to_string()).collect();
    json!({
        "entry-number": number,
        "key": entry.key,
        "timestamp": entry.timestamp.as_str(),
        "item-hash": hashes.join(";"),
    })
}

/// A record as the Ruby client shows it: its entry and (only) item.
fn ruby_record_json(record: Record<'_>) -> Value {
    let mut json = ruby_entry_json(record.number, record.entry);
    json["item"] = item_json(record.items[0]);
    json
}

fn item_json(item: &Item) -> Value {
    serde_json::from_str(item.as_str()).unwrap()
}

fn system_record<'a>(register: &'a Register, key: &str) -> Record<'a> {
    register
        .record(Log::System, key)
        .unwrap_or_else(|| panic!("no system record {key}"))
}

/// What the Ruby client must show for `register` (named `name`), in the
/// shape `read_register.rb` prints; `system_entries` is how many system
/// entries it took (it takes them on its first load only).
fn ruby_expected(register: &Register, name: &str, system_entries: u64) -> Map<String, Value> {
    let user = register.entries(Log::User);
    let mut records: Vec<Value> = register.records(Log::User).map(ruby_record_json).collect();
    records.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
    let entries: Vec<Value> = (1..)
        .zip(user)
        .map(|(n, e)| ruby_entry_json(n, e))
        .collect();
    let mut items = Map::new();
    for entry in user.iter().chain(register.entries(Log::System)) {
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
                    .history(Log::User, &entry.key)
                    .map(|record| ruby_entry_json(record.number, record.entry))
                    .collect(),
            )
        });
    }
    let definition = ruby_record_json(system_record(register, &format!("register:{name}")));
    let fields: Vec<Value> = definition["item"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|field| {
            let key = format!("field:{}", field.as_str().unwrap());
            ruby_record_json(system_record(register, &key))
        })
        .collect();
    let custodian = item_json(system_record(register, "custodian").items[0])["custodian"].clone();
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

/// The Ruby client shows what the RSF says, and the same after a
/// `refresh_data` with nothing new.
fn ruby_reads(server: &Server, register: &Served, dir: &Path) {
    let what = format!("Ruby, {}", server.what(register.name));
    let stderr = dir.join(format!("ruby-{}.stderr", register.name));
    let mut client = RubyClient::start(&server.base(register.name), stderr);
    let expected = ruby_expected(
        &register.model,
        register.name,
        register.model.size(Log::System),
    );
    assert_same(&what, &client.seen(), &expected);
    assert_same(&format!("{what}, refreshed"), &client.refresh(), &expected);
    client.finish();
}

/// The api-client pair: the Ruby client shows the update's custodian; then
/// an entry is POSTed and `refresh_data` brings it (through the delta from
/// the size the client holds).
fn ruby_refreshes_after_a_post(server: &mut Server, dir: &Path) {
    let name = "country";
    let what = format!("Ruby, {}", server.what(name));
    let mut client = RubyClient::start(&server.base(name), dir.join("ruby-api-client.stderr"));
    let system_entries = server.register(name).model.size(Log::System);
    let seen = client.seen();
    let before = &server.register(name).model;
    assert_same(&what, &seen, &ruby_expected(before, name, system_entries));
    assert_eq!(seen["custodian"], "Joseph Bloggs", "{what}");

    server.post_entry(name);
    let after = &server.register(name).model;
    assert_same(
        &format!("{what}, refreshed after a POST"),
        &client.refresh(),
        &ruby_expected(after, name, system_entries),
    );
    client.finish();
}

// Python: the MoJ's client through interop/python/client.py.

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

/// Runs `client.py` against `server` (discovering through it when
/// `discover` names a register, a key and a missing key), listing every
/// register there; checks each listing; returns what it saw.
fn python_lists(python: &Path, server: &Server, discover: Option<[&str; 3]>) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/python/client.py");
    let mut command = Command::new(python);
    command
        .arg(script)
        .arg(format!("{}/registers/%(name)s/", server.serving.url))
        .arg(PAGE_SIZE.to_string());
    if let Some(discover) = discover {
        command.arg("--discover").args(discover);
    }
    let output = command
        .args(server.registers.iter().map(|register| register.name))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "client.py failed:\n{}",
        text(&output.stderr)
    );
    let saw: Value = serde_json::from_slice(&output.stdout).unwrap();
    for register in &server.registers {
        let what = format!("Python, {}", server.what(register.name));
        let mut records: Vec<Record<'_>> = register.model.records(Log::User).collect();
        records.sort_by(|a, b| a.entry.key.cmp(&b.entry.key));
        let records: Vec<Value> = records.into_iter().map(api_record_json).collect();
        // Every record once, in key order, and the listing ended at the
        // 404 past the last page.
        let listing = &saw["listings"][register.name];
        assert_eq!(listing["ended"], true, "{what}");
        assert_eq!(listing["records"], json!(records), "{what}");
    }
    saw
}

/// A record as the GOV.UK API serves it.
fn api_record_json(record: Record<'_>) -> Value {
    let items: Vec<Value> = record.items.iter().map(|item| item_json(item)).collect();
    json!({
        "index-entry-number": record.number.to_string(),
        "entry-number": record.number.to_string(),
        "entry-timestamp": record.entry.timestamp.as_str(),
        "key": record.entry.key,
        "item": items,
    })
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

/// On the server of the `register`, `field` and `datatype` registers: the
/// client's discovery, and what it reads of the country register.
fn python_discovers_and_lists(python: &Path, server: &Server) {
    // SU: a record whose item has a date, which the client types.
    let saw = python_lists(python, server, Some(["country", "SU", "NOPE"]));
    let saw = &saw["discovery"];
    let country = &server.register("country").model;
    let field = &server.register("field").model;
    let field_item = |name: &str| {
        let record = field
            .record(Log::User, name)
            .unwrap_or_else(|| panic!("no field {name}"));
        item_json(record.items[0])
    };
    let records = country.records(Log::User).count();
    let su = country.record(Log::User, "SU").unwrap();

    // Discovery: through the register, field and datatype registers.
    assert_eq!(saw["discovered"], true, "{saw}");
    assert_eq!(saw["client"], "CountryRegister");
    assert_eq!(saw["total-records"], records);
    assert_eq!(saw["total-entries"], country.size(Log::User));
    let definition = item_json(system_record(country, "register:country").items[0]);
    let mut expected_fields = Map::new();
    for name in definition["fields"].as_array().unwrap() {
        let name = name.as_str().unwrap();
        let defined = field_item(name);
        let datatype = defined["datatype"].as_str().unwrap();
        expected_fields.insert(
            name.to_owned(),
            json!({
                "class": client_class(datatype),
                "cardinality": defined["cardinality"],
                "text": defined["text"],
            }),
        );
    }
    assert_eq!(saw["fields"], Value::Object(expected_fields));

    // A record (record/SU, moved to records/SU), typed by its fields.
    let su_item = item_json(su.items[0]);
    assert_eq!(saw["record"], api_record_json(su));
    let mut expected_typed = Map::new();
    for (name, value) in su_item.as_object().unwrap() {
        let value = value.as_str().unwrap();
        let datatype = field_item(name)["datatype"].as_str().unwrap().to_owned();
        expected_typed.insert(
            name.clone(),
            json!({"type": client_type(&datatype, value), "value": value}),
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
        .history(Log::User, "SU")
        .map(|record| record.number)
        .collect();
    assert_eq!(saw["record-entries"], json!(history));
    assert_eq!(saw["contains"], json!({"SU": true, "NOPE": false}));
    assert_eq!(saw["missing-record"], Value::Null);

    // An entry (entry/1) and its item (item/sha-256:…); neither past them.
    let first = country.entry(Log::User, 1).unwrap();
    let first_hash = first.entry.item_hashes[0].to_string();
    assert_eq!(
        saw["entry"],
        json!({
            "index-entry-number": "1",
            "entry-number": "1",
            "entry-timestamp": first.entry.timestamp.as_str(),
            "key": first.entry.key,
            "item-hash": [first_hash],
        })
    );
    assert_eq!(saw["missing-entry"], Value::Null);
    assert_eq!(saw["item-hash"], first_hash);
    assert_eq!(saw["item"], item_json(first.items[0]));
    assert_eq!(saw["missing-item"], Value::Null);

    // The country listing took several pages, the last one short.
    assert!(records as u64 > 2 * PAGE_SIZE);
    assert_ne!(records as u64 % PAGE_SIZE, 0);
}
