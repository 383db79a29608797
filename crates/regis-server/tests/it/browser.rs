//! The pages in a real browser: headless Chromium driven over WebDriver
//! (fantoccini, through the chromedriver this test starts). A reader opens
//! the server's home, searches for a key, opens the record, and the page's
//! script verifies its proof (item hash, leaf hash, inclusion proof, Ed25519
//! signature on the checkpoint); then a lying proxy tampers with the proof
//! and the page must say which check failed. The register home's live feed
//! shows a checkpoint signed while the page is open. A register with a
//! witness policy, cosigned by test witnesses: the page checks each
//! witness's cosignature on the proof's checkpoint (replaced by the proxy
//! with one made with a real witness key, or taken off), shows who
//! cosigned and when, and fails on a forged one.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian packages
//! `chromium` and `chromium-driver`, which `.ci/run` installs). Screenshots
//! go to `target/browser-artifacts/`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use crate::common::witness::{TestWitness, policy_with, trusted_by};
use crate::common::{TestServer, load, rsf_commands, witness};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use fantoccini::{Client, ClientBuilder, Locator};
use regis_model::Item;
use regis_store::Request;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PATIENCE: Duration = Duration::from_secs(30);

/// A chromedriver this test started, stopped (by its own handle) on drop.
struct Driver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: install Chromium and ChromeDriver as .ci/run does \
                 (apt-get install -y chromium chromium-driver)"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Process::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {CHROMEDRIVER}: {e}"));
        let started = Instant::now();
        while !ready(port) {
            assert!(
                started.elapsed() < PATIENCE,
                "chromedriver did not become ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            port,
            profile: tempfile::tempdir().unwrap(),
        }
    }

    /// A new headless Chromium session.
    async fn client(&self) -> Client {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1200,1600",
        ]
        .map(String::from)
        .into_iter()
        .chain([format!(
            "--user-data-dir={}",
            self.profile.path().join(unique()).display()
        )])
        .collect::<Vec<_>>();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": CHROMIUM, "args": args }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|e| panic!("starting a Chromium session: {e}"))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the chromedriver on `port` answers `/status` with ready.
fn ready(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if write!(
        stream,
        "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.contains("\"ready\":true") || answer.contains("\"ready\": true")
}

/// One browser at a time: the machine is small, and several Chromiums
/// starting at once make each slow.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());
    BROWSER.lock().unwrap_or_else(|e| e.into_inner())
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("profile-{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    std::fs::write(artifacts().join(format!("{name}.png")), png).unwrap();
}

