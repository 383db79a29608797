//! RSF downloads re-load with the published roots; deltas chain; and the
//! operational endpoints (`/metrics`, `/healthz`, `/readyz`) and limits.

use std::io::BufReader;

use crate::common::{TestServer, rsf_commands};
use base64::Engine;
use regis_model::rsf::Command;
use regis_model::rsf::Policy;
use regis_model::{Item, Log, Register, RegisterName, format_hash};
use regis_server::Limits;
use regis_store::Scope;

const COUNTRY_ROOT: &str =
    "sha-256:8d92e1e0af1d43c41e498e6baed0d0b3ea2770d1bf9d2afc04e9c4dad7795729";
const EMPTY_ROOT: &str = "sha-256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn country() -> TestServer {
    TestServer::start(vec![(
        "country",
        rsf_commands("openregister-java/country-data.rsf"),
    )])
}

#[test]
fn downloads_reload_with_their_roots() {
    let server = country();
    let b = "/registers/country";
    let dump = server.get(&format!("{b}/download-rsf"));
    assert_eq!(dump.status, 200);
    assert_eq!(dump.header("content-type"), Some("application/uk-gov-rsf"));
    let text = dump.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("assert-root-hash\t{EMPTY_ROOT}"));
    assert_eq!(
        *lines.last().unwrap(),
        format!("assert-root-hash\t{COUNTRY_ROOT}")
    );
    let mut register = Register::named("country");
    let summary = register
        .load_rsf(BufReader::new(text.as_bytes()), Policy::IMPORT)
        .unwrap();
    assert_eq!(summary.appended.user, 208);
    assert_eq!(summary.appended.system, 16);
    assert_eq!(summary.assertions, 2);
    assert_eq!(format_hash(&register.root(Log::User)), COUNTRY_ROOT);

    // `download-rsf/0` is the full dump, byte for byte.
    let zero = server.get(&format!("{b}/download-rsf/0"));
    assert_eq!(zero.status, 200);
    assert_eq!(zero.body, dump.body);

    // Deltas chain from 0 and end at the same root. One that ends below
    // the current size never changes; one to it may gain system entries.
    let mut chained = Register::named("country");
    for path in ["0/1", "1/100", "100/100", "100/208"] {
        let delta = server.get(&format!("{b}/download-rsf/{path}"));
        assert_eq!(delta.status, 200, "{path}");
        let cache = if path.ends_with("/208") {
            "public, max-age=5"
        } else {
            "public, max-age=604800, immutable"
        };
        assert_eq!(delta.header("cache-control"), Some(cache), "{path}");
        let summary = chained
            .load_rsf(BufReader::new(&delta.body[..]), Policy::IMPORT)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(summary.assertions, 2, "{path}");
    }
    assert_eq!(format_hash(&chained.root(Log::User)), COUNTRY_ROOT);
    assert_eq!(
        server.get(&format!("{b}/download-rsf/100")).body,
        server.get(&format!("{b}/download-rsf/100/208")).body
    );
    let empty = server.get(&format!("{b}/download-rsf/208/208")).text();
    assert_eq!(
        empty,
        format!("assert-root-hash\t{COUNTRY_ROOT}\nassert-root-hash\t{COUNTRY_ROOT}\n")
    );
    // Compressed when asked.
    let gzipped = server.get_with(&format!("{b}/download-rsf"), &[("Accept-Encoding", "gzip")]);
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&gzipped.body[..]),
        &mut unzipped,
    )
    .unwrap();
    assert_eq!(unzipped, dump.body);
}

/// The country register with its last five system entries (a custodian, two
/// descriptions, two names) appended among the user entries instead of
/// before them: after 50, 120, 120, 150 and 207 user entries.
fn country_with_late_system_entries() -> Vec<(u64, Command)> {
    let commands: Vec<Command> = rsf_commands("openregister-java/country-data.rsf")
        .into_iter()
        .map(|(_, command)| command)
        .collect();
    let is_system = |command: &Command| matches!(command, Command::AppendEntry(entry) if entry.log == Log::System);
    let last_system = commands.iter().rposition(is_system).unwrap();
    let (head, users) = commands.split_at(last_system + 1);
    let (head, late) = head.split_at(head.len() - 5);
    assert!(late.iter().all(is_system));
    let mut out: Vec<Command> = head.to_vec();
    let mut late = late.iter();
    let mut user = 0;
    for command in users {
        out.push(command.clone());
        if matches!(command, Command::AppendEntry(_)) {
            user += 1;
            let count = match user {
                50 | 150 | 207 => 1,
                120 => 2,
                _ => 0,
            };
            out.extend(late.by_ref().take(count).cloned());
        }
    }
    assert_eq!(late.next(), None);
    (1..).zip(out).collect()
}

