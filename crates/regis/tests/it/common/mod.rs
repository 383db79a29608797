//! The `regis` binary as a user runs it: commands, their output, and
//! `regis serve` children on loopback.

#![allow(dead_code)]

pub mod http;
pub mod static_copy;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;

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

/// `regis load` of `file` into the register `country` of `data`, under the
/// host `regis.test`: its standard output.
pub fn load_country(data: &Path, file: &Path) -> String {
    ok(regis(&[
        "load",
        "--data",
        data.to_str().unwrap(),
        "--register",
        "country",
        "--host",
        "regis.test",
        file.to_str().unwrap(),
    ]))
}

/// The user log's verifier key of the register `country` of `data`, as
/// `regis key` prints it.
pub fn country_key(data: &Path) -> String {
    ok(regis(&[
        "key",
        "--data",
        data.to_str().unwrap(),
        "--register",
        "country",
    ]))
    .lines()
    .find_map(|line| line.strip_prefix("log-public-key: "))
    .unwrap()
    .to_owned()
}

/// Copies the directory `from` (a register's data, key and all) to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// An RSF file in `dir` that appends `count` new countries to the country
/// register (keys `Z1`…, names `"{label} 1"`…): two files with different
/// labels grow two copies of a register apart.
pub fn countries_rsf(dir: &Path, label: &str, count: usize) -> PathBuf {
    let mut rsf = String::new();
    for i in 1..=count {
        let item = format!("{{\"country\":\"Z{i}\",\"name\":\"{label} {i}\"}}");
        let hash = regis_model::Item::parse(&item).unwrap().hash();
        rsf.push_str(&format!("add-item\t{item}\n"));
        rsf.push_str(&format!(
            "append-entry\tuser\tZ{i}\t2020-01-01T00:00:00Z\t{hash}\n"
        ));
    }
    let path = dir.join(format!("{label}-{count}.rsf"));
    std::fs::write(&path, rsf).unwrap();
    path
}

/// `regis witness serve --data DATA` on a loopback port, killed (SIGKILL)
/// when dropped.
pub struct WitnessServer {
    pub child: Child,
    pub addr: String,
}

impl WitnessServer {
    pub fn start(data: &Path) -> WitnessServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_regis"))
            .args(["witness", "serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (first, rest) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        // Read on: the witness must never find its stdout closed.
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let _ = first.send(line.unwrap());
            }
        });
        let mut server = WitnessServer {
            child,
            addr: String::new(),
        };
        let line = rest.recv().unwrap();
        server.addr = line
            .rsplit_once(" on http://")
            .map(|(_, url)| url.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| panic!("{line}"));
        server
    }

    pub fn add_checkpoint(&self, body: &[u8]) -> Option<http::Answer> {
        http::post(&self.addr, "/add-checkpoint", body)
    }

    /// The witness's monitoring endpoint for `origin`: the last checkpoint
    /// it cosigned.
    pub fn checkpoint(&self, origin: &str) -> regis_note::SignedCheckpoint {
        let path = format!("/{}/checkpoint", regis_witness::origin_hash(origin));
        let answer = http::get_answer(&self.addr, &path).unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
        regis_note::SignedCheckpoint::parse(&answer.body).unwrap()
    }
}

impl Drop for WitnessServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

/// Builds `interop/go-tlog-verify` (Go's own tlog code) in `dir` with
/// Debian's Go packages, offline; its path.
pub fn build_go_verifier(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/go-tlog-verify");
    let binary = dir.join("go-tlog-verify");
    let output = Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(&source)
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", dir.join("go-cache"))
        .output()
        .expect("go is not installed: apt-get install golang-go golang-golang-x-mod-dev");
    assert!(
        output.status.success(),
        "go build: {}",
        text(&output.stderr)
    );
    binary
}
