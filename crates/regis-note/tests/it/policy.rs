//! C2SP tlog-policy: the spec's example with real keys, every rule of the
//! spec as a table of (policy, error message), quorum tables, and `verify`
//! against real cosignatures.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use regis_note::{
    Checkpoint, Cosigner, KeyName, Note, NoteSignature, NoteSigner, PolicyError, PolicyParseError,
    SignatureError, SignedCheckpoint, WitnessPolicy, Witnessed, system_verifier,
};
use sha2::{Digest, Sha256};

use crate::common::{
    EXAMPLE_ORIGIN, EXAMPLE_WITNESSES, cosigner, example_log, example_policy, name,
};

const NOW: u64 = 1_700_000_000;

/// Witness keys by letter (seed 100 + letter), for the hand-written policies.
fn witness_key(letter: char) -> Cosigner {
    cosigner(&letter.to_string(), 100 + letter as u8 - b'A')
}

/// `text` with `{A}`, `{B}`, … replaced by witness vkeys and `{L}` by the
/// example log's.
fn with_keys(text: &str) -> String {
    let mut text = text.replace("{L}", &example_log().verifier().to_string());
    for letter in 'A'..='H' {
        text = text.replace(
            &format!("{{{letter}}}"),
            &witness_key(letter).verifier().to_string(),
        );
    }
    text
}

fn parse(text: &str) -> WitnessPolicy {
    WitnessPolicy::parse(text.as_bytes()).unwrap_or_else(|error| panic!("{error}\n{text}"))
}

fn parse_error(bytes: &[u8]) -> PolicyParseError {
    match WitnessPolicy::parse(bytes) {
        Ok(policy) => panic!(
            "parsed, expected an error: {}\n{policy:?}",
            String::from_utf8_lossy(bytes)
        ),
        Err(error) => error,
    }
}

#[test]
fn the_specs_example_parses_with_real_keys() {
    let (text, cosigners) = example_policy();
    let policy = parse(&text);
    let names: Vec<&str> = policy.witnesses().iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, EXAMPLE_WITNESSES);
    for (witness, cosigner) in policy.witnesses().iter().zip(&cosigners) {
        assert_eq!(witness.verifier, cosigner.verifier());
        assert_eq!(witness.url, None);
    }
    assert_eq!(policy.cosigners().iter().count(), 6);
    assert_eq!(policy.logs().len(), 1);
    assert_eq!(policy.logs()[0].verifier, example_log().verifier());
    assert!(policy.requires_cosignatures());

    let cases: [(&[&str], bool); 12] = [
        (&[], false),
        (&["X1", "X2", "Y1"], true),
        (&["X1", "X3", "Y3"], true),
        (&["X2", "X3", "Y2"], true),
        (&["X1", "X2", "X3", "Y1", "Y2", "Y3"], true),
        (&["X1", "X2"], false),
        (&["X1", "X2", "X3"], false),
        (&["X1", "Y1", "Y2", "Y3"], false),
        (&["Y1", "Y2", "Y3"], false),
        // Names outside the policy count for nothing, group names included.
        (&["X1", "X2", "Z"], false),
        (&["X-witnesses", "Y-witnesses"], false),
        (&["X1", "X2", "Y1", "Z"], true),
    ];
    for (cosigned, expected) in cases {
        assert_eq!(
            policy.quorum_met(cosigned.iter().copied()),
            expected,
            "{cosigned:?}"
        );
    }
}