#[test]
fn deltas_carry_system_entries_in_their_places() {
    let commands = country_with_late_system_entries();
    let mut reference = Register::named("country");
    reference
        .apply(commands.iter().map(|(_, c)| c.clone()), Policy::IMPORT)
        .unwrap();
    let server = TestServer::start(vec![("country", commands)]);
    let b = "/registers/country";
    let mut chained = Register::named("country");
    let mut system_entries = 0;
    for (a, z) in [
        (0, 50),
        (50, 51),
        (51, 120),
        (120, 121),
        (121, 207),
        (207, 208),
    ] {
        // Told the system size the reader holds, or left to assume it:
        // here the same, since nothing is appended between the deltas.
        let held = chained.size(Log::System);
        for query in [String::new(), format!("?system-size={held}")] {
            let delta = server.get(&format!("{b}/download-rsf/{a}/{z}{query}"));
            assert_eq!(delta.status, 200, "{a}/{z}{query}");
            // Byte for byte what regis-model's delta writer makes.
            let told = (!query.is_empty()).then_some(held);
            let expected = reference.write_delta(Vec::new(), a, z, told).unwrap();
            assert_eq!(
                delta.text(),
                String::from_utf8(expected).unwrap(),
                "{a}/{z}{query}"
            );
        }
        let delta = server.get(&format!("{b}/download-rsf/{a}/{z}?system-size={held}"));
        let summary = chained
            .load_rsf(BufReader::new(&delta.body[..]), Policy::IMPORT)
            .unwrap_or_else(|e| panic!("{a}/{z}: {e}"));
        assert_eq!(summary.assertions, 2, "{a}/{z}");
        system_entries += summary.appended.system;
    }
    assert_eq!(system_entries, 16);
    // A system entry goes after as many user entries as the log had when
    // it was appended: the one after user entry 207 ends 0/207 and is not
    // in 207/208 (nor in `download-rsf/207`, which assumes it held) unless
    // the reader says it does not hold it.
    let before = server.get(&format!("{b}/download-rsf/0/207")).text();
    assert_eq!(before.matches("append-entry\tsystem").count(), 16);
    let last_user = before.rfind("append-entry\tuser").unwrap();
    assert!(before[last_user..].contains("append-entry\tsystem\tregister-name\t"));
    for path in ["207/208", "207"] {
        let text = server.get(&format!("{b}/download-rsf/{path}")).text();
        assert!(!text.contains("append-entry\tsystem"), "{text}");
    }
    let told = server
        .get(&format!("{b}/download-rsf/207?system-size=15"))
        .text();
    assert_eq!(told.matches("append-entry\tsystem").count(), 1, "{told}");
    for log in [Log::User, Log::System] {
        assert_eq!(chained.root(log), reference.root(log), "{log:?} root");
        assert_eq!(chained.size(log), reference.size(log), "{log:?} size");
    }
    assert_eq!(chained.schema(), reference.schema());
    assert_eq!(format_hash(&chained.root(Log::User)), COUNTRY_ROOT);
    // The server's own system log is the same tree.
    let checkpoint = server.get(&format!("{b}/system-log/checkpoint")).text();
    let root = checkpoint.lines().nth(2).unwrap();
    let expected = base64::engine::general_purpose::STANDARD.encode(reference.root(Log::System));
    assert_eq!(root, expected);
}

/// The register of GOV.UK's Ruby client's fixture pair: its base, then
/// its update, which ends with a new custodian appended after the last
/// user entry.
fn api_client_pair() -> Vec<(u64, Command)> {
    let mut commands = rsf_commands("api-client/country_register.rsf");
    commands.extend(rsf_commands("api-client/country_register_update.rsf"));
    commands
}

