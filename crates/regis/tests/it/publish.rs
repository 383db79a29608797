//! The static copy end to end: `regis serve` with `[publish]` to a
//! `file://` target that nginx serves, checked at several sizes (every
//! object the bucket holds is the origin's bytes at that path, nginx serves
//! them, and Go's tlog code verifies both logs through nginx), after the
//! target was unreachable for a while, and after a kill -9 in
//! mid-publication; `regis publish` catching a target up once, and refusing
//! a target ahead of its data directory or holding another log.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use regis_model::Log;

use crate::common::http::{exchange, get_answer};
use crate::common::{copy_dir, countries_rsf, free_port, load_country, ok, regis, text};
use crate::interop::GoVerifier;

const NAME: &str = "country";

fn country_rsf() -> PathBuf {
    regis_fixtures::path("registers/registry-data/country.rsf")
}

/// nginx over `root` on a loopback port, as a CDN in front of a bucket
/// would serve it: checkpoints and mutable objects `no-cache`, tiles
/// immutable. One process (no master, no workers), its files in a folder
/// of its own; killed when dropped.
struct Nginx {
    addr: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(root: &Path) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        let config = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             types {{ }}\n  default_type application/octet-stream;\n\
             server {{\n    listen 127.0.0.1:{port};\n    root {};\n\
             location ~ /tile/ {{ add_header Cache-Control \"public, max-age=604800, immutable\"; }}\n\
             location ~ /checkpoint$ {{ default_type \"text/plain; charset=utf-8\"; add_header Cache-Control no-cache; }}\n\
             location ~ /download-rsf/ {{ default_type application/uk-gov-rsf; }}\n\
             location ~ /register$ {{ default_type application/json; add_header Cache-Control no-cache; }}\n\
             }}\n}}\n",
            root.display()
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, config).unwrap();
        // Debian puts it in /usr/sbin, which a user's PATH may not hold.
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|path| Path::new(path).exists())
            .unwrap_or("nginx");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(dir.path())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx is not installed: apt-get install nginx-light");
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx {
            addr,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `regis serve --config FILE`, killed (SIGKILL) when dropped.
struct Origin {
    addr: String,
    child: Child,
}

impl Origin {
    fn start(config: &Path) -> Origin {
        let mut child = Command::new(env!("CARGO_BIN_EXE_regis"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().unwrap().unwrap();
        let addr = line
            .rsplit_once(" on http://")
            .map(|(_, addr)| addr.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| panic!("{line}"));
        std::thread::spawn(move || for _ in lines {});
        Origin { addr, child }
    }

    fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each log's (origin, verifier key), as `regis key` prints them.
fn keys(data: &Path) -> [(String, String); 2] {
    let printed = ok(regis(&[
        "key",
        "--data",
        data.to_str().unwrap(),
        "--register",
        NAME,
    ]));
    let field = |name: &str| {
        printed
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
            .unwrap()
            .to_owned()
    };
    [
        (field("log-origin"), field("log-public-key")),
        (field("system-log-origin"), field("system-log-public-key")),
    ]
}

/// Every file below `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(next) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn get_bytes(addr: &str, path: &str) -> (u16, Vec<u8>) {
    let answer = get_answer(addr, path).unwrap_or_else(|| panic!("{addr}{path}: no answer"));
    (answer.status, answer.body)
}

/// The user log's size in the bucket's checkpoint, if there is one.
fn published_size(bucket: &Path) -> Option<u64> {
    let text =
        std::fs::read_to_string(bucket.join(format!("registers/{NAME}/log/checkpoint"))).ok()?;
    text.lines().nth(1)?.parse().ok()
}

fn wait_published(bucket: &Path, size: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while published_size(bucket) != Some(size) {
        assert!(
            Instant::now() < deadline,
            "the bucket shows {:?}, not {size}",
            published_size(bucket)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The user log's size the origin serves.
fn served_size(addr: &str) -> u64 {
    let (status, body) = get_bytes(addr, &format!("/registers/{NAME}/log/checkpoint"));
    assert_eq!(status, 200);
    text(&body).lines().nth(1).unwrap().parse().unwrap()
}

/// The check of a published copy: for each object the bucket holds (but
/// those the publisher deletes meanwhile, superseded),
/// nginx serves its bytes and, if `origin` is given, the origin answers
/// the same bytes at the same path; then Go's tlog code verifies both logs
/// through nginx (signature with the log's key, the root recomputed from
/// tiles, every entry against its tile leaves, proofs) and `regis verify
/// --full` replays it. The user size.
fn check_copy(
    bucket: &Path,
    nginx: &Nginx,
    origin: Option<&str>,
    keys: &[(String, String); 2],
    go: &GoVerifier,
) -> u64 {
    let size = published_size(bucket).expect("no checkpoint in the bucket");
    // `object_store` writes `PATH#N` and renames it to PATH: no reader asks
    // for those (a kill -9 may leave one behind).
    for file in files(bucket).into_iter().filter(|file| !file.contains('#')) {
        let path = format!("/{file}");
        // The publisher may be deleting superseded objects meanwhile.
        let Ok(stored) = std::fs::read(bucket.join(&file)) else {
            continue;
        };
        let (status, served) = get_bytes(&nginx.addr, &path);
        if status == 404 && !bucket.join(&file).exists() {
            continue;
        }
        assert_eq!((status, &served), (200, &stored), "nginx {path}");
        if let Some(origin) = origin {
            let (status, answered) = get_bytes(origin, &path);
            assert_eq!(status, 200, "origin {path}: {}", text(&answered));
            assert!(
                answered == stored,
                "origin {path}: {} / {}",
                text(&answered),
                text(&stored)
            );
        }
    }
    let base = format!("http://{}/registers/{NAME}/", nginx.addr);
    for (log, (log_origin, key)) in [Log::User, Log::System].into_iter().zip(keys) {
        let output = go.run_at(&base, log, key, log_origin);
        let stdout = text(&output.stdout);
        assert!(
            output.status.success()
                && stdout.contains("signature ok")
                && stdout.contains("root recomputed from tiles: ok"),
            "go-tlog-verify {log}: {stdout}{}",
            text(&output.stderr)
        );
    }
    // Regis's own client replays the copy: both logs from the RSF chunks,
    // every leaf against the tiles, every item re-hashed.
    let verified = ok(regis(&["verify", &base, "--key", &keys[0].1, "--full"]));
    // (The publisher may have moved the copy on since `size` was read.)
    assert!(
        verified.contains("replayed ") && verified.contains("root recomputed"),
        "regis verify --full of the copy at {size}: {verified}"
    );
    size
}

/// `POST B/load-rsf` of `count` new countries: the user size after it.
fn load_over_http(addr: &str, token: &str, dir: &Path, label: &str, count: usize) -> u64 {
    let body = std::fs::read(countries_rsf(dir, label, count)).unwrap();
    let mut request = format!(
        "POST /registers/{NAME}/load-rsf HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/uk-gov-rsf\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let answer = exchange(addr, &request).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    served_size(addr)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_served_register_is_published_verifies_through_nginx_and_survives_outages_and_kill_9() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let bucket = work.path().join("bucket");
    std::fs::create_dir(&bucket).unwrap();
    load_country(&data, &country_rsf());
    let token = ok(regis(&[
        "token",
        "--data",
        data.to_str().unwrap(),
        "--register",
        NAME,
    ]));
    let token = token.lines().last().unwrap().to_owned();
    let config = work.path().join("regis.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata = \"{}\"\nhost = \"regis.test\"\n\n[publish]\nurl = \"file://{}\"\ninterval-ms = 20\nbehind-after-seconds = 0\n",
            data.display(),
            bucket.display()
        ),
    )
    .unwrap();
    let keys = keys(&data);
    let go = GoVerifier::build(work.path());
    let nginx = Nginx::start(&bucket);
    let origin = Origin::start(&config);
    // Caught up at start, then each size as it is written.
    let mut size = served_size(&origin.addr);
    for (label, count) in [("", 0), ("One", 1), ("Fill", 254), ("Cross", 300)] {
        if count > 0 {
            size = load_over_http(&origin.addr, &token, work.path(), label, count);
        }
        wait_published(&bucket, size);
        assert_eq!(
            check_copy(&bucket, &nginx, Some(&origin.addr), &keys, &go),
            size
        );
    }
    // The status follows the state file, written after the checkpoints.
    let published = format!("regis_published_size{{register=\"{NAME}\",log=\"user\"}} {size}\n");
    wait_for("regis_published_size", || {
        text(&get_bytes(&origin.addr, "/metrics").1).contains(&published)
    });
    let metrics = text(&get_bytes(&origin.addr, "/metrics").1);
    for series in [
        format!("regis_publish_lag_entries{{register=\"{NAME}\",log=\"user\"}} 0\n"),
        format!("regis_publish_requests_total{{register=\"{NAME}\",kind=\"put\",outcome=\"ok\"}}"),
        format!("regis_publish_refused{{register=\"{NAME}\"}} 0\n"),
    ] {
        assert!(metrics.contains(&series), "{series}: {metrics}");
    }

    // The target unreachable (its folder replaced by a file): writes go
    // on, /readyz says why the copy is behind; back, it converges.
    let registers = bucket.join("registers");
    let away = bucket.join("away");
    std::fs::rename(&registers, &away).unwrap();
    std::fs::write(&registers, "not a folder").unwrap();
    size = load_over_http(&origin.addr, &token, work.path(), "Outage", 40);
    wait_for("/readyz to report publish-behind", || {
        get_answer(&origin.addr, "/readyz")
            .is_some_and(|answer| answer.status == 503 && answer.text().contains("publish-behind"))
    });
    let (_, metrics) = get_bytes(&origin.addr, "/metrics");
    assert!(text(&metrics).contains(&format!(
        "regis_publish_lag_entries{{register=\"{NAME}\",log=\"user\"}} 40\n"
    )));
    std::fs::remove_file(&registers).unwrap();
    std::fs::rename(&away, &registers).unwrap();
    wait_published(&bucket, size);
    assert_eq!(
        check_copy(&bucket, &nginx, Some(&origin.addr), &keys, &go),
        size
    );
    wait_for("/readyz to be ready again", || {
        get_answer(&origin.addr, "/readyz").is_some_and(|answer| answer.status == 200)
    });

    // kill -9 in mid-publication (once the bucket has some objects of the
    // new size and not yet its checkpoint, if the poll catches that):
    // whatever the bucket shows verifies; restarted, the server converges.
    let before = published_size(&bucket).unwrap();
    let objects = files(&bucket).len();
    size = load_over_http(&origin.addr, &token, work.path(), "Killed", 3000);
    let deadline = Instant::now() + Duration::from_secs(60);
    while files(&bucket).len() == objects && published_size(&bucket) == Some(before) {
        assert!(
            Instant::now() < deadline,
            "nothing published after the write"
        );
    }
    origin.kill_9();
    let shown = check_copy(&bucket, &nginx, None, &keys, &go);
    assert!(shown == before || shown == size, "the bucket shows {shown}");
    eprintln!(
        "killed with {} objects more in the bucket, its checkpoint at {shown} of {size}",
        files(&bucket).len().saturating_sub(objects)
    );
    let origin = Origin::start(&config);
    wait_published(&bucket, size);
    assert_eq!(
        check_copy(&bucket, &nginx, Some(&origin.addr), &keys, &go),
        size
    );
}

#[test]
fn regis_publish_catches_up_resumes_and_refuses_a_target_ahead_or_foreign() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let bucket = work.path().join("bucket");
    std::fs::create_dir(&bucket).unwrap();
    load_country(&data, &country_rsf());
    let keys = keys(&data);
    let go = GoVerifier::build(work.path());
    let nginx = Nginx::start(&bucket);
    let url = format!("file://{}", bucket.display());
    let publish = |data: &Path| regis(&["publish", "--data", data.to_str().unwrap(), "--to", &url]);
    assert!(ok(publish(&data)).contains("country: published to file://"));
    assert!(ok(publish(&data)).contains("country: file://"));
    let first = check_copy(&bucket, &nginx, None, &keys, &go);

    // A copy of this data directory, left behind while the original grows
    // and is published: the bucket is ahead of it, and it is refused.
    let behind = work.path().join("behind");
    copy_dir(&data, &behind);
    load_country(&data, &countries_rsf(work.path(), "More", 300));
    ok(publish(&data));
    assert_eq!(check_copy(&bucket, &nginx, None, &keys, &go), first + 300);
    let refused = publish(&behind);
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("register country is not published to file://")
            && stderr.contains("beyond this data directory"),
        "{stderr}"
    );
    // Another register named country (another key): refused too.
    let other = work.path().join("other");
    load_country(&other, &country_rsf());
    let refused = publish(&other);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("is not this log's"),
        "{}",
        text(&refused.stderr)
    );
    // The bucket was not touched by either.
    assert_eq!(check_copy(&bucket, &nginx, None, &keys, &go), first + 300);
}