#[test]
fn quorums_follow_thresholds_and_groups() {
    type Case = (&'static str, &'static [(&'static [&'static str], bool)]);
    let witnesses = "witness A {A}\nwitness B {B}\nwitness C {C}\nwitness D {D}\n";
    let cases: [Case; 8] = [
        ("quorum none\n", &[(&[], true), (&["A"], true)]),
        (
            "quorum A\n",
            &[(&[], false), (&["A"], true), (&["B", "C", "D"], false)],
        ),
        (
            "group g any A B C\nquorum g\n",
            &[(&[], false), (&["C"], true), (&["D"], false)],
        ),
        (
            "group g all A B C\nquorum g\n",
            &[(&["A", "B"], false), (&["A", "B", "C"], true)],
        ),
        (
            "group g 2 A B C\nquorum g\n",
            &[(&["A"], false), (&["A", "C"], true), (&["A", "D"], false)],
        ),
        (
            "group g 3 A B C\nquorum g\n",
            &[(&["A", "B"], false), (&["A", "B", "C"], true)],
        ),
        (
            "group g1 any A B\ngroup g2 all g1 C\nquorum g2\n",
            &[
                (&["A"], false),
                (&["C"], false),
                (&["A", "C"], true),
                (&["B", "C"], true),
                (&["A", "B"], false),
            ],
        ),
        // g1 counts towards g3 directly and through g2.
        (
            "group g1 any A B\ngroup g2 all g1 C\ngroup g3 2 g1 g2 D\nquorum g3\n",
            &[
                (&["A", "D"], true),
                (&["C", "D"], false),
                (&["B", "C"], true),
                (&["A"], false),
                (&["D"], false),
            ],
        ),
    ];
    for (rules, expectations) in cases {
        let text = with_keys(&format!("{witnesses}{rules}"));
        let policy = parse(&text);
        assert_eq!(policy.requires_cosignatures(), rules != "quorum none\n");
        for &(cosigned, expected) in expectations {
            assert_eq!(
                policy.quorum_met(cosigned.iter().copied()),
                expected,
                "{rules}: {cosigned:?}"
            );
        }
    }
}

#[test]
fn layout_follows_the_spec() {
    // Leading, trailing and inner runs of spaces and tabs; indented comments;
    // blank lines of white space; URLs kept; a log-less policy.
    let text = with_keys(
        "  # a comment\n\t\n witness \tA\t{A}   https://a.example/ \n\t# indented\n\
         witness B {B}\ngroup  g\tany A B \nquorum\tg\t\n",
    );
    let policy = parse(&text);
    assert!(policy.logs().is_empty());
    assert_eq!(
        policy.witnesses()[0].url.as_deref(),
        Some("https://a.example/")
    );
    assert_eq!(policy.witnesses()[1].url, None);
    assert!(policy.quorum_met(["B"]));

    // Non-ASCII names are opaque bytes: "K" and the Kelvin sign differ.
    let policy = parse(&with_keys(
        "witness K {A}\nwitness \u{212a} {B}\nwitness wïtness {C}\nquorum \u{212a}\n",
    ));
    assert!(policy.quorum_met(["\u{212a}"]));
    assert!(!policy.quorum_met(["K", "k"]));

    // Comments may hold any allowed byte, UTF-8 or not.
    let policy = WitnessPolicy::parse(b"# caf\xe9 \x80\xff\nquorum none\n").unwrap();
    assert!(!policy.requires_cosignatures());
}

/// A vkey of signature type 0x06 (ML-DSA-44), which this crate does not verify.
fn ml_dsa_vkey() -> String {
    let mut key = vec![0x06];
    key.extend_from_slice(&[7; 1312]);
    format!("witness.example/M+01020304+{}", BASE64.encode(key))
}

/// Two cosignature/v1 keys named `w` with one key id (found by a birthday
/// search over these seeds): a signature line could not say which made it.
fn colliding_key_ids() -> (Cosigner, Cosigner) {
    let seed = |i: u32| -> [u8; 32] { Sha256::digest(format!("regis-collide-{i}")).into() };
    let first = Cosigner::from_seed(name("w"), &seed(3648));
    let second = Cosigner::from_seed(name("w"), &seed(90133));
    assert_eq!(first.key_id(), second.key_id());
    assert_ne!(first.verifier(), second.verifier());
    (first, second)
}