/// Waits until the verification status has a result, and returns it with
/// the status text.
async fn verification(client: &Client) -> (String, String) {
    let started = Instant::now();
    loop {
        let status = client.find(Locator::Css("#verify-status")).await.unwrap();
        let result = status
            .attr("data-result")
            .await
            .unwrap()
            .unwrap_or_default();
        if result == "verified" || result == "failed" {
            return (result, status.text().await.unwrap());
        }
        assert!(
            started.elapsed() < PATIENCE,
            "no result: {result:?}, {:?}",
            status.text().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `css` has text containing `needle`.
async fn wait_for_text(client: &Client, css: &str, needle: &str) -> String {
    let started = Instant::now();
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await {
            let text = element.text().await.unwrap_or_default();
            if text.contains(needle) {
                return text;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{css} never showed {needle:?}: {text:?}"
            );
        }
        assert!(started.elapsed() < PATIENCE, "{css} never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How the lying proxy changes a record's proof.
#[derive(Clone, Copy, Debug)]
enum Tamper {
    /// One hash of the audit path.
    AuditPath,
    /// A value in the item.
    Item,
    /// One byte of the checkpoint's signature.
    Signature,
    /// Nothing changed, but it is another record's (valid) proof.
    OtherRecord,
    /// The checkpoint's cosignatures replaced by witness 1's at this time;
    /// `forged`: with one bit of its signature flipped.
    Cosigned { time: u64, forged: bool },
    /// The checkpoint's cosignatures taken off (the log's signature kept).
    Uncosigned,
    /// One audit-path hash of the first link's target proof (`?links=1`).
    LinkProof,
}

/// `text`, a signed checkpoint, with only its first signature line (the
/// log's).
fn uncosigned(text: &str) -> regis_note::SignedCheckpoint {
    let signed = regis_note::SignedCheckpoint::parse(text.as_bytes()).unwrap();
    let note = signed.note();
    let log = note.signatures()[0].clone();
    let note = regis_note::Note::new(note.text(), vec![log]).unwrap();
    regis_note::SignedCheckpoint::from_note(note).unwrap()
}

impl Tamper {
    fn apply(self, proof: &mut serde_json::Value) {
        match self {
            Tamper::AuditPath => {
                let hash = proof["merkle-audit-path"][0].as_str().unwrap().to_owned();
                let last = if hash.ends_with('0') { "1" } else { "0" };
                proof["merkle-audit-path"][0] = format!("{}{last}", &hash[..hash.len() - 1]).into();
            }
            Tamper::Item => {
                let item = proof["items"][0].as_str().unwrap().to_owned();
                let changed = item.replace("United Kingdom", "United Kingdon");
                assert_ne!(item, changed);
                proof["items"][0] = changed.into();
            }
            Tamper::Signature => {
                let text = proof["checkpoint"].as_str().unwrap().to_owned();
                let (body, signatures) = text.split_once("\n\n").unwrap();
                let line = signatures.lines().next().unwrap();
                let (prefix, encoded) = line.rsplit_once(' ').unwrap();
                let mut bytes = STANDARD.decode(encoded).unwrap();
                bytes[10] ^= 1;
                let forged = format!("{body}\n\n{prefix} {}\n", STANDARD.encode(bytes));
                proof["checkpoint"] = forged.into();
            }
            Tamper::OtherRecord => {}
            Tamper::LinkProof => {
                let text = proof["links"][0]["tlog-proof"].as_str().unwrap().to_owned();
                let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
                let first = lines[3].remove(0);
                lines[3].insert(0, if first == 'A' { 'B' } else { 'A' });
                proof["links"][0]["tlog-proof"] = lines.join("\n").into();
            }
            Tamper::Uncosigned => {
                let text = proof["checkpoint"].as_str().unwrap().to_owned();
                proof["checkpoint"] = uncosigned(&text).to_string().into();
            }
            Tamper::Cosigned { time, forged } => {
                let text = proof["checkpoint"].as_str().unwrap().to_owned();
                let mut signed = uncosigned(&text);
                let line = witness(1).cosign(signed.checkpoint(), time).unwrap();
                let mut line = regis_note::NoteSignature::from(line);
                if forged {
                    let mut signature = line.signature().to_vec();
                    signature[30] ^= 1;
                    line = regis_note::NoteSignature::new(
                        line.name().clone(),
                        line.key_id().unwrap(),
                        &signature,
                    );
                }
                signed.add_signature(line).unwrap();
                proof["checkpoint"] = signed.to_string().into();
            }
        }
    }
}

/// A proxy in front of `upstream` that passes everything through but a
/// record's proof, which it changes by `tamper`: a lying server.
fn lying_proxy(upstream: SocketAddr, tamper: Tamper) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || relay(stream, upstream, tamper));
        }
    });
    addr
}

