//! Links between registers, on the registers of `../shared/fixtures` that
//! link to each other (local-authority-eng -> local-authority-type,
//! field -> datatype, register -> field), served by one server, or by two
//! when a link's register is remote: checked writes, `?expand=links`, the
//! proof bundle `?links=1` verified by regis-client with each register's
//! own key, and the failures: dangling and unresolvable links, a lying
//! server, a remote register that lies, hangs or is down.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use regis_client::{Client, Error as ClientError, LinkKeys, LinkOutcome};
use regis_model::{Item, Log, RegisterName};
use regis_note::Verifier;
use regis_server::Limits;
use regis_store::{Registry, Scope};
use serde_json::{Value, json};

use crate::common::{Resp, TestServer, load, rsf_commands};

/// The fixture registers that link to each other.
const LINKED: [&str; 5] = [
    "local-authority-type",
    "local-authority-eng",
    "datatype",
    "field",
    "register",
];

fn load_fixtures(registry: &Registry, names: &[&str]) {
    for name in names {
        load(
            registry,
            name,
            rsf_commands(&format!("registry-data/{name}.rsf")),
        );
    }
}

fn write_links_toml(registry: &Registry, name: &str, text: &str) {
    let dir = registry.dir(&RegisterName::new(name).unwrap());
    std::fs::write(dir.join("links.toml"), text).unwrap();
}

/// The fixtures on one server, local-authority-eng's links checked.
fn linked_server() -> TestServer {
    TestServer::start_prepared(
        |registry| {
            load_fixtures(registry, &LINKED);
            write_links_toml(registry, "local-authority-eng", "links = \"check\"\n");
        },
        Limits::default(),
    )
}

fn mint(server: &TestServer, name: &str) -> String {
    let scope = match name {
        "" => Scope::Admin,
        name => Scope::Register(RegisterName::new(name).unwrap()),
    };
    server.app().tokens.mint(scope).unwrap().token
}