#[test]
fn each_rule_of_the_spec_has_its_error() {
    let other_log = NoteSigner::from_seed(name("example.com/other"), &[1; 32]).verifier();
    let same_key_other_name = Cosigner::from_seed(name("witness.example/A2"), &[100; 32]);
    let (collide_1, collide_2) = colliding_key_ids();
    let log_as_witness = example_log().verifier();
    let cases: Vec<(String, String)> = vec![
        // Structure and character set.
        ("quorum none".into(), "line 1: the last line does not end in a newline".into()),
        ("quorum none\n#".into(), "line 2: the last line does not end in a newline".into()),
        (String::new(), "no quorum line: a policy needs exactly one (`quorum none` requires no cosignatures)".into()),
        ("# only a comment\n\n".into(), "no quorum line: a policy needs exactly one (`quorum none` requires no cosignatures)".into()),
        ("witness A {A}\r\nquorum A\n".into(), "line 1: control character 0x0d (only tab and newline are allowed)".into()),
        ("# a\nquorum none\x7f\n".into(), "line 2: control character 0x7f (only tab and newline are allowed)".into()),
        ("quorum none\n# \x00\n".into(), "line 2: control character 0x00 (only tab and newline are allowed)".into()),
        ("quorum\x0bnone\n".into(), "line 1: control character 0x0b (only tab and newline are allowed)".into()),
        ("logs {L}\nquorum none\n".into(), "line 1: unknown keyword \"logs\": expected log, witness, group or quorum".into()),
        ("Quorum none\n".into(), "line 1: unknown keyword \"Quorum\": expected log, witness, group or quorum".into()),
        ("quorum none # trailing comment\n".into(), "line 1: expected `quorum <name>`".into()),
        // Arity.
        ("log\nquorum none\n".into(), "line 1: expected `log <vkey> [<url>]`".into()),
        ("log {L} https://log.example/ more\n".into(), "line 1: expected `log <vkey> [<url>]`".into()),
        ("witness A\n".into(), "line 1: expected `witness <name> <vkey> [<url>]`".into()),
        ("witness A {A} https://a.example/ more\n".into(), "line 1: expected `witness <name> <vkey> [<url>]`".into()),
        ("witness A {A}\ngroup g any\n".into(), "line 2: expected `group <name> all|any|<k> <member>...`".into()),
        ("witness A {A}\ngroup g\n".into(), "line 2: expected `group <name> all|any|<k> <member>...`".into()),
        ("quorum\n".into(), "line 1: expected `quorum <name>`".into()),
        ("witness A {A}\nquorum A A\n".into(), "line 2: expected `quorum <name>`".into()),
        // Keys: valid vkeys of the role's type, no duplicate public keys.
        ("log example.com/log\n".into(), "line 1: log key: missing the key id field (fields are separated by '+')".into()),
        ("witness A {A}x\n".into(), "line 1: witness key: key is not valid base64".into()),
        ("log {A}\n".into(), "line 1: a log key must be of type 0x01 (Ed25519), this one is of type 0x04 (cosignature/v1)".into()),
        (format!("witness A {log_as_witness}\n"), "line 1: a witness key must be of type 0x04 (cosignature/v1), this one is of type 0x01 (Ed25519)".into()),
        (format!("witness M {}\n", ml_dsa_vkey()), "line 1: a witness key must be of type 0x04 (cosignature/v1), this one is of type 0x06 (ML-DSA-44 cosignature, not supported)".into()),
        (format!("log {{L}}\n\nlog {other_log}\n"), "line 3: the same public key as the log on line 1".into()),
        (format!("witness A {{A}}\nwitness A2 {}\n", same_key_other_name.verifier()), "line 2: the same public key as the witness on line 1".into()),
        (
            format!("witness W1 {}\nwitness B {{B}}\nwitness W2 {}\nquorum none\n", collide_1.verifier(), collide_2.verifier()),
            format!("line 3: key w+{} has the same name and key id as the witness on line 1", collide_1.key_id()),
        ),
        // Names: defined once, before use; none is predefined.
        ("witness A {A}\nwitness A {B}\n".into(), "line 2: \"A\" is already defined on line 1".into()),
        ("witness A {A}\ngroup A any A\n".into(), "line 2: \"A\" is already defined on line 1".into()),
        ("witness A {A}\ngroup g any A\ngroup g all A\n".into(), "line 3: \"g\" is already defined on line 2".into()),
        ("witness none {A}\n".into(), "line 1: the name none is predefined (no cosignatures) and cannot be defined".into()),
        ("witness A {A}\ngroup none any A\n".into(), "line 2: the name none is predefined (no cosignatures) and cannot be defined".into()),
        ("group g any A\n".into(), "line 1: \"A\" is not a witness or group defined on an earlier line".into()),
        ("quorum A\nwitness A {A}\n".into(), "line 1: \"A\" is not a witness or group defined on an earlier line".into()),
        ("witness A {A}\ngroup g any A g\n".into(), "line 2: \"g\" is not a witness or group defined on an earlier line".into()),
        ("witness A {A}\n# comment\n\n \t\nquorum B\n".into(), "line 5: \"B\" is not a witness or group defined on an earlier line".into()),
        ("witness A {A}\nquorum a\n".into(), "line 2: \"a\" is not a witness or group defined on an earlier line".into()),
        // Group members and thresholds.
        ("witness A {A}\ngroup g any A none\n".into(), "line 2: none cannot be a group member".into()),
        ("witness A {A}\ngroup g all A A\n".into(), "line 2: \"A\" is listed more than once in this group".into()),
        ("witness A {A}\nwitness B {B}\ngroup g any A\ngroup h any g B g\n".into(), "line 4: \"g\" is listed more than once in this group".into()),
        ("witness A {A}\ngroup g 0 A\n".into(), "line 2: threshold 0 for 1 members: it must be from 1 to 1".into()),
        ("witness A {A}\nwitness B {B}\ngroup g 3 A B\n".into(), "line 3: threshold 3 for 2 members: it must be from 1 to 2".into()),
        ("witness A {A}\ngroup g 01 A\n".into(), "line 2: the threshold must be all, any or a decimal number without leading zeros, not \"01\"".into()),
        ("witness A {A}\ngroup g -1 A\n".into(), "line 2: the threshold must be all, any or a decimal number without leading zeros, not \"-1\"".into()),
        ("witness A {A}\ngroup g ALL A\n".into(), "line 2: the threshold must be all, any or a decimal number without leading zeros, not \"ALL\"".into()),
        ("witness A {A}\ngroup g 99999999999999999999 A\n".into(), "line 2: the threshold must be all, any or a decimal number without leading zeros, not \"99999999999999999999\"".into()),
        ("witness A {A}\ngroup g 18446744073709551615 A\n".into(), "line 2: threshold 18446744073709551615 for 1 members: it must be from 1 to 1".into()),
        // Exactly one quorum.
        ("quorum none\nquorum none\n".into(), "line 2: a second quorum line (the first is on line 1)".into()),
        ("witness A {A}\nquorum A\n\nquorum none\n".into(), "line 4: a second quorum line (the first is on line 2)".into()),
    ];
    for (text, expected) in cases {
        let text = with_keys(&text);
        let error = parse_error(text.as_bytes());
        assert_eq!(error.to_string(), expected, "{text}");
    }

    // Names, keys and URLs are UTF-8; only comments may hold other bytes.
    let mut not_utf8 = b"witness \xe9 ".to_vec();
    not_utf8.extend_from_slice(format!("{}\n", witness_key('A').verifier()).as_bytes());
    assert_eq!(
        parse_error(&not_utf8).to_string(),
        "line 1: not valid UTF-8"
    );
}

