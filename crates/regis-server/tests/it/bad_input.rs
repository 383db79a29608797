//! Bad input of every kind gets the right 4xx with a JSON error that says
//! what and where, never a 5xx; and the server stays up.

use crate::common::{TestServer, rsf_commands};

#[test]
fn bad_requests_are_4xx_json_and_the_server_stays_up() {
    let server = TestServer::start(vec![(
        "country",
        rsf_commands("openregister-java/country-data.rsf"),
    )]);
    let b = "/registers/country";
    let thirty = "123456789012345678901234567890";
    let cases: Vec<(String, u16, &str)> = vec![
        // Numbers in paths: 0, negative, 30 digits, leading zeros, signs.
        // What is not an entry's number names no entry (as GOV.UK Registers
        // answered): 404.
        (format!("{b}/entries/0"), 404, "bad-number"),
        (format!("{b}/entries/-1"), 404, "bad-number"),
        (format!("{b}/entries/{thirty}"), 404, "bad-number"),
        (format!("{b}/entries/01"), 404, "bad-number"),
        (format!("{b}/entries/+1"), 404, "bad-number"),
        (format!("{b}/entries/1e3"), 404, "bad-number"),
        (format!("{b}/entries/209"), 404, "no-entry"),
        (format!("{b}/entries/18446744073709551615"), 404, "no-entry"),
        (
            format!("{b}/entries/18446744073709551616"),
            404,
            "bad-number",
        ),
        (format!("{b}/entries/1?type=both"), 400, "bad-query"),
        (
            format!("{b}/proof/entries/0/10/merkle:sha-256"),
            400,
            "bad-number",
        ),
        (
            format!("{b}/proof/entries/-1/10/merkle:sha-256"),
            400,
            "bad-number",
        ),
        (
            format!("{b}/proof/entries/11/10/merkle:sha-256"),
            400,
            "bad-proof-request",
        ),
        (
            format!("{b}/proof/entries/1/209/merkle:sha-256"),
            400,
            "beyond-tree",
        ),
        (
            format!("{b}/proof/entries/1/{thirty}/merkle:sha-256"),
            400,
            "bad-number",
        ),
        (
            format!("{b}/proof/entries/1/10/merkle:sha-512"),
            404,
            "no-route",
        ),
        (
            format!("{b}/proof/consistency/5/3/merkle:sha-256"),
            400,
            "bad-proof-request",
        ),
        (
            format!("{b}/proof/consistency/1/209/merkle:sha-256"),
            400,
            "beyond-tree",
        ),
        (
            format!("{b}/proof/consistency/-5/3/merkle:sha-256"),
            400,
            "bad-number",
        ),
        (
            format!("{b}/proof/consistency/{thirty}/{thirty}/merkle:sha-256"),
            400,
            "bad-number",
        ),
        (format!("{b}/download-rsf/5/3"), 400, "bad-range"),
        (format!("{b}/download-rsf/209"), 400, "beyond-tree"),
        (format!("{b}/download-rsf/0/{thirty}"), 400, "bad-number"),
        (format!("{b}/download-rsf/-1"), 400, "bad-number"),
        // Pages and limits.
        (
            format!("{b}/records?page-size=1000000000"),
            400,
            "bad-number",
        ),
        (format!("{b}/records?page-size=0"), 400, "bad-number"),
        (format!("{b}/records?page-index=0"), 400, "bad-number"),
        // Offset paging stops 100,000 records in (`after=KEY` goes on); a
        // page past the last record is a 404 first.
        (
            format!("{b}/records?page-index=100002&page-size=1"),
            404,
            "no-page",
        ),
        (
            format!("{b}/records?page-index=1001&page-size=101"),
            404,
            "no-page",
        ),
        (
            format!("{b}/records/GB/entries?page-index=100002&page-size=1"),
            400,
            "page-too-deep",
        ),
        (
            format!("{b}/records/name/France?page-index=100002&page-size=1"),
            400,
            "page-too-deep",
        ),
        (
            format!("{b}/records?page-index={thirty}"),
            400,
            "bad-number",
        ),
        (
            format!("{b}/records?page-size=10&page-size=20"),
            400,
            "bad-query",
        ),
        (format!("{b}/entries?limit=1000000000"), 400, "bad-number"),
        (format!("{b}/entries?start=-1"), 400, "bad-number"),
        (format!("{b}/entries?start=%FF"), 400, "not-utf8"),
        (
            format!("{b}/records/GB/entries?page-size=1000000000"),
            400,
            "bad-number",
        ),
        // Tiles: malformed, traversal, beyond the tree.
        (format!("{b}/log/tile/0/0"), 400, "bad-tile-path"),
        (format!("{b}/log/tile/00/000"), 400, "bad-tile-path"),
        (format!("{b}/log/tile/64/000"), 400, "bad-tile-path"),
        (format!("{b}/log/tile/0/000.p/0"), 400, "bad-tile-path"),
        (format!("{b}/log/tile/0/000.p/256"), 400, "bad-tile-path"),
        (format!("{b}/log/tile/0/000.p/01"), 400, "bad-tile-path"),
        (format!("{b}/log/tile/0/x000/001"), 400, "bad-tile-path"),
        (format!("{b}/log/tile/0/x1/001"), 400, "bad-tile-path"),
        (
            format!("{b}/log/tile/0/../../register"),
            400,
            "bad-tile-path",
        ),
        (
            format!("{b}/log/tile/../../../etc/passwd"),
            400,
            "bad-tile-path",
        ),
        (format!("{b}/log/tile/0/%2e%2e/000"), 400, "bad-tile-path"),
        (
            format!("{b}/log/tile/entries/x999/x999/x999/x999/x999/x999/999"),
            400,
            "bad-tile-path",
        ),
        (
            format!("{b}/log/tile/0/x018/x446/x744/x073/x709/x551/616"),
            400,
            "bad-tile-path",
        ),
        (
            format!("{b}/log/tile/0/x018/x446/x744/x073/x709/x551/615"),
            404,
            "no-tile",
        ),
        (format!("{b}/log/tile/0/001"), 404, "no-tile"),
        (
            format!("{b}/log/tile/5/x018/x446/x744/x073/x709/x551/614"),
            404,
            "no-tile",
        ),
        // Keys, items, registers.
        (format!("{b}/records/%FF%FE"), 400, "not-utf8"),
        (format!("{b}/records/%C3%28/entries"), 400, "not-utf8"),
        (format!("{b}/records/%zz"), 400, "bad-encoding"),
        (format!("{b}/records/NOPE"), 404, "no-record"),
        (format!("{b}/records/NOPE/entries"), 404, "no-record"),
        (format!("{b}/records/%00"), 404, "no-record"),
        // What is not an item hash names no item: 404.
        (format!("{b}/items/sha-256:00"), 404, "bad-item-hash"),
        (format!("{b}/items/sha-256:ZZ"), 404, "bad-item-hash"),
        (format!("{b}/items/md5:00"), 404, "bad-item-hash"),
        (
            format!("{b}/items/sha-256:{}", "0".repeat(64)),
            404,
            "no-item",
        ),
        ("/registers/nope/records".to_owned(), 404, "no-register"),
        (
            "/registers/Country/records".to_owned(),
            400,
            "bad-register-name",
        ),
        (
            "/registers/..%2F..%2Fetc/records".to_owned(),
            400,
            "bad-register-name",
        ),
        ("/registers/%FF/records".to_owned(), 400, "not-utf8"),
        (
            format!("/registers/{}/records", "a".repeat(65)),
            400,
            "bad-register-name",
        ),
        (
            "/registers/../registers/country/records".to_owned(),
            404,
            "no-route",
        ),
        ("/registers/../records".to_owned(), 400, "bad-register-name"),
        // Routes that do not exist.
        ("/nope".to_owned(), 404, "no-route"),
        (format!("{b}/record"), 404, "no-route"),
        (format!("{b}/log/tile"), 404, "no-route"),
        (format!("{b}/{}a", "a/".repeat(100)), 404, "no-route"),
        // Formats a resource does not have.
        (format!("{b}/register.csv"), 406, "not-acceptable"),
    ];
    for (path, status, code) in &cases {
        let response = server.get(path);
        assert_eq!(response.error(*status), *code, "{path}");
    }

    // Methods other than GET and HEAD.
    let post = server.request("POST", &format!("{b}/records"), &[("Content-Length", "0")]);
    assert_eq!(post.error(405), "method-not-allowed");
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    let delete = server.request("DELETE", &format!("{b}/entries/1"), &[]);
    assert_eq!(delete.error(405), "method-not-allowed");

    // Raw bytes hyper refuses before routing: still a 4xx, never a 5xx.
    let raw = server.raw(
        b"GET /registers/country/records/\xff HTTP/1.1\r\n",
        &[],
        false,
    );
    assert!((400..500).contains(&raw.status), "{}", raw.status);

    // Still up and serving.
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(server.get(&format!("{b}/records/GB")).status, 200);
    // The deepest page-index page is answered (empty: past the history).
    let deepest = server.get(&format!(
        "{b}/records/GB/entries?page-index=100001&page-size=1"
    ));
    assert_eq!(deepest.status, 200, "{}", deepest.text());
    assert_eq!(deepest.text(), "[]");
    // Every one of those was counted, and none as a 5xx.
    let metrics = server.get("/metrics").text();
    assert!(!metrics.contains("status=\"5xx\""), "{metrics}");
}
