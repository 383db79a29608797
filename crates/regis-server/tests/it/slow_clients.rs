//! Slow and idle clients cannot lock others out, over real sockets:
//! downloads whose clients read nothing hold no read slot and are closed
//! by the write timeout; connections are bounded per client address and in
//! all, and beyond either a new one is refused at once, not left waiting.
//!
//! Nothing here measures a latency: each check is an outcome (a status, a
//! closed connection), waited for with generous timeouts.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::common::{TestServer, api_shapes_commands, load};
use regis_model::rsf::Command;
use regis_model::{
    Cardinality, Datatype, Entry, Field, Item, Log, RegisterName, Timestamp, definition_commands,
};
use regis_server::Limits;

const BIG: &str = "/registers/big";

/// How long any one wait may take before the test fails: far beyond what
/// each should need, even on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(120);

/// Register `big`: `entries` entries of 2 KB items, so that its RSF (about
/// 2 KB an entry) cannot fit in the sockets' buffers.
fn big_register(entries: usize) -> Vec<(u64, Command)> {
    let field = |name: &str, datatype: &str| Field {
        name: name.into(),
        datatype: Datatype::from_name(datatype),
        cardinality: Cardinality::One,
        register: None,
        text: None,
        phase: None,
    };
    let time: Timestamp = "2020-01-01T00:00:00Z".parse().unwrap();
    let mut commands = definition_commands(
        &RegisterName::new("big").unwrap(),
        &[field("big", "string"), field("text", "text")],
        "A register too large for socket buffers",
        None,
        time,
    )
    .unwrap();
    let filler = "x".repeat(2000);
    let mut line = commands.len() as u64;
    for n in 0..entries {
        let key = format!("K{n:06}");
        let json = serde_json::json!({"big": key, "text": format!("{n} {filler}")});
        let item = Item::parse(&json.to_string()).unwrap();
        let entry = Entry::new(Log::User, &key, time, item.hash());
        line += 1;
        commands.push((line, Command::AddItem(item)));
        line += 1;
        commands.push((line, Command::AppendEntry(entry)));
    }
    commands
}

fn big_server(limits: Limits) -> TestServer {
    TestServer::start_prepared(
        |registry| load(registry, "big", big_register(10_000)),
        limits,
    )
}

/// A connection to `server` from `local` (any loopback address works on
/// Linux), with a small receive buffer when `small_buffer`.
fn connect_from(local: [u8; 4], server: SocketAddr, small_buffer: bool) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if small_buffer {
            socket.set_recv_buffer_size(4096).unwrap();
        }
        socket.bind(SocketAddr::from((local, 0))).unwrap();
        let stream = socket.connect(server).await.unwrap();
        stream.into_std().unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Sends `GET path` and reads the response head: its status.
fn start_get(stream: &mut TcpStream, path: &str) -> u16 {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: regis.test\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = stream.read(&mut byte).unwrap();
        assert!(read > 0, "closed before the head");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

/// A download of `big`'s whole RSF, from `local`, whose client then reads
/// nothing: the server has started streaming it.
fn stalled_download(server: &TestServer, local: [u8; 4]) -> TcpStream {
    let mut stream = connect_from(local, server.addr, true);
    assert_eq!(start_get(&mut stream, &format!("{BIG}/download-rsf")), 200);
    stream
}

/// Reads what is left until the server closes: the byte count.
fn read_to_close(stream: &mut TcpStream) -> usize {
    let mut total = 0;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return total,
            Ok(read) => total += read,
            Err(error) if error.kind() == ErrorKind::ConnectionReset => return total,
            Err(error) => panic!("the server kept the connection open: {error}"),
        }
    }
}