fn relay(mut client: TcpStream, upstream: SocketAddr, tamper: Tamper) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let path = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
    let accept = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("accept"))
        .map(|(_, value)| value.trim().to_owned())
        .unwrap_or_else(|| "*/*".to_owned());
    let asked = match tamper {
        Tamper::OtherRecord => path.replace("/records/GB/proof", "/records/FR/proof"),
        _ => path.clone(),
    };
    // HTTP/1.0 upstream: the body is not chunked and ends at the close.
    let mut server = TcpStream::connect(upstream).unwrap();
    write!(
        server,
        "GET {asked} HTTP/1.0\r\nHost: regis.test\r\nAccept: {accept}\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    server.read_to_end(&mut response).unwrap();
    let end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let upstream_head = String::from_utf8_lossy(&response[..end]).into_owned();
    let mut body = response[end + 4..].to_vec();
    if path.ends_with("/proof") || path.ends_with("/proof?links=1") {
        let mut proof: serde_json::Value = serde_json::from_slice(&body).unwrap();
        tamper.apply(&mut proof);
        body = proof.to_string().into_bytes();
    }
    let mut out = String::new();
    for (index, line) in upstream_head.split("\r\n").enumerate() {
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        if index > 0 && matches!(name.as_str(), "content-length" | "connection") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let _ = client.write_all(out.as_bytes());
    let _ = client.write_all(&body);
}

/// The browser side runs on a runtime of its own: the test server's set-up
/// blocks, which a runtime thread must not.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn server() -> TestServer {
    TestServer::start(vec![("country", rsf_commands("registry-data/country.rsf"))])
}

