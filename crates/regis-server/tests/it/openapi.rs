//! `spec/openapi.yaml` documents every route, and every documented route
//! exists: the same templates as `routes::ROUTES`, and each one, filled in,
//! is answered by a live server (by that route, not the no-route 404; a
//! GOV.UK old path by a 301 to a documented route that answers).

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::{TestServer, rsf_commands};
use regis_server::routes::{ROUTES, Route, match_path};

fn documented() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec/openapi.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut in_paths = false;
    let mut paths = BTreeSet::new();
    for line in text.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_paths = line == "paths:";
            continue;
        }
        if in_paths
            && let Some(rest) = line.strip_prefix("  ")
            && rest.starts_with('/')
        {
            let template = rest.strip_suffix(':').unwrap();
            assert!(paths.insert(template.to_owned()), "{template} twice");
        }
    }
    paths
}

/// A template with sample values that the country register has.
fn fill(template: &str) -> String {
    template
        .replace("{name}", "country")
        .replace("{key}", "GB")
        .replace("{field}", "name")
        .replace("{value}", "Germany")
        .replace("{number}", "1")
        .replace("{size}", "2")
        .replace("{old}", "1")
        .replace("{new}", "2")
        .replace("{start}", "1")
        .replace("{end}", "2")
        .replace("{tile}", "0/000.p/16")
        .replace(
            "{item-hash}",
            "sha-256:6b18693874513ba13da54d61aafa7cad0c8f5573f3431d6f1c04b07ddb27d6bb",
        )
}

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let routes: BTreeSet<String> = ROUTES.iter().map(|r| r.template.to_owned()).collect();
    let documented = documented();
    assert_eq!(
        routes.difference(&documented).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "routes missing from spec/openapi.yaml"
    );
    assert_eq!(
        documented.difference(&routes).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "documented paths the server does not have"
    );
    let server = TestServer::start(vec![(
        "country",
        rsf_commands("openregister-java/country-data.rsf"),
    )]);
    for template in &documented {
        let path = fill(template);
        let matched = match_path(&path).unwrap().unwrap();
        assert_eq!(matched.template, template, "{path}");
        if !matched.route.gets() {
            // A write-only route: it exists, and wants a token.
            let response = server.post(&path, &[], b"");
            assert_eq!(response.error(401), "no-token", "{path}");
            continue;
        }
        if template.ends_with("/events") {
            // A stream that does not end: read its head only.
            let (status, head, _, _) = server.stream(&path);
            assert_eq!(status, 200, "{path}: {head}");
            continue;
        }
        let mut response = server.get(&path);
        if matched.route == Route::Moved {
            // GOV.UK's old path: moved to a documented one, which answers.
            assert_eq!(response.status, 301, "{path}");
            let location = response.header("location").unwrap().to_owned();
            let moved = match_path(&location).unwrap().unwrap();
            assert!(documented.contains(moved.template), "{path}: {location}");
            response = server.get(&location);
        }
        assert_eq!(
            response.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&response.body)
        );
    }
}