#[test]
fn limits_are_64_logs_witnesses_and_groups() {
    let logs = |count: u8| -> String {
        (0..count)
            .map(|i| {
                let key = NoteSigner::from_seed(name(&format!("log{i}")), &[i; 32]);
                format!("log {}\n", key.verifier())
            })
            .collect()
    };
    let witnesses = |count: u8| -> String {
        (0..count)
            .map(|i| {
                format!(
                    "witness w{i} {}\n",
                    cosigner(&format!("w{i}"), i).verifier()
                )
            })
            .collect()
    };
    let groups =
        |count: u8| -> String { (0..count).map(|i| format!("group g{i} any w0\n")).collect() };
    let cases = [
        (format!("{}quorum none\n", logs(64)), None),
        (
            format!("{}quorum none\n", logs(65)),
            Some("line 65: more than 64 logs"),
        ),
        (format!("{}quorum w63\n", witnesses(64)), None),
        (
            format!("{}quorum none\n", witnesses(65)),
            Some("line 65: more than 64 witnesses"),
        ),
        (format!("{}{}quorum g63\n", witnesses(1), groups(64)), None),
        (
            format!("{}{}quorum none\n", witnesses(1), groups(65)),
            Some("line 66: more than 64 groups"),
        ),
    ];
    for (text, expected) in cases {
        match expected {
            None => {
                parse(&text);
            }
            Some(expected) => assert_eq!(parse_error(text.as_bytes()).to_string(), expected),
        }
    }
}

/// The example log's checkpoint of size 7, signed by the log.
fn signed_checkpoint() -> SignedCheckpoint {
    let checkpoint = Checkpoint::new(EXAMPLE_ORIGIN, 7, [9; 32]).unwrap();
    SignedCheckpoint::sign(checkpoint, &example_log())
}

/// `signed` with a cosignature line from each (cosigner, timestamp).
fn cosigned(mut signed: SignedCheckpoint, by: &[(&Cosigner, u64)]) -> SignedCheckpoint {
    for (cosigner, timestamp) in by {
        let cosignature = cosigner.cosign(signed.checkpoint(), *timestamp).unwrap();
        signed.add_signature(cosignature.into()).unwrap();
    }
    signed
}