/// What a reader holds after loading `rsf` onto `held`.
fn load_onto(held: &mut Register, rsf: &[u8]) {
    held.load_rsf(BufReader::new(rsf), Policy::IMPORT)
        .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(rsf)));
}

#[test]
fn download_rsf_0_is_the_dump_and_deltas_told_the_system_size_miss_nothing() {
    let server = TestServer::start(vec![("country", api_client_pair())]);
    let b = "/registers/country";
    let token = server
        .app()
        .tokens
        .mint(Scope::Register(RegisterName::new("country").unwrap()))
        .unwrap()
        .token;
    let append = |lines: &[(&str, &str, &str)]| {
        let mut body = String::new();
        for (log, key, json) in lines {
            let item = Item::parse(json).unwrap();
            body.push_str(&format!(
                "add-item\t{json}\nappend-entry\t{log}\t{key}\t2026-01-01T00:00:00Z\t{}\n",
                item.hash()
            ));
        }
        let response = server.post(
            &format!("{b}/load-rsf"),
            &[("Authorization", &format!("Bearer {token}"))],
            body.as_bytes(),
        );
        assert_eq!(response.status, 200, "{}", response.text());
    };
    let get = |path: &str| {
        let response = server.get(&format!("{b}/{path}"));
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        response
    };

    // The first load: GOV.UK's clients ask for `download-rsf/0`, which is
    // the full dump, with the custodian appended after the last user entry.
    let dump = get("download-rsf");
    let zero = get("download-rsf/0");
    assert_eq!(zero.body, dump.body);
    assert!(zero.text().contains("{\"custodian\":\"Joseph Bloggs\"}"));
    let mut reader = Register::named("country");
    load_onto(&mut reader, &zero.body);
    assert_eq!(
        [9, 13],
        [Log::User, Log::System].map(|log| reader.size(log))
    );

    // A new custodian at the same user size: the delta from 9 that is told
    // the reader holds 13 system entries carries it; one left to assume
    // what the reader holds takes it as held (the case `system-size` is
    // for).
    append(&[("system", "custodian", r#"{"custodian":"Jo Bloggs"}"#)]);
    assert!(!get("download-rsf/9").text().contains("system"));
    let delta = get("download-rsf/9?system-size=13");
    assert_eq!(delta.text().matches("append-entry\tsystem").count(), 1);
    load_onto(&mut reader, &delta.body);

    // A user entry and a system entry after it: the delta to the current
    // size carries both, and may still grow; once the user log grows, it
    // is the same and immutable.
    append(&[
        ("user", "ZZ", r#"{"country":"ZZ","name":"Zedland"}"#),
        ("system", "custodian", r#"{"custodian":"Jon Bloggs"}"#),
    ]);
    let growing = get("download-rsf/9/10?system-size=14");
    assert_eq!(growing.header("cache-control"), Some("public, max-age=5"));
    load_onto(&mut reader, &growing.body);
    append(&[("user", "ZY", r#"{"country":"ZY","name":"Zyland"}"#)]);
    let fixed = get("download-rsf/9/10?system-size=14");
    assert_eq!(
        fixed.header("cache-control"),
        Some("public, max-age=604800, immutable")
    );
    assert_eq!(fixed.body, growing.body);
    load_onto(&mut reader, &get("download-rsf/10?system-size=15").body);

    // The reader holds every entry of both logs exactly once.
    let mut whole = Register::named("country");
    load_onto(&mut whole, &get("download-rsf").body);
    for log in [Log::User, Log::System] {
        assert_eq!(reader.entries(log), whole.entries(log), "{log:?}");
        assert_eq!(reader.root(log), whole.root(log), "{log:?}");
    }
    let custodian = reader.record(Log::System, "custodian").unwrap();
    assert_eq!(custodian.items[0].as_str(), r#"{"custodian":"Jon Bloggs"}"#);
}

/// Sizes beyond either log are a 400, as GOV.UK answered
/// (openregister-java's `DataDownloadFunctionalTest`); a start at the
/// current size is a delta of nothing.
#[test]
fn download_rsf_sizes_beyond_the_logs_are_400() {
    let server = TestServer::start(vec![("country", api_client_pair())]);
    let b = "/registers/country/download-rsf";
    for (path, status, code) in [
        ("/10", 400, "beyond-tree"),
        ("/666/1000", 400, "beyond-tree"),
        ("/0/10", 400, "beyond-tree"),
        ("/2/1", 400, "bad-range"),
        ("/-1", 400, "bad-number"),
        ("/-1/2", 400, "bad-number"),
        ("/0?system-size=14", 400, "beyond-tree"),
        ("/0/1?system-size=-1", 400, "bad-number"),
        ("/9", 200, ""),
        ("/9/9", 200, ""),
        ("/0/0", 200, ""),
        ("/0?system-size=13", 200, ""),
    ] {
        let response = server.get(&format!("{b}{path}"));
        assert_eq!(response.status, status, "{path}: {}", response.text());
        if status != 200 {
            assert_eq!(response.error(status), code, "{path}");
        }
    }
    // At the current size, nothing but the root, twice.
    let nothing = server.get(&format!("{b}/9")).text();
    let root = nothing.lines().next().unwrap();
    assert_eq!(nothing, format!("{root}\n{root}\n"));
}

#[test]
fn metrics_health_and_readiness() {
    let server = country();
    assert_eq!(server.get("/healthz").text(), "ok\n");
    let ready = server.get("/readyz");
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["ready"], true);
    assert_eq!(ready.json()["registers"], 1);
    for _ in 0..3 {
        assert_eq!(server.get("/registers/country/records/GB").status, 200);
    }
    assert_eq!(server.get("/registers/country/records/XX").status, 404);
    let metrics = server.get("/metrics");
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = metrics.text();
    assert!(text.contains(
        "regis_http_requests_total{route=\"/registers/{name}/records/{key}\",status=\"2xx\"} 3\n"
    ), "{text}");
    assert!(text.contains(
        "regis_http_requests_total{route=\"/registers/{name}/records/{key}\",status=\"4xx\"} 1\n"
    ));
    assert!(text.contains(
        "regis_http_request_duration_seconds_count{route=\"/registers/{name}/records/{key}\"} 4\n"
    ));
    assert!(text.contains("regis_log_size{register=\"country\",log=\"user\"} 208\n"));
    assert!(text.contains("regis_log_size{register=\"country\",log=\"system\"} 16\n"));
    assert!(text.contains("regis_records{register=\"country\"}"));
}

#[test]
fn the_concurrency_limit_answers_503_not_a_hang() {
    // One request at a time: concurrent clients are refused at once with a
    // 503 and Retry-After rather than queued without bound.
    let limits = Limits {
        concurrency: 1,
        ..Limits::default()
    };
    let server = std::sync::Arc::new(TestServer::start_with(
        vec![(
            "country",
            rsf_commands("openregister-java/country-data.rsf"),
        )],
        limits,
    ));
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let server = std::sync::Arc::clone(&server);
                scope.spawn(move || {
                    let mut seen = Vec::new();
                    for _ in 0..40 {
                        let response = server.get("/registers/country/download-rsf");
                        if response.status == 503 {
                            assert_eq!(response.error(503), "busy");
                            assert_eq!(response.header("retry-after"), Some("1"));
                        }
                        seen.push(response.status);
                    }
                    seen
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert!(statuses.contains(&503), "the limit never refused a request");
    assert!(statuses.contains(&200));
    // Afterwards every permit is back.
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(server.get("/registers/country/records/GB").status, 200);
}

/// Point reads are answered on the event loop, needing no read permit:
/// with every permit taken, records, entries, items, proofs, checkpoints
/// and tiles are still served, while lists and pages are refused `busy`.
#[test]
fn only_point_reads_run_on_the_event_loop() {
    let server = TestServer::start(vec![(
        "country",
        rsf_commands("openregister-java/country-data.rsf"),
    )]);
    let b = "/registers/country";
    let item = server.get(&format!("{b}/entries/1")).json()[0]["item-hash"][0].clone();
    let permits = &server.app().permits;
    let taken = permits
        .try_acquire_many(u32::try_from(permits.available_permits()).unwrap())
        .unwrap();
    for path in [
        "records/GB".to_owned(),
        "records/GB.csv".to_owned(),
        "records/GB/proof".to_owned(),
        "records/GB/proof.tlog-proof".to_owned(),
        "entries/1".to_owned(),
        format!("items/{}", item.as_str().unwrap()),
        "proof/register/merkle:sha-256".to_owned(),
        "proof/entries/1/208/merkle:sha-256".to_owned(),
        "proof/consistency/1/208/merkle:sha-256".to_owned(),
        "log/checkpoint".to_owned(),
        "log/tile/0/000.p/208".to_owned(),
        "log/tile/entries/000.p/208".to_owned(),
    ] {
        assert_eq!(server.get(&format!("{b}/{path}")).status, 200, "{path}");
    }
    for path in [
        "records",
        "entries",
        "records/GB/entries",
        "records/GB/proof?links=1",
        "records/GB?expand=links",
        "download-rsf",
        "register",
    ] {
        assert_eq!(
            server.get(&format!("{b}/{path}")).error(503),
            "busy",
            "{path}"
        );
    }
    // A browser's page of a record is a page, not a point read.
    let page = server.get_with(&format!("{b}/records/GB"), &[("Accept", "text/html")]);
    assert_eq!(page.error(503), "busy");
    drop(taken);
    assert_eq!(server.get(&format!("{b}/records")).status, 200);
}

#[test]
fn a_slow_client_is_cut_off_and_others_are_served() {
    let limits = Limits {
        header_read_timeout_seconds: 1,
        ..Limits::default()
    };
    let server = TestServer::start_with(
        vec![(
            "country",
            rsf_commands("openregister-java/country-data.rsf"),
        )],
        limits,
    );
    let started = std::time::Instant::now();
    let mut slow = std::net::TcpStream::connect(server.addr).unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    // Half a request line, then nothing.
    std::io::Write::write_all(&mut slow, b"GET /registers/coun").unwrap();
    assert_eq!(server.get("/registers/country/records/GB").status, 200);
    let mut rest = Vec::new();
    // The server closes the connection (after a 408 or without a word).
    let _ = std::io::Read::read_to_end(&mut slow, &mut rest);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= std::time::Duration::from_millis(900),
        "{elapsed:?}"
    );
    assert!(elapsed < std::time::Duration::from_secs(10), "{elapsed:?}");
    let text = String::from_utf8_lossy(&rest);
    assert!(
        rest.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    assert_eq!(server.get("/healthz").status, 200);
}

/// Publications to a target that fails are counted in `/metrics` at once,
/// but make `/readyz` report `publish-behind` only once they have failed
/// for `behind-after-seconds`: a bucket's blip does not take the origin out
/// of service, a long outage is reported.
#[test]
fn a_failing_publish_target_is_reported_not_ready_only_after_its_delay() {
    use regis_server::publishing::{PublishConfig, Publishing};
    let work = tempfile::tempdir().unwrap();
    // A file where the target's folder would be: every upload fails.
    let blocked = work.path().join("bucket");
    std::fs::write(&blocked, b"not a folder").unwrap();
    let config = |behind_after_seconds| PublishConfig {
        url: format!("file://{}", blocked.display()),
        interval_ms: 10,
        request_timeout_seconds: 5,
        behind_after_seconds,
        options: Default::default(),
    };
    // Failed requests to the target, all kinds: a publication fails after
    // at most `tries` (3) of them, so a fourth means one failed already.
    let failed = |server: &TestServer| -> u64 {
        let metrics = server.get("/metrics").text();
        metrics
            .lines()
            .filter(|line| {
                line.starts_with("regis_publish_requests_total{register=\"country\"")
                    && line.contains("outcome=\"failed\"")
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    for (behind_after, reported) in [(3600, false), (0, true)] {
        let server = country();
        let app = server.app();
        app.set_publishing(Publishing::start(&config(behind_after), app).unwrap());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let ready = server.get("/readyz");
            let behind = ready.status == 503 && ready.text().contains("publish-behind");
            if failed(&server) >= 4 && behind == reported {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline && (reported || !behind),
                "behind-after-seconds = {behind_after}: {} failed requests, {}",
                failed(&server),
                ready.text()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // Writes go on either way.
        assert_eq!(server.get("/registers/country/records/GB").status, 200);
    }
}
