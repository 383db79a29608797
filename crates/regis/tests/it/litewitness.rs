//! Interop with litewitness, the C2SP tlog-witness of Filippo Valsorda's
//! torchwood as Debian sid builds it: a witness nobody here wrote. Over real
//! HTTP it cosigns the checkpoints `regis serve` signs, for both logs of a
//! register as they grow; its cosignatures verify with regis-note under the
//! cosignature/v1 key derived here from its SSH key, and meet a tlog-policy
//! naming it; it refuses what tlog-witness says to refuse, a fork of a log
//! it cosigned included, as regis-note's `check_add_checkpoint` does. With
//! Regis's own witness (`regis witness serve`) beside it, the two meet a
//! 2-of-2 policy together, and both refuse a fork whose evidence re-checks.
//!
//! litewitness signs with an Ed25519 key held by an ssh-agent (a fresh agent
//! and a fresh key from ssh-keygen per test) and keeps its logs in SQLite,
//! added with witnessctl. `.ci/run` fetches both programs
//! (`interop/litewitness/fetch.sh`) and sets `REGIS_LITEWITNESS` and
//! `REGIS_WITNESSCTL`; without them these tests fail.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use regis_client::{Client, VerifiedCheckpoint};
use regis_merkle::{Edge, Hash, consistency_proof};
use regis_note::{
    AddCheckpoint, Cosigner, KeyName, SIZE_CONTENT_TYPE, SignatureType, SignedCheckpoint, Verifier,
    VerifyingKey, WitnessPolicy, WitnessedTree, check_add_checkpoint, parse_cosignature_lines,
    parse_size_body, system_verifier,
};

use crate::common::http::{Answer, exchange, get_text, post};
use crate::common::{
    Serving, WitnessServer, copy_dir, countries_rsf, country_key, free_port, load_country, ok,
    regis, serve, text,
};

const BASE: &str = "registers/api-client/country_register.rsf";
const UPDATE: &str = "registers/api-client/country_register_update.rsf";

/// A program these tests run, from the environment variable that names it.
fn program(variable: &str) -> PathBuf {
    let path = std::env::var_os(variable).unwrap_or_else(|| {
        panic!(
            "{variable} is unset: .ci/run fetches litewitness and witnessctl \
             (interop/litewitness/fetch.sh) and sets it"
        )
    });
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "{variable}={}: no such file",
        path.display()
    );
    path
}

/// A dedicated ssh-agent (killed when dropped) holding one fresh Ed25519
/// key from ssh-keygen, as litewitness's README runs it.
struct SshAgent {
    child: Child,
    socket: PathBuf,
    /// The key's `SHA256:` fingerprint: litewitness's `-key`.
    fingerprint: String,
    public_key: VerifyingKey,
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SshAgent {
    fn start(dir: &Path) -> Self {
        let key = dir.join("witness_ed25519");
        ok(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "litewitness", "-f"])
            .arg(&key)
            .output()
            .unwrap());
        let public = key.with_extension("pub");
        // "256 SHA256:… litewitness (ED25519)"
        let listed = ok(Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(&public)
            .output()
            .unwrap());
        let fingerprint = listed.split(' ').nth(1).unwrap().to_owned();
        assert!(fingerprint.starts_with("SHA256:"), "{listed}");
        // "ssh-ed25519 BLOB comment"; the blob is the string "ssh-ed25519"
        // then the 32-byte key, each after its 4-byte length.
        let line = std::fs::read_to_string(&public).unwrap();
        let blob = BASE64.decode(line.split(' ').nth(1).unwrap()).unwrap();
        let (head, raw) = blob.split_at(blob.len() - 32);
        assert_eq!(head, b"\0\0\0\x0bssh-ed25519\0\0\0\x20", "{line}");
        let public_key = VerifyingKey::from_bytes(raw.try_into().unwrap()).unwrap();

        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut agent = SshAgent {
            child,
            socket,
            fingerprint,
            public_key,
        };
        // In the foreground (-D) it prints its environment once its socket
        // listens, then nothing more on standard output.
        let mut said = String::new();
        BufReader::new(agent.child.stdout.take().unwrap())
            .read_line(&mut said)
            .unwrap();
        assert!(said.starts_with("SSH_AUTH_SOCK="), "ssh-agent: {said}");
        ok(Command::new("ssh-add")
            .env("SSH_AUTH_SOCK", &agent.socket)
            .arg(&key)
            .output()
            .unwrap());
        agent
    }
}

