//! The pages for people, over a live server: HTML when a browser asks and
//! the unchanged API otherwise, search, sorting, paging, history diffs,
//! links between registers, escaping of hostile values, the security
//! policy, the weight of a record page, and the witnesses of a register's
//! policy on its pages.

use crate::common::{Resp, TestServer, rsf_commands, witness};
use regis_model::rsf::Command;
use regis_model::{Entry, Item, Log};

const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

fn page(server: &TestServer, path: &str) -> Resp {
    server.get_with(path, &[("Accept", BROWSER)])
}

/// Asserts a page: the status, HTML, and the security policy.
fn assert_page(response: &Resp, status: u16, path: &str) -> String {
    assert_eq!(response.status, status, "{path}: {}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{path}"
    );
    let policy = response.header("content-security-policy").unwrap();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(policy.contains("style-src 'self'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    let text = response.text();
    assert!(text.starts_with("<!DOCTYPE html>"), "{path}");
    text
}

/// RSF commands of a register defined by `fields` (name, datatype, and the
/// register its values are keys of), with `records` (key, item JSON) as
/// user entries in that order.
fn register_commands(
    name: &str,
    fields: &[(&str, &str, Option<&str>)],
    records: &[(&str, &str)],
) -> Vec<(u64, Command)> {
    let mut commands = Vec::new();
    let time = "2020-01-01T00:00:00Z".parse().unwrap();
    let mut push = |log, key: &str, json: String| {
        let item = Item::parse(&json).unwrap();
        let entry = Entry::new(log, key, time, item.hash());
        let line = commands.len() as u64 + 1;
        commands.push((line, Command::AddItem(item)));
        commands.push((line + 1, Command::AppendEntry(entry)));
    };
    push(
        Log::System,
        "name",
        serde_json::json!({ "name": name }).to_string(),
    );
    push(
        Log::System,
        "custodian",
        serde_json::json!({"custodian": "A & B <Custodians>"}).to_string(),
    );
    for (field, datatype, register) in fields {
        let mut item = serde_json::json!({
            "field": field, "datatype": datatype, "cardinality": "1",
            "text": format!("The {field}."),
        });
        if let Some(register) = register {
            item["register"] = (*register).into();
        }
        push(Log::System, &format!("field:{field}"), item.to_string());
    }
    let names: Vec<&str> = fields.iter().map(|(field, _, _)| *field).collect();
    push(
        Log::System,
        &format!("register:{name}"),
        serde_json::json!({"register": name, "fields": names, "text": format!("The {name} register")})
            .to_string(),
    );
    for (key, json) in records {
        push(Log::User, key, (*json).to_owned());
    }
    commands
}

fn country_server() -> TestServer {
    TestServer::start(vec![
        ("country", rsf_commands("registry-data/country.rsf")),
        (
            "local-authority-eng",
            rsf_commands("registry-data/local-authority-eng.rsf"),
        ),
        (
            "local-authority-type",
            rsf_commands("registry-data/local-authority-type.rsf"),
        ),
        (
            "place",
            register_commands(
                "place",
                &[
                    ("place", "string", None),
                    ("country", "curie", None),
                    ("home", "string", Some("country")),
                    ("website", "url", None),
                ],
                &[(
                    "p1",
                    r#"{"place":"p1","country":"country:GB","home":"FR","website":"javascript:alert(1)"}"#,
                )],
            ),
        ),
    ])
}

#[test]
fn pages_answer_browsers_and_the_api_is_unchanged_for_everyone_else() {
    let server = country_server();
    let b = "/registers/country";
    let gb_item = server.get(&format!("{b}/records/GB")).json()["GB"]["item"][0].clone();
    let item_hash = {
        let record = server.get(&format!("{b}/entries/1")).json();
        record[0]["item-hash"][0].as_str().unwrap().to_owned()
    };
    assert!(gb_item.is_object(), "{gb_item}");
    let negotiated = [
        "/registers".to_owned(),
        format!("{b}/register"),
        format!("{b}/records"),
        format!("{b}/records/GB"),
        format!("{b}/records/GB/entries"),
        format!("{b}/records/name/Germany"),
        format!("{b}/entries"),
        format!("{b}/entries/1"),
        format!("{b}/items/{item_hash}"),
    ];
    for path in &negotiated {
        let html = page(&server, path);
        assert_page(&html, 200, path);
        assert!(html.header_all("vary").contains("Accept"), "{path}");
        let json = server.get(path);
        assert_eq!(json.status, 200, "{path}");
        assert_eq!(
            json.header("content-type"),
            Some("application/json"),
            "{path}"
        );
        json.json();
        // An explicit suffix wins over what a browser accepts.
        let (stem, query) = path.split_once('?').unwrap_or((path, ""));
        let suffixed = format!("{stem}.json{}", if query.is_empty() { "" } else { "?" });
        let explicit = page(&server, &format!("{suffixed}{query}"));
        assert_eq!(explicit.status, 200, "{suffixed}");
        assert_eq!(
            explicit.header("content-type"),
            Some("application/json"),
            "{suffixed}"
        );
    }
    // `/` and `B` are pages for everyone.
    for path in ["/", b] {
        assert_page(&server.get(path), 200, path);
        assert_page(&page(&server, path), 200, path);
    }
    // Routes without a page answer a browser as before.
    let proof = page(&server, &format!("{b}/records/GB/proof"));
    assert_eq!(proof.status, 200);
    assert_eq!(proof.header("content-type"), Some("application/json"));
    let checkpoint = page(&server, &format!("{b}/log/checkpoint"));
    assert_eq!(
        checkpoint.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let csv = page(&server, &format!("{b}/records.csv"));
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    // Errors on a page route are pages with the same status.
    let missing = page(&server, &format!("{b}/records/NOPE"));
    let text = assert_page(&missing, 404, "missing record");
    assert!(text.contains("has no record with key"), "{text}");
    assert_eq!(
        server.get(&format!("{b}/records/NOPE")).error(404),
        "no-record"
    );
    let text = assert_page(&page(&server, "/registers/nope/records"), 404, "register");
    assert!(text.contains("no register"), "{text}");
}

#[test]
fn home_pages_list_registers_fields_keys_and_checkpoint() {
    let server = country_server();
    let home = assert_page(&server.get("/"), 200, "/");
    for name in [
        "country",
        "local-authority-eng",
        "local-authority-type",
        "place",
    ] {
        assert!(
            home.contains(&format!("href=\"/registers/{name}\"")),
            "{name}: {home}"
        );
    }
    let text = assert_page(&server.get("/registers/country"), 200, "B");
    let app = server.app();
    let reg = app.register("country").unwrap();
    let checkpoint = server.get("/registers/country/log/checkpoint").text();
    for expected in [
        "<h1>Country</h1>",
        "David de Silva",
        "<code>citizen-names</code>",
        "datetime",
        "The date a record stopped being applicable.",
        reg.verifier(regis_store::Log::User),
        reg.verifier(regis_store::Log::System),
        "href=\"/registers/country/records.csv\"",
        "href=\"/registers/country/download-rsf\"",
        "data-events-url=\"/registers/country/events\"",
        "src=\"/assets/live.js\"",
        "<label for=\"search-key\">",
        "<main id=\"main\"",
        "<th scope=\"col\">",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    // The checkpoint exactly as served, escaped (its signature line has no
    // character to escape, so the text is verbatim).
    assert!(text.contains(&checkpoint), "{checkpoint}");
    // A field naming another register hosted here links to it.
    let authorities = assert_page(&server.get("/registers/local-authority-eng"), 200, "B");
    assert!(
        authorities.contains("href=\"/registers/local-authority-type\""),
        "{authorities}"
    );
}

#[test]
fn search_forms_redirect_to_the_record_and_to_the_field_value() {
    let server = country_server();
    let b = "/registers/country";
    let found = page(&server, &format!("{b}/records?key=GB"));
    assert_eq!(found.status, 303);
    assert_eq!(
        found.header("location"),
        Some("/registers/country/records/GB")
    );
    let by_value = page(
        &server,
        &format!("{b}/records?field=name&value=United+Kingdom"),
    );
    assert_eq!(by_value.status, 303);
    assert_eq!(
        by_value.header("location"),
        Some("/registers/country/records/name/United%20Kingdom")
    );
    let results = assert_page(
        &page(&server, "/registers/country/records/name/United%20Kingdom"),
        200,
        "by field",
    );
    assert!(
        results.contains("href=\"/registers/country/records/GB\""),
        "{results}"
    );
    let none = assert_page(
        &page(&server, "/registers/country/records/name/Atlantis"),
        200,
        "no match",
    );
    assert!(none.contains("No record of"), "{none}");
    // A key with characters that mean something in a path is encoded.
    let odd = page(&server, &format!("{b}/records?key=a%2Fb%20c"));
    assert_eq!(
        odd.header("location"),
        Some("/registers/country/records/a%2Fb%20c")
    );
}

/// The keys of a records page's rows, in order.
fn row_keys(text: &str) -> Vec<String> {
    text.split("<th scope=\"row\"><a href=\"/registers/country/records/")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

#[test]
fn records_are_paged_with_links_and_sorted_within_the_page() {
    let server = country_server();
    let b = "/registers/country/records";
    let first = page(&server, &format!("{b}?page-size=10"));
    let text = assert_page(&first, 200, b);
    let keys = row_keys(&text);
    assert_eq!(keys.len(), 10, "{text}");
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(
        first.header("link"),
        Some("</registers/country/records?page-index=2&page-size=10>; rel=\"next\"")
    );
    assert!(text.contains("rel=\"next\""), "{text}");
    assert!(text.contains("Records 1 to 10 of"), "{text}");
    // The same records as the API's page, in the same order.
    let api: serde_json::Value = server.get(&format!("{b}?page-size=10")).json();
    let api_keys: Vec<String> = api.as_object().unwrap().keys().cloned().collect();
    let mut api_sorted = api_keys.clone();
    api_sorted.sort();
    assert_eq!(keys, api_sorted);

    let second = page(&server, &format!("{b}?page-index=2&page-size=10"));
    let second_text = assert_page(&second, 200, b);
    assert!(
        second.header("link").unwrap().contains("rel=\"previous\""),
        "{:?}",
        second.header("link")
    );
    assert!(row_keys(&second_text).iter().all(|key| !keys.contains(key)));

    // Sorted by name, descending: the same ten records, in name order.
    let by_name = assert_page(
        &page(&server, &format!("{b}?page-size=10&sort=name&order=desc")),
        200,
        b,
    );
    let sorted_keys = row_keys(&by_name);
    let mut expected: Vec<(String, String)> = api
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, record)| {
            (
                record["item"][0]["name"].as_str().unwrap().to_owned(),
                key.clone(),
            )
        })
        .collect();
    expected.sort();
    expected.reverse();
    assert_eq!(
        sorted_keys,
        expected.into_iter().map(|(_, key)| key).collect::<Vec<_>>()
    );
    assert!(by_name.contains("aria-sort=\"descending\""), "{by_name}");
    let bad = assert_page(
        &page(&server, &format!("{b}?sort=nothing")),
        400,
        "bad sort",
    );
    assert!(bad.contains("nothing"), "{bad}");
    let too_big = page(&server, &format!("{b}?page-size=100000"));
    assert_page(&too_big, 400, "page size");
}

#[test]
fn record_page_shows_history_as_diffs_and_carries_what_the_script_checks() {
    let server = country_server();
    // GM has four entries in the country register.
    let path = "/registers/country/records/GM";
    let text = assert_page(&page(&server, path), 200, path);
    let history = server.get(&format!("{path}/entries")).json();
    let numbers: Vec<String> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["entry-number"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(numbers.len(), 4);
    for number in &numbers {
        assert!(
            text.contains(&format!("href=\"/registers/country/entries/{number}\"")),
            "{number}"
        );
    }
    assert!(text.contains(" (first)"), "{text}");
    assert!(text.contains("<td>added</td>"), "{text}");
    assert!(text.contains("<td>changed</td>"), "{text}");
    let proof = server.get(&format!("{path}/proof")).json();
    let app = server.app();
    let reg = app.register("country").unwrap();
    let latest = numbers.last().unwrap();
    for expected in [
        "data-proof-url=\"/registers/country/records/GM/proof\"".to_owned(),
        format!(
            "data-verifier-key=\"{}\"",
            reg.verifier(regis_store::Log::User)
        ),
        format!("data-log-origin=\"{}\"", reg.origin(regis_store::Log::User)),
        "data-key=\"GM\"".to_owned(),
        format!("data-entry-number=\"{latest}\""),
        format!(
            "data-item-hash=\"{}\"",
            history.as_array().unwrap().last().unwrap()["item-hash"][0]
                .as_str()
                .unwrap()
        ),
        "<script src=\"/assets/verify.js\" defer></script>".to_owned(),
        // Without JavaScript the verification is not shown at all.
        "<section id=\"verify\" hidden".to_owned(),
    ] {
        assert!(text.contains(&expected), "{expected}: {text}");
    }
    assert_eq!(proof["entry-number"].as_str().unwrap(), latest);

    // The history paged one entry at a time: each page diffs against the
    // entry before it, and links to the next.
    let second = page(&server, &format!("{path}?page-index=2&page-size=1"));
    let second_text = assert_page(&second, 200, path);
    assert!(!second_text.contains(" (first)"), "{second_text}");
    assert!(second.header("link").unwrap().contains("rel=\"next\""));

    // The entries page shows the same record.
    assert_page(&page(&server, &format!("{path}/entries")), 200, path);
}

#[test]
fn the_log_is_paged_as_the_api_pages_it() {
    let server = country_server();
    let path = "/registers/country/entries?start=11&limit=10";
    let html = page(&server, path);
    let text = assert_page(&html, 200, path);
    let api = server.get(path);
    assert_eq!(html.header("link"), api.header("link"));
    assert!(html.header("link").unwrap().contains("start=21"));
    for entry in api.json().as_array().unwrap() {
        let number = entry["entry-number"].as_str().unwrap();
        let key = entry["key"].as_str().unwrap();
        assert!(
            text.contains(&format!(
                "<th scope=\"row\"><a href=\"/registers/country/entries/{number}\">{number}</a></th>"
            )),
            "{number}"
        );
        assert!(text.contains(&format!("href=\"/registers/country/records/{key}\"")));
    }
    assert!(text.contains("Entries 11 to 20 of 210"), "{text}");
    let system = "/registers/country/entries?type=system&limit=5";
    let html = page(&server, system);
    let text = assert_page(&html, 200, system);
    assert_eq!(html.header("link"), server.get(system).header("link"));
    assert!(text.contains("<code>name</code>"), "{text}");
    assert_page(
        &page(&server, "/registers/country/entries?type=nope"),
        400,
        "type",
    );
}

#[test]
fn entry_and_item_pages_show_their_bytes_and_link_back() {
    let server = country_server();
    let entry = server.get("/registers/country/entries/5").json();
    let key = entry[0]["key"].as_str().unwrap();
    let hash = entry[0]["item-hash"][0].as_str().unwrap();
    let text = assert_page(&page(&server, "/registers/country/entries/5"), 200, "entry");
    assert!(
        text.contains(&format!("href=\"/registers/country/records/{key}\"")),
        "{text}"
    );
    assert!(
        text.contains(&format!("href=\"/registers/country/items/{hash}\"")),
        "{text}"
    );
    assert!(text.contains("rel=\"prev\"") && text.contains("rel=\"next\""));
    let system = assert_page(
        &page(&server, "/registers/country/entries/1?type=system"),
        200,
        "system entry",
    );
    assert!(system.contains("of the system log"), "{system}");
    assert_page(
        &page(&server, "/registers/country/entries/100000"),
        404,
        "beyond",
    );
    assert_page(&page(&server, "/registers/country/entries/0"), 404, "zero");

    let item = assert_page(
        &page(&server, &format!("/registers/country/items/{hash}")),
        200,
        "item",
    );
    let canonical = server
        .get(&format!("/registers/country/items/{hash}"))
        .text();
    // The canonical JSON is shown, escaped (its quotes are entities).
    assert!(
        item.contains(&canonical.replace('"', "&quot;")),
        "{canonical}: {item}"
    );
    assert_page(
        &page(
            &server,
            &format!("/registers/country/items/sha-256:{}", "0".repeat(64)),
        ),
        404,
        "no item",
    );
}

#[test]
fn fields_naming_hosted_registers_link_to_their_records() {
    let server = country_server();
    // local-authority-type is a field whose definition names a register.
    let records = server
        .get("/registers/local-authority-eng/records?page-size=1")
        .json();
    let (key, record) = records.as_object().unwrap().iter().next().unwrap();
    let kind = record["item"][0]["local-authority-type"].as_str().unwrap();
    let text = assert_page(
        &page(
            &server,
            &format!("/registers/local-authority-eng/records/{key}"),
        ),
        200,
        "authority",
    );
    assert!(
        text.contains(&format!(
            "<a href=\"/registers/local-authority-type/records/{kind}\">{kind}</a>"
        )),
        "{text}"
    );
    // A CURIE names a register and a key; a field's register makes a
    // plain value a key of it; a URL that is not a web address is text.
    let place = assert_page(&page(&server, "/registers/place/records/p1"), 200, "place");
    assert!(
        place.contains("<a href=\"/registers/country/records/GB\">country:GB</a>"),
        "{place}"
    );
    assert!(
        place.contains("<a href=\"/registers/country/records/FR\">FR</a>"),
        "{place}"
    );
    assert!(place.contains("javascript:alert(1)"), "{place}");
    assert!(!place.contains("href=\"javascript:"), "{place}");
}

#[test]
fn hostile_values_render_as_text() {
    let hostile = r#"<script>alert("x")</script> & 'quoted' "double""#;
    let item = serde_json::json!({"note": hostile, "escape": "<b>&\"'"}).to_string();
    let server = TestServer::start(vec![(
        "escape",
        register_commands(
            "escape",
            &[("escape", "string", None), ("note", "text", None)],
            &[("<b>&\"'", &item)],
        ),
    )]);
    let key_path = "/registers/escape/records/%3Cb%3E%26%22'";
    // (path, status), each showing the hostile text escaped.
    let checks = [
        (key_path.to_owned(), 200),
        ("/registers/escape/records".to_owned(), 200),
        ("/registers/escape/entries/1".to_owned(), 200),
        (
            "/registers/escape/records/note/%3Cscript%3Ealert(%22x%22)%3C%2Fscript%3E".to_owned(),
            200,
        ),
        ("/registers/escape/records/%3Cscript%3E".to_owned(), 404),
        (
            "/registers/escape/records?sort=%3Cscript%3E".to_owned(),
            400,
        ),
    ];
    for (path, status) in checks {
        let text = assert_page(&page(&server, &path), status, &path);
        // No markup from the data: only the page's own one script tag.
        assert!(!text.contains("<script>"), "{path}: {text}");
        assert!(!text.contains("<b>"), "{path}: {text}");
        assert!(text.contains("&lt;script&gt;"), "{path}: {text}");
    }
    let record = page(&server, key_path).text();
    assert!(
        record.contains(
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; 'quoted' &quot;double&quot;"
        ),
        "{record}"
    );
    // In attributes too: the key in data-key and links.
    assert!(
        record.contains("data-key=\"&lt;b&gt;&amp;&quot;'\""),
        "{record}"
    );
    let home = assert_page(&page(&server, "/registers/escape"), 200, "B");
    assert!(home.contains("A &amp; B &lt;Custodians&gt;"), "{home}");
    assert!(!home.contains("<Custodians>"), "{home}");
}

#[test]
fn assets_are_served_from_the_binary() {
    let server = country_server();
    for (path, content_type, needle) in [
        (
            "/assets/verify.js",
            "text/javascript; charset=utf-8",
            "crypto.subtle.verify",
        ),
        (
            "/assets/live.js",
            "text/javascript; charset=utf-8",
            "EventSource",
        ),
        ("/assets/regis.css", "text/css; charset=utf-8", "@media"),
    ] {
        let response = server.get(path);
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.header("content-type"), Some(content_type));
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        assert!(response.text().contains(needle), "{path}");
    }
}

/// A record page with everything it loads stays small (target: 50 KB).
#[test]
fn a_record_page_with_its_script_weighs_under_50_kb() {
    let server = country_server();
    let weigh = |path: &str| server.get_with(path, &[("Accept", BROWSER)]).body.len();
    let page_bytes = weigh("/registers/country/records/GM");
    let assets = weigh("/assets/verify.js") + weigh("/assets/regis.css");
    let total = page_bytes + assets;
    eprintln!("record page {page_bytes} B + script and stylesheet {assets} B = {total} B");
    assert!(total <= 50 * 1024, "{total} bytes");
}

#[test]
fn pages_list_the_witnesses_of_the_policy_and_the_record_page_checks_them() {
    for (policy, required) in [
        (
            "witness w1 {1}\nwitness w2 {2}\ngroup both all w1 w2\nquorum both\n",
            true,
        ),
        ("witness w1 {1}\nwitness w2 {2}\nquorum none\n", false),
    ] {
        let server = TestServer::start_witnessed(
            "country",
            rsf_commands("registry-data/country.rsf"),
            policy,
        );
        let home = assert_page(&page(&server, "/registers/country"), 200, "B");
        let record = assert_page(
            &page(&server, "/registers/country/records/GB"),
            200,
            "record",
        );
        for n in [1, 2] {
            let key = witness(n).verifier().to_string();
            let row = format!("<tr><th scope=\"row\">w{n}</th><td><code>{key}</code></td></tr>");
            assert!(home.contains(&row), "{row}: {home}");
            assert!(record.contains(&row), "{row}: {record}");
            let line = format!("<li data-witness-name=\"w{n}\" data-witness-key=\"{key}\">");
            assert!(record.contains(&line), "{line}: {record}");
        }
        assert!(home.contains("<h2>Witnesses</h2>"), "{home}");
        assert!(home.contains("--witness-policy &lt;file&gt;"), "{home}");
        assert_eq!(
            home.contains("The register's policy requires no cosignature."),
            !required,
            "{home}"
        );
        let attribute = format!("data-witnesses-required=\"{required}\"");
        assert!(record.contains(&attribute), "{attribute}: {record}");
    }
    // Without a policy, no witness is listed or checked.
    let server = country_server();
    let home = assert_page(&page(&server, "/registers/country"), 200, "B");
    let record = assert_page(
        &page(&server, "/registers/country/records/GB"),
        200,
        "record",
    );
    assert!(!home.contains("Witnesses"), "{home}");
    assert!(!home.contains("--witness-policy"), "{home}");
    assert!(!record.contains("verify-witnesses"), "{record}");
    assert!(
        record.contains("data-witnesses-required=\"false\""),
        "{record}"
    );
}
