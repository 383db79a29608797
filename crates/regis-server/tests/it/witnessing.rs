//! Witnessed checkpoints (C2SP tlog-witness, the log's side) over real
//! sockets: the country register's server asks test witnesses, small axum
//! servers here that check each request with regis-note's
//! `check_add_checkpoint` and cosign with a real key, and serves only
//! checkpoints whose cosignatures meet its policy (C2SP tlog-policy),
//! checked here with `WitnessPolicy::verify` as a client checks them. The
//! witnesses have switches for faults: down, hanging past the timeout, 429,
//! 409 with a size, 422, a cosignature that does not verify, a body that
//! never ends or never finishes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use regis_merkle::leaf_hash;
use regis_model::{Log, PerLog, RegisterName};
use regis_note::{SignedCheckpoint, TlogProof, Verifier, WitnessPolicy};
use regis_server::{Limits, PolicyFile, WitnessSettings};
use regis_store::{RedbBackend, Registry, Scope, SignedTree};

use crate::common::witness::{Fault, TestWitness, policy_with, trusted_by, unix_now};
use crate::common::{Resp, TestServer, load, rsf_commands, witness};

const NAME: &str = "country";
const B: &str = "/registers/country";

/// A policy naming `witnesses` (each with its URL), then `quorum`: `all`,
/// `any` or a witness's name.
fn policy_text(witnesses: &[&TestWitness], quorum: &str) -> String {
    let names: Vec<&str> = witnesses.iter().map(|w| w.name.as_str()).collect();
    let rest = match quorum {
        "all" | "any" => format!("group quorum {quorum} {}\nquorum quorum\n", names.join(" ")),
        witness => format!("quorum {witness}\n"),
    };
    policy_with(witnesses, &format!("# test witnesses\n{rest}"))
}

/// Test witness `n`, called `w<n>`.
fn start_witness(n: u8) -> TestWitness {
    TestWitness::start(&format!("w{n}"), witness(n))
}

/// A witnessed country register, its server and its logs' keys; each
/// witness trusts both logs.
struct Witnessed {
    server: TestServer,
    keys: PerLog<(String, Verifier)>,
    policy: WitnessPolicy,
    token: String,
}

/// Where a register's policy is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PolicyIn {
    /// `DATA/registers/NAME/witness-policy`.
    RegisterFile,
    /// The server's (`witness-policy` in the configuration).
    Server,
}

impl Witnessed {
    fn start(witnesses: &[&TestWitness], quorum: &str, timeout: Duration) -> Witnessed {
        Self::start_with(
            witnesses,
            &policy_text(witnesses, quorum),
            settings_for(timeout),
            PolicyIn::RegisterFile,
        )
    }

    /// With `policy` where `place` says, and `settings` for the rest.
    fn start_with(
        witnesses: &[&TestWitness],
        policy: &str,
        mut settings: WitnessSettings,
        place: PolicyIn,
    ) -> Witnessed {
        if place == PolicyIn::Server {
            let file = PolicyFile::parse(policy.as_bytes().to_vec()).unwrap();
            settings.policy = Some(Arc::new(file));
        }
        let mut keys = None;
        let server = TestServer::start_prepared_with(
            |registry| {
                load(
                    registry,
                    NAME,
                    rsf_commands("openregister-java/country-data.rsf"),
                );
                let logs = trusted_by(registry, NAME, witnesses);
                if place == PolicyIn::RegisterFile {
                    let dir = registry.dir(&RegisterName::new(NAME).unwrap());
                    std::fs::write(dir.join("witness-policy"), policy).unwrap();
                }
                keys = Some(logs);
            },
            Limits::default(),
            settings,
        );
        let token = server
            .app()
            .tokens
            .mint(Scope::Register(RegisterName::new(NAME).unwrap()))
            .unwrap()
            .token;
        Witnessed {
            server,
            keys: keys.unwrap(),
            policy: WitnessPolicy::parse(policy.as_bytes()).unwrap(),
            token,
        }
    }

