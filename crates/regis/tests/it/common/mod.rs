//! The `regis` binary as a user runs it: commands, their output, and
//! `regis serve` children on loopback.

#![allow(dead_code)]

pub mod http;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// Runs `regis ARGS` to completion.
pub fn regis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_regis"))
        .args(args)
        .output()
        .unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The standard output of a command that must succeed.
pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// A `regis serve` child, killed when dropped, and the URL it printed.
pub struct Serving {
    child: Child,
    pub url: String,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `regis serve --data DATA` on `listen` (`127.0.0.1:0` for any port),
/// once it has printed where it listens.
pub fn serve(data: &Path, listen: &str) -> Serving {
    let mut child = Command::new(env!("CARGO_BIN_EXE_regis"))
        .args(["serve", "--listen", listen, "--data"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .rsplit_once(" on ")
        .map(|(_, url)| url.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| panic!("{line}"));
    Serving { child, url }
}

/// A loopback port free now (for a server that must keep its URL across
/// restarts).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
