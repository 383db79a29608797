//! `--witness-policy` on `regis get`, `verify`, `audit` and `mirror`, as a
//! user runs them: a register served by `regis serve`, behind a proxy that
//! appends real witnesses' cosignatures to its checkpoints (what a log
//! whose witnesses cosigned serves); the same register without them; a
//! mirror of the cosigned one, served onward; and policy files that do not
//! parse.

use std::path::{Path, PathBuf};
use std::process::Output;

use regis_model::Timestamp;
use regis_note::{Cosigner, KeyName, NoteSignature, NoteSigner, SignedCheckpoint, TlogProof};

use crate::common::http::{get_text, rewriting_proxy};
use crate::common::static_copy::{Publication, StaticCopy, Superseded};
use crate::common::{ok, regis, serve, text};

/// Witness `n`: a real cosignature/v1 key.
fn witness(n: u8) -> Cosigner {
    Cosigner::from_seed(KeyName::new(format!("witness-{n}.test")).unwrap(), &[n; 32])
}

/// A proxy in front of `upstream` (`host:port`) that appends a cosignature
/// by each of `witnesses`, made at `time`, to every signed checkpoint it
/// passes: both logs' and those of record proofs (tlog-proof). Its
/// address.
fn cosigning_proxy(upstream: String, witnesses: Vec<Cosigner>, time: u64) -> String {
    let cosign = move |signed: &SignedCheckpoint| {
        let mut signed = signed.clone();
        for witness in &witnesses {
            let line = witness.cosign(signed.checkpoint(), time).unwrap();
            signed.add_signature(NoteSignature::from(line)).unwrap();
        }
        signed
    };
    rewriting_proxy(upstream, move |path, status, body| {
        if status == 200 && path.ends_with("/checkpoint") {
            let signed = SignedCheckpoint::parse(&body).unwrap();
            cosign(&signed).to_string().into_bytes()
        } else if status == 200 && path.ends_with("/proof.tlog-proof") {
            let proof = TlogProof::parse(&body).unwrap();
            TlogProof::new(
                proof.extra().map(<[u8]>::to_vec),
                proof.index(),
                proof.path().to_vec(),
                cosign(proof.checkpoint()),
            )
            .to_string()
            .into_bytes()
        } else {
            body
        }
    })
}

/// The value of `prefix` in `regis key`'s output.
fn key(data: &Path) -> String {
    let output = ok(regis(&[
        "key",
        "--data",
        data.to_str().unwrap(),
        "--register",
        "country",
    ]));
    output
        .lines()
        .find_map(|line| line.strip_prefix("log-public-key: "))
        .unwrap()
        .to_owned()
}

