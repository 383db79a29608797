//! A live server for tests: real registers loaded through the sequencer
//! into redb stores in a temporary directory, served on an ephemeral
//! loopback port by its own runtime thread; and a raw HTTP/1.1 client, so
//! that tests send paths exactly as written (no client-side normalising).

#![allow(dead_code)]

pub mod witness;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use regis_model::rsf::{Command, Policy, RsfReader};
use regis_model::{
    Cardinality, Datatype, Entry, Field, Item, Log, RegisterName, Timestamp, definition_commands,
};
use regis_server::{App, Limits, WitnessSettings};
use regis_store::{RedbBackend, Registry, Request, Sequencer, SequencerConfig, system_clock};

pub const HOST: &str = "regis.test";

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    /// Dropped before the server stops: the sequencers stop only once
    /// every handle to them is gone.
    app: Option<Arc<App<RedbBackend>>>,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// RSF commands of a fixture file.
pub fn rsf_commands(relative: &str) -> Vec<(u64, Command)> {
    let bytes = regis_fixtures::read(format!("registers/{relative}"));
    RsfReader::new(BufReader::new(&bytes[..]))
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// The register of the reference implementation's API tests: register
/// `register`, fields as in its CSV columns, two entries.
pub fn api_shapes_commands() -> Vec<(u64, Command)> {
    let field = |name: &str, datatype: &str, cardinality| Field {
        name: name.into(),
        datatype: Datatype::from_name(datatype),
        cardinality,
        register: None,
        text: None,
        phase: None,
    };
    let fields = vec![
        field("register", "string", Cardinality::One),
        field("text", "text", Cardinality::One),
        field("registry", "string", Cardinality::One),
        field("phase", "string", Cardinality::One),
        field("copyright", "text", Cardinality::One),
        field("fields", "string", Cardinality::Many),
    ];
    let time: Timestamp = "2016-01-01T00:00:00Z".parse().unwrap();
    let mut commands = definition_commands(
        &RegisterName::new("register").unwrap(),
        &fields,
        "Registers",
        None,
        time,
    )
    .unwrap();
    let items = [
        r#"{"text":"The Entry 1","fields":["field1"],"register":"value1"}"#,
        r#"{"text":"The Entry 2","fields":["field1","field2"],"register":"value2"}"#,
    ];
    let entries = [
        ("value1", "2016-03-01T01:02:03Z"),
        ("value2", "2016-03-02T02:03:04Z"),
    ];
    let mut line = commands.len() as u64;
    for (json, (key, time)) in items.iter().zip(entries) {
        let item = Item::parse(json).unwrap();
        let entry = Entry::new(Log::User, key, time.parse().unwrap(), item.hash());
        line += 1;
        commands.push((line, Command::AddItem(item)));
        line += 1;
        commands.push((line, Command::AppendEntry(entry)));
    }
    commands
}

/// Creates `name` in `registry` and loads `commands` into it.
pub fn load(registry: &Registry, name: &str, commands: Vec<(u64, Command)>) {
    let name = RegisterName::new(name).unwrap();
    let register = registry.create::<RedbBackend>(&name).unwrap();
    let sequencer = Sequencer::spawn(
        name.as_str(),
        register.store,
        register.writer,
        register.signers,
        SequencerConfig::default(),
        system_clock(),
    )
    .unwrap();
    sequencer
        .handle()
        .run(Request::Load {
            commands,
            policy: Policy::IMPORT,
        })
        .unwrap();
    sequencer.join();
}

impl TestServer {
    /// A server over the registers `registers` (name, RSF commands).
    pub fn start(registers: Vec<(&str, Vec<(u64, Command)>)>) -> TestServer {
        Self::start_with(registers, Limits::default())
    }

    pub fn start_with(registers: Vec<(&str, Vec<(u64, Command)>)>, limits: Limits) -> TestServer {
        Self::start_prepared(
            |registry| {
                for (name, commands) in registers {
                    load(registry, name, commands);
                }
            },
            limits,
        )
    }

    /// A server over whatever `prepare` puts in a new data directory.
    pub fn start_prepared(prepare: impl FnOnce(&Registry), limits: Limits) -> TestServer {
        Self::start_prepared_with(prepare, limits, WitnessSettings::default())
    }

    /// [`TestServer::start_prepared`], its registers witnessed as `witness`
    /// says.
    pub fn start_prepared_with(
        prepare: impl FnOnce(&Registry),
        limits: Limits,
        witness: WitnessSettings,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        prepare(&Registry::new(dir.path(), HOST));
        Self::open(dir, limits, witness)
    }

    /// Stops the server and returns its data directory, to open again.
    pub fn stop(mut self) -> tempfile::TempDir {
        self.halt();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    /// A server over the data directory `dir`.
    pub fn open(dir: tempfile::TempDir, limits: Limits, witness: WitnessSettings) -> TestServer {
        let registry = Registry::new(dir.path(), HOST);
        let opened = App::<RedbBackend>::open_with(&registry, limits, witness).unwrap();
        let app = Arc::clone(&opened.app);
        assert!(
            opened.app.unavailable.is_empty(),
            "{:?}",
            opened.app.unavailable
        );
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let listener = regis_server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                    .await
                    .unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                regis_server::serve(listener, Arc::clone(&opened.app), async {
                    let _ = shutdown_rx.await;
                })
                .await
                .unwrap();
            });
            drop(runtime);
            opened.shutdown();
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        TestServer {
            addr,
            app: Some(app),
            dir,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The server's state.
    pub fn app(&self) -> &App<RedbBackend> {
        self.app.as_deref().unwrap()
    }

    /// Waits (on the witnessing's watch channel, at most a minute) until
    /// register `name`'s witnessed checkpoint of `log` has at least `size`
    /// entries, and returns it.
    pub fn witnessed_at_least(&self, name: &str, log: Log, size: u64) -> regis_store::SignedTree {
        let register = self.app().register(name).unwrap();
        let mut witnessed = register.witnessed().unwrap().subscribe();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let served = runtime.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(60),
                witnessed.wait_for(|served| served[log].as_ref().is_some_and(|t| t.size >= size)),
            )
            .await
            .unwrap_or_else(|_| panic!("no witnessed {log} checkpoint of size {size}"))
            .unwrap()
            .clone()
        });
        served[log].clone().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[])
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.request("GET", path, headers)
    }

    /// Sends one request on a new connection, exactly as written.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.raw(
            format!("{method} {path} HTTP/1.1\r\n").as_bytes(),
            headers,
            method == "HEAD",
        )
    }

    /// POSTs `body` to `path` with `headers` (and its Content-Length).
    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        post(self.addr, path, headers, body)
    }

    /// Sends `request_line` (bytes, may be anything) and the headers.
    pub fn raw(&self, request_line: &[u8], headers: &[(&str, &str)], head: bool) -> Resp {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut request = request_line.to_vec();
        request.extend_from_slice(b"Host: regis.test\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        request.extend_from_slice(b"\r\n");
        stream.write_all(&request).unwrap();
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).unwrap();
        Resp::parse(&bytes, head)
    }
}