/// A litewitness on a loopback port (killed when dropped), with its own
/// ssh-agent and database.
struct Litewitness {
    child: Child,
    db: PathBuf,
    log: PathBuf,
    addr: String,
    /// Its cosignature/v1 verifier key, derived here from the SSH key.
    verifier: Verifier,
    /// Dropped after the child: litewitness signs through it.
    agent: SshAgent,
}

impl Drop for Litewitness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Litewitness {
    /// Starts litewitness named `name` with its state in `dir`; checks that
    /// the verifier key it states is the one derived from its SSH key.
    fn start(dir: &Path, name: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let agent = SshAgent::start(dir);
        let verifier = Verifier::new(
            KeyName::new(name).unwrap(),
            SignatureType::CosignatureV1,
            agent.public_key,
        );
        let addr = format!("127.0.0.1:{}", free_port());
        let db = dir.join("litewitness.db");
        let log = dir.join("litewitness.log");
        let child = launch(&verifier, &db, &addr, &agent, &log);
        let mut witness = Litewitness {
            child,
            db,
            log,
            addr,
            verifier,
            agent,
        };
        witness.wait_until_listening();
        // `msg="verifier key" vkey=NAME+ID+KEY`, logged before it listens.
        let log = witness.log();
        let stated = log
            .lines()
            .find_map(|line| line.split_once(" vkey="))
            .map(|(_, vkey)| vkey.trim())
            .unwrap_or_else(|| panic!("no verifier key in litewitness's log: {log}"));
        assert_eq!(stated, witness.verifier.to_string());
        witness
    }

    /// Kills litewitness (SIGKILL: no chance to tidy up) and starts it again
    /// on the same database, key and port.
    fn kill_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.child = launch(&self.verifier, &self.db, &self.addr, &self.agent, &self.log);
        self.wait_until_listening();
    }

    /// litewitness logs "listening" before it binds and gives no other sign,
    /// so this tries to connect until it can, failing at once with its log
    /// if the process ends (the port taken, a bad flag, no key in the agent).
    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(&self.addr).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("litewitness ended ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "litewitness does not listen on {}: {}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// A tlog-policy that requires litewitness's cosignature.
    fn policy(&self) -> WitnessPolicy {
        only_witness("litewitness", &self.verifier, &self.addr)
    }

    /// Trusts a Regis log, while litewitness runs. Regis names each log's
    /// key by the log's origin, which is what witnessctl requires.
    fn add_log(&self, key: &Verifier) {
        let origin = key.name().as_str();
        for args in [
            vec!["add-log", "-origin", origin],
            vec!["add-key", "-origin", origin, "-key", &key.to_string()],
        ] {
            ok(Command::new(program("REGIS_WITNESSCTL"))
                .args(&args[..1])
                .arg("-db")
                .arg(&self.db)
                .args(&args[1..])
                .output()
                .unwrap());
        }
    }

    fn add_checkpoint(&self, body: &[u8]) -> Answer {
        add_checkpoint(&self.addr, body)
    }

    fn cosign(
        &self,
        old: u64,
        proof: &[Hash],
        checkpoint: &VerifiedCheckpoint,
        log: &Verifier,
    ) -> SignedCheckpoint {
        cosign(&self.policy(), &self.addr, old, proof, checkpoint, log)
    }
}