/// `signature` with one bit of its Ed25519 signature flipped.
fn corrupted(signature: &NoteSignature) -> NoteSignature {
    let mut payload = signature.payload().to_vec();
    let last = payload.len() - 1;
    payload[last] ^= 1;
    let line = format!("\u{2014} {} {}", signature.name(), BASE64.encode(payload));
    NoteSignature::parse(&line).unwrap()
}

#[test]
fn verify_checks_cosignatures_timestamps_and_the_quorum() {
    let (text, w) = example_policy();
    let policy = parse(&text);
    let log = example_log().verifier();
    let outsider = cosigner("Z", 99);
    let [x1, x2, x3, y1, _, y3] = [&w[0], &w[1], &w[2], &w[3], &w[4], &w[5]];

    let ok = |cosigned_by: &[(&str, u64)]| -> Result<Witnessed, PolicyError> {
        Ok(Witnessed {
            cosigned_by: cosigned_by
                .iter()
                .map(|(name, time)| (name.to_string(), *time))
                .collect(),
        })
    };
    let bad_x2 = {
        let good = cosigned(signed_checkpoint(), &[(x1, NOW), (x2, NOW), (y1, NOW)]);
        let mut signatures = good.note().signatures().to_vec();
        signatures[2] = corrupted(&signatures[2]);
        let note = Note::new(good.note().text(), signatures).unwrap();
        SignedCheckpoint::from_note(note).unwrap()
    };
    let cases: Vec<(&str, SignedCheckpoint, Result<Witnessed, PolicyError>)> = vec![
        (
            "quorum met",
            cosigned(signed_checkpoint(), &[(x1, NOW), (x2, NOW - 5), (y1, NOW)]),
            ok(&[("X1", NOW), ("X2", NOW - 5), ("Y1", NOW)]),
        ),
        (
            "an unknown witness is ignored",
            cosigned(
                signed_checkpoint(),
                &[(&outsider, 0), (x3, NOW), (y3, NOW), (x1, NOW)],
            ),
            ok(&[("X3", NOW), ("Y3", NOW), ("X1", NOW)]),
        ),
        (
            "up to a minute ahead",
            cosigned(signed_checkpoint(), &[(x1, NOW + 60), (x2, 1), (y1, NOW)]),
            ok(&[("X1", NOW + 60), ("X2", 1), ("Y1", NOW)]),
        ),
        (
            "more than a minute ahead",
            cosigned(signed_checkpoint(), &[(x1, NOW), (x2, NOW + 61), (y1, NOW)]),
            Err(PolicyError::FutureTimestamp {
                witness: "X2".into(),
                timestamp: NOW + 61,
                now: NOW,
            }),
        ),
        (
            "a zero timestamp",
            cosigned(signed_checkpoint(), &[(x1, NOW), (x2, NOW), (y1, 0)]),
            Err(PolicyError::ZeroTimestamp {
                witness: "Y1".into(),
            }),
        ),
        (
            "a known witness's bad signature",
            bad_x2,
            Err(PolicyError::InvalidCosignature {
                witness: "X2".into(),
                line: 7,
                error: SignatureError::Mismatch,
            }),
        ),
        (
            "quorum not met",
            cosigned(
                signed_checkpoint(),
                &[(x1, NOW), (&outsider, NOW), (y1, NOW)],
            ),
            Err(PolicyError::QuorumNotMet {
                cosigned_by: vec!["X1".into(), "Y1".into()],
                needs: "the quorum is X-and-Y: X-witnesses needs 2 of X1, X2, X3; \
                        Y-witnesses needs 1 of Y1, Y2, Y3; \
                        X-and-Y needs 2 of X-witnesses, Y-witnesses"
                    .into(),
            }),
        ),
        (
            "no cosignatures",
            signed_checkpoint(),
            Err(PolicyError::QuorumNotMet {
                cosigned_by: vec![],
                needs: "the quorum is X-and-Y: X-witnesses needs 2 of X1, X2, X3; \
                        Y-witnesses needs 1 of Y1, Y2, Y3; \
                        X-and-Y needs 2 of X-witnesses, Y-witnesses"
                    .into(),
            }),
        ),
    ];
    for (what, signed, expected) in cases {
        // Through the wire: what a client gets is bytes.
        let signed = SignedCheckpoint::parse(signed.to_string().as_bytes()).unwrap();
        assert_eq!(
            policy.verify(&signed, EXAMPLE_ORIGIN, &log, NOW),
            expected,
            "{what}"
        );
    }
    let error = policy
        .verify(&signed_checkpoint(), EXAMPLE_ORIGIN, &log, NOW)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "quorum not met: no policy witness cosigned; the quorum is X-and-Y: X-witnesses needs \
         2 of X1, X2, X3; Y-witnesses needs 1 of Y1, Y2, Y3; X-and-Y needs 2 of X-witnesses, \
         Y-witnesses"
    );
}

