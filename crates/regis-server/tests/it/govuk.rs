//! What GOV.UK Registers' clients can tell apart, answered as
//! openregister-java answered it (`spec/govuk-compatibility.md` lists each
//! behaviour compared): its old singular paths, trailing slashes, retired
//! formats, the end of a paged listing, what names nothing, `Link` headers
//! and CORS.

use crate::common::{TestServer, rsf_commands};

/// A request (method, path, headers), the status it gets, and what else.
type Row<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], u16, Expect);

/// What a row expects beside its status.
enum Expect {
    /// A 301 or other redirect to exactly this `Location`.
    Location(&'static str),
    /// A JSON error with this code.
    Code(&'static str),
    /// This header, exactly.
    Header(&'static str, &'static str),
    /// A JSON body.
    Json(&'static str),
}

#[test]
fn old_clients_get_the_statuses_and_headers_they_got_from_govuk() {
    let server = TestServer::start(vec![(
        "country",
        rsf_commands("openregister-java/country-data.rsf"),
    )]);
    let records = server
        .get("/registers/country/register")
        .json()
        .get("total-records")
        .and_then(serde_json::Value::as_u64)
        .unwrap();
    // The first page of 100 past the records, and the last one in them.
    let past = records.div_ceil(100) + 1;
    let past_path = format!("/registers/country/records?page-index={past}");
    let last_path = format!("/registers/country/records?page-index={}", past - 1);
    use Expect::*;
    let rows: Vec<Row<'_>> = vec![
        // RedirectResource: singular paths, 301 to the plural, the suffix
        // and the query as sent.
        (
            "GET",
            "/registers/country/record/GB",
            &[],
            301,
            Location("/registers/country/records/GB"),
        ),
        (
            "HEAD",
            "/registers/country/record/GB.csv?page-size=2",
            &[],
            301,
            Location("/registers/country/records/GB.csv?page-size=2"),
        ),
        (
            "GET",
            "/registers/country/record/GB/entries.json",
            &[],
            301,
            Location("/registers/country/records/GB/entries.json"),
        ),
        (
            "GET",
            "/registers/country/entry/1",
            &[],
            301,
            Location("/registers/country/entries/1"),
        ),
        (
            "GET",
            "/registers/country/item/sha-256:6b18693874513ba13da54d61aafa7cad0c8f5573f3431d6f1c04b07ddb27d6bb.json",
            &[],
            301,
            Location(
                "/registers/country/items/sha-256:6b18693874513ba13da54d61aafa7cad0c8f5573f3431d6f1c04b07ddb27d6bb.json",
            ),
        ),
        (
            "GET",
            "/registers/country/proof/entry/1/2/merkle:sha-256",
            &[],
            301,
            Location("/registers/country/proof/entries/1/2/merkle:sha-256"),
        ),
        (
            "POST",
            "/registers/country/record/GB",
            &[("Content-Length", "0")],
            405,
            Header("allow", "GET, HEAD"),
        ),
        // StripTrailingSlashRedirectFilter: reads of a route's path only,
        // never to another host.
        (
            "GET",
            "/registers/country/records/?page-size=2",
            &[],
            301,
            Location("/registers/country/records?page-size=2"),
        ),
        ("GET", "//example.org/", &[], 404, Code("no-route")),
        ("GET", "/\\example.org/", &[], 404, Code("no-route")),
        (
            "GET",
            "/registers/country/nothing/",
            &[],
            404,
            Code("no-route"),
        ),
        ("GET", "/registers/", &[], 301, Location("/registers")),
        // Retired formats: 410; a key that ends like one is a key.
        (
            "GET",
            "/registers/country/records.tsv",
            &[],
            410,
            Code("retired-format"),
        ),
        (
            "GET",
            "/registers/country/entries.yaml",
            &[],
            410,
            Code("retired-format"),
        ),
        (
            "GET",
            "/registers/country/register.ttl",
            &[],
            410,
            Code("retired-format"),
        ),
        (
            "GET",
            "/registers/country/records.xlsx",
            &[],
            410,
            Code("retired-format"),
        ),
        (
            "GET",
            "/registers/country/records/GB.yaml",
            &[],
            404,
            Code("no-record"),
        ),
        // IndexSizePagination: 404 past the last page, 400 for bad sizes.
        ("GET", &past_path, &[], 404, Code("no-page")),
        (
            "GET",
            "/registers/country/records/name/Germany?page-index=2",
            &[],
            404,
            Code("no-page"),
        ),
        (
            "GET",
            "/registers/country/records?page-size=0",
            &[],
            400,
            Code("bad-number"),
        ),
        (
            "GET",
            "/registers/country/records?page-index=0",
            &[],
            400,
            Code("bad-number"),
        ),
        (
            "GET",
            "/registers/country/records?page-size=5001",
            &[],
            400,
            Code("bad-number"),
        ),
        (
            "GET",
            "/registers/country/records?page-index=x",
            &[],
            400,
            Code("bad-number"),
        ),
        (
            "GET",
            "/registers/country/records/name/Nowhere",
            &[],
            200,
            Json("{}"),
        ),
        (
            "GET",
            &last_path,
            &[],
            200,
            Header(
                "link",
                "</registers/country/records?page-index=1&page-size=100>; rel=\"previous\", \
                 </registers/country/records?page-index=1&page-size=100>; rel=\"prev\"",
            ),
        ),
        // StartLimitPagination: entries from start (0 counts from 0), a
        // 200 past the end.
        (
            "GET",
            "/registers/country/entries?start=0&limit=2",
            &[],
            200,
            Header(
                "link",
                "</registers/country/entries?start=2&limit=2>; rel=\"next\"",
            ),
        ),
        (
            "GET",
            "/registers/country/entries?start=100000",
            &[],
            200,
            Json("[]"),
        ),
        // Entries and items: what names nothing is a 404.
        (
            "GET",
            "/registers/country/entries/0",
            &[],
            404,
            Code("bad-number"),
        ),
        (
            "GET",
            "/registers/country/entries/one",
            &[],
            404,
            Code("bad-number"),
        ),
        (
            "GET",
            "/registers/country/entries/100000",
            &[],
            404,
            Code("no-entry"),
        ),
        (
            "GET",
            "/registers/country/items/sha-256:00",
            &[],
            404,
            Code("bad-item-hash"),
        ),
        (
            "GET",
            "/registers/country/items/sha-256:0000000000000000000000000000000000000000000000000000000000000000",
            &[],
            404,
            Code("no-item"),
        ),
        // RecordResource.
        (
            "GET",
            "/registers/country/records/NOPE",
            &[],
            404,
            Code("no-record"),
        ),
        (
            "GET",
            "/registers/country/records/NOPE/entries",
            &[],
            404,
            Code("no-record"),
        ),
        (
            "GET",
            "/registers/country/records/GB.json",
            &[],
            200,
            Header(
                "link",
                "</registers/country/records/GB/entries>; rel=\"version-history\"",
            ),
        ),
        // RegisterResource: JSON only.
        (
            "GET",
            "/registers/country/register.csv",
            &[],
            406,
            Code("not-acceptable"),
        ),
        // VerifiableLogResource: a proof beyond the tree is a 400.
        (
            "GET",
            "/registers/country/proof/entries/1/100000/merkle:sha-256",
            &[],
            400,
            Code("beyond-tree"),
        ),
        (
            "GET",
            "/registers/country/proof/consistency/1/100000/merkle:sha-256",
            &[],
            400,
            Code("beyond-tree"),
        ),
        // CorsBundle: any origin; preflights allow its headers for 30 min.
        (
            "GET",
            "/registers/country/records/GB",
            &[("Origin", "https://example.org")],
            200,
            Header("access-control-allow-origin", "*"),
        ),
        (
            "OPTIONS",
            "/registers/country/records",
            &[
                ("Origin", "https://example.org"),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "x-requested-with"),
            ],
            200,
            Header(
                "access-control-allow-headers",
                "x-requested-with,content-type,accept,origin",
            ),
        ),
        (
            "OPTIONS",
            "/registers/country/records",
            &[
                ("Origin", "https://example.org"),
                ("Access-Control-Request-Method", "GET"),
            ],
            200,
            Header("access-control-max-age", "1800"),
        ),
        // Jersey answered any OPTIONS; Regis answers it as a preflight.
        (
            "OPTIONS",
            "/registers/country/records",
            &[],
            200,
            Header("access-control-allow-methods", "GET,HEAD"),
        ),
    ];
    for (method, path, headers, status, expect) in rows {
        let response = server.request(method, path, headers);
        let text = String::from_utf8_lossy(&response.body).into_owned();
        assert_eq!(response.status, status, "{method} {path}: {text}");
        match expect {
            Location(location) => {
                assert_eq!(response.header("location"), Some(location), "{path}");
                assert!(response.body.is_empty(), "{path}: {text}");
            }
            Code(code) => assert_eq!(response.error(status), code, "{path}"),
            Header(name, value) => {
                assert_eq!(response.header_all(name), value, "{method} {path}")
            }
            Json(body) => assert_eq!(text, body, "{path}"),
        }
    }

    // Following each move lands where the plural path answers.
    for (old, new) in [
        ("record/GB", "records/GB"),
        ("record/GB/entries.csv", "records/GB/entries.csv"),
        ("entry/7.json", "entries/7.json"),
    ] {
        let moved = server.get(&format!("/registers/country/{old}"));
        let location = moved.header("location").unwrap();
        assert_eq!(location, format!("/registers/country/{new}"));
        assert_eq!(server.get(location).status, 200, "{location}");
    }
    // entries?start=0 is entry 1 alone for limit 2: numbers begin at 1.
    let first = server
        .get("/registers/country/entries?start=0&limit=2")
        .json();
    let numbers: Vec<&str> = first
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["entry-number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["1"]);
}
