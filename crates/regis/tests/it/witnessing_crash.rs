//! `regis serve` with a witness policy of two witnesses, both required,
//! killed with SIGKILL mid-round (writes under way, one witness holding
//! its request, the other answering, the state being written) at a
//! different moment each time, then restarted: the witnessed checkpoint it
//! serves is never older than one it served or answered before, always
//! meets the policy, and the witnesses (the tests' own, in this process,
//! keeping their state across the server's deaths) go on cosigning from the
//! sizes the server recorded or, where a kill lost one, from the size they
//! say in a 409: a write waiting for its witnessed checkpoint is answered.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::free_port;
use crate::common::http::{Answer, exchange, get_answer};
use crate::witness::{Fault, TestWitness, policy_with};
use regis_note::{Cosigner, KeyName, SignedCheckpoint, Verifier, WitnessPolicy};

const B: &str = "/registers/element";

/// `regis serve --demo` on DATA at ADDR, with `args`.
struct Server {
    child: Child,
}

impl Server {
    fn start(data: &Path, addr: &str, args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_regis"))
            .args(["serve", "--demo", "--listen", addr, "--data"])
            .arg(data)
            .args(args)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let line = lines
                .next()
                .expect("the server printed no address")
                .unwrap();
            if line.starts_with("regis: serving ") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Server { child }
    }

    fn kill(mut self) {
        let status = Command::new("kill")
            .args(["-9", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn post_entry(addr: &str, token: &str, key: &str, wait: bool) -> Option<Answer> {
    let body = serde_json::json!([{
        "key": key,
        "item": {"element": key, "name": "Witnessed", "atomic-number": "1"},
    }])
    .to_string();
    let query = if wait { "?wait=witnessed" } else { "" };
    let request = format!(
        "POST {B}/entries{query} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    exchange(addr, request.as_bytes())
}

#[test]
fn a_kill_mid_round_never_serves_an_older_witnessed_checkpoint_nor_strands_a_witness() {
    let data = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    // The register is made first, so that the witnesses can trust its logs.
    let server = Server::start(data.path(), &addr, &[]);
    let register = crate::common::http::get(&addr, &format!("{B}/register"));
    server.kill();
    let cosigner =
        |n: u8| Cosigner::from_seed(KeyName::new(format!("witness-{n}.test")).unwrap(), &[n; 32]);
    let (w1, w2) = (
        TestWitness::start("w1", cosigner(1)),
        TestWitness::start("w2", cosigner(2)),
    );
    let key = |field: &str| register[field].as_str().unwrap().to_owned();
    for witness in [&w1, &w2] {
        for prefix in ["log", "system-log"] {
            let verifier = Verifier::parse(&key(&format!("{prefix}-public-key"))).unwrap();
            witness.trust(&key(&format!("{prefix}-origin")), verifier);
        }
    }
    let policy = policy_with(&[&w1, &w2], "group both all w1 w2\nquorum both\n");
    let policy_file = data.path().join("witnesses.policy");
    std::fs::write(&policy_file, &policy).unwrap();
    let config = data.path().join("regis.toml");
    std::fs::write(
        &config,
        format!(
            "witness-policy = {:?}\nwitness-interval-ms = 5\nwitness-timeout-seconds = 2\n",
            policy_file.display().to_string()
        ),
    )
    .unwrap();
    let token = crate::common::ok(crate::common::regis(&[
        "token",
        "--data",
        data.path().to_str().unwrap(),
        "--register",
        "element",
    ]));
    let token = token.lines().last().unwrap().to_owned();
    let parsed = WitnessPolicy::parse(policy.as_bytes()).unwrap();
    let log_key = Verifier::parse(&key("log-public-key")).unwrap();
    // The size of the newest witnessed checkpoint anyone was given.
    let mut seen = 0u64;
    let check = |text: &str| -> u64 {
        let signed = SignedCheckpoint::parse(text.as_bytes()).unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        parsed
            .verify(&signed, &key("log-origin"), &log_key, now)
            .unwrap_or_else(|error| panic!("{error}: {text}"));
        signed.checkpoint().size()
    };
    for (round, kill_after_ms) in [0u64, 1, 2, 4, 8, 16, 32].into_iter().enumerate() {
        let server = Server::start(data.path(), &addr, &["--config", config.to_str().unwrap()]);
        if round > 0 {
            // What it serves at once is what it had: no older than any
            // witnessed checkpoint given out before the kill.
            let answer = get_answer(&addr, &format!("{B}/log/checkpoint")).unwrap();
            assert_eq!(answer.status, 200, "round {round}: {}", answer.text());
            let size = check(&answer.text());
            assert!(size >= seen, "round {round}: served {size} after {seen}");
            seen = size;
        }
        // With both witnesses well, a write waiting for its witnessed
        // checkpoint is answered: no witness refuses the log after a kill.
        let answer = post_entry(&addr, &token, &format!("r{round}-waited"), true).unwrap();
        assert_eq!(answer.status, 200, "round {round}: {}", answer.text());
        let receipt = answer.json().unwrap();
        let size = check(receipt["witnessed-checkpoint"].as_str().unwrap());
        assert!(size >= seen && size >= receipt["entries"][0]["entry-number"].as_u64().unwrap());
        seen = size;
        // Then a round in flight when the kill comes: one witness holds its
        // request every other round, writers write, the state is written.
        if round % 2 == 0 {
            w2.set(Fault::Hang);
        }
        std::thread::scope(|scope| {
            for writer in 0..4 {
                let (addr, token) = (&addr, &token);
                scope.spawn(move || {
                    for n in 0..5 {
                        let key = format!("r{round}w{writer}n{n}");
                        if post_entry(addr, token, &key, false).is_none() {
                            return;
                        }
                    }
                });
            }
            std::thread::sleep(Duration::from_millis(kill_after_ms));
            if let Some(answer) = get_answer(&addr, &format!("{B}/log/checkpoint"))
                && answer.status == 200
            {
                seen = seen.max(check(&answer.text()));
            }
            server.kill();
        });
        w2.set(Fault::None);
    }
    // Each witness saw the log only grow, and was never asked anything it
    // refused but for a 409 (a size a kill lost), which the next request,
    // from its size, mended.
    for witness in [&w1, &w2] {
        let asked = witness.seen();
        for (n, seen) in asked.iter().enumerate() {
            match seen.status {
                200 => {}
                409 => assert!(
                    asked[n + 1..]
                        .iter()
                        .any(|next| next.size == seen.size && next.status == 200),
                    "{asked:?}"
                ),
                status => panic!("{} answered {status}: {asked:?}", witness.name),
            }
        }
        let user: Vec<_> = witness
            .seen()
            .into_iter()
            .filter(|seen| seen.origin == key("log-origin") && seen.status == 200)
            .map(|seen| seen.size)
            .collect();
        assert!(user.windows(2).all(|pair| pair[0] <= pair[1]), "{user:?}");
        assert!(user.last().copied().unwrap_or(0) >= seen);
    }
}