/// Asks for a small RSF delta until one is served (200) rather than
/// refused for want of a stream slot (503).
fn wait_for_a_stream_slot(server: &TestServer) {
    let started = Instant::now();
    loop {
        let response = server.get(&format!("{BIG}/download-rsf/0/1"));
        if response.status == 200 {
            return;
        }
        assert_eq!(response.error(503), "busy");
        assert!(started.elapsed() < PATIENCE, "no RSF stream slot came back");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Opens connections from 127.0.0.1 until the next one would be refused,
/// each holding its connection with half a request line (a trickling
/// client, which hyper allows the header read timeout).
fn trickling(server: &TestServer, count: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|_| {
            let mut stream = connect_from([127, 0, 0, 1], server.addr, false);
            stream.write_all(b"GET /regis").unwrap();
            stream
        })
        .collect()
}

/// The whole answer to a refused connection: a 503 naming the limit.
fn assert_refused(mut stream: TcpStream) {
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(error) if error.kind() == ErrorKind::ConnectionReset => {}
        Err(error) => panic!("a refused connection was left waiting: {error}"),
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("too-many-connections"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
}

/// Sends `GET path` on `stream` (with `Connection: close`): the status and
/// the bytes of the answer; status 0 if the connection was reset (as a
/// refused one may be, when the server closes it unread).
fn get_on(mut stream: TcpStream, path: &str) -> (u16, usize) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: regis.test\r\nConnection: close\r\n\r\n");
    let mut answer = Vec::new();
    let sent = stream.write_all(request.as_bytes());
    match sent.and_then(|()| stream.read_to_end(&mut answer)) {
        Ok(_) => {}
        Err(error) if error.kind() == ErrorKind::ConnectionReset => return (0, 0),
        Err(error) if error.kind() == ErrorKind::BrokenPipe => return (0, 0),
        Err(error) => panic!("{path}: {error}"),
    }
    let head = String::from_utf8_lossy(&answer[..answer.len().min(64)]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, answer.len())
}

/// Gets `path` from `local` until it is served (each refused connection is
/// answered at once, so this only waits for the server to see a client
/// close).
fn wait_until_served(server: &TestServer, local: [u8; 4], path: &str) {
    let started = Instant::now();
    loop {
        if get_on(connect_from(local, server.addr, false), path).0 == 200 {
            return;
        }
        assert!(started.elapsed() < PATIENCE, "never served again");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn downloads_that_nobody_reads_hold_no_read_slot_and_are_bounded() {
    // A write timeout far beyond the test: only the clients end these.
    let limits = Limits {
        concurrency: 2,
        max_rsf_streams: 4,
        write_timeout_seconds: 3600,
        request_timeout_seconds: 3600,
        ..Limits::default()
    };
    let server = big_server(limits);
    // More stalled downloads than read slots, as many as stream slots.
    let stalled: Vec<TcpStream> = (0..4)
        .map(|_| stalled_download(&server, [127, 0, 0, 1]))
        .collect();
    // Reads are served meanwhile, each of them.
    for path in [
        format!("{BIG}/records"),
        format!("{BIG}/records/K000001"),
        format!("{BIG}/entries?start=5000&limit=100"),
        format!("{BIG}/log/checkpoint"),
        format!("{BIG}/register"),
    ] {
        let response = server.get(&path);
        assert_eq!(response.status, 200, "{path}: {}", response.text());
    }
    // Another download is refused, at once, for want of a stream slot.
    let refused = server.get(&format!("{BIG}/download-rsf"));
    assert_eq!(refused.error(503), "busy");
    assert_eq!(refused.header("retry-after"), Some("1"));
    // The clients going away frees their slots.
    drop(stalled);
    wait_for_a_stream_slot(&server);
}

#[test]
fn downloads_that_nobody_reads_are_cut_off_by_the_write_timeout() {
    // One connection per address, so that an address is served again only
    // once the server has closed its stalled download; and a request
    // timeout (what used to bound a stalled stream) beyond the test: only
    // the write timeout can end these.
    let limits = Limits {
        concurrency: 4,
        max_rsf_streams: 6,
        max_connections_per_address: 1,
        write_timeout_seconds: 1,
        request_timeout_seconds: 3600,
        ..Limits::default()
    };
    let server = big_server(limits);
    let whole = get_on(
        connect_from([127, 0, 0, 10], server.addr, false),
        &format!("{BIG}/download-rsf"),
    );
    assert_eq!(whole.0, 200);
    assert!(whole.1 > 16 << 20, "{} bytes", whole.1);
    // More stalled downloads than read slots, from six addresses.
    let addresses: Vec<[u8; 4]> = (1..=6).map(|n| [127, 0, 0, n]).collect();
    let mut stalled: Vec<TcpStream> = addresses
        .iter()
        .map(|&address| stalled_download(&server, address))
        .collect();
    let reader = connect_from([127, 0, 0, 7], server.addr, false);
    assert_eq!(get_on(reader, &format!("{BIG}/records")).0, 200);
    // Nothing is read, yet each address is served again: the server closed
    // its stalled connection, dropping the download and its buffers.
    for &address in &addresses {
        wait_until_served(&server, address, &format!("{BIG}/register"));
    }
    for stream in &mut stalled {
        let received = read_to_close(stream);
        assert!(
            received < whole.1,
            "a stalled download got {received} bytes, the whole answer"
        );
    }
    // And every stream slot is back.
    wait_for_a_stream_slot(&server);
}

#[test]
fn one_address_cannot_take_every_connection() {
    let limits = Limits {
        max_connections_per_address: 3,
        header_read_timeout_seconds: 3600,
        ..Limits::default()
    };
    let server = TestServer::start_with(vec![("register", api_shapes_commands())], limits);
    let mut held = trickling(&server, 3);
    // Connections are accepted in order, so these three are counted first.
    assert_refused(connect_from([127, 0, 0, 1], server.addr, false));
    // Another address is served at once.
    let other = connect_from([127, 0, 0, 2], server.addr, false);
    assert_eq!(get_on(other, "/registers/register/records").0, 200);
    // Once one of the three closes, its address is served again.
    drop(held.pop());
    wait_until_served(&server, [127, 0, 0, 1], "/registers/register/records");
}

#[test]
fn a_full_server_refuses_new_connections_at_once() {
    // Before, the accept loop waited for a slot: a new client waited as
    // long as the held connections lasted (here, the header read timeout).
    let limits = Limits {
        max_connections: 3,
        max_connections_per_address: 3,
        header_read_timeout_seconds: 3600,
        ..Limits::default()
    };
    let server = TestServer::start_with(vec![("register", api_shapes_commands())], limits);
    let mut held = trickling(&server, 3);
    assert_refused(connect_from([127, 0, 0, 2], server.addr, false));
    drop(held.pop());
    wait_until_served(&server, [127, 0, 0, 2], "/registers/register/records");
}