    /// POSTs one entry (`?wait=witnessed` if `wait`).
    fn write(&self, key: &str, name: &str, wait: bool) -> Resp {
        let body = serde_json::json!([{"key": key, "item": {"country": key, "name": name}}]);
        let query = if wait { "?wait=witnessed" } else { "" };
        self.server.post(
            &format!("{B}/entries{query}"),
            &[
                ("Authorization", &format!("Bearer {}", self.token)),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    }

    /// Checks a checkpoint of `log` as a client pinning the policy does;
    /// returns its size and the names of the witnesses that cosigned it.
    fn verify(&self, log: Log, text: &str) -> (u64, Vec<String>) {
        let signed = SignedCheckpoint::parse(text.as_bytes()).unwrap();
        let (origin, key) = &self.keys[log];
        let witnessed = self
            .policy
            .verify(&signed, origin, key, unix_now())
            .unwrap_or_else(|error| panic!("{error}: {text}"));
        let mut names: Vec<String> = witnessed
            .cosigned_by
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        names.sort();
        (signed.checkpoint().size(), names)
    }

    /// The served checkpoint of `log`, verified: size and cosigners.
    fn served(&self, log: Log) -> (u64, Vec<String>) {
        let path = match log {
            Log::User => format!("{B}/log/checkpoint"),
            Log::System => format!("{B}/system-log/checkpoint"),
        };
        let response = self.server.get(&path);
        assert_eq!(response.status, 200, "{}", response.text());
        self.verify(log, &response.text())
    }

    /// Waits until `log`'s witnessed checkpoint has at least `size`
    /// entries.
    fn witnessed_at_least(&self, log: Log, size: u64) -> SignedTree {
        self.server.witnessed_at_least(NAME, log, size)
    }

    /// The signed (not necessarily witnessed) size of `log`.
    fn signed_size(&self, log: Log) -> u64 {
        let register = self.server.app().register(NAME).unwrap();
        register.checkpoints().borrow()[log].size
    }

    fn metrics(&self) -> String {
        self.server.get("/metrics").text()
    }
}

fn settings_for(timeout: Duration) -> WitnessSettings {
    WitnessSettings {
        interval: Duration::from_millis(10),
        timeout,
        ..WitnessSettings::default()
    }
}

/// The value of a metric line starting with `series` (name and labels).
fn metric(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
        .parse()
        .unwrap()
}

fn requests_metric(metrics: &str, log: &str, witness: &str, outcome: &str) -> u64 {
    metric(
        metrics,
        &format!(
            "regis_witness_requests_total{{register=\"country\",log=\"{log}\",witness=\"{witness}\",outcome=\"{outcome}\"}}"
        ),
    )
}

#[test]
fn two_of_two_checkpoints_carry_both_cosignatures_and_proofs_carry_them() {
    let (w1, w2) = (start_witness(1), start_witness(2));
    let register = Witnessed::start(&[&w1, &w2], "all", Duration::from_secs(5));
    // The checkpoints signed before the server started are witnessed first.
    for log in [Log::User, Log::System] {
        let signed = register.signed_size(log);
        register.witnessed_at_least(log, signed);
        assert_eq!(
            register.served(log),
            (signed, vec!["w1".into(), "w2".into()])
        );
    }
    let before = register.signed_size(Log::User);

    let receipt = register.write("XA", "Atlantis", true);
    assert_eq!(receipt.status, 200, "{}", receipt.text());
    let receipt = receipt.json();
    let number = receipt["entries"][0]["entry-number"].as_u64().unwrap();
    assert_eq!(number, before + 1);
    // The receipt's own checkpoint is the log's, signed at once; the
    // witnessed one covers the entry and meets the policy.
    let (size, cosigners) =
        register.verify(Log::User, receipt["witnessed-checkpoint"].as_str().unwrap());
    assert!(size >= number);
    assert_eq!(cosigners, ["w1", "w2"]);
    assert_eq!(register.served(Log::User).0, size);

    // Each witness was asked from the size it had cosigned, with a proof.
    for witness in [&w1, &w2] {
        let last = witness.seen().last().unwrap().clone();
        assert_eq!((last.old, last.size, last.status), (before, size, 200));
    }

    // The record proof is against the witnessed checkpoint, in both forms.
    let proof = register.server.get(&format!("{B}/records/XA/proof")).json();
    assert_eq!(
        register.verify(Log::User, proof["checkpoint"].as_str().unwrap()),
        (size, vec!["w1".into(), "w2".into()])
    );
    let tlog = register
        .server
        .get(&format!("{B}/records/XA/proof.tlog-proof"));
    assert_eq!(tlog.status, 200, "{}", tlog.text());
    let tlog = TlogProof::parse(&tlog.body).unwrap();
    let leaf = tlog.extra().unwrap().to_vec();
    let (origin, key) = &register.keys[Log::User];
    let cosigners = register.policy.cosigners();
    assert_eq!(
        tlog.verify(&leaf_hash(&leaf), origin, key, cosigners)
            .unwrap()
            .len(),
        2
    );

    // The policy is served as its file holds it.
    let policy = register.server.get(&format!("{B}/witness-policy"));
    assert_eq!(policy.status, 200);
    assert_eq!(policy.text(), policy_text(&[&w1, &w2], "all"));

    let metrics = register.metrics();
    assert!(
        requests_metric(&metrics, "user", "w1", "cosigned") >= 2,
        "{metrics}"
    );
    assert_eq!(requests_metric(&metrics, "user", "w2", "unavailable"), 0);
    assert_eq!(
        metric(
            &metrics,
            "regis_witnessed_size{register=\"country\",log=\"user\"}"
        ),
        size
    );
    assert_eq!(
        metric(
            &metrics,
            "regis_witness_cosigned_size{register=\"country\",log=\"user\",witness=\"w2\"}"
        ),
        size
    );
    assert_eq!(register.server.get("/readyz").status, 200);
}

#[test]
fn one_of_two_is_met_by_either_witness() {
    let (w1, w2) = (start_witness(1), start_witness(2));
    w2.set(Fault::Down);
    let register = Witnessed::start_with(
        &[&w1, &w2],
        &policy_text(&[&w1, &w2], "any"),
        settings_for(Duration::from_secs(5)),
        PolicyIn::Server,
    );
    let receipt = register.write("XB", "Brigadoon", true);
    assert_eq!(receipt.status, 200, "{}", receipt.text());
    let text = receipt.json()["witnessed-checkpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(register.verify(Log::User, &text).1, ["w1"]);

    // The other way round: w2 is asked once its back-off ends, from the
    // size it has (none: it never cosigned).
    w1.set(Fault::Down);
    w2.set(Fault::None);
    let receipt = register.write("XC", "Cockaigne", true);
    assert_eq!(receipt.status, 200, "{}", receipt.text());
    let text = receipt.json()["witnessed-checkpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(register.verify(Log::User, &text).1, ["w2"]);
    assert!(
        w2.seen()
            .iter()
            .all(|seen| seen.old == 0 && seen.status == 200)
    );
}

#[test]
fn a_witness_down_stops_the_served_checkpoint_not_writes_and_it_catches_up_from_its_size() {
    let (w1, w2) = (start_witness(1), start_witness(2));
    let settings = WitnessSettings {
        behind_after: Duration::ZERO,
        ..settings_for(Duration::from_secs(1))
    };
    let register = Witnessed::start_with(
        &[&w1, &w2],
        &policy_text(&[&w1, &w2], "all"),
        settings,
        PolicyIn::RegisterFile,
    );
    let signed = register.signed_size(Log::User);
    let first = register.witnessed_at_least(Log::User, signed);
    register.witnessed_at_least(Log::System, register.signed_size(Log::System));

    w2.set(Fault::Down);
    // Writes go on, each answered with its log-signed receipt.
    let receipt = register.write("GB", "Britain, updated", false);
    assert_eq!(receipt.status, 200, "{}", receipt.text());
    // Waiting for witnesses that cannot meet the quorum ends in a 504 that
    // still carries the receipt.
    let timed_out = register.write("XD", "Dinotopia", true);
    assert_eq!(timed_out.error(504), "not-witnessed");
    let body = timed_out.json();
    let number = body["entries"][0]["entry-number"].as_u64().unwrap();
    assert!(
        body["checkpoint"]
            .as_str()
            .unwrap()
            .contains(&format!("\n{number}\n"))
    );
    assert_eq!(register.signed_size(Log::User), number);

    // The served checkpoint stands still, and so do record proofs: a new
    // key is not yet witnessed, a changed one is proved as it was.
    assert_eq!(register.served(Log::User).0, first.size);
    assert_eq!(
        register
            .server
            .get(&format!("{B}/records/XD/proof"))
            .error(503),
        "not-yet-witnessed"
    );
    let proof = register.server.get(&format!("{B}/records/GB/proof")).json();
    assert_eq!(proof["tree-size"].as_u64().unwrap(), first.size);
    assert_ne!(proof["record"]["GB"]["item"][0]["name"], "Britain, updated");

    // /readyz and /metrics say so.
    let ready = register.server.get("/readyz");
    assert_eq!(ready.status, 503);
    let problems = ready.json()["problems"].clone();
    let problem = &problems.as_array().unwrap()[0];
    assert_eq!(problem["state"], "witnesses-behind", "{problems}");
    assert_eq!(problem["witnesses"][0]["witness"], "w2", "{problems}");
    let metrics = register.metrics();
    assert!(requests_metric(&metrics, "user", "w2", "unavailable") >= 1);
    assert_eq!(
        metric(
            &metrics,
            "regis_witness_lag_entries{register=\"country\",log=\"user\"}"
        ),
        number - first.size
    );

    // w2 comes back having lost its state: asked from the size it had, it
    // answers 409 with 0, is asked again from there, and cosigns.
    w2.forget();
    w2.set(Fault::None);
    let caught_up = register.witnessed_at_least(Log::User, number);
    assert_eq!(register.verify(Log::User, &caught_up.text).1, ["w1", "w2"]);
    let seen = w2.seen();
    let recent: Vec<(u64, u16)> = seen
        .iter()
        .filter(|seen| seen.size == number)
        .map(|seen| (seen.old, seen.status))
        .collect();
    assert_eq!(recent, [(first.size, 409), (0, 200)]);
    assert_eq!(register.server.get("/readyz").status, 200);
    let metrics = register.metrics();
    assert_eq!(requests_metric(&metrics, "user", "w2", "conflict"), 1);
    assert_eq!(
        metric(
            &metrics,
            "regis_witness_lag_entries{register=\"country\",log=\"user\"}"
        ),
        0
    );
}

/// For each fault of w2 in a 2-of-2 policy: writes succeed, waiting for
/// witnesses ends in a 504, nothing is served that w2 did not cosign, and
/// the metrics count the outcome; with the fault off again, w2 cosigns the
/// next checkpoint (once its back-off ends).
#[test]
fn faulty_witnesses_never_make_a_checkpoint_count_and_cost_the_log_nothing() {
    let faults = [
        (Fault::Down, "unavailable"),
        (Fault::Hang, "unavailable"),
        (Fault::TooManyRequests, "unavailable"),
        (Fault::EndlessBody, "unavailable"),
        (Fault::StalledBody, "unavailable"),
        (Fault::Unprocessable, "refused"),
        (Fault::ConflictAt(1 << 40), "conflict"),
        (Fault::BadCosignature, "invalid-cosignature"),
    ];
    std::thread::scope(|scope| {
        for (fault, outcome) in faults {
            scope.spawn(move || {
                let (w1, w2) = (start_witness(1), start_witness(2));
                let register = Witnessed::start(&[&w1, &w2], "all", Duration::from_secs(1));
                let witnessed =
                    register.witnessed_at_least(Log::User, register.signed_size(Log::User));
                let cosigned = requests_metric(&register.metrics(), "user", "w2", "cosigned");
                w2.set(fault);
                let timed_out = register.write("XE", "Eldorado", true);
                assert_eq!(timed_out.error(504), "not-witnessed", "{fault:?}");
                let number = timed_out.json()["entries"][0]["entry-number"]
                    .as_u64()
                    .unwrap();
                assert_eq!(register.served(Log::User).0, witnessed.size, "{fault:?}");
                let metrics = register.metrics();
                assert!(
                    requests_metric(&metrics, "user", "w2", outcome) >= 1,
                    "{fault:?}: {metrics}"
                );
                assert_eq!(
                    requests_metric(&metrics, "user", "w2", "cosigned"),
                    cosigned
                );
                // Refused checkpoints are not asked about again: one request.
                if outcome != "unavailable" {
                    let asked = w2.seen().iter().filter(|seen| seen.size == number).count();
                    assert_eq!(asked, 1, "{fault:?}");
                }
                // A later checkpoint is asked about, and once w2 is well it
                // cosigns (after a refusal, from the size it has; after a
                // bad cosignature, which it recorded, after a 409).
                w2.set(Fault::None);
                let receipt = register.write("XF", "Fiddler's Green", false);
                assert_eq!(receipt.status, 200, "{fault:?}: {}", receipt.text());
                let witnessed = register.witnessed_at_least(Log::User, number + 1);
                assert_eq!(
                    register.verify(Log::User, &witnessed.text).1,
                    ["w1", "w2"],
                    "{fault:?}"
                );
            });
        }
    });
}

#[test]
fn one_of_two_is_not_held_up_by_a_hanging_witness_and_leaves_out_a_bad_cosignature() {
    for fault in [Fault::Hang, Fault::BadCosignature] {
        let (w1, w2) = (start_witness(1), start_witness(2));
        w2.set(fault);
        // A timeout far beyond what the healthy witness takes.
        let register = Witnessed::start(&[&w1, &w2], "any", Duration::from_secs(60));
        let started = Instant::now();
        let receipt = register.write("XG", "Gondal", true);
        assert_eq!(receipt.status, 200, "{fault:?}: {}", receipt.text());
        assert!(started.elapsed() < Duration::from_secs(60), "{fault:?}");
        let text = receipt.json()["witnessed-checkpoint"]
            .as_str()
            .unwrap()
            .to_owned();
        // The note holds only w1's cosignature: with w2's bad one, a
        // client would refuse it.
        assert_eq!(register.verify(Log::User, &text).1, ["w1"], "{fault:?}");
        assert!(!text.contains("witness-2.test"), "{fault:?}: {text}");
    }
}

#[test]
fn an_idle_log_sends_witnesses_nothing_and_busy_ones_batch_commits_into_rounds() {
    let (w1, w2) = (start_witness(1), start_witness(2));
    let register = Witnessed::start(&[&w1, &w2], "all", Duration::from_secs(5));
    register.witnessed_at_least(Log::User, register.signed_size(Log::User));
    register.witnessed_at_least(Log::System, register.signed_size(Log::System));
    // One request per log at start.
    assert_eq!((w1.requests(), w2.requests()), (2, 2));
    assert_eq!(register.write("XH", "Hy-Brasil", true).status, 200);
    assert_eq!((w1.requests(), w2.requests()), (3, 3));
    // Idle for fifty rounds' worth of time. (The sleep synchronises
    // nothing: no request may come however long it is.)
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!((w1.requests(), w2.requests()), (3, 3));
    assert_eq!(register.write("XI", "Ys", true).status, 200);
    assert_eq!((w1.requests(), w2.requests()), (4, 4));
}

#[test]
fn commits_between_rounds_are_witnessed_together() {
    let (w1, w2) = (start_witness(1), start_witness(2));
    let interval = Duration::from_millis(300);
    let settings = WitnessSettings {
        interval,
        ..settings_for(Duration::from_secs(5))
    };
    let register = Witnessed::start_with(
        &[&w1, &w2],
        &policy_text(&[&w1, &w2], "all"),
        settings,
        PolicyIn::RegisterFile,
    );
    register.witnessed_at_least(Log::User, register.signed_size(Log::User));
    register.witnessed_at_least(Log::System, register.signed_size(Log::System));
    let before = w1.requests();
    let started = Instant::now();
    for n in 0..20 {
        assert_eq!(
            register.write(&format!("XJ{n}"), "Lyonesse", false).status,
            200
        );
    }
    let last = register.write("XK", "Thule", true);
    assert_eq!(last.status, 200, "{}", last.text());
    // Rounds start at least `interval` apart, so 21 commits in this time
    // make at most this many requests to each witness.
    let rounds = (started.elapsed().as_millis() / interval.as_millis()) as usize + 2;
    let asked = w1.requests() - before;
    assert!(asked <= rounds, "{asked} requests in {rounds} rounds' time");
}

#[test]
fn a_restart_serves_the_witnessed_checkpoint_and_asks_from_the_recorded_sizes() {
    let (w1, w2) = (start_witness(1), start_witness(2));
    let policy = policy_text(&[&w1, &w2], "all");
    let register = Witnessed::start(&[&w1, &w2], "all", Duration::from_secs(5));
    let receipt = register.write("XL", "Lemuria", true);
    assert_eq!(receipt.status, 200, "{}", receipt.text());
    let witnessed =
        PerLog::from_fn(|log| register.witnessed_at_least(log, register.signed_size(log)));
    let Witnessed {
        server,
        keys,
        token,
        ..
    } = register;
    let dir = server.stop();
    let state = std::fs::read_to_string(dir.path().join("registers/country/witnessed")).unwrap();
    assert!(state.starts_with("regis-witnessed/1\n"), "{state}");

    // With both witnesses down, the server serves what it had.
    w1.set(Fault::Down);
    w2.set(Fault::Down);
    let server = TestServer::open(dir, Limits::default(), settings_for(Duration::from_secs(5)));
    let register = Witnessed {
        server,
        keys,
        policy: WitnessPolicy::parse(policy.as_bytes()).unwrap(),
        token,
    };
    for log in [Log::User, Log::System] {
        let path = match log {
            Log::User => format!("{B}/log/checkpoint"),
            Log::System => format!("{B}/system-log/checkpoint"),
        };
        assert_eq!(register.server.get(&path).text(), witnessed[log].text);
    }
    // Back up, they are asked from the sizes recorded: no 409.
    w1.set(Fault::None);
    w2.set(Fault::None);
    let seen_before = [w1.seen().len(), w2.seen().len()];
    let receipt = register.write("XM", "Mu", true);
    assert_eq!(receipt.status, 200, "{}", receipt.text());
    for (witness, seen_before) in [&w1, &w2].into_iter().zip(seen_before) {
        let after: Vec<(u64, u16)> = witness.seen()[seen_before..]
            .iter()
            .map(|seen| (seen.old, seen.status))
            .collect();
        assert_eq!(after, [(witnessed.user.size, 200)]);
    }
}

#[test]
fn a_failed_state_write_keeps_the_old_witnessed_checkpoint_served_until_one_succeeds() {
    let (w1, w2) = (start_witness(1), start_witness(2));
    let register = Witnessed::start(&[&w1, &w2], "all", Duration::from_secs(1));
    let first = register.witnessed_at_least(Log::User, register.signed_size(Log::User));
    register.witnessed_at_least(Log::System, register.signed_size(Log::System));
    // The state's temporary file cannot be made: a directory is in its
    // place. (The temporary file exists while a write is under way: the
    // witnesses' last sizes may still be being written.)
    let temporary = register
        .server
        .dir
        .path()
        .join("registers/country/witnessed.new");
    while let Err(error) = std::fs::create_dir(&temporary) {
        assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
        std::thread::yield_now();
    }
    let timed_out = register.write("XN", "Quivira", true);
    assert_eq!(timed_out.error(504), "not-witnessed");
    let number = timed_out.json()["entries"][0]["entry-number"]
        .as_u64()
        .unwrap();
    // Both witnesses cosigned, but what is not durable is not served.
    assert_eq!(w1.seen().last().unwrap().status, 200);
    assert_eq!(w2.seen().last().unwrap().status, 200);
    assert_eq!(register.served(Log::User).0, first.size);
    // Once the write can succeed, it is tried again and served.
    std::fs::remove_dir(&temporary).unwrap();
    let served = register.witnessed_at_least(Log::User, number);
    assert_eq!(register.served(Log::User).0, served.size);
    let state = std::fs::read_to_string(
        register
            .server
            .dir
            .path()
            .join("registers/country/witnessed"),
    )
    .unwrap();
    assert!(state.contains(&served.text), "{state}");
}

#[test]
fn waiting_for_witnesses_needs_a_policy_and_a_known_value() {
    let server = TestServer::start(vec![(
        NAME,
        rsf_commands("openregister-java/country-data.rsf"),
    )]);
    let token = server
        .app()
        .tokens
        .mint(Scope::Register(RegisterName::new(NAME).unwrap()))
        .unwrap()
        .token;
    let body = serde_json::json!([{"key": "XO", "item": {"country": "XO", "name": "Oz"}}]);
    let post = |query: &str| {
        server.post(
            &format!("{B}/entries{query}"),
            &[
                ("Authorization", &format!("Bearer {token}")),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    };
    assert_eq!(post("?wait=witnessed").error(400), "no-witness-policy");
    assert_eq!(post("?wait=signed").error(400), "bad-query");
    // Nothing was written; without a policy, the policy is `quorum none`.
    assert_eq!(server.get(&format!("{B}/records/XO")).status, 404);
    assert_eq!(
        server.get(&format!("{B}/witness-policy")).text(),
        "quorum none\n"
    );
}

#[test]
fn a_policy_that_does_not_parse_stops_the_server_and_a_damaged_state_takes_its_register_down() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(dir.path(), crate::common::HOST);
    load(
        &registry,
        NAME,
        rsf_commands("openregister-java/country-data.rsf"),
    );
    let register_dir = registry.dir(&RegisterName::new(NAME).unwrap());
    let policy = register_dir.join("witness-policy");
    std::fs::write(&policy, "witness w1 not-a-key\nquorum w1\n").unwrap();
    let error = regis_server::App::<RedbBackend>::open(&registry, Limits::default())
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(error.contains(&policy.display().to_string()), "{error}");
    assert!(error.contains("line 1"), "{error}");

    // A valid policy, and a state file that is not one.
    let w1 = start_witness(1);
    std::fs::write(&policy, policy_text(&[&w1], "w1")).unwrap();
    std::fs::write(
        register_dir.join("witnessed"),
        "regis-witnessed/1\nnonsense\n",
    )
    .unwrap();
    let opened = regis_server::App::<RedbBackend>::open(&registry, Limits::default()).unwrap();
    let (name, reason) = &opened.app.unavailable[0];
    assert_eq!(name, NAME);
    assert!(reason.contains("line 2"), "{reason}");
    opened.shutdown();
}

/// Every checkpoint of `log` the `bucket` shows: `(size, text)`, if any.
fn published(bucket: &std::path::Path, log: Log) -> Option<(u64, String)> {
    let dir = match log {
        Log::User => "log",
        Log::System => "system-log",
    };
    let text =
        std::fs::read_to_string(bucket.join(format!("registers/{NAME}/{dir}/checkpoint"))).ok()?;
    let size = text.lines().nth(1)?.parse().ok()?;
    Some((size, text))
}

/// With `[publish]`, a witnessed register's static copy follows its
/// witnessed checkpoints (cosignatures and all), never a checkpoint the
/// quorum has not cosigned, and carries its witness policy.
#[test]
fn a_witnessed_register_is_published_at_its_witnessed_checkpoints() {
    use regis_server::publishing::{PublishConfig, Publishing};
    let w1 = start_witness(1);
    let policy = policy_text(&[&w1], "all");
    let register = Witnessed::start_with(
        &[&w1],
        &policy,
        settings_for(Duration::from_secs(1)),
        PolicyIn::RegisterFile,
    );
    let bucket = tempfile::tempdir().unwrap();
    let config = PublishConfig {
        url: format!("file://{}", bucket.path().display()),
        interval_ms: 10,
        request_timeout_seconds: 5,
        behind_after_seconds: 60,
        options: Default::default(),
    };
    let app = register.server.app();
    app.set_publishing(Publishing::start(&config, app).unwrap());
    let wait_published = |size: u64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((published, text)) = published(bucket.path(), Log::User) {
                // Whatever the bucket shows meets the policy.
                assert_eq!(register.verify(Log::User, &text).1, ["w1"]);
                if published == size {
                    return text;
                }
            }
            assert!(Instant::now() < deadline, "not published at {size}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let first = register.witnessed_at_least(Log::User, register.signed_size(Log::User));
    assert_eq!(wait_published(first.size), first.text);
    let (_, system) = published(bucket.path(), Log::System).unwrap();
    assert_eq!(register.verify(Log::System, &system).1, ["w1"]);
    assert_eq!(
        std::fs::read_to_string(
            bucket
                .path()
                .join(format!("registers/{NAME}/witness-policy"))
        )
        .unwrap(),
        policy
    );
    // The witness down: writes are signed, not witnessed, not published.
    w1.set(Fault::Down);
    let receipt = register.write("XA", "Atlantis", false);
    assert_eq!(receipt.status, 200, "{}", receipt.text());
    let signed = register.signed_size(Log::User);
    assert!(signed > first.size);
    assert_eq!(published(bucket.path(), Log::User).unwrap().0, first.size);
    // Back: witnessed, then published, cosigned.
    w1.set(Fault::None);
    let next = register.witnessed_at_least(Log::User, signed);
    assert_eq!(wait_published(next.size), next.text);
    // The status follows the state file, written after the checkpoints.
    let series = format!(
        "regis_published_size{{register=\"{NAME}\",log=\"user\"}} {}\n",
        next.size
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !register.metrics().contains(&series) {
        assert!(Instant::now() < deadline, "{}", register.metrics());
        std::thread::sleep(Duration::from_millis(10));
    }
}
