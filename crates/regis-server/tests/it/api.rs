//! The register API over a live server against the reference
//! implementation's expected bodies (`openregister-java/api-shapes/`), and
//! against the real country register.

use crate::common::{TestServer, api_shapes_commands, rsf_commands};
use serde_json::Value;

fn shape(name: &str) -> String {
    regis_fixtures::read_string(format!("registers/openregister-java/api-shapes/{name}"))
}

fn shape_json(name: &str) -> Value {
    serde_json::from_str(&shape(name)).unwrap()
}

/// CSV lines: the header, then the rows in any order.
fn csv_rows(text: &str) -> (String, Vec<String>) {
    let mut lines: Vec<String> = text.split_inclusive("\r\n").map(String::from).collect();
    let header = lines.remove(0);
    lines.sort();
    (header, lines)
}

#[test]
fn bodies_match_the_reference_implementation() {
    let server = TestServer::start(vec![("register", api_shapes_commands())]);
    let b = "/registers/register";

    // Entries: byte for byte.
    let entries = server.get(&format!("{b}/entries"));
    assert_eq!(entries.status, 200);
    assert_eq!(entries.header("content-type"), Some("application/json"));
    assert_eq!(entries.text(), shape("entries.json").trim_end());
    assert_eq!(
        server.get(&format!("{b}/entries.csv")).text(),
        shape("entries.csv")
    );
    assert_eq!(
        server
            .get_with(&format!("{b}/entries"), &[("Accept", "text/csv")])
            .text(),
        shape("entries.csv")
    );
    assert_eq!(
        server.get(&format!("{b}/entries/1")).text(),
        shape("entry.json").trim_end()
    );
    assert_eq!(
        server.get(&format!("{b}/entries/1.json")).text(),
        shape("entry.json").trim_end()
    );
    assert_eq!(
        server.get(&format!("{b}/records/value1/entries")).text(),
        shape("record-entries.json").trim_end()
    );
    assert_eq!(
        server
            .get(&format!("{b}/records/value1/entries.csv"))
            .text(),
        shape("record-entries.csv")
    );

    // Records and items: the same JSON (members in any order), CSV rows.
    assert_eq!(
        server.get(&format!("{b}/records/value1")).json(),
        shape_json("record.json")
    );
    assert_eq!(
        server.get(&format!("{b}/records/value1.csv")).text(),
        shape("record.csv")
    );
    assert_eq!(
        server.get(&format!("{b}/records")).json(),
        shape_json("list.json")
    );
    let list = server.get(&format!("{b}/records.csv"));
    assert_eq!(list.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(csv_rows(&list.text()), csv_rows(&shape("list.csv")));
    let item = "sha-256:877d8bd1ab71dc6e48f64b4ca83c6d7bf645a1eb56b34d50fa8a833e1101eb18";
    assert_eq!(
        server.get(&format!("{b}/items/{item}")).json(),
        shape_json("item.json")
    );
    assert_eq!(
        server.get(&format!("{b}/items/{item}.csv")).text(),
        shape("item.csv")
    );

    // Records by field value; a cardinality-n field matches any element.
    let by_text = server.get(&format!("{b}/records/text/The%20Entry%201"));
    assert_eq!(by_text.json(), shape_json("record.json"));
    let by_field = server.get(&format!("{b}/records/fields/field1")).json();
    assert_eq!(by_field, shape_json("list.json"));
    let none = server.get(&format!("{b}/records/fields/field9")).json();
    assert_eq!(none, serde_json::json!({}));
    assert_eq!(
        server.get(&format!("{b}/records/nofield/x")).error(404),
        "no-field"
    );

    // System entries.
    let system = server.get(&format!("{b}/entries?type=system")).json();
    assert_eq!(system.as_array().unwrap().len(), 8);
    assert_eq!(system[0]["key"], "name");
    let one = server.get(&format!("{b}/entries/8?type=system")).json();
    assert_eq!(one[0]["key"], "register:register");
}

#[test]
fn pages_are_bounded_and_linked() {
    let server = TestServer::start(vec![(
        "country",
        rsf_commands("openregister-java/country-data.rsf"),
    )]);
    let b = "/registers/country";
    let first = server.get(&format!("{b}/records?page-size=50"));
    assert_eq!(first.status, 200);
    let records = first.json();
    assert_eq!(records.as_object().unwrap().len(), 50);
    assert_eq!(
        first.header("link"),
        Some("</registers/country/records?page-index=2&page-size=50>; rel=\"next\"")
    );
    let metadata = server.get(&format!("{b}/register")).json();
    let total = metadata["total-records"].as_u64().unwrap();
    let last_index = total.div_ceil(50);
    let last = server.get(&format!("{b}/records?page-index={last_index}&page-size=50"));
    assert_eq!(
        last.json().as_object().unwrap().len() as u64,
        total - 50 * (last_index - 1)
    );
    let link = last.header("link").unwrap();
    assert!(!link.contains("rel=\"next\""), "{link}");
    assert!(
        link.contains("rel=\"previous\"") && link.contains("rel=\"prev\""),
        "{link}"
    );
    // Every key once across the pages.
    let mut keys = Vec::new();
    for index in 1..=last_index {
        let page = server.get(&format!("{b}/records?page-index={index}&page-size=50"));
        keys.extend(page.json().as_object().unwrap().keys().cloned());
    }
    let count = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), count);
    assert_eq!(count as u64, total);
    // Beyond the last page: a 404, which ends a GOV.UK client's listing.
    let beyond = server.get(&format!("{b}/records?page-index={}", last_index + 100));
    assert_eq!(beyond.error(404), "no-page");

    // By key: the same keys and records, each page linked to the next by
    // its last key, the last page linked to nothing.
    let mut by_key = serde_json::Map::new();
    let mut next = Some(format!("{b}/records?after=&page-size=50"));
    let mut pages = 0;
    while let Some(path) = next.take() {
        let page = server.get(&path);
        assert_eq!(page.status, 200, "{path}");
        let listed = page.json();
        let listed = listed.as_object().unwrap();
        let last = listed.keys().next_back().unwrap().clone();
        if let Some(link) = page.header("link") {
            assert_eq!(
                link,
                format!("<{b}/records?after={last}&page-size=50>; rel=\"next\"")
            );
            let path = link.strip_prefix('<').unwrap().split_once('>').unwrap().0;
            next = Some(path.to_owned());
        }
        by_key.extend(listed.clone());
        pages += 1;
    }
    assert_eq!(pages, last_index);
    let by_index: serde_json::Map<_, _> = (1..=last_index)
        .flat_map(|index| {
            let page = server.get(&format!("{b}/records?page-index={index}&page-size=50"));
            page.json().as_object().unwrap().clone()
        })
        .collect();
    assert_eq!(by_key, by_index);
    let after_gb = server
        .get(&format!("{b}/records?after=GB&page-size=2"))
        .json();
    let keys: Vec<&String> = after_gb.as_object().unwrap().keys().collect();
    assert!(
        keys.len() == 2 && keys.iter().all(|key| key.as_str() > "GB"),
        "{keys:?}"
    );
    let both = server.get(&format!("{b}/records?after=GB&page-index=2"));
    assert_eq!(both.status, 400);
    assert_eq!(both.json()["error"]["code"], "bad-query");

    // Entries by start and limit.
    let entries = server.get(&format!("{b}/entries?start=201&limit=5"));
    let list = entries.json();
    assert_eq!(list.as_array().unwrap().len(), 5);
    assert_eq!(list[0]["entry-number"], "201");
    assert_eq!(
        entries.header("link"),
        Some(
            "</registers/country/entries?start=206&limit=5>; rel=\"next\", \
             </registers/country/entries?start=196&limit=5>; rel=\"previous\", \
             </registers/country/entries?start=196&limit=5>; rel=\"prev\""
        )
    );
    let tail = server.get(&format!("{b}/entries?start=206&limit=5")).json();
    assert_eq!(tail.as_array().unwrap().len(), 3);

    // A record, its history, and an entry.
    let gb = server.get(&format!("{b}/records/GB")).json();
    assert_eq!(gb["GB"]["key"], "GB");
    assert_eq!(gb["GB"]["item"][0]["country"], "GB");
    let history = server.get(&format!("{b}/records/GB/entries")).json();
    assert!(!history.as_array().unwrap().is_empty());
    assert_eq!(
        history.as_array().unwrap().last().unwrap()["entry-number"],
        gb["GB"]["entry-number"]
    );

    // Metadata: totals and both logs' origins and keys.
    assert_eq!(metadata["total-entries"], 208);
    assert_eq!(metadata["total-system-entries"], 16);
    assert_eq!(metadata["log-origin"], "regis.test/registers/country");
    assert_eq!(
        metadata["system-log-origin"],
        "regis.test/registers/country/system"
    );
    for key in ["log-public-key", "system-log-public-key"] {
        let text = metadata[key].as_str().unwrap();
        regis_note::Verifier::parse(text).unwrap();
    }
    assert_eq!(metadata["register-record"]["register"], "country");
    assert!(metadata["fields"].as_array().unwrap().len() >= 4);

    // The catalogue and the HTML pages.
    let catalogue = server.get("/registers").json();
    assert_eq!(catalogue[0]["name"], "country");
    assert_eq!(catalogue[0]["total-entries"], 208);
    assert_eq!(catalogue[0]["log-public-key"], metadata["log-public-key"]);
    let home = server.get("/");
    assert_eq!(
        home.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(home.text().contains("href=\"/registers/country\""));
    let page = server.get(b);
    assert!(page.text().contains("/registers/country/records/GB"));

    // CORS on reads.
    assert_eq!(
        server
            .get_with(
                &format!("{b}/records/GB"),
                &[("Origin", "https://example.org")]
            )
            .header("access-control-allow-origin"),
        Some("*")
    );
    // A representation chosen by Accept says so; one chosen by suffix
    // does not need to.
    let negotiated = server.get(&format!("{b}/records/GB"));
    assert!(negotiated.header_all("vary").contains("Accept"));
    let suffixed = server.get(&format!("{b}/records/GB.json"));
    assert!(
        !suffixed
            .header_all("vary")
            .split(", ")
            .any(|v| v == "Accept")
    );
    // Caching: an entry and an item never change; records and lists may.
    let immutable = Some("public, max-age=604800, immutable");
    assert_eq!(
        server
            .get(&format!("{b}/entries/1"))
            .header("cache-control"),
        immutable
    );
    let item = gb["GB"]["item"][0].clone();
    let hash = regis_model::Item::parse(&item.to_string()).unwrap().hash();
    let by_hash = server.get(&format!("{b}/items/{hash}"));
    assert_eq!(by_hash.json(), item);
    assert_eq!(by_hash.header("cache-control"), immutable);
    assert_eq!(
        server
            .get(&format!("{b}/records/GB"))
            .header("cache-control"),
        Some("public, max-age=5")
    );
    // HEAD: headers, no body, the length GET has.
    let head = server.request("HEAD", &format!("{b}/records/GB"), &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let got = server.get(&format!("{b}/records/GB"));
    assert_eq!(
        head.header("content-length"),
        Some(got.body.len().to_string().as_str())
    );
}

/// JSON and CSV answers carry an ETag naming their bytes; a matching
/// `If-None-Match` is a 304; gzip, when accepted, is a variant with its
/// own tag, and decodes to the same bytes.
#[test]
fn json_and_csv_answer_conditional_requests_and_gzip() {
    let server = TestServer::start(vec![(
        "country",
        rsf_commands("openregister-java/country-data.rsf"),
    )]);
    let b = "/registers/country";
    for path in [
        "records/GB",
        "records/GB.csv",
        "records",
        "entries?start=2&limit=3",
        "entries/1",
        "register",
        "records/GB/entries",
    ] {
        let url = format!("{b}/{path}");
        let plain = server.get(&url);
        assert_eq!(plain.status, 200, "{path}");
        let tag = plain.header("etag").expect(path).to_owned();
        assert!(tag.starts_with('"') && tag.ends_with('"'), "{path}: {tag}");
        assert_eq!(plain.header("content-encoding"), None, "{path}");
        assert!(
            plain.header_all("vary").contains("Accept-Encoding"),
            "{path}"
        );

        let again = server.get_with(&url, &[("If-None-Match", &tag)]);
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty(), "{path}");
        assert_eq!(again.header("etag"), Some(tag.as_str()), "{path}");
        assert_eq!(
            again.header("cache-control"),
            plain.header("cache-control"),
            "{path}"
        );
        let weak = format!("\"other\", W/{tag}");
        assert_eq!(
            server.get_with(&url, &[("If-None-Match", &weak)]).status,
            304
        );
        let other = server.get_with(&url, &[("If-None-Match", "\"other\"")]);
        assert_eq!(other.status, 200, "{path}");
        assert_eq!(other.body, plain.body, "{path}");

        let gzip = [("Accept-Encoding", "gzip")];
        let gzipped = server.get_with(&url, &gzip);
        assert_eq!(gzipped.header("content-encoding"), Some("gzip"), "{path}");
        let gzip_tag = format!("{}-gzip\"", tag.strip_suffix('"').unwrap());
        assert_eq!(gzipped.header("etag"), Some(gzip_tag.as_str()), "{path}");
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&gzipped.body[..]),
            &mut unzipped,
        )
        .unwrap();
        assert_eq!(unzipped, plain.body, "{path}");
        let cached = server.get_with(
            &url,
            &[("Accept-Encoding", "gzip"), ("If-None-Match", &gzip_tag)],
        );
        assert_eq!(cached.status, 304, "{path}");
        // The identity's tag does not name the gzip variant.
        let mismatched = server.get_with(
            &url,
            &[("Accept-Encoding", "gzip"), ("If-None-Match", &tag)],
        );
        assert_eq!(mismatched.status, 200, "{path}");
    }
}
