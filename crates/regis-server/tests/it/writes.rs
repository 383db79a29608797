//! The write API over real sockets: `POST B/entries`, `POST B/load-rsf`,
//! `POST /registers`, tokens, limits and back-pressure. Every answer to a
//! write is a receipt that is checked here as a client would: the
//! checkpoint verifies with the register's key, each entry is included in
//! it, and successive checkpoints are consistent.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::{Resp, TestServer, hashes, rsf_commands};
use regis_merkle::{Hash, leaf_hash, verify_consistency, verify_inclusion};
use regis_model::{RegisterName, parse_hash};
use regis_note::{SignedCheckpoint, Verifier, Verifiers};
use regis_server::Limits;
use regis_store::Scope;

const B: &str = "/registers/country";

fn country(limits: Limits) -> TestServer {
    TestServer::start_with(
        vec![(
            "country",
            rsf_commands("openregister-java/country-data.rsf"),
        )],
        limits,
    )
}

fn mint(server: &TestServer, scope: Scope) -> String {
    server.app().tokens.mint(scope).unwrap().token
}

fn country_token(server: &TestServer) -> String {
    mint(
        server,
        Scope::Register(RegisterName::new("country").unwrap()),
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A country item for `key`.
fn entry(key: &str, name: &str) -> serde_json::Value {
    serde_json::json!({"key": key, "item": {"country": key, "name": name}})
}

fn post_entries(server: &TestServer, token: &str, entries: &serde_json::Value) -> Resp {
    server.post(
        &format!("{B}/entries"),
        &[
            ("Authorization", &bearer(token)),
            ("Content-Type", "application/json"),
        ],
        entries.to_string().as_bytes(),
    )
}

fn size(server: &TestServer) -> u64 {
    server.get(&format!("{B}/register")).json()["total-entries"]
        .as_u64()
        .unwrap()
}

/// A checkpoint from a receipt, verified with the register's key: its
/// size and root.
fn verified(server: &TestServer, text: &str) -> (u64, Hash) {
    let metadata = server.get(&format!("{B}/register")).json();
    let verifier = Verifier::parse(metadata["log-public-key"].as_str().unwrap()).unwrap();
    let checkpoint = SignedCheckpoint::parse(text.as_bytes()).unwrap();
    checkpoint
        .verify(
            metadata["log-origin"].as_str().unwrap(),
            &verifier,
            &Verifiers::new([]).unwrap(),
        )
        .unwrap();
    let inner = checkpoint.checkpoint();
    (inner.size(), *inner.root_hash())
}

#[test]
fn concurrent_writers_get_receipts_that_verify_and_agree() {
    let server = country(Limits::default());
    let token = country_token(&server);
    let before = size(&server);
    const WRITERS: usize = 32;
    const REQUESTS: usize = 6;
    let receipts: Vec<(Vec<String>, serde_json::Value)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (server, token) = (&server, &token);
                scope.spawn(move || {
                    let mut receipts = Vec::new();
                    for request in 0..REQUESTS {
                        // One to three entries per request.
                        let keys: Vec<String> = (0..=request % 3)
                            .map(|n| format!("W{writer:02}R{request}N{n}"))
                            .collect();
                        let body = serde_json::Value::Array(
                            keys.iter()
                                .map(|key| entry(key, &format!("Land {key}")))
                                .collect(),
                        );
                        let response = post_entries(server, token, &body);
                        assert_eq!(response.status, 200, "{}", response.text());
                        receipts.push((keys, response.json()));
                    }
                    receipts
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });

    let mut numbers = BTreeMap::new();
    let mut checkpoints = BTreeMap::new();
    for (keys, receipt) in &receipts {
        let (checkpoint_size, root) = verified(&server, receipt["checkpoint"].as_str().unwrap());
        assert!(
            checkpoints
                .insert(checkpoint_size, root)
                .is_none_or(|r| r == root)
        );
        let entries = receipt["entries"].as_array().unwrap();
        assert_eq!(entries.len(), keys.len());
        for (key, entry) in keys.iter().zip(entries) {
            let number = entry["entry-number"].as_u64().unwrap();
            assert_eq!(entry["key"], key.as_str());
            assert!(number > before && number <= checkpoint_size);
            assert!(
                numbers.insert(number, key.clone()).is_none(),
                "{number} twice"
            );
            // Readable at its number, with its item.
            let stored = server.get(&format!("{B}/entries/{number}")).json();
            assert_eq!(stored[0]["key"], key.as_str());
            assert_eq!(stored[0]["item-hash"][0], entry["item-hash"]);
            let item = server.get(&format!(
                "{B}/items/{}",
                entry["item-hash"].as_str().unwrap()
            ));
            assert_eq!(item.json()["name"], format!("Land {key}"));
            // Included, under its leaf hash, in the checkpoint it came with.
            let leaf = parse_hash(entry["leaf-hash"].as_str().unwrap()).unwrap();
            let entry_json = server.get(&format!("{B}/entries/{number}")).json();
            let leaf_bytes = format!(
                "{{\"index-entry-number\":\"{number}\",\"entry-number\":\"{number}\",\"entry-timestamp\":\"{}\",\"key\":\"{key}\",\"item-hash\":[\"{}\"]}}",
                entry_json[0]["entry-timestamp"].as_str().unwrap(),
                entry["item-hash"].as_str().unwrap()
            );
            assert_eq!(leaf, leaf_hash(leaf_bytes.as_bytes()));
            let proof = server
                .get(&format!(
                    "{B}/proof/entries/{number}/{checkpoint_size}/merkle:sha-256"
                ))
                .json();
            verify_inclusion(
                &leaf,
                number - 1,
                checkpoint_size,
                &hashes(&proof["merkle-audit-path"]),
                &root,
            )
            .unwrap();
        }
    }
    // Dense: every number from before+1 on was given exactly once.
    let total: usize = receipts.iter().map(|(keys, _)| keys.len()).sum();
    assert_eq!(numbers.len(), total);
    assert_eq!(
        numbers.keys().copied().collect::<Vec<_>>(),
        (before + 1..=before + total as u64).collect::<Vec<_>>()
    );
    // Every checkpoint handed out is consistent with the next one.
    let ordered: Vec<(u64, Hash)> = checkpoints.into_iter().collect();
    for pair in ordered.windows(2) {
        let [(old, old_root), (new, new_root)] = pair else {
            unreachable!()
        };
        let proof = server
            .get(&format!("{B}/proof/consistency/{old}/{new}/merkle:sha-256"))
            .json();
        verify_consistency(
            *old,
            *new,
            &hashes(&proof["merkle-consistency-nodes"]),
            old_root,
            new_root,
        )
        .unwrap();
    }
    assert_eq!(size(&server), before + total as u64);
    // The sequencer batched them: fewer commits than requests.
    let metrics = server.get("/metrics").text();
    assert!(
        metrics.contains(&format!(
            "regis_write_requests_total{{outcome=\"done\"}} {}",
            WRITERS * REQUESTS
        )),
        "{metrics}"
    );
    assert!(metrics.contains("regis_write_durable_seconds_count"));
}

/// One bad write and what it must get.
struct Bad {
    what: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

#[test]
fn bad_writes_get_a_json_4xx_and_change_nothing() {
    let limits = Limits {
        max_body_bytes: 4096,
        ..Limits::default()
    };
    let server = country(limits);
    let token = country_token(&server);
    let other = mint(
        &server,
        Scope::Register(RegisterName::new("elsewhere").unwrap()),
    );
    let admin = mint(&server, Scope::Admin);
    let json = ("Content-Type", "application/json".to_owned());
    let auth = |token: &str| ("Authorization", bearer(token));
    let entries = format!("{B}/entries");
    let gb = server.get(&format!("{B}/records/GB")).json()["GB"]["item"][0].clone();
    let no_op = serde_json::json!([{"key": "GB", "item": gb}]).to_string();
    let bad = |what, body: &str, status, code| Bad {
        what,
        path: entries.clone(),
        headers: vec![auth(&token), json.clone()],
        body: body.as_bytes().to_vec(),
        status,
        code,
    };
    let cases = vec![
        bad("malformed JSON", "[{\"key\":", 400, "bad-json"),
        bad("not an array", "{\"key\":\"ZZ\"}", 400, "bad-json"),
        bad("empty array", "[]", 400, "no-entries"),
        bad(
            "unknown property of an entry",
            r#"[{"key":"ZZ","item":{"country":"ZZ"},"when":"now"}]"#,
            400,
            "bad-json",
        ),
        bad(
            "a number where a string belongs",
            r#"[{"key":"ZZ","item":{"country":"ZZ","name":7}}]"#,
            400,
            "bad-item",
        ),
        bad(
            "a field the register does not have",
            r#"[{"key":"ZZ","item":{"country":"ZZ","colour":"red"}}]"#,
            422,
            "invalid-item",
        ),
        bad(
            "a value of the wrong datatype",
            r#"[{"key":"ZZ","item":{"country":"ZZ","start-date":"yesterday"}}]"#,
            422,
            "invalid-item",
        ),
        bad(
            "key and primary field disagree",
            r#"[{"key":"ZZ","item":{"country":"ZY","name":"Zedland"}}]"#,
            422,
            "invalid-item",
        ),
        bad(
            "the second entry of two is bad: neither is written",
            r#"[{"key":"ZZ","item":{"country":"ZZ","name":"Zedland"}},{"key":"ZY","item":{"country":"ZY","name":["a","b"]}}]"#,
            422,
            "invalid-item",
        ),
        bad("an entry that changes nothing", &no_op, 409, "no-op-entry"),
        Bad {
            what: "an oversized body",
            path: entries.clone(),
            headers: vec![auth(&token), json.clone()],
            body: format!(
                "[{{\"key\":\"ZZ\",\"item\":{{\"country\":\"ZZ\",\"name\":\"{}\"}}}}]",
                "x".repeat(5000)
            )
            .into_bytes(),
            status: 413,
            code: "body-too-large",
        },
        Bad {
            what: "no token",
            path: entries.clone(),
            headers: vec![json.clone()],
            body: b"[]".to_vec(),
            status: 401,
            code: "no-token",
        },
        Bad {
            what: "not a bearer token",
            path: entries.clone(),
            headers: vec![("Authorization", "Basic YTpi".to_owned()), json.clone()],
            body: b"[]".to_vec(),
            status: 401,
            code: "bad-authorization",
        },
        Bad {
            what: "a token never minted",
            path: entries.clone(),
            headers: vec![auth("regis_forged"), json.clone()],
            body: b"[]".to_vec(),
            status: 401,
            code: "bad-token",
        },
        Bad {
            what: "another register's token",
            path: entries.clone(),
            headers: vec![auth(&other), json.clone()],
            body: b"[]".to_vec(),
            status: 403,
            code: "wrong-token",
        },
        Bad {
            what: "an admin token for a write",
            path: entries.clone(),
            headers: vec![auth(&admin), json.clone()],
            body: b"[]".to_vec(),
            status: 403,
            code: "wrong-token",
        },
        Bad {
            what: "a register token to create a register",
            path: "/registers".to_owned(),
            headers: vec![auth(&token), json.clone()],
            body: b"{}".to_vec(),
            status: 403,
            code: "wrong-token",
        },
        Bad {
            what: "a write to an unknown register",
            path: "/registers/nowhere/entries".to_owned(),
            headers: vec![auth(&token), json.clone()],
            body: b"[]".to_vec(),
            status: 404,
            code: "no-register",
        },
        Bad {
            what: "a body that is not JSON",
            path: entries.clone(),
            headers: vec![auth(&token), ("Content-Type", "text/plain".to_owned())],
            body: b"[]".to_vec(),
            status: 415,
            code: "bad-content-type",
        },
        Bad {
            what: "a bad allow-no-op",
            path: format!("{entries}?allow-no-op=maybe"),
            headers: vec![auth(&token), json.clone()],
            body: b"[]".to_vec(),
            status: 400,
            code: "bad-query",
        },
        Bad {
            what: "a POST where only GET is answered",
            path: format!("{B}/records"),
            headers: vec![auth(&token), json.clone()],
            body: b"[]".to_vec(),
            status: 405,
            code: "method-not-allowed",
        },
        Bad {
            what: "an RSF document whose root assertion fails",
            path: format!("{B}/load-rsf"),
            headers: vec![auth(&token)],
            body: format!(
                "add-item\t{{\"country\":\"ZZ\",\"name\":\"Zedland\"}}\nappend-entry\tuser\tZZ\t2026-01-01T00:00:00Z\tsha-256:{}\nassert-root-hash\tsha-256:{}\n",
                hex_of(br#"{"country":"ZZ","name":"Zedland"}"#),
                "0".repeat(64)
            )
            .into_bytes(),
            status: 409,
            code: "root-mismatch",
        },
        Bad {
            what: "an RSF document with a bad line",
            path: format!("{B}/load-rsf"),
            headers: vec![auth(&token)],
            body: b"add-item\t{\"country\":\"ZZ\"}\ndelete-entry\tZZ\n".to_vec(),
            status: 400,
            code: "bad-rsf",
        },
        Bad {
            what: "an RSF document without a token",
            path: format!("{B}/load-rsf"),
            headers: vec![],
            body: b"".to_vec(),
            status: 401,
            code: "no-token",
        },
    ];
    let before = size(&server);
    let root = server.get(&format!("{B}/log/checkpoint")).text();
    for case in &cases {
        let headers: Vec<(&str, &str)> = case
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let response = server.post(&case.path, &headers, &case.body);
        assert_eq!(
            response.status,
            case.status,
            "{}: {}",
            case.what,
            response.text()
        );
        assert_eq!(response.error(case.status), case.code, "{}", case.what);
        if case.status == 401 {
            assert_eq!(
                response.header("www-authenticate"),
                Some("Bearer realm=\"regis\""),
                "{}",
                case.what
            );
        }
    }
    // Nothing was written, and the server is up.
    assert_eq!(size(&server), before);
    assert_eq!(server.get(&format!("{B}/log/checkpoint")).text(), root);
    assert_eq!(server.get(&format!("{B}/records/ZZ")).status, 404);
    assert_eq!(server.get("/healthz").status, 200);
    // The same no-op, when asked for, is recorded.
    let response = server.post(
        &format!("{entries}?allow-no-op=true"),
        &[
            ("Authorization", &bearer(&token)),
            ("Content-Type", "application/json"),
        ],
        no_op.as_bytes(),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(size(&server), before + 1);
}

/// Published history's slips are refused in new writes: each of the
/// project's quirk fixtures, sent to `POST B/load-rsf` of an empty register
/// of its name, is refused at its first slip's line and nothing of it is
/// written; an orphan item in the old service's words. (`POST B/entries`
/// carries user entries only: no system key can reach it.)
#[test]
fn published_slips_are_refused_by_load_rsf() {
    let quirks = regis_fixtures::quirks();
    let server = TestServer::start_prepared(
        |registry| {
            for quirk in &quirks {
                let name = RegisterName::new(&quirk.register).unwrap();
                registry.create::<regis_store::RedbBackend>(&name).unwrap();
            }
        },
        Limits::default(),
    );
    for quirk in &quirks {
        let file = quirk.path.display().to_string();
        let name = RegisterName::new(&quirk.register).unwrap();
        let token = mint(&server, Scope::Register(name));
        let base = format!("/registers/{}", quirk.register);
        let response = server.post(
            &format!("{base}/load-rsf"),
            &[("Authorization", &bearer(&token))],
            &std::fs::read(&quirk.path).unwrap(),
        );
        let first = &quirk.warnings[0];
        let (status, code, message) = match first.kind.as_str() {
            "orphan-item" => (
                400,
                "bad-rsf",
                format!(
                    "Orphan add item (line:{}): {}",
                    first.line,
                    first.item.as_deref().unwrap()
                ),
            ),
            "unknown-system-key" => (
                422,
                "bad-definition",
                format!(
                    "RSF line {}: `{}` is not a system key",
                    first.line, quirk.register
                ),
            ),
            other => panic!("{file}: a quirk of kind {other}"),
        };
        assert_eq!(response.error(status), code, "{file}");
        let said = response.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(said.starts_with(&message), "{file}: {said}");
        let register = server.get(&format!("{base}/register")).json();
        assert_eq!(register["total-entries"], 0, "{file}");
        assert_eq!(register["total-system-entries"], 0, "{file}");
    }
}

fn hex_of(item: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(item))
}

#[test]
fn a_slow_body_holds_its_slot_until_408_and_others_get_503_meanwhile() {
    // Long enough that the write below, sent once the slot is taken, meets
    // the trickling body on a loaded machine too.
    let limits = Limits {
        body_timeout_seconds: 5,
        max_writes_in_flight: 1,
        ..Limits::default()
    };
    let server = country(limits);
    let token = country_token(&server);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // With `Expect: 100-continue` the server says when the handler begins
    // to read the body, which is after it took the write slot: the test
    // knows the slot is taken without racing for it.
    write!(
        stream,
        "POST {B}/entries HTTP/1.1\r\nHost: regis.test\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n"
    )
    .unwrap();
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        stream.read_exact(&mut byte).unwrap();
        interim.push(byte[0]);
    }
    let interim = String::from_utf8_lossy(&interim);
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    write!(stream, "[{{\"key\"").unwrap();
    // While it trickles, the register's one write slot is taken: another
    // write is refused at once, with Retry-After, and nothing is queued.
    let busy = post_entries(&server, &token, &serde_json::json!([entry("ZY", "Zyland")]));
    assert_eq!(busy.error(503), "busy");
    assert_eq!(busy.header("retry-after"), Some("1"));
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("slow-body"), "{answer}");
    // The one write slot is free again.
    let response = post_entries(
        &server,
        &token,
        &serde_json::json!([entry("ZZ", "Zedland")]),
    );
    assert_eq!(response.status, 200, "{}", response.text());
}

#[test]
fn rsf_loads_are_atomic_checked_and_update_the_schema() {
    let limits = Limits {
        max_rsf_bytes: 2000,
        ..Limits::default()
    };
    let server = country(limits);
    let token = country_token(&server);
    let auth = bearer(&token);
    let load = |body: &str| {
        server.post(
            &format!("{B}/load-rsf"),
            &[("Authorization", auth.as_str())],
            body.as_bytes(),
        )
    };
    let before = size(&server);
    let zz = r#"{"country":"ZZ","name":"Zedland"}"#;
    let custodian = r#"{"custodian":"Zedland Office"}"#;
    let document = format!(
        "add-item\t{zz}\nappend-entry\tuser\tZZ\t2026-01-01T00:00:00Z\tsha-256:{}\nadd-item\t{custodian}\nappend-entry\tsystem\tcustodian\t2026-01-01T00:00:00Z\tsha-256:{}\n",
        hex_of(zz.as_bytes()),
        hex_of(custodian.as_bytes()),
    );
    // An invalid item halfway through: nothing of the document is kept.
    let bad_item = r#"{"country":"ZY","name":["a","b"]}"#;
    let failing = format!(
        "{document}add-item\t{bad_item}\nappend-entry\tuser\tZY\t2026-01-01T00:00:00Z\tsha-256:{}\n",
        hex_of(bad_item.as_bytes())
    );
    let response = load(&failing);
    assert_eq!(response.error(422), "invalid-item");
    assert!(
        response.text().contains("RSF line 6"),
        "{}",
        response.text()
    );
    assert_eq!(size(&server), before);
    assert_eq!(server.get(&format!("{B}/records/ZZ")).status, 404);
    // Too large: 413, nothing kept.
    let large = format!("{document}{}", "#".repeat(2000));
    assert_eq!(load(&large).error(413), "body-too-large");
    // The document alone: appended, its system entry changes the register.
    let response = load(&document);
    assert_eq!(response.status, 200, "{}", response.text());
    let receipt = response.json();
    assert_eq!(receipt["user-entries"], 1);
    assert_eq!(receipt["system-entries"], 1);
    let (checkpoint_size, _) = verified(&server, receipt["checkpoint"].as_str().unwrap());
    assert_eq!(checkpoint_size, before + 1);
    assert_eq!(server.get(&format!("{B}/records/ZZ")).status, 200);
    let metadata = server.get(&format!("{B}/register")).json();
    assert_eq!(metadata["custodian"], "Zedland Office");
    // Its assertion of the root now holds, and is checked.
    let root = server
        .get(&format!("{B}/proof/register/merkle:sha-256"))
        .json();
    let zy = r#"{"country":"ZY","name":"Zyland"}"#;
    let asserted = format!(
        "assert-root-hash\t{}\nadd-item\t{zy}\nappend-entry\tuser\tZY\t2026-01-01T00:00:00Z\tsha-256:{}\n",
        root["root-hash"].as_str().unwrap(),
        hex_of(zy.as_bytes())
    );
    let response = load(&asserted);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["assertions"], 1);
    assert_eq!(size(&server), before + 2);
}

#[test]
fn an_admin_creates_a_register_and_its_token_writes_to_it() {
    let server = country(Limits::default());
    let admin = mint(&server, Scope::Admin);
    let definition = serde_json::json!({
        "name": "fruit",
        "text": "Fruit sold at the market",
        "custodian": "Greengrocer",
        "fields": [
            {"field": "fruit", "datatype": "string", "cardinality": "1", "text": "The fruit's name"},
            {"field": "colour", "datatype": "string", "cardinality": "n"},
            {"field": "country", "datatype": "string", "cardinality": "1", "register": "country"},
        ],
    });
    let create = |body: &serde_json::Value| {
        server.post(
            "/registers",
            &[
                ("Authorization", &bearer(&admin)),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    };
    let response = create(&definition);
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(response.header("location"), Some("/registers/fruit"));
    let created = response.json();
    let fruit_token = created["token"].as_str().unwrap().to_owned();
    assert_eq!(created["log-origin"], "regis.test/registers/fruit");
    // Served at once, defined as asked.
    let metadata = server.get("/registers/fruit/register").json();
    assert_eq!(metadata["custodian"], "Greengrocer");
    assert_eq!(metadata["log-public-key"], created["log-public-key"]);
    assert_eq!(metadata["fields"].as_array().unwrap().len(), 3);
    // Its token writes to it, and only to it.
    let apple = serde_json::json!([{"key": "apple", "item": {"fruit": "apple", "colour": ["red", "green"], "country": "GB"}}]);
    let write = |path: &str, token: &str| {
        server.post(
            path,
            &[
                ("Authorization", &bearer(token)),
                ("Content-Type", "application/json"),
            ],
            apple.to_string().as_bytes(),
        )
    };
    assert_eq!(write("/registers/fruit/entries", &fruit_token).status, 200);
    assert_eq!(
        write(&format!("{B}/entries"), &fruit_token).error(403),
        "wrong-token"
    );
    let record = server.get("/registers/fruit/records/apple").json();
    assert_eq!(record["apple"]["item"][0]["colour"][1], "green");
    // Refused: an existing name, a bad name, a field of unknown shape.
    assert_eq!(create(&definition).error(409), "register-exists");
    let mut bad = definition.clone();
    bad["name"] = "Fruit!".into();
    assert_eq!(create(&bad).error(400), "bad-register-name");
    let mut bad = definition.clone();
    bad["name"] = "veg".into();
    assert_eq!(create(&bad).error(422), "bad-definition");
    let mut bad = definition.clone();
    bad["name"] = "nut".into();
    bad["fields"] = serde_json::json!([{"field": "nut", "datatype": "string", "cardinality": "7"}]);
    assert_eq!(create(&bad).error(422), "bad-field");
    assert_eq!(server.get("/registers/veg").status, 404);
}

/// 64 concurrent writers, every fourth sending a key too long for an entry
/// bundle (70,000 bytes; a leaf holds at most 65,535): each of those gets a
/// 422 naming the length, every other writer gets its receipt, whatever
/// batches the sequencer made of them. A 70 KB field value is not in the
/// leaf and is accepted; the same long key in an RSF load is a 422 too.
#[test]
fn keys_too_long_for_a_bundle_fail_alone_and_others_get_receipts() {
    let server = country(Limits::default());
    let token = country_token(&server);
    let before = size(&server);
    const WRITERS: usize = 64;
    let long_key = "Z".repeat(70_000);
    let barrier = std::sync::Barrier::new(WRITERS);
    let answers: Vec<(usize, Resp)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (server, token, barrier, long_key) = (&server, &token, &barrier, &long_key);
                scope.spawn(move || {
                    let body = match writer % 4 {
                        0 => serde_json::json!([entry(long_key, "Longland")]),
                        1 => serde_json::json!([entry(&format!("L{writer}"), &"n".repeat(70_000))]),
                        _ => serde_json::json!([entry(&format!("L{writer}"), "Shortland")]),
                    };
                    barrier.wait();
                    (writer, post_entries(server, token, &body))
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut good = 0;
    for (writer, response) in &answers {
        if writer % 4 == 0 {
            assert_eq!(response.error(422), "entry-too-long", "writer {writer}");
            let message = response.json()["error"]["message"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(
                message.starts_with("entry 1 (key \"ZZZ")
                    && message.contains("bytes; an entry bundle holds at most 65535")
                    && message.contains("the key is 70000 bytes")
                    && message.len() < 1000,
                "{message}"
            );
        } else {
            assert_eq!(response.status, 200, "writer {writer}: {}", response.text());
            let receipt = response.json();
            assert_eq!(receipt["entries"][0]["key"], format!("L{writer}"));
            verified(&server, receipt["checkpoint"].as_str().unwrap());
            good += 1;
        }
    }
    assert_eq!(size(&server), before + good);
    let stored = server.get(&format!("{B}/records/L1")).json();
    assert_eq!(
        stored["L1"]["item"][0]["name"].as_str().unwrap().len(),
        70_000
    );
    // Through load-rsf, the same key is refused at its line.
    let item = format!(r#"{{"country":"{long_key}"}}"#);
    let document = format!(
        "add-item\t{item}\nappend-entry\tuser\t{long_key}\t2026-01-01T00:00:00Z\tsha-256:{}\n",
        hex_of(item.as_bytes())
    );
    let response = server.post(
        &format!("{B}/load-rsf"),
        &[("Authorization", &bearer(&token))],
        document.as_bytes(),
    );
    assert_eq!(response.error(422), "entry-too-long");
    assert!(
        response.text().contains("RSF line 2"),
        "{}",
        response.text()
    );
    assert_eq!(size(&server), before + good);
    assert_eq!(server.get("/healthz").status, 200);
}

/// `POST /registers` with a bad definition is refused before anything is
/// made: a 422 saying what and where, then no register of that name is
/// served and none is in the data directory. The limits are those of
/// regis-model (names 100 bytes, texts 10,000, no control characters,
/// known datatypes).
#[test]
fn bad_definitions_are_refused_before_a_register_is_made() {
    let server = country(Limits::default());
    let admin = mint(&server, Scope::Admin);
    let field = |name: &str, datatype: &str, text: &str| serde_json::json!({"field": name, "datatype": datatype, "cardinality": "1", "text": text});
    let definition = |name: &str, text: &str, custodian: &str, extra: serde_json::Value| {
        serde_json::json!({
            "name": name,
            "text": text,
            "custodian": custodian,
            "fields": [field(name, "string", "The key"), extra],
        })
    };
    let huge = "n".repeat(70_000);
    let cases: Vec<(&str, serde_json::Value, &str, &str)> = vec![
        (
            "a field name with a newline and a tab",
            definition("bad-a", "Text", "Office", field("a\nb\tc", "string", "x")),
            "bad-field",
            "field 2: the item of system entry `field:a\nb\tc`: `field` holds the control character U+000A",
        ),
        (
            "a 70 KB field name",
            definition("bad-b", "Text", "Office", field(&huge, "string", "x")),
            "bad-field",
            "`field` is 70000 bytes long; at most 100 are allowed",
        ),
        (
            "a field name of 101 bytes",
            definition(
                "bad-c",
                "Text",
                "Office",
                field(&"n".repeat(101), "string", "x"),
            ),
            "bad-field",
            "`field` is 101 bytes long; at most 100 are allowed",
        ),
        (
            "an unknown datatype",
            definition("bad-d", "Text", "Office", field("shape", "polygon", "x")),
            "bad-field",
            "datatype `polygon` is not one of string, text, integer",
        ),
        (
            "a field text with a control character",
            definition(
                "bad-e",
                "Text",
                "Office",
                field("shape", "string", "a\u{7}b"),
            ),
            "bad-field",
            "`text` holds the control character U+0007",
        ),
        (
            "a register text of 10,001 bytes",
            definition(
                "bad-f",
                &"t".repeat(10_001),
                "Office",
                field("shape", "string", "x"),
            ),
            "bad-definition",
            "`text` is 10001 bytes long; at most 10000 are allowed",
        ),
        (
            "a custodian with a newline",
            definition(
                "bad-g",
                "Text",
                "Office\nAnnex",
                field("shape", "string", "x"),
            ),
            "bad-definition",
            "`custodian` holds the control character U+000A",
        ),
    ];
    let create = |body: &serde_json::Value| {
        server.post(
            "/registers",
            &[
                ("Authorization", &bearer(&admin)),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    };
    for (what, body, code, message) in &cases {
        let response = create(body);
        assert_eq!(response.error(422), *code, "{what}");
        let said = response.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            said.contains(message) && said.len() < 1000,
            "{what}: {said}"
        );
        let name = body["name"].as_str().unwrap();
        assert_eq!(
            server
                .get(&format!("/registers/{name}/register"))
                .error(404),
            "no-register",
            "{what}"
        );
        assert!(
            !server.dir.path().join("registers").join(name).exists(),
            "{what}: a directory was left"
        );
    }
    // The limits themselves pass, and the name is then free to use.
    let fine = definition(
        "bad-b",
        &"t".repeat(10_000),
        "Office",
        field(&"n".repeat(100), "integer", "x"),
    );
    let response = create(&fine);
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(server.get("/registers/bad-b/download-rsf").status, 200);
}

/// The `Bearer` auth-scheme is matched case-insensitively (RFC 6750 with
/// RFC 9110's auth-scheme rule); the token itself is not.
#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let server = country(Limits::default());
    let token = country_token(&server);
    let cases = [
        (format!("bearer {token}"), 200),
        (format!("BEARER {token}"), 200),
        (format!("BeArEr   {token}"), 200),
        (format!("Bearer {}", token.to_uppercase()), 401),
        (format!("Bearer{token}"), 401),
        ("Bearer ".to_owned(), 401),
        (format!("Basic {token}"), 401),
    ];
    for (index, (authorization, status)) in cases.iter().enumerate() {
        let key = format!("C{index}");
        let response = server.post(
            &format!("{B}/entries"),
            &[
                ("Authorization", authorization.as_str()),
                ("Content-Type", "application/json"),
            ],
            serde_json::json!([entry(&key, "Caseland")])
                .to_string()
                .as_bytes(),
        );
        assert_eq!(
            response.status,
            *status,
            "{authorization}: {}",
            response.text()
        );
    }
}

/// A record whose value is a spreadsheet formula is served as CSV with the
/// formula neutralised (`'` and quoted), a control character escaped; its
/// JSON keeps the exact value.
#[test]
fn csv_neutralises_formulas_written_by_a_custodian() {
    let server = country(Limits::default());
    let token = country_token(&server);
    let formula = r#"=HYPERLINK("http://evil.test","Click")"#;
    let response = post_entries(
        &server,
        &token,
        &serde_json::json!([entry("ZF", formula), entry("ZG", "Line\nbreak")]),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let csv = server.get(&format!("{B}/records/ZF.csv")).text();
    assert!(
        csv.contains(r#","'=HYPERLINK(""http://evil.test"",""Click"")""#),
        "{csv}"
    );
    let csv = server.get(&format!("{B}/records/ZG.csv")).text();
    assert!(csv.contains(r",Line\nbreak"), "{csv}");
    assert_eq!(csv.matches('\n').count(), 2, "{csv}");
    let json = server.get(&format!("{B}/records/ZF")).json();
    assert_eq!(json["ZF"]["item"][0]["name"], formula);
}
