//! A plain HTTP/1.1 client for the binary's tests: one exchange per
//! connection, exactly the bytes given, chunked bodies joined.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// An answer: status, head and body.
pub struct Answer {
    pub status: u16,
    /// The head, lowercased.
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn error_code(&self) -> Option<String> {
        Some(self.json()?["error"]["code"].as_str()?.to_owned())
    }
}

/// One HTTP/1.1 exchange on a new connection, or `None` when the
/// connection failed or was dropped before a whole answer.
pub fn exchange(addr: &str, request: &[u8]) -> Option<Answer> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    stream.write_all(request).ok()?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).ok()?;
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let mut body = bytes[end + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Some(Answer { status, head, body })
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&body[..line_end])
            .ok()
            .and_then(|text| usize::from_str_radix(text.trim(), 16).ok())
            .unwrap_or(0);
        body = &body[line_end + 2..];
        if size == 0 || body.len() < size {
            break;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[(size + 2).min(body.len())..];
    }
    out
}

/// `POST path` with `body`, or `None` as [`exchange`] says.
pub fn post(addr: &str, path: &str, body: &[u8]) -> Option<Answer> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    exchange(addr, &request)
}

pub fn get_answer(addr: &str, path: &str) -> Option<Answer> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    exchange(addr, request.as_bytes())
}

pub fn get(addr: &str, path: &str) -> serde_json::Value {
    let answer = get_answer(addr, path).unwrap_or_else(|| panic!("{path}: no answer"));
    assert_eq!(answer.status, 200, "{path}: {}", answer.text());
    answer.json().unwrap()
}

pub fn get_text(addr: &str, path: &str) -> String {
    let answer = get_answer(addr, path).unwrap_or_else(|| panic!("{path}: no answer"));
    assert_eq!(answer.status, 200, "{path}: {}", answer.text());
    answer.text()
}

/// A proxy in front of `upstream` (`host:port`) that passes each GET on and
/// the answer back, its body first given to `rewrite(path, status, body)`:
/// what a server that lies, or whose witnesses cosigned, would answer. Its
/// address.
pub fn rewriting_proxy(
    upstream: String,
    rewrite: impl Fn(&str, u16, Vec<u8>) -> Vec<u8> + Send + Sync + 'static,
) -> String {
    let rewrite: std::sync::Arc<Rewrite> = std::sync::Arc::new(rewrite);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let (upstream, rewrite) = (upstream.clone(), std::sync::Arc::clone(&rewrite));
            std::thread::spawn(move || relay(stream, &upstream, &*rewrite));
        }
    });
    addr
}

/// What [`rewriting_proxy`] makes of an answer: `(path, status, body)` to
/// the body passed back.
type Rewrite = dyn Fn(&str, u16, Vec<u8>) -> Vec<u8> + Send + Sync;

/// One request of [`rewriting_proxy`].
fn relay(mut client: TcpStream, upstream: &str, rewrite: &Rewrite) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let Some(answer) = exchange(upstream, request.as_bytes()) else {
        return;
    };
    let body = rewrite(&path, answer.status, answer.body);
    let _ = write!(
        client,
        "HTTP/1.1 {} Relayed\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer.status,
        body.len()
    );
    let _ = client.write_all(&body);
}