/// Runs litewitness named as `verifier` says, its log appended to `log`.
fn launch(verifier: &Verifier, db: &Path, addr: &str, agent: &SshAgent, log: &Path) -> Child {
    let log = File::options().create(true).append(true).open(log).unwrap();
    Command::new(program("REGIS_LITEWITNESS"))
        .arg("-db")
        .arg(db)
        .args(["-name", verifier.name().as_str()])
        .args(["-key", &agent.fingerprint, "-listen", addr])
        .arg("-ssh-agent")
        .arg(&agent.socket)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Regis's own witness: `regis witness init` in `data`, `add-log` for each
/// of `logs`, then `serve`.
struct RegisWitness {
    server: WitnessServer,
    data: PathBuf,
    verifier: Verifier,
}

impl RegisWitness {
    fn start(data: &Path, name: &str, logs: &[Verifier]) -> Self {
        let data_s = data.to_str().unwrap();
        let init = ok(regis(&[
            "witness", "init", "--data", data_s, "--name", name,
        ]));
        let verifier = Verifier::parse(init.lines().last().unwrap()).unwrap();
        for log in logs {
            let key = log.to_string();
            let origin = log.name().as_str();
            ok(regis(&[
                "witness", "add-log", "--data", data_s, "--origin", origin, "--key", &key,
            ]));
        }
        RegisWitness {
            server: WitnessServer::start(data),
            data: data.to_owned(),
            verifier,
        }
    }

    fn addr(&self) -> &str {
        &self.server.addr
    }
}

/// A tlog-policy that requires the cosignature of one witness, `name`.
fn only_witness(name: &str, verifier: &Verifier, addr: &str) -> WitnessPolicy {
    let text = format!("witness {name} {verifier} http://{addr}\nquorum {name}\n");
    WitnessPolicy::parse(text.as_bytes()).unwrap()
}

/// `POST /add-checkpoint` with `body` to the witness at `addr`.
fn add_checkpoint(addr: &str, body: &[u8]) -> Answer {
    post(addr, "/add-checkpoint", body)
        .unwrap_or_else(|| panic!("the witness at {addr} gave no answer"))
}

/// Asks the witness at `addr` (the one witness of `policy`) for a
/// cosignature that must be given, and checks it with regis-note: the log's
/// signature and the cosignature verify, timestamped within the request, and
/// the policy is met with it and not without. The checkpoint with the
/// cosignature lines added.
fn cosign(
    policy: &WitnessPolicy,
    addr: &str,
    old: u64,
    proof: &[Hash],
    checkpoint: &VerifiedCheckpoint,
    log: &Verifier,
) -> SignedCheckpoint {
    let [witness] = policy.witnesses() else {
        panic!("a policy of one witness");
    };
    let before = unix_now();
    let answer = add_checkpoint(addr, &add_checkpoint_body(old, proof, checkpoint.signed()));
    let after = unix_now();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let mut cosigned = checkpoint.signed().clone();
    for line in parse_cosignature_lines(&answer.body).unwrap() {
        cosigned.add_signature(line).unwrap();
    }
    let origin = log.name().as_str();
    let verified = cosigned
        .verify(origin, log, policy.cosigners())
        .unwrap_or_else(|error| panic!("{error}: {cosigned}"));
    assert_eq!(verified.len(), 1, "{cosigned}");
    assert_eq!(verified[0].verifier(), &witness.verifier);
    let timestamp = verified[0].timestamp().unwrap();
    assert!(
        (before..=after).contains(&timestamp),
        "cosigned at {timestamp}, asked between {before} and {after}"
    );
    let witnessed = policy.verify(&cosigned, origin, log, after).unwrap();
    assert_eq!(witnessed.cosigned_by, [(witness.name.clone(), timestamp)]);
    assert!(
        policy
            .verify(checkpoint.signed(), origin, log, after)
            .is_err()
    );
    // The cosigned note, as bytes, reads back the same.
    assert_eq!(
        SignedCheckpoint::parse(cosigned.to_string().as_bytes()).unwrap(),
        cosigned
    );
    cosigned
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An add-checkpoint request body, as regis-note writes it.
fn add_checkpoint_body(old: u64, proof: &[Hash], signed: &SignedCheckpoint) -> Vec<u8> {
    AddCheckpoint {
        old_size: old,
        proof: proof.to_vec(),
        checkpoint: signed.clone(),
    }
    .to_bytes()
}

/// The status a witness built on regis-note's `check_add_checkpoint` gives
/// `body` when it trusts the log `log` alone and holds `latest` for it.
fn regis_witness_status(body: &[u8], log: &Verifier, latest: &WitnessedTree) -> u16 {
    let Ok(request) = AddCheckpoint::parse(body) else {
        return 400;
    };
    let keys = [log.clone()];
    let known = request.checkpoint.checkpoint().origin() == log.name().as_str();
    match check_add_checkpoint(&request, known.then_some(&keys[..]), Some(latest)) {
        Ok(_) => 200,
        Err(refusal) => refusal.status(),
    }
}

/// A 409's body: the size litewitness holds.
fn conflict_size(answer: &Answer) -> u64 {
    assert_eq!(answer.status, 409, "{}", answer.text());
    assert!(
        answer
            .head
            .contains(&format!("content-type: {SIZE_CONTENT_TYPE}")),
        "{}",
        answer.head
    );
    parse_size_body(&answer.body).unwrap()
}

/// The consistency proof from size `old` to `checkpoint`, made from the
/// server's hash tiles (each checked against the checkpoint's root).
fn consistency(client: &Client, checkpoint: &VerifiedCheckpoint, old: u64) -> Vec<Hash> {
    let tiles = client.tiles(checkpoint);
    tiles.verify_root().unwrap();
    let edge = Edge::from_reader(&tiles, checkpoint.size()).unwrap();
    consistency_proof(&tiles, &edge, old).unwrap()
}

/// `regis serve` of `data`, and clients of both logs of its register
/// `country` (user log first), pinned to `key`.
fn serve_country(data: &Path, key: &Verifier) -> (Serving, [Client; 2]) {
    let server = serve(data, "127.0.0.1:0");
    let user = Client::new(&format!("{}/registers/country", server.url), key.clone()).unwrap();
    let system = user.system().unwrap();
    (server, [user, system])
}

#[test]
fn litewitness_cosigns_both_logs_of_a_register_as_it_grows() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("regis");
    let witness = Litewitness::start(&work.path().join("litewitness"), "litewitness.test/w");
    // What each file brings the (user, system) logs to: the real dump, its
    // real update, then twelve countries more.
    let steps = [
        (regis_fixtures::path(BASE), [7, 12]),
        (regis_fixtures::path(UPDATE), [9, 13]),
        (countries_rsf(work.path(), "Added", 12), [21, 13]),
    ];
    let mut witnessed = [0u64; 2];
    for (file, sizes) in &steps {
        load_country(&data, file);
        let key = Verifier::parse(&country_key(&data)).unwrap();
        if witnessed == [0, 0] {
            witness.add_log(&key);
            witness.add_log(&system_verifier(&key).unwrap());
        }
        let (_server, clients) = serve_country(&data, &key);
        for (i, client) in clients.iter().enumerate() {
            let checkpoint = client.checkpoint().unwrap();
            assert_eq!(checkpoint.size(), sizes[i]);
            let old = witnessed[i];
            let proof = consistency(client, &checkpoint, old);
            // Proof lines are sent whenever the tree grew from a nonempty one.
            assert_eq!(proof.is_empty(), old == 0 || old == sizes[i]);
            witness.cosign(old, &proof, &checkpoint, client.key());
            witnessed[i] = checkpoint.size();
        }
    }
    assert_eq!(witnessed, [21, 13]);
}

/// litewitness holds the user log at 7; each request offers the real size-9
/// checkpoint, altered as said, and gets the status tlog-witness gives.
#[test]
fn litewitness_refuses_what_tlog_witness_refuses() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("regis");
    let stranger = work.path().join("stranger");
    let witness = Litewitness::start(&work.path().join("litewitness"), "litewitness.test/w");
    load_country(&data, &regis_fixtures::path(BASE));
    // Same register, same origin, another key.
    load_country(&stranger, &regis_fixtures::path(BASE));
    let key = Verifier::parse(&country_key(&data)).unwrap();
    // The user log only: the system log's origin stays unknown.
    witness.add_log(&key);
    let base = {
        let (_server, [user, _]) = serve_country(&data, &key);
        let base = user.checkpoint().unwrap();
        witness.cosign(0, &[], &base, &key);
        base
    };
    let (_stranger, [stranger_log, _]) = serve_country(
        &stranger,
        &Verifier::parse(&country_key(&stranger)).unwrap(),
    );
    let stranger_checkpoint = stranger_log.checkpoint().unwrap();
    load_country(&data, &regis_fixtures::path(UPDATE));
    let (_server, [user, system]) = serve_country(&data, &key);
    let checkpoint = user.checkpoint().unwrap();
    assert_eq!(checkpoint.size(), 9);
    let proof = consistency(&user, &checkpoint, 7);
    let signed = checkpoint.signed();

    let mut flipped = proof.clone();
    flipped[0][0] ^= 1;
    // A character of the log's signature (the last line, well before its
    // base64 padding) changed: still base64, no longer its signature.
    let mut forged = signed.to_string();
    let at = forged.len() - 10;
    let other = if &forged[at..=at] == "A" { "B" } else { "A" };
    forged.replace_range(at..=at, other);
    let forged = SignedCheckpoint::parse(forged.as_bytes()).unwrap();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "old size above the checkpoint's",
            add_checkpoint_body(10, &proof, signed),
            400,
        ),
        (
            "a proof with a bit flipped",
            add_checkpoint_body(7, &flipped, signed),
            422,
        ),
        (
            "a proof short of its last hash",
            add_checkpoint_body(7, &proof[..proof.len() - 1], signed),
            422,
        ),
        (
            "a proof line that is not base64",
            format!("old 7\n!!!!\n\n{signed}").into_bytes(),
            400,
        ),
        (
            "no empty line before the checkpoint",
            format!("old 7\n{signed}").into_bytes(),
            400,
        ),
        (
            "the log's signature altered",
            add_checkpoint_body(7, &proof, &forged),
            403,
        ),
        (
            "signed by a key the witness does not trust for the origin",
            add_checkpoint_body(7, &proof, stranger_checkpoint.signed()),
            403,
        ),
        (
            "an origin the witness does not know",
            add_checkpoint_body(0, &[], system.checkpoint().unwrap().signed()),
            404,
        ),
        (
            "an old size the witness does not hold",
            add_checkpoint_body(0, &[], signed),
            409,
        ),
    ];
    // Regis's own witness decides with regis-note's check_add_checkpoint:
    // it must agree with litewitness and the spec on every case.
    let held = WitnessedTree {
        size: 7,
        root: *base.root(),
    };
    let mut wrong = Vec::new();
    for (case, body, status) in &cases {
        let answer = witness.add_checkpoint(body);
        let regis = regis_witness_status(body, &key, &held);
        if (answer.status, regis) != (*status, *status) {
            wrong.push(format!(
                "{case}: litewitness {} ({}), regis-note {regis}, tlog-witness {status}",
                answer.status,
                answer.text().trim()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // A client that does not know the witness's size learns it.
    let answer = witness.add_checkpoint(&add_checkpoint_body(0, &[], signed));
    assert_eq!(conflict_size(&answer), 7);
    // None of the refusals moved it: the real step from 7 is cosigned.
    witness.cosign(7, &proof, &checkpoint, &key);
    let answer = witness.add_checkpoint(&add_checkpoint_body(7, &proof, signed));
    assert_eq!(conflict_size(&answer), 9);
}

/// A fork: two data directories, one key. litewitness has cosigned the real
/// log at 9; the fork at the same size with another root, and the fork
/// grown further, are refused, and the real log is still cosigned.
#[test]
fn litewitness_refuses_a_fork_of_a_log_it_cosigned() {
    let work = tempfile::tempdir().unwrap();
    let real = work.path().join("real");
    let fork = work.path().join("fork");
    let witness = Litewitness::start(&work.path().join("litewitness"), "litewitness.test/w");
    load_country(&real, &regis_fixtures::path(BASE));
    copy_dir(&real, &fork);
    load_country(&real, &regis_fixtures::path(UPDATE));
    load_country(&fork, &countries_rsf(work.path(), "Forked", 2));
    let key = Verifier::parse(&country_key(&real)).unwrap();
    witness.add_log(&key);

    let (_server, [user, _]) = serve_country(&real, &key);
    let real_9 = user.checkpoint().unwrap();
    witness.cosign(0, &[], &real_9, &key);
    let (fork_server, [forked, _]) = serve_country(&fork, &key);
    let fork_9 = forked.checkpoint().unwrap();
    assert_eq!(fork_9.size(), 9);
    assert_ne!(fork_9.root(), real_9.root());
    let held = WitnessedTree {
        size: 9,
        root: *real_9.root(),
    };
    let body = add_checkpoint_body(9, &[], fork_9.signed());
    let answer = witness.add_checkpoint(&body);
    assert_eq!(answer.status, 422, "{}", answer.text());
    assert_eq!(regis_witness_status(&body, &key, &held), 422);
    drop(fork_server);

    load_country(&fork, &countries_rsf(work.path(), "Grown", 12));
    let (_fork_server, [forked, _]) = serve_country(&fork, &key);
    let fork_21 = forked.checkpoint().unwrap();
    assert_eq!(fork_21.size(), 21);
    // The fork's own proof holds within the fork, not from the real tree.
    let proof = consistency(&forked, &fork_21, 9);
    let body = add_checkpoint_body(9, &proof, fork_21.signed());
    let answer = witness.add_checkpoint(&body);
    assert_eq!(answer.status, 422, "{}", answer.text());
    assert_eq!(regis_witness_status(&body, &key, &held), 422);

    witness.cosign(9, &[], &real_9, &key);
}

/// litewitness answers only once the new tree is durable: killed (SIGKILL)
/// right after cosigning and restarted on its database, it holds the size it
/// cosigned and goes on from there.
#[test]
fn litewitness_keeps_what_it_cosigned_across_a_kill() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("regis");
    let mut witness = Litewitness::start(&work.path().join("litewitness"), "litewitness.test/w");
    load_country(&data, &regis_fixtures::path(BASE));
    let key = Verifier::parse(&country_key(&data)).unwrap();
    witness.add_log(&key);
    {
        let (_server, [user, _]) = serve_country(&data, &key);
        witness.cosign(0, &[], &user.checkpoint().unwrap(), &key);
    }
    witness.kill_and_restart();
    load_country(&data, &regis_fixtures::path(UPDATE));
    let (_server, [user, _]) = serve_country(&data, &key);
    let checkpoint = user.checkpoint().unwrap();
    let answer = witness.add_checkpoint(&add_checkpoint_body(0, &[], checkpoint.signed()));
    assert_eq!(conflict_size(&answer), 7);
    witness.cosign(7, &consistency(&user, &checkpoint, 7), &checkpoint, &key);
}

/// Regis's own witness and litewitness cosign the same checkpoints of both
/// logs as they grow; a 2-of-2 policy is met by the two cosignatures
/// together and by neither alone.
#[test]
fn regis_witness_and_litewitness_together_meet_a_two_of_two_policy() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("regis");
    load_country(&data, &regis_fixtures::path(BASE));
    let key = Verifier::parse(&country_key(&data)).unwrap();
    let logs = [key.clone(), system_verifier(&key).unwrap()];
    let lite = Litewitness::start(&work.path().join("litewitness"), "litewitness.test/w");
    for log in &logs {
        lite.add_log(log);
    }
    let ours = RegisWitness::start(&work.path().join("witness"), "regis.test/witness", &logs);
    let ours_policy = only_witness("regis", &ours.verifier, ours.addr());
    let both = WitnessPolicy::parse(
        format!(
            "witness litewitness {} http://{}\nwitness regis {} http://{}\n\
             group both all litewitness regis\nquorum both\n",
            lite.verifier,
            lite.addr,
            ours.verifier,
            ours.addr()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut witnessed = [0u64; 2];
    for file in [None, Some(regis_fixtures::path(UPDATE))] {
        if let Some(file) = file {
            load_country(&data, &file);
        }
        let (_server, clients) = serve_country(&data, &key);
        for (i, client) in clients.iter().enumerate() {
            let checkpoint = client.checkpoint().unwrap();
            let old = witnessed[i];
            let proof = consistency(client, &checkpoint, old);
            let by_lite = lite.cosign(old, &proof, &checkpoint, client.key());
            let by_ours = cosign(
                &ours_policy,
                ours.addr(),
                old,
                &proof,
                &checkpoint,
                client.key(),
            );
            let (origin, now) = (client.key().name().as_str(), unix_now());
            assert!(both.verify(&by_lite, origin, client.key(), now).is_err());
            assert!(both.verify(&by_ours, origin, client.key(), now).is_err());
            let mut together = by_lite.clone();
            let ours_line = by_ours.note().signatures().last().unwrap().clone();
            together.add_signature(ours_line).unwrap();
            let met = both.verify(&together, origin, client.key(), now).unwrap();
            let mut names: Vec<&str> = met.cosigned_by.iter().map(|(n, _)| n.as_str()).collect();
            names.sort_unstable();
            assert_eq!(names, ["litewitness", "regis"]);
            witnessed[i] = checkpoint.size();
        }
    }
    assert_eq!(witnessed, [9, 13]);
}

/// A fork (two data directories, one key) at the size both witnesses
/// cosigned, with another root: both refuse it (422), and the evidence
/// Regis's witness keeps re-checks with `regis audit --evidence`.
#[test]
fn both_witnesses_refuse_a_fork_and_the_evidence_holds() {
    let work = tempfile::tempdir().unwrap();
    let real = work.path().join("real");
    let fork = work.path().join("fork");
    load_country(&real, &regis_fixtures::path(BASE));
    copy_dir(&real, &fork);
    load_country(&real, &regis_fixtures::path(UPDATE));
    load_country(&fork, &countries_rsf(work.path(), "Forked", 2));
    let key = Verifier::parse(&country_key(&real)).unwrap();
    let lite = Litewitness::start(&work.path().join("litewitness"), "litewitness.test/w");
    lite.add_log(&key);
    let ours = RegisWitness::start(
        &work.path().join("witness"),
        "regis.test/witness",
        std::slice::from_ref(&key),
    );
    let ours_policy = only_witness("regis", &ours.verifier, ours.addr());

    let (_server, [user, _]) = serve_country(&real, &key);
    let real_9 = user.checkpoint().unwrap();
    lite.cosign(0, &[], &real_9, &key);
    cosign(&ours_policy, ours.addr(), 0, &[], &real_9, &key);
    let (_fork_server, [forked, _]) = serve_country(&fork, &key);
    let fork_9 = forked.checkpoint().unwrap();
    assert_eq!(fork_9.size(), 9);
    assert_ne!(fork_9.root(), real_9.root());
    let body = add_checkpoint_body(9, &[], fork_9.signed());
    for (witness, addr) in [
        ("litewitness", lite.addr.as_str()),
        ("regis witness", ours.addr()),
    ] {
        let answer = add_checkpoint(addr, &body);
        assert_eq!(answer.status, 422, "{witness}: {}", answer.text());
    }

    let evidence: Vec<PathBuf> = std::fs::read_dir(ours.data.join(regis_witness::EVIDENCE_DIR))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(evidence.len(), 1, "{evidence:?}");
    let held = regis(&[
        "audit",
        "--key",
        &key.to_string(),
        "--evidence",
        evidence[0].to_str().unwrap(),
    ]);
    let stdout = text(&held.stdout);
    assert!(held.status.success(), "{stdout}{}", text(&held.stderr));
    assert!(
        stdout.contains("the evidence holds: the user log's checkpoints 9 and 9"),
        "{stdout}"
    );
}

/// `regis serve` with the register's own policy requiring litewitness and
/// Regis's witness (2 of 2): it gathers both cosignatures, serves them on
/// each log's checkpoint, answers a `?wait=witnessed` write once a checkpoint
/// both cosigned covers it, and `regis get --witness-policy` accepts what it
/// serves; a policy requiring a witness that never cosigned refuses it.
#[test]
fn regis_gathers_and_serves_the_cosignatures_of_litewitness_and_its_own_witness() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("regis");
    load_country(&data, &regis_fixtures::path(BASE));
    let key = Verifier::parse(&country_key(&data)).unwrap();
    let logs = [key.clone(), system_verifier(&key).unwrap()];
    let lite = Litewitness::start(&work.path().join("litewitness"), "litewitness.test/w");
    for log in &logs {
        lite.add_log(log);
    }
    let ours = RegisWitness::start(&work.path().join("witness"), "regis.test/witness", &logs);
    let policy = format!(
        "witness litewitness {} http://{}\nwitness regis {} http://{}\n\
         group both all litewitness regis\nquorum both\n",
        lite.verifier,
        lite.addr,
        ours.verifier,
        ours.addr()
    );
    std::fs::write(data.join("registers/country/witness-policy"), &policy).unwrap();
    let policy_file = work.path().join("policy");
    std::fs::write(&policy_file, &policy).unwrap();
    let both = WitnessPolicy::parse(policy.as_bytes()).unwrap();
    let data_s = data.to_str().unwrap();
    let token = ok(regis(&["token", "--data", data_s, "--register", "country"]));
    let token = token.lines().last().unwrap().to_owned();

    let server = serve(&data, "127.0.0.1:0");
    let addr = server.url.trim_start_matches("http://").to_owned();
    let body = r#"[{"key":"XZ","item":{"country":"XZ","name":"Witnessed"}}]"#;
    let request = format!(
        "POST /registers/country/entries?wait=witnessed HTTP/1.1\r\nHost: t\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = exchange(&addr, request.as_bytes()).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let receipt = answer.json().unwrap();
    let witnessed = receipt["witnessed-checkpoint"].as_str().unwrap();
    let witnessed = SignedCheckpoint::parse(witnessed.as_bytes()).unwrap();
    assert_eq!(witnessed.checkpoint().size(), 8);

    // Each log's served checkpoint carries both cosignatures, after the log's.
    for (log, path) in logs.iter().zip(["log", "system-log"]) {
        let served = get_text(&addr, &format!("/registers/country/{path}/checkpoint"));
        let served = SignedCheckpoint::parse(served.as_bytes()).unwrap();
        assert_eq!(served.note().signatures()[0].name(), log.name());
        let met = both
            .verify(&served, log.name().as_str(), log, unix_now())
            .unwrap();
        let mut names: Vec<&str> = met.cosigned_by.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["litewitness", "regis"], "{path}");
    }
    assert_eq!(get_text(&addr, "/registers/country/witness-policy"), policy);

    // The verifying client accepts the record's proof under the policy...
    let url = format!("{}/registers/country", server.url);
    let vkey = key.to_string();
    let policy_s = policy_file.to_str().unwrap();
    let stdout = ok(regis(&[
        "get",
        &url,
        "XZ",
        "--key",
        &vkey,
        "--witness-policy",
        policy_s,
    ]));
    assert!(
        stdout.contains("cosigned by litewitness at") && stdout.contains(", regis at"),
        "{stdout}"
    );
    // ...and refuses it under a policy requiring a witness that never
    // cosigned.
    let absent = Cosigner::from_seed(KeyName::new("absent.test").unwrap(), &[7; 32]);
    let other = work.path().join("other-policy");
    std::fs::write(
        &other,
        format!("witness absent {}\nquorum absent\n", absent.verifier()),
    )
    .unwrap();
    let refused = regis(&[
        "get",
        &url,
        "XZ",
        "--key",
        &vkey,
        "--witness-policy",
        other.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("quorum"),
        "{}",
        text(&refused.stderr)
    );
}
