//! Arbitrary and hostile input never panics the parsers, and a live server
//! answers every request built from hostile pieces with a 2xx, 3xx or 4xx
//! (never a 5xx), then keeps serving.

use crate::common::{TestServer, rsf_commands};
use axum::http::{HeaderMap, HeaderValue, header};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use regis_server::http::{Query, accepted, accepts_gzip, decode, etag_matches, number};
use regis_server::routes::match_path;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parsers_never_panic(text in any::<String>(), bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = match_path(&text);
        let _ = match_path(&format!("/{text}"));
        let _ = match_path(&format!("/registers/x/log/tile/{text}"));
        let _ = Query::parse(Some(&text));
        let _ = decode(&text, "x", true);
        let _ = number(&text, "x", 0, u64::MAX);
        let lossy = String::from_utf8_lossy(&bytes).into_owned();
        let _ = match_path(&lossy);
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            headers.insert(header::ACCEPT, value.clone());
            headers.insert(header::ACCEPT_ENCODING, value.clone());
            headers.insert(header::IF_NONE_MATCH, value);
        }
        let _ = accepted(&headers);
        let _ = accepts_gzip(&headers);
        let _ = etag_matches(&lossy, "\"x\"");
    }

    #[test]
    fn a_matched_route_round_trips_its_parameters(key in "[A-Za-z0-9 é/%.:-]{1,20}") {
        let encoded = regis_server::http::encode_segment(&key);
        let path = format!("/registers/country/records/{encoded}/entries");
        let matched = match_path(&path).unwrap().unwrap();
        prop_assert_eq!(&matched.params[1], &key);
    }
}

const PIECES: &[&str] = &[
    "registers",
    "country",
    "records",
    "entries",
    "items",
    "proof",
    "register",
    "consistency",
    "merkle:sha-256",
    "log",
    "system-log",
    "tile",
    "checkpoint",
    "download-rsf",
    "0",
    "1",
    "-1",
    "208",
    "209",
    "18446744073709551616",
    "123456789012345678901234567890",
    "000",
    "x001",
    "x000",
    "entries",
    ".p",
    "255",
    "256",
    "..",
    ".",
    "",
    "%2F",
    "%00",
    "%FF",
    "%",
    "GB",
    "GB.csv",
    "GB.json",
    "sha-256:00",
    "name",
    "United%20Kingdom",
    "proof.tlog-proof",
    "a.b.c",
];

#[test]
fn hostile_paths_are_never_a_5xx() {
    let server = TestServer::start(vec![(
        "country",
        rsf_commands("openregister-java/country-data.rsf"),
    )]);
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (
        proptest::collection::vec(proptest::sample::select(PIECES), 1..9),
        proptest::option::of("[a-z=&%0-9-]{0,30}".prop_map(String::from)),
    );
    for _ in 0..400 {
        let (pieces, query) = strategy.new_tree(&mut runner).unwrap().current();
        let mut path = format!("/{}", pieces.join("/"));
        if let Some(query) = query {
            path.push('?');
            path.push_str(&query);
        }
        let response = server.get(&path);
        assert!(
            (200..500).contains(&response.status),
            "{path}: {} {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
        if response.status >= 400 && response.status != 405 {
            response.error(response.status);
        }
    }
    assert_eq!(server.get("/healthz").status, 200);
}

/// Mutations of a valid write body: cut short, a byte changed, a byte
/// removed, or a piece of hostile JSON put in.
fn mutated(valid: &[u8], choice: u8, at: usize, byte: u8, piece: &str) -> Vec<u8> {
    let at = at % (valid.len() + 1);
    let mut body = valid.to_vec();
    match choice % 4 {
        0 => body.truncate(at),
        1 if at < body.len() => body[at] = byte,
        2 if at < body.len() => {
            body.remove(at);
        }
        _ => body.splice(at..at, piece.bytes()).for_each(drop),
    }
    body
}

const JSON_PIECES: &[&str] = &[
    "null",
    "[]",
    "{}",
    "\"",
    "\\u0000",
    "\\ud800",
    "1e999",
    "-0",
    "[[[[",
    "}}}",
    ",",
    ":",
    "\"item\":{}",
    "\"key\":\"\"",
    "\u{1F600}",
    "\t\r\n",
    "\"country\":[\"a\",1]",
];

#[test]
fn hostile_write_bodies_are_never_a_5xx() {
    let server = TestServer::start(vec![(
        "country",
        rsf_commands("openregister-java/country-data.rsf"),
    )]);
    let token = server
        .app()
        .tokens
        .mint(regis_store::Scope::Register(
            regis_model::RegisterName::new("country").unwrap(),
        ))
        .unwrap()
        .token;
    let auth = format!("Bearer {token}");
    let entries =
        br#"[{"key":"ZZ","item":{"country":"ZZ","name":"Zedland","start-date":"2020-01-01"}}]"#;
    let item = br#"{"country":"ZY","name":"Zyland"}"#;
    let rsf = format!(
        "add-item\t{}\nappend-entry\tuser\tZY\t2020-01-01T00:00:00Z\tsha-256:{}\n",
        std::str::from_utf8(item).unwrap(),
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(item))
    );
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (
        any::<u8>(),
        any::<usize>(),
        any::<u8>(),
        proptest::sample::select(JSON_PIECES),
        any::<bool>(),
    );
    let mut accepted = 0;
    for _ in 0..300 {
        let (choice, at, byte, piece, as_rsf) = strategy.new_tree(&mut runner).unwrap().current();
        let (path, body, content_type) = if as_rsf {
            let body = mutated(rsf.as_bytes(), choice, at, byte, piece);
            ("/registers/country/load-rsf", body, "text/plain")
        } else {
            let body = mutated(entries, choice, at, byte, piece);
            ("/registers/country/entries", body, "application/json")
        };
        let response = server.post(
            path,
            &[("Authorization", &auth), ("Content-Type", content_type)],
            &body,
        );
        assert!(
            (200..500).contains(&response.status),
            "{path} {:?}: {} {}",
            String::from_utf8_lossy(&body),
            response.status,
            response.text()
        );
        if response.status == 200 {
            accepted += 1;
        } else {
            response.error(response.status);
        }
    }
    // Some mutations are still valid (a changed name), most are not.
    assert!(accepted > 0 && accepted < 300, "{accepted} accepted");
    assert_eq!(server.get("/healthz").status, 200);
}