fn post_json(server: &TestServer, path: &str, token: &str, body: &Value) -> Resp {
    server.post(
        path,
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

fn authority(key: &str, kind: &str) -> Value {
    json!([{"key": key, "item": {
        "local-authority-eng": key, "local-authority-type": kind, "name": "Test"
    }}])
}

fn key_of(server: &TestServer, name: &str) -> Verifier {
    let reg = server.app().register(name).unwrap();
    Verifier::parse(reg.verifier(Log::User)).unwrap()
}

fn client_of(server: &TestServer, name: &str) -> Client {
    Client::new(
        &server.url(&format!("/registers/{name}")),
        key_of(server, name),
    )
    .unwrap()
}

#[test]
fn checked_writes_refuse_dangling_links_and_take_good_ones() {
    let server = linked_server();
    let token = mint(&server, "local-authority-eng");
    let path = "/registers/local-authority-eng/entries";

    let refused = post_json(&server, path, &token, &authority("ZZA", "NOPE"));
    assert_eq!(refused.error(422), "dangling-link");
    let message = refused.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    for part in [
        "entry 1",
        "local-authority-type",
        "\"NOPE\"",
        "register local-authority-type",
    ] {
        assert!(message.contains(part), "{message}");
    }
    assert_eq!(
        server
            .get("/registers/local-authority-eng/records/ZZA")
            .status,
        404
    );

    let taken = post_json(&server, path, &token, &authority("ZZA", "UA"));
    assert_eq!(taken.status, 200, "{}", taken.text());
    assert!(taken.json().get("link-warnings").is_none());
    assert_eq!(
        server
            .get("/registers/local-authority-eng/records/ZZA")
            .status,
        200
    );

    // A record just written to the target register counts once its write
    // is answered: it is durable and covered by the signed checkpoint.
    let kind = json!([{"key": "NEW", "item": {"local-authority-type": "NEW", "name": "New"}}]);
    let kind_token = mint(&server, "local-authority-type");
    let written = post_json(
        &server,
        "/registers/local-authority-type/entries",
        &kind_token,
        &kind,
    );
    assert_eq!(written.status, 200, "{}", written.text());
    let taken = post_json(&server, path, &token, &authority("ZZN", "NEW"));
    assert_eq!(taken.status, 200, "{}", taken.text());

    // An RSF load is checked the same way, naming the line.
    let item =
        Item::parse(r#"{"local-authority-eng":"ZZB","local-authority-type":"NOPE","name":"Test"}"#)
            .unwrap();
    let rsf = format!(
        "add-item\t{}\nappend-entry\tuser\tZZB\t2020-01-01T00:00:00Z\t{}\n",
        item.as_str(),
        item.hash()
    );
    let load = |rsf: &str| {
        server.post(
            "/registers/local-authority-eng/load-rsf",
            &[("Authorization", &format!("Bearer {token}"))],
            rsf.as_bytes(),
        )
    };
    let refused = load(&rsf);
    assert_eq!(refused.error(422), "dangling-link");
    assert!(refused.text().contains("line 2"), "{}", refused.text());
    let taken = load(
        &rsf.replace("NOPE", "NMD").replace(
            &item.hash().to_string(),
            &Item::parse(
                r#"{"local-authority-eng":"ZZB","local-authority-type":"NMD","name":"Test"}"#,
            )
            .unwrap()
            .hash()
            .to_string(),
        ),
    );
    assert_eq!(taken.status, 200, "{}", taken.text());
}

#[test]
fn warned_registers_take_dangling_links_and_say_so() {
    let server = linked_server();
    // field has no links.toml (loaded as history): warn.
    let token = mint(&server, "field");
    let body = json!([{"key": "x-test", "item": {
        "cardinality": "1", "datatype": "nope", "field": "x-test", "phase": "beta"
    }}]);
    let taken = post_json(&server, "/registers/field/entries", &token, &body);
    assert_eq!(taken.status, 200, "{}", taken.text());
    let warnings = taken.json()["link-warnings"].to_string();
    assert!(
        warnings.contains("\\\"nope\\\"") && warnings.contains("register datatype"),
        "{warnings}"
    );

    // The record's page shows each link verified or not.
    let html = [("Accept", "text/html")];
    let page = server
        .get_with("/registers/field/records/x-test", &html)
        .text();
    assert!(page.contains("class=\"link-unverified\""), "{page}");
    assert!(page.contains("dangling: datatype has no record"), "{page}");
    let page = server
        .get_with("/registers/local-authority-eng/records/BRC", &html)
        .text();
    assert!(page.contains("class=\"link-verified\""), "{page}");
    assert!(
        page.contains("href=\"/registers/local-authority-type/records/UA\""),
        "{page}"
    );

    // The register's links page counts them and lists the dangling one.
    let census = server.get("/registers/field/links.json").json();
    assert_eq!(
        (census["links"].as_u64(), census["dangling"].as_u64()),
        (Some(155), Some(1))
    );
    assert_eq!(census["by-register"]["datatype"]["dangling"], 1);
    assert_eq!(census["not-resolved"][0]["record"], "x-test");
    assert_eq!(census["not-resolved"][0]["key"], "nope");
    let census = server.get("/registers/local-authority-eng/links").json();
    assert_eq!(
        (census["links"].as_u64(), census["dangling"].as_u64()),
        (Some(366), Some(0))
    );
    let page = server.get_with("/registers/field/links", &html).text();
    assert!(page.contains("155 links in the register"), "{page}");
    assert!(page.contains("x-test"), "{page}");
}

#[test]
fn registers_created_here_are_checked_and_unknown_registers_do_not_resolve() {
    let server = linked_server();
    let admin = mint(&server, "");
    let created = post_json(
        &server,
        "/registers",
        &admin,
        &json!({"name": "school", "text": "Schools", "fields": [
            {"field": "school", "datatype": "string", "cardinality": "1"},
            {"field": "country", "datatype": "string", "cardinality": "1", "register": "country"},
            {"field": "local-authority-eng", "datatype": "string", "cardinality": "1",
             "register": "local-authority-eng"},
        ]}),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let marker = server.dir.path().join("registers/school/links.toml");
    assert_eq!(
        std::fs::read_to_string(marker).unwrap(),
        "links = \"check\"\n"
    );
    let token = created.json()["token"].as_str().unwrap().to_owned();
    let path = "/registers/school/entries";
    let school = |authority: &str, country: Option<&str>| {
        let mut item = json!({"school": "1", "local-authority-eng": authority});
        if let Some(country) = country {
            item["country"] = json!(country);
        }
        json!([{"key": "1", "item": item}])
    };
    let refused = post_json(&server, path, &token, &school("BRC", Some("GB")));
    assert_eq!(refused.error(422), "unresolvable-link");
    assert!(
        refused.text().contains("register country"),
        "{}",
        refused.text()
    );
    let refused = post_json(&server, path, &token, &school("NOPE", None));
    assert_eq!(refused.error(422), "dangling-link");
    let taken = post_json(&server, path, &token, &school("BRC", None));
    assert_eq!(taken.status, 200, "{}", taken.text());
}

#[test]
fn records_expand_their_links_with_each_target_record() {
    let server = linked_server();
    let expanded = server.get("/registers/local-authority-eng/records/BRC?expand=links");
    assert_eq!(expanded.status, 200, "{}", expanded.text());
    let links = &expanded.json()["BRC"]["links"];
    assert_eq!(links.as_array().unwrap().len(), 1, "{links}");
    assert_eq!(links[0]["field"], "local-authority-type");
    assert_eq!(links[0]["key"], "UA");
    assert_eq!(links[0]["status"], "found");
    assert_eq!(links[0]["record"]["key"], "UA");
    let number = links[0]["entry-number"].as_str().unwrap();
    assert_eq!(
        server
            .get("/registers/local-authority-type/records/UA")
            .json()["UA"]["entry-number"],
        number
    );
    // register -> field, cardinality n: one link per value.
    let register = server
        .get("/registers/register/records/country?expand=links")
        .json();
    let links = register["country"]["links"].as_array().unwrap();
    assert!(links.len() > 1);
    assert!(
        links
            .iter()
            .all(|l| l["register"] == "field" && l["status"] == "found")
    );
    // The plain record is unchanged; bad values and CSV are refused.
    assert!(
        server
            .get("/registers/local-authority-eng/records/BRC")
            .json()["BRC"]
            .get("links")
            .is_none()
    );
    assert_eq!(
        server
            .get("/registers/local-authority-eng/records/BRC?expand=all")
            .error(400),
        "bad-query"
    );
    assert_eq!(
        server
            .get("/registers/local-authority-eng/records/BRC.csv?expand=links")
            .status,
        406
    );
}

#[test]
fn a_proof_bundle_verifies_each_register_against_its_own_key() {
    let server = linked_server();
    let client = client_of(&server, "local-authority-eng");
    let checkpoint = client.checkpoint().unwrap();
    let keys = BTreeMap::from([(
        "local-authority-type".to_owned(),
        key_of(&server, "local-authority-type"),
    )]);
    let linked = client
        .record_with_links("BRC", &checkpoint, &mut LinkKeys::pinned(keys.clone()))
        .unwrap();
    assert_eq!(linked.record.entry.key, "BRC");
    assert_eq!(linked.links.len(), 1);
    match &linked.links[0].outcome {
        LinkOutcome::Verified(target) => assert_eq!(target.entry.key, "UA"),
        other => panic!("{other:?}"),
    }

    // Without the linked register's key, or with another's, it fails.
    let error = client
        .record_with_links("BRC", &checkpoint, &mut LinkKeys::default())
        .unwrap_err();
    assert!(matches!(error, ClientError::LinkKey { .. }), "{error}");
    let wrong = BTreeMap::from([(
        "local-authority-type".to_owned(),
        key_of(&server, "datatype"),
    )]);
    let error = client
        .record_with_links("BRC", &checkpoint, &mut LinkKeys::pinned(wrong))
        .unwrap_err();
    assert!(matches!(error, ClientError::Link { .. }), "{error}");

    // The tlog-proof is the one served alone, which is unchanged by links.
    let bundle = server
        .get("/registers/local-authority-eng/records/BRC/proof.json?links=1")
        .json();
    let alone = server.get("/registers/local-authority-eng/records/BRC/proof.tlog-proof");
    assert_eq!(bundle["tlog-proof"].as_str().unwrap(), alone.text());
    let plain = server
        .get("/registers/local-authority-eng/records/BRC/proof.json")
        .json();
    assert!(plain.get("links").is_none() && plain.get("tlog-proof").is_none());
    assert_eq!(
        server
            .get("/registers/local-authority-eng/records/BRC/proof.tlog-proof?links=1")
            .status,
        406
    );
}

/// What a lying server does to a body.
type Lie = fn(&[u8]) -> Vec<u8>;

/// A GET of `path` from `addr`, on a new connection.
fn fetch(addr: SocketAddr, path: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: regis.test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    bytes
}

/// A server in front of `upstream` that answers as it does, except that
/// the body of each response to a path containing `lied_about` goes
/// through `lie`. Its thread ends with the test process.
fn lying_proxy(upstream: SocketAddr, lied_about: &'static str, lie: Lie) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match stream.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let Some(path) = head.split_whitespace().nth(1) else {
                continue;
            };
            let answer = fetch(upstream, path);
            let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let (response_head, body) = answer.split_at(split);
            let status = String::from_utf8_lossy(response_head)
                .lines()
                .next()
                .unwrap_or("HTTP/1.1 500 Bad")
                .to_owned();
            assert!(
                !String::from_utf8_lossy(response_head)
                    .to_ascii_lowercase()
                    .contains("chunked"),
                "the proxy forwards whole bodies only"
            );
            let body = if path.contains(lied_about) {
                lie(body)
            } else {
                body.to_vec()
            };
            let _ = write!(
                stream,
                "{status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    addr
}

/// A C2SP tlog-proof with one base64 character of its first audit-path
/// hash changed.
fn bad_proof(proof: &str) -> String {
    let mut lines: Vec<String> = proof.split('\n').map(str::to_owned).collect();
    let index = lines.iter().position(|l| l.starts_with("index ")).unwrap() + 1;
    let first = lines[index].remove(0);
    lines[index].insert(0, if first == 'A' { 'B' } else { 'A' });
    lines.join("\n")
}

#[test]
fn a_lying_server_is_caught_by_the_bundle_check() {
    let server = linked_server();
    let lies: [Lie; 3] = [
        // The target record's proof does not verify.
        |body| {
            let mut bundle: Value = serde_json::from_slice(body).unwrap();
            let proof = bundle["links"][0]["tlog-proof"]
                .as_str()
                .unwrap()
                .to_owned();
            bundle["links"][0]["tlog-proof"] = json!(bad_proof(&proof));
            bundle.to_string().into_bytes()
        },
        // Another record of the target register is passed off as it.
        |body| {
            let mut bundle: Value = serde_json::from_slice(body).unwrap();
            bundle["links"][0]["key"] = json!("NMD");
            bundle["links"][0]["value"] = json!("NMD");
            bundle.to_string().into_bytes()
        },
        // The target's item is not the one its entry names.
        |body| {
            let mut bundle: Value = serde_json::from_slice(body).unwrap();
            let item = bundle["links"][0]["items"][0]
                .as_str()
                .unwrap()
                .replace("Unitary", "Other");
            bundle["links"][0]["items"][0] = json!(item);
            bundle.to_string().into_bytes()
        },
    ];
    let keys = BTreeMap::from([(
        "local-authority-type".to_owned(),
        key_of(&server, "local-authority-type"),
    )]);
    for lie in lies {
        let proxy = lying_proxy(server.addr, "links=1", lie);
        let client = Client::new(
            &format!("http://{proxy}/registers/local-authority-eng"),
            key_of(&server, "local-authority-eng"),
        )
        .unwrap();
        let checkpoint = client.checkpoint().unwrap();
        let error = client
            .record_with_links("BRC", &checkpoint, &mut LinkKeys::pinned(keys.clone()))
            .unwrap_err();
        assert!(
            matches!(
                error,
                ClientError::Link { .. } | ClientError::LinkBundle { .. }
            ),
            "{error}"
        );
    }
}

/// A server whose local-authority-eng links to local-authority-type at
/// `remote` (another server's register, or something posing as one).
fn server_linking_to(remote: SocketAddr, key: &Verifier) -> TestServer {
    let settings = format!(
        "links = \"check\"\n[remote.local-authority-type]\nurl = \"http://{remote}/registers/local-authority-type\"\nkey = \"{key}\"\ntimeout-seconds = 1\n"
    );
    TestServer::start_prepared(
        move |registry| {
            load_fixtures(registry, &["local-authority-eng"]);
            write_links_toml(registry, "local-authority-eng", &settings);
        },
        Limits::default(),
    )
}

#[test]
fn remote_registers_resolve_links_and_their_failures_refuse_checked_writes() {
    let remote = TestServer::start_prepared(
        |registry| load_fixtures(registry, &["local-authority-type"]),
        Limits::default(),
    );
    let key = key_of(&remote, "local-authority-type");
    let path = "/registers/local-authority-eng/entries";

    let server = server_linking_to(remote.addr, &key);
    let token = mint(&server, "local-authority-eng");
    let taken = post_json(&server, path, &token, &authority("ZZA", "UA"));
    assert_eq!(taken.status, 200, "{}", taken.text());
    let refused = post_json(&server, path, &token, &authority("ZZB", "NOPE"));
    assert_eq!(refused.error(422), "dangling-link");
    // Its proof bundle carries the remote record's proof, verified with
    // the remote's key.
    let client = client_of(&server, "local-authority-eng");
    let checkpoint = client.checkpoint().unwrap();
    let keys = BTreeMap::from([("local-authority-type".to_owned(), key.clone())]);
    let linked = client
        .record_with_links("ZZA", &checkpoint, &mut LinkKeys::pinned(keys))
        .unwrap();
    assert!(matches!(linked.links[0].outcome, LinkOutcome::Verified(_)));
    let url = linked.links[0].url.as_deref().unwrap();
    assert!(
        url.starts_with(&format!("http://{}/", remote.addr)),
        "{url}"
    );
    drop(server);

    // A remote whose proofs do not verify: 502.
    let liar = lying_proxy(remote.addr, "proof.tlog-proof", |body| {
        bad_proof(std::str::from_utf8(body).unwrap()).into_bytes()
    });
    let server = server_linking_to(liar, &key);
    let token = mint(&server, "local-authority-eng");
    let refused = post_json(&server, path, &token, &authority("ZZA", "UA"));
    assert_eq!(refused.error(502), "link-target-unverified");
    // A remote signed by another key than the one pinned: 502.
    let other = key_of(&server, "local-authority-eng");
    drop(server);
    let server = server_linking_to(remote.addr, &other);
    let token = mint(&server, "local-authority-eng");
    let refused = post_json(&server, path, &token, &authority("ZZA", "UA"));
    assert_eq!(refused.error(502), "link-target-unverified");
    drop(server);

    // A remote that accepts connections and never answers, and one that
    // is down: 503, within the remote's timeout (1 s) and a margin.
    let hanging = TcpListener::bind("127.0.0.1:0").unwrap();
    let down = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    for addr in [hanging.local_addr().unwrap(), down] {
        let server = server_linking_to(addr, &key);
        let token = mint(&server, "local-authority-eng");
        let started = Instant::now();
        let refused = post_json(&server, path, &token, &authority("ZZA", "UA"));
        assert_eq!(refused.error(503), "link-target-unavailable");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        // Reads go on, saying the link is not verified.
        let expanded = server.get("/registers/local-authority-eng/records/BRC?expand=links");
        assert_eq!(expanded.json()["BRC"]["links"][0]["status"], "unavailable");
    }
    drop(hanging);
}

#[test]
fn a_linked_registers_key_may_come_from_a_trusted_register_of_registers() {
    let server = TestServer::start_prepared(
        |registry| load_fixtures(registry, &["local-authority-type", "local-authority-eng"]),
        Limits::default(),
    );
    let admin = mint(&server, "");
    let created = post_json(
        &server,
        "/registers",
        &admin,
        &json!({"name": "registry", "text": "Registers and their keys", "fields": [
            {"field": "registry", "datatype": "string", "cardinality": "1"},
            {"field": "log-public-key", "datatype": "string", "cardinality": "1"},
        ]}),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let token = created.json()["token"].as_str().unwrap().to_owned();
    let list = |key: &Verifier| {
        let body = json!([{"key": "local-authority-type", "item": {
            "registry": "local-authority-type", "log-public-key": key.to_string()
        }}]);
        let answer = post_json(&server, "/registers/registry/entries", &token, &body);
        assert_eq!(answer.status, 200, "{}", answer.text());
    };
    let client = client_of(&server, "local-authority-eng");
    let checkpoint = client.checkpoint().unwrap();
    let keys = || LinkKeys::default().with_registry(client_of(&server, "registry"));

    // Not listed yet: no key.
    let error = client
        .record_with_links("BRC", &checkpoint, &mut keys())
        .unwrap_err();
    assert!(matches!(error, ClientError::LinkKey { .. }), "{error}");
    // Listed with its key: verified.
    list(&key_of(&server, "local-authority-type"));
    let linked = client
        .record_with_links("BRC", &checkpoint, &mut keys())
        .unwrap();
    assert!(matches!(linked.links[0].outcome, LinkOutcome::Verified(_)));
    // Listed with another register's key: refused.
    list(&key_of(&server, "local-authority-eng"));
    let error = client
        .record_with_links("BRC", &checkpoint, &mut keys())
        .unwrap_err();
    assert!(matches!(error, ClientError::Link { .. }), "{error}");
}