#[test]
fn a_reader_finds_a_record_and_the_browser_verifies_it() {
    let _browser = one_at_a_time();
    let server = server();
    let driver = Driver::start();
    runtime().block_on(async {
        let client = driver.client().await;
        let base = server.url("");

        client.goto(&format!("{base}/")).await.unwrap();
        client
            .find(Locator::LinkText("country"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for_text(&client, "h1", "Country").await;
        // The live feed connects and shows the current checkpoint.
        wait_for_text(&client, "#live-feed", "signed up to size 210").await;
        screenshot(&client, "register-home").await;

        let search = client.find(Locator::Id("search-key")).await.unwrap();
        search.send_keys("GB").await.unwrap();
        client
            .find(Locator::Css(
                "form[aria-label='Find a record by key'] button",
            ))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for_text(&client, "h1", "GB").await;
        assert_eq!(
            client.current_url().await.unwrap().path(),
            "/registers/country/records/GB"
        );
        let (result, text) = verification(&client).await;
        screenshot(&client, "record-verified").await;

        // On a phone's width nothing runs off the side: no sideways scrolling.
        client.set_window_size(390, 844).await.unwrap();
        for path in ["/registers/country", "/registers/country/records/GB"] {
            client.goto(&format!("{base}{path}")).await.unwrap();
            let fits = client
                .execute(
                    "return document.documentElement.scrollWidth <= window.innerWidth;",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(fits, serde_json::Value::Bool(true), "{path}");
        }
        verification(&client).await;
        screenshot(&client, "record-phone").await;
        client.set_window_size(1200, 1600).await.unwrap();
        client
            .goto(&format!(
                "{base}/registers/country/records?page-size=20&sort=name&order=desc"
            ))
            .await
            .unwrap();
        let first_row = client
            .find(Locator::Css("tbody tr th a"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // The first 20 keys (AD to BJ), by name from Z to A.
        assert_eq!(first_row, "AE", "United Arab Emirates");
        screenshot(&client, "records-sorted").await;
        let proof = server.get("/registers/country/records/GB/proof").json();
        let entry = proof["entry-number"].as_str().unwrap();
        let size = proof["tree-size"].as_u64().unwrap();
        assert_eq!(result, "verified", "{text}");
        assert_eq!(
            text,
            format!("Verified: entry {entry} is in the register as signed at size {size}.")
        );
        client.close().await.unwrap();
    });
}

#[test]
fn a_tampered_proof_is_shown_as_failing_the_check_it_fails() {
    let _browser = one_at_a_time();
    let server = server();
    let driver = Driver::start();
    runtime().block_on(async {
    let client = driver.client().await;
    for (tamper, expected) in [
        (
            Tamper::AuditPath,
            "Not verified: inclusion proof: the audit path does not lead to the checkpoint's root hash.",
        ),
        (
            Tamper::Item,
            "Not verified: item hash: the item's SHA-256 is not the entry's item-hash.",
        ),
        (
            Tamper::OtherRecord,
            "Not verified: entry: the proof is for another key.",
        ),
        (
            Tamper::Signature,
            "Not verified: signature: the checkpoint's signature by regis.test/registers/country is not valid.",
        ),
    ] {
        let proxy = lying_proxy(server.addr, tamper);
        client
            .goto(&format!("http://{proxy}/registers/country/records/GB"))
            .await
            .unwrap();
        let (result, text) = verification(&client).await;
        screenshot(&client, &format!("record-tampered-{tamper:?}").to_lowercase()).await;
        assert_eq!(result, "failed", "{tamper:?}: {text}");
        assert_eq!(text, expected, "{tamper:?}");
    }
    client.close().await.unwrap();
    });
}

#[test]
fn the_live_feed_shows_a_new_checkpoint_and_the_record_its_change() {
    let _browser = one_at_a_time();
    let server = server();
    let driver = Driver::start();
    runtime().block_on(async {
    let client = driver.client().await;
    client
        .goto(&server.url("/registers/country"))
        .await
        .unwrap();
    wait_for_text(&client, "#live-feed", "signed up to size 210").await;

    let reg = server.app().register("country").unwrap();
    let item = Item::parse(
        r#"{"country":"GB","name":"The United Kingdom","official-name":"The United Kingdom of Great Britain and Northern Ireland","citizen-names":"Briton;British citizen"}"#,
    )
    .unwrap();
    tokio::task::spawn_blocking(move || {
        reg.sequencer()
            .unwrap()
            .run(Request::Append {
                entries: vec![("GB".to_owned(), item)],
                allow_repeated: false,
            })
            .unwrap();
    })
    .await
    .unwrap();
    wait_for_text(&client, "#live-feed", "signed up to size 211").await;
    let checkpoint = wait_for_text(&client, "#checkpoint-text", "\n211\n").await;
    assert!(checkpoint.starts_with("regis.test/registers/country\n211\n"));
    assert_eq!(
        client
            .find(Locator::Id("total-entries"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "211"
    );
    screenshot(&client, "register-home-live").await;

    // The record now shows the change, and verifies at the new size.
    client
        .goto(&server.url("/registers/country/records/GB"))
        .await
        .unwrap();
    let (result, text) = verification(&client).await;
    assert_eq!(result, "verified", "{text}");
    assert_eq!(
        text,
        "Verified: entry 211 is in the register as signed at size 211."
    );
    let history = client.find(Locator::Css("ol.history")).await.unwrap();
    let history = history.text().await.unwrap();
    assert!(history.contains("Entry 211"), "{history}");
    assert!(
        history.contains("name changed United Kingdom The United Kingdom"),
        "{history}"
    );
    screenshot(&client, "record-after-change").await;
    client.close().await.unwrap();
    });
}

/// The witness list's lines: (result, text) each.
async fn witness_lines(client: &Client) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    for line in client
        .find_all(Locator::Css("#verify-witnesses li"))
        .await
        .unwrap()
    {
        let result = line.attr("data-result").await.unwrap().unwrap_or_default();
        lines.push((result, line.text().await.unwrap()));
    }
    lines
}

#[test]
fn the_browser_checks_each_witness_cosignature_on_the_proof() {
    let _browser = one_at_a_time();
    let (w1, w2) = (
        TestWitness::start("w1", witness(1)),
        TestWitness::start("w2", witness(2)),
    );
    let server = TestServer::start_prepared_with(
        |registry| {
            load(
                registry,
                "country",
                rsf_commands("registry-data/country.rsf"),
            );
            trusted_by(registry, "country", &[&w1, &w2]);
            let policy = policy_with(&[&w1, &w2], "group any-one any w1 w2\nquorum any-one\n");
            let dir = registry.dir(&regis_model::RegisterName::new("country").unwrap());
            std::fs::write(dir.join("witness-policy"), policy).unwrap();
        },
        regis_server::Limits::default(),
        regis_server::WitnessSettings::default(),
    );
    let signed = server
        .app()
        .register("country")
        .unwrap()
        .checkpoints()
        .borrow()
        .user
        .size;
    server.witnessed_at_least("country", regis_model::Log::User, signed);
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let at = regis_model::Timestamp::from_unix_seconds(time as i64).unwrap();
    let at = at.as_str();
    let proof = server.get("/registers/country/records/GB/proof").json();
    let (entry, size) = (
        proof["entry-number"].as_str().unwrap().to_owned(),
        proof["tree-size"].as_u64().unwrap(),
    );
    let driver = Driver::start();
    runtime().block_on(async {
        let client = driver.client().await;
        // The register's page lists the witnesses' keys.
        client.goto(&server.url("/registers/country")).await.unwrap();
        let keys = wait_for_text(&client, "#witness-keys", "w2").await;
        assert!(keys.contains(&witness(1).verifier().to_string()), "{keys}");

        let cosigned = lying_proxy(server.addr, Tamper::Cosigned { time, forged: false });
        let forged = lying_proxy(server.addr, Tamper::Cosigned { time, forged: true });
        let uncosigned = lying_proxy(server.addr, Tamper::Uncosigned);
        for (base, expected, lines) in [
            (
                format!("http://{cosigned}"),
                format!("Verified: entry {entry} is in the register as signed at size {size} and cosigned by w1."),
                [("verified", format!("w1: cosigned at {at}")), ("absent", "w2: no cosignature".to_owned())],
            ),
            (
                format!("http://{forged}"),
                format!("Not verified: cosignature: w1: its cosignature dated {at} is not valid."),
                [("failed", format!("w1: its cosignature dated {at} is not valid")), ("absent", "w2: no cosignature".to_owned())],
            ),
            (
                format!("http://{uncosigned}"),
                "Not verified: cosignature: no witness of the register's policy cosigned the checkpoint.".to_owned(),
                [("absent", "w1: no cosignature".to_owned()), ("absent", "w2: no cosignature".to_owned())],
            ),
        ] {
            client
                .goto(&format!("{base}/registers/country/records/GB"))
                .await
                .unwrap();
            let (_, text) = verification(&client).await;
            screenshot(&client, &format!("record-witnessed-{}", lines[0].0)).await;
            assert_eq!(text, expected);
            let found = witness_lines(&client).await;
            let lines: Vec<(String, String)> =
                lines.into_iter().map(|(r, t)| (r.to_owned(), t)).collect();
            assert_eq!(found, lines, "{base}");
        }
        client.close().await.unwrap();
    });
}

#[test]
fn the_browser_checks_each_link_against_its_registers_key() {
    let _browser = one_at_a_time();
    let server = TestServer::start(
        ["local-authority-type", "local-authority-eng"]
            .map(|name| (name, rsf_commands(&format!("registry-data/{name}.rsf"))))
            .to_vec(),
    );
    let driver = Driver::start();
    runtime().block_on(async {
        let client = driver.client().await;
        for (base, expected) in [
            (server.addr, "verified in your browser: entry"),
            (
                lying_proxy(server.addr, Tamper::LinkProof),
                "not verified: inclusion proof: the audit path does not lead to the checkpoint's root hash",
            ),
        ] {
            client
                .goto(&format!("http://{base}/registers/local-authority-eng/records/BRC"))
                .await
                .unwrap();
            let (result, text) = verification(&client).await;
            assert_eq!(result, "verified", "{text}");
            let links = wait_for_text(&client, "#links tbody", expected).await;
            assert!(links.contains("local-authority-type"), "{links}");
            screenshot(&client, if base == server.addr { "record-links" } else { "record-links-tampered" }).await;
        }
        client.close().await.unwrap();
    });
}