/// A failure whose one line on stderr says each of `reasons`.
fn assert_fails(output: &Output, reasons: &[&str]) {
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{}", text(&output.stdout));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for reason in reasons {
        assert!(stderr.contains(reason), "{reason}: {stderr}");
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A policy file in `dir` that needs witnesses 1 and 2, as `w1`, `w2`.
fn both_witnesses(dir: &Path) -> PathBuf {
    let policy = dir.join("policy");
    std::fs::write(
        &policy,
        format!(
            "# Both witnesses.\nwitness w1 {}\nwitness w2 {}\ngroup both all w1 w2\nquorum both\n",
            witness(1).verifier(),
            witness(2).verifier()
        ),
    )
    .unwrap();
    policy
}

/// What the commands print of `both_witnesses`' cosignatures at `time`.
fn cosigned_by(time: u64) -> String {
    let at = Timestamp::from_unix_seconds(time as i64).unwrap();
    format!(", cosigned by w1 at {at}, w2 at {at}", at = at.as_str())
}

#[test]
fn get_verify_audit_and_mirror_require_the_quorum_of_the_policy() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let fixture = regis_fixtures::path("registers/registry-data/country.rsf");
    ok(regis(&[
        "load",
        "--data",
        data.to_str().unwrap(),
        "--register",
        "country",
        "--host",
        "regis.test",
        fixture.to_str().unwrap(),
    ]));
    let vkey = key(&data);
    let server = serve(&data, "127.0.0.1:0");
    let plain = format!("{}/registers/country", server.url);
    let time = now();
    let upstream = server.url.trim_start_matches("http://").to_owned();
    let proxy = cosigning_proxy(upstream.clone(), vec![witness(1), witness(2)], time);
    let cosigned = format!("http://{proxy}/registers/country");
    let only_one = cosigning_proxy(upstream, vec![witness(2)], time);
    let only_one = format!("http://{only_one}/registers/country");

    let policy = both_witnesses(work.path());
    let policy = policy.to_str().unwrap();
    let cosigned_by = cosigned_by(time);

    // Through the cosigning proxy: accepted, and who cosigned is said.
    let stdout = ok(regis(&[
        "get",
        &cosigned,
        "CZ",
        "--key",
        &vkey,
        "--witness-policy",
        policy,
    ]));
    assert!(
        stdout.ends_with(&format!(
            "verified against checkpoint 210 of regis.test/registers/country{cosigned_by}\n"
        )),
        "{stdout}"
    );
    let stdout = ok(regis(&[
        "verify",
        &cosigned,
        "--key",
        &vkey,
        "--witness-policy",
        policy,
        "--full",
    ]));
    assert!(
        stdout.contains(
            "checkpoint 210 of regis.test/registers/country verified with the pinned key: root "
        ) && stdout.contains(&format!("{cosigned_by}\n")),
        "{stdout}"
    );
    assert!(stdout.contains("replayed 210 entries"), "{stdout}");
    let state = work.path().join("audit-state");
    let state = state.to_str().unwrap();
    for _ in 0..2 {
        let stdout = ok(regis(&[
            "audit",
            &cosigned,
            "--key",
            &vkey,
            "--state",
            state,
            "--witness-policy",
            policy,
        ]));
        assert!(stdout.contains("user log: checkpoint 210"), "{stdout}");
        assert!(stdout.contains(&cosigned_by), "{stdout}");
    }
    // Without the policy, the same checkpoints pass as before.
    let stdout = ok(regis(&["verify", &cosigned, "--key", &vkey]));
    assert!(!stdout.contains("cosigned"), "{stdout}");

    // Without cosignatures, or with one of the two needed: refused.
    for (url, who) in [
        (&plain, "no policy witness cosigned"),
        (&only_one, "cosigned by w2"),
    ] {
        let needs = [
            "does not meet the witness policy: quorum not met: ",
            who,
            "both needs 2 of w1, w2",
        ];
        assert_fails(
            &regis(&["get", url, "CZ", "--key", &vkey, "--witness-policy", policy]),
            &needs,
        );
        assert_fails(
            &regis(&["verify", url, "--key", &vkey, "--witness-policy", policy]),
            &needs,
        );
        let fresh = work.path().join("fresh-state");
        assert_fails(
            &regis(&[
                "audit",
                url,
                "--key",
                &vkey,
                "--state",
                fresh.to_str().unwrap(),
                "--witness-policy",
                policy,
            ]),
            &needs,
        );
        assert!(!fresh.exists());
        // A mirror of it stores nothing: the register is not created.
        let mirror = work.path().join("refused-mirror");
        assert_fails(
            &regis(&[
                "mirror",
                url,
                "--key",
                &vkey,
                "--data",
                mirror.to_str().unwrap(),
                "--witness-policy",
                policy,
            ]),
            &needs,
        );
        assert!(!mirror.join("registers/country").exists());
    }

    // A mirror of the cosigned register stores the checkpoints as served,
    // cosignatures included, and serves them onward.
    let mirror = work.path().join("mirror");
    ok(regis(&[
        "mirror",
        &cosigned,
        "--key",
        &vkey,
        "--data",
        mirror.to_str().unwrap(),
        "--witness-policy",
        policy,
    ]));
    let onward = serve(&mirror, "127.0.0.1:0");
    let served = get_text(
        onward.url.trim_start_matches("http://"),
        "/registers/country/log/checkpoint",
    );
    let through_proxy = get_text(&proxy, "/registers/country/log/checkpoint");
    assert_eq!(served, through_proxy);
    assert!(served.contains("\n\u{2014} witness-1.test "), "{served}");
    let mirrored = format!("{}/registers/country", onward.url);
    let stdout = ok(regis(&[
        "verify",
        &mirrored,
        "--key",
        &vkey,
        "--witness-policy",
        policy,
    ]));
    assert!(stdout.contains(&format!("{cosigned_by}\n")), "{stdout}");
}