#[test]
fn verify_checks_the_log_and_its_origin() {
    let (text, w) = example_policy();
    let policy = parse(&text);
    let log = example_log().verifier();
    let witnessed = |signed| cosigned(signed, &[(&w[0], NOW), (&w[1], NOW), (&w[3], NOW)]);
    assert!(matches!(
        policy.verify(
            &witnessed(signed_checkpoint()),
            "example.com/registers/other",
            &log,
            NOW
        ),
        Err(PolicyError::Checkpoint(
            regis_note::VerifyError::WrongOrigin { .. }
        ))
    ));
    let impostor = NoteSigner::from_seed(name(EXAMPLE_ORIGIN), &[2; 32]);
    let forged = SignedCheckpoint::sign(signed_checkpoint().checkpoint().clone(), &impostor);
    assert!(matches!(
        policy.verify(&witnessed(forged.clone()), EXAMPLE_ORIGIN, &log, NOW),
        Err(PolicyError::Checkpoint(
            regis_note::VerifyError::NotSignedByLog { .. }
        ))
    ));
    // The policy lists its logs: another log key is refused even if it signed.
    assert_eq!(
        policy.verify(
            &witnessed(forged),
            EXAMPLE_ORIGIN,
            &impostor.verifier(),
            NOW
        ),
        Err(PolicyError::LogNotInPolicy {
            name: name(EXAMPLE_ORIGIN),
            key_id: impostor.key_id(),
        })
    );
    // A register's system log shares the listed log's public key.
    let system_origin = format!("{EXAMPLE_ORIGIN}/system");
    let system_signer = NoteSigner::from_seed(KeyName::new(&*system_origin).unwrap(), &[1; 32]);
    let system_log = system_verifier(&log).unwrap();
    assert_eq!(system_signer.verifier(), system_log);
    let checkpoint = Checkpoint::new(&*system_origin, 3, [4; 32]).unwrap();
    let signed = witnessed(SignedCheckpoint::sign(checkpoint, &system_signer));
    assert_eq!(
        policy
            .verify(&signed, &system_origin, &system_log, NOW)
            .unwrap()
            .cosigned_by
            .len(),
        3
    );
}

#[test]
fn a_policy_without_a_quorum_still_checks_known_cosignatures() {
    let policy = parse(&with_keys("witness A {A}\nquorum none\n"));
    let log = example_log().verifier();
    assert_eq!(
        policy.verify(&signed_checkpoint(), EXAMPLE_ORIGIN, &log, NOW),
        Ok(Witnessed {
            cosigned_by: vec![]
        })
    );
    let a = witness_key('A');
    let mut signed = signed_checkpoint();
    let cosignature = a.cosign(signed.checkpoint(), NOW).unwrap();
    signed
        .add_signature(corrupted(&NoteSignature::from(cosignature)))
        .unwrap();
    assert!(matches!(
        policy.verify(&signed, EXAMPLE_ORIGIN, &log, NOW),
        Err(PolicyError::InvalidCosignature { ref witness, line: 6, .. }) if witness == "A"
    ));
    let future = cosigned(signed_checkpoint(), &[(&a, NOW + 3600)]);
    assert!(matches!(
        policy.verify(&future, EXAMPLE_ORIGIN, &log, NOW),
        Err(PolicyError::FutureTimestamp { .. })
    ));
}

#[test]
fn a_cosignature_of_another_checkpoint_does_not_count() {
    let (text, w) = example_policy();
    let policy = parse(&text);
    let other = Checkpoint::new(EXAMPLE_ORIGIN, 8, [9; 32]).unwrap();
    let mut signed = cosigned(signed_checkpoint(), &[(&w[0], NOW), (&w[3], NOW)]);
    signed
        .add_signature(w[1].cosign(&other, NOW).unwrap().into())
        .unwrap();
    assert!(matches!(
        policy.verify(&signed, EXAMPLE_ORIGIN, &example_log().verifier(), NOW),
        Err(PolicyError::InvalidCosignature { ref witness, error: SignatureError::Mismatch, .. })
            if witness == "X2"
    ));
}