impl TestServer {
    /// Opens a streaming request; returns the response head and the
    /// stream, to read events from.
    pub fn stream(&self, path: &str) -> (u16, String, TcpStream, Vec<u8>) {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: regis.test\r\n\r\n").unwrap();
        let mut bytes = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let read = stream.read(&mut buffer).unwrap();
            assert!(read > 0, "closed before the head");
            bytes.extend_from_slice(&buffer[..read]);
            if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(bytes[..end].to_vec()).unwrap();
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                let rest = bytes[end + 4..].to_vec();
                return (status, head.to_ascii_lowercase(), stream, rest);
            }
        }
    }
}

/// POSTs `body` to `path` on a new connection to `addr`.
pub fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: regis.test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    )
    .into_bytes();
    for (name, value) in headers {
        request.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);
    stream.write_all(&request).unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    Resp::parse(&bytes, false)
}

/// Reads from `stream` (appending to `seen`) until `seen` holds `needle`.
pub fn read_until(stream: &mut TcpStream, seen: &mut Vec<u8>, needle: &str) {
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(seen).contains(needle) {
        let read = stream.read(&mut buffer).unwrap();
        assert!(
            read > 0,
            "closed before {needle:?}: {}",
            String::from_utf8_lossy(seen)
        );
        seen.extend_from_slice(&buffer[..read]);
    }
}

impl TestServer {
    /// Stops serving and joins the server's thread (which stops the
    /// witnessings and sequencers).
    fn halt(&mut self) {
        drop(self.app.take());
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    fn parse(bytes: &[u8], head: bool) -> Resp {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(bytes)));
        let head_text = std::str::from_utf8(&bytes[..end]).unwrap();
        let mut lines = head_text.split("\r\n");
        let status_line = lines.next().unwrap();
        let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap();
                (name.trim().to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        let mut body = bytes[end + 4..].to_vec();
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
        if chunked && !head {
            body = dechunk(&body);
        }
        Resp {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, joined with ", ".
    pub fn header_all(&self, name: &str) -> String {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts a JSON error with `status` and returns its code.
    pub fn error(&self, status: u16) -> String {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
        let json = self.json();
        let message = json["error"]["message"].as_str().unwrap();
        assert!(!message.is_empty());
        json["error"]["code"].as_str().unwrap().to_owned()
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = std::str::from_utf8(&body[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        body = &body[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

/// `sha-256:<hex>` strings of a JSON array.
pub fn hashes(value: &serde_json::Value) -> Vec<regis_merkle::Hash> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|h| regis_model::parse_hash(h.as_str().unwrap()).unwrap())
        .collect()
}

/// Witness `n` of the tests' witness policies: a real cosignature/v1 key,
/// named `witness-N.test`.
pub fn witness(n: u8) -> regis_note::Cosigner {
    let name = regis_note::KeyName::new(format!("witness-{n}.test")).unwrap();
    regis_note::Cosigner::from_seed(name, &[n; 32])
}

impl TestServer {
    /// A server over register `name`, loaded with `commands`, whose witness
    /// policy (`DATA/registers/NAME/witness-policy`) is `policy` with each
    /// `{N}` replaced by witness N's verifier key.
    pub fn start_witnessed(name: &str, commands: Vec<(u64, Command)>, policy: &str) -> TestServer {
        let mut policy = policy.to_owned();
        for n in 1..=9 {
            policy = policy.replace(&format!("{{{n}}}"), &witness(n).verifier().to_string());
        }
        Self::start_prepared(
            |registry| {
                load(registry, name, commands);
                let dir = registry.dir(&RegisterName::new(name).unwrap());
                std::fs::write(dir.join("witness-policy"), policy).unwrap();
            },
            Limits::default(),
        )
    }
}