/// A static copy of a witnessed register holds the checkpoints its
/// publisher read, cosignatures and all: read from it, the origin stopped,
/// they meet the policy as the origin's do.
#[test]
fn a_static_copy_of_a_witnessed_register_meets_the_policy() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let fixture = regis_fixtures::path("registers/registry-data/country.rsf");
    ok(regis(&[
        "load",
        "--data",
        data.to_str().unwrap(),
        "--register",
        "country",
        "--host",
        "regis.test",
        fixture.to_str().unwrap(),
    ]));
    let vkey = key(&data);
    let server = serve(&data, "127.0.0.1:0");
    let time = now();
    let upstream = server.url.trim_start_matches("http://").to_owned();
    let proxy = cosigning_proxy(upstream, vec![witness(1), witness(2)], time);
    let publication = Publication::read(&proxy, "country");
    drop(server);
    let copy = StaticCopy::start();
    copy.publish(&publication, Superseded::Full);
    let url = copy.url("country");
    let policy = both_witnesses(work.path());
    let policy = policy.to_str().unwrap();
    let cosigned_by = cosigned_by(time);
    let mirror = work.path().join("mirror");
    for args in [
        vec!["get", &url, "CZ"],
        vec!["verify", &url, "--full"],
        vec!["mirror", &url, "--data", mirror.to_str().unwrap()],
    ] {
        let mut args = args;
        args.extend(["--key", &vkey, "--witness-policy", policy]);
        let stdout = ok(regis(&args));
        match args[0] {
            "mirror" => assert!(stdout.contains("user log 210 entries"), "{stdout}"),
            _ => assert!(
                stdout.contains("checkpoint 210 of regis.test/registers/country")
                    && stdout.contains(&format!("{cosigned_by}\n")),
                "{stdout}"
            ),
        }
    }
}

#[test]
fn a_policy_file_that_does_not_parse_is_named_with_its_line() {
    let work = tempfile::tempdir().unwrap();
    let bad = work.path().join("bad-policy");
    std::fs::write(
        &bad,
        format!("witness w1 {}\n\nquorum w2\n", witness(1).verifier()),
    )
    .unwrap();
    let bad = bad.to_str().unwrap();
    let missing = work.path().join("missing-policy");
    let missing = missing.to_str().unwrap();
    let data = work.path().join("data");
    let state = work.path().join("state");
    // Nothing is fetched: the policy is read first.
    let url = "http://127.0.0.1:9/registers/country";
    let name = KeyName::new("regis.test/registers/country").unwrap();
    let vkey = NoteSigner::from_seed(name, &[4; 32]).verifier().to_string();
    for (file, reasons) in [(bad, vec![bad, "line 3"]), (missing, vec![missing])] {
        for args in [
            vec!["get", url, "CZ"],
            vec!["verify", url],
            vec!["audit", url, "--state", state.to_str().unwrap()],
            vec!["mirror", url, "--data", data.to_str().unwrap()],
        ] {
            let mut args = args;
            args.extend(["--key", &vkey, "--witness-policy", file]);
            assert_fails(&regis(&args), &reasons);
        }
    }
    assert!(!data.exists() && !state.exists());
}
