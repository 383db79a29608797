//! Checkpoints under a witness policy: every checkpoint the client accepts
//! (served, in a record's proof) must carry the cosignatures of its quorum
//! (an auditor's saved state, accepted before, is checked with the log's key
//! only); each cosignature of a witness the policy
//! names is checked over the exact checkpoint text, with its time; those
//! of other keys are ignored. The cosignatures are made by real
//! cosignature/v1 keys and added by a server in front of a real one.

use regis_client::audit::{AuditError, AuditState, Auditor};
use regis_client::{Client, Error};
use regis_note::{Checkpoint, NoteSignature, PolicyError};

use crate::common::{Cosign, Liar, cosignature, cosigning, now, policy, witness};
use crate::{client, server};

/// Any two of witnesses 1, 2 and 3.
const TWO_OF_THREE: &str = "\
witness w1 {1}
witness w2 {2}
witness w3 {3}
group two 2 w1 w2 w3
quorum two
";

/// A day, in seconds.
const DAY: u64 = 24 * 60 * 60;

/// How a test witness cosigns.
#[derive(Clone, Copy, Debug)]
enum Line {
    /// Witness N, honestly, at the time the server started.
    Honest(u8),
    /// Witness N, with one bit of the signature flipped.
    Forged(u8),
    /// Witness N, honestly but at this many seconds after the start.
    Later(u8, u64),
    /// Witness N, honestly but at time zero.
    AtZero(u8),
    /// Witness N, honestly, over the checkpoint's text with an extension
    /// line added: same origin, size and root, another text.
    OtherText(u8),
}

/// The lines `spec` describes for a checkpoint, made as of `start`.
fn lines(spec: &'static [Line], start: u64) -> Box<Cosign> {
    Box::new(move |checkpoint: &Checkpoint| -> Vec<NoteSignature> {
        spec.iter()
            .map(|line| match *line {
                Line::Honest(n) => cosignature(&witness(n), checkpoint, start, false),
                Line::Forged(n) => cosignature(&witness(n), checkpoint, start, true),
                Line::Later(n, seconds) => {
                    cosignature(&witness(n), checkpoint, start + seconds, false)
                }
                Line::AtZero(n) => cosignature(&witness(n), checkpoint, 0, false),
                Line::OtherText(n) => {
                    let other = checkpoint.clone().with_extension_line("other").unwrap();
                    cosignature(&witness(n), &other, start, false)
                }
            })
            .collect()
    })
}

/// A server of the test register whose checkpoints (and proofs' checkpoints,
/// if `proofs`) carry the lines `spec` describes.
fn cosigned_by(spec: &'static [Line], proofs: bool) -> Liar {
    cosigning(server(), proofs, lines(spec, now()))
}

fn witnessed_client(url: &str, text: &str) -> Client {
    client(url).with_witness_policy(policy(text))
}

/// What a client under the policy must make of checkpoints cosigned so:
/// `Ok` with the witnesses that cosigned, or an error whose text says this.
type Expected = Result<&'static [&'static str], &'static str>;

#[test]
fn checkpoints_are_accepted_only_with_the_quorum_of_valid_cosignatures() {
    use Line::*;
    let cases: &[(&'static [Line], Expected)] = &[
        (&[], Err("quorum not met: no policy witness cosigned")),
        (&[Honest(1)], Err("quorum not met: cosigned by w1")),
        (&[Honest(1), Honest(2)], Ok(&["w1", "w2"])),
        (&[Honest(3), Honest(1), Honest(2)], Ok(&["w3", "w1", "w2"])),
        // Another key's lines, valid or not, are ignored.
        (
            &[Honest(1), Forged(8), Honest(9), Honest(3)],
            Ok(&["w1", "w3"]),
        ),
        (
            &[Honest(9), Honest(1)],
            Err("quorum not met: cosigned by w1"),
        ),
        // A witness of the policy whose cosignature fails is an error,
        // though the others make up the quorum.
        (
            &[Honest(1), Honest(2), Forged(3)],
            Err("witness w3: the cosignature on line"),
        ),
        (
            &[Honest(1), Honest(2), OtherText(3)],
            Err("witness w3: the cosignature on line"),
        ),
        (
            &[Honest(1), Later(2, DAY)],
            Err("witness w2: cosignature time"),
        ),
        (
            &[Honest(1), AtZero(2)],
            Err("witness w2: cosignature time is zero"),
        ),
        // Within the minute of clock skew allowed.
        (&[Honest(1), Later(2, 30)], Ok(&["w1", "w2"])),
    ];
    let server = server();
    let trusted = client(&server.url()).checkpoint().unwrap();
    let (key, _, _) = &server.loaded.records[0];
    for (spec, expected) in cases {
        let liar = cosigned_by(spec, true);
        let client = witnessed_client(&liar.url(), TWO_OF_THREE);
        let system = client.system().unwrap();
        for (what, result) in [
            ("user checkpoint", client.checkpoint()),
            ("system checkpoint", system.checkpoint()),
            (
                "record proof",
                client.record(key, &trusted).map(|record| record.checkpoint),
            ),
        ] {
            match (expected, result) {
                (Ok(names), Ok(checkpoint)) => {
                    let cosigned: Vec<&str> = checkpoint
                        .cosigned_by()
                        .iter()
                        .map(|(name, time)| {
                            assert!(*time > 0, "{spec:?} {what}");
                            name.as_str()
                        })
                        .collect();
                    assert_eq!(&cosigned, names, "{spec:?} {what}");
                }
                (Err(reason), Err(Error::Witnesses { url, error })) => {
                    assert!(
                        error.to_string().contains(reason),
                        "{spec:?} {what}: {error}"
                    );
                    assert!(url.starts_with(&liar.url()), "{url}");
                }
                (expected, result) => panic!("{spec:?} {what}: {expected:?}, got {result:?}"),
            }
        }
    }
}

#[test]
fn the_errors_say_who_cosigned_and_what_the_quorum_needs() {
    let liar = cosigned_by(&[Line::Honest(2)], true);
    let error = witnessed_client(&liar.url(), TWO_OF_THREE)
        .checkpoint()
        .unwrap_err();
    let Error::Witnesses {
        error: PolicyError::QuorumNotMet { cosigned_by, needs },
        ..
    } = &error
    else {
        panic!("{error}");
    };
    assert_eq!(cosigned_by, &["w2"]);
    for name in ["w1", "w2", "w3"] {
        assert!(needs.contains(name), "{needs}");
    }
    let text = error.to_string();
    assert!(
        text.contains(
            "/log/checkpoint does not meet the witness policy: quorum not met: cosigned by w2"
        ),
        "{text}"
    );
}

#[test]
fn a_policy_that_requires_no_cosignature_accepts_the_log_alone() {
    let server = server();
    let client = witnessed_client(&server.url(), "witness w1 {1}\nquorum none\n");
    let checkpoint = client.checkpoint().unwrap();
    assert!(checkpoint.cosigned_by().is_empty());
    // The log's signature is still required.
    let impostor = crate::common::impostor(&server.loaded.key);
    let forged =
        regis_note::SignedCheckpoint::sign(checkpoint.signed().checkpoint().clone(), &impostor);
    let error = client
        .verify_checkpoint(forged.to_string().as_bytes(), "forged")
        .unwrap_err();
    assert!(
        matches!(error, Error::CheckpointSignature { .. }),
        "{error}"
    );
}

#[test]
fn a_record_proved_against_a_checkpoint_without_the_quorum_is_refused() {
    // The served checkpoints are cosigned; the proofs' are not.
    let liar = cosigned_by(&[Line::Honest(1), Line::Honest(2)], false);
    let client = witnessed_client(&liar.url(), TWO_OF_THREE);
    let trusted = client.checkpoint().unwrap();
    let (key, _, _) = &server().loaded.records[0];
    let error = client.record(key, &trusted).unwrap_err();
    assert!(
        matches!(&error, Error::Witnesses { url, .. } if url.ends_with("/proof.tlog-proof")),
        "{error}"
    );
}

#[test]
fn a_witnessed_client_replays_the_log_it_accepted() {
    let liar = cosigned_by(&[Line::Honest(1), Line::Honest(3)], true);
    let client = witnessed_client(&liar.url(), TWO_OF_THREE);
    let checkpoint = client.checkpoint().unwrap();
    let replay = client.replay(&checkpoint).unwrap();
    assert_eq!(replay.entries, 387);
    assert_eq!(replay.records.len(), server().loaded.records.len() as u64);
}

#[test]
fn the_auditor_requires_the_quorum_of_served_checkpoints_not_of_saved_ones() {
    let server = server();
    let key = server.loaded.key.clone();
    let liar = cosigned_by(&[Line::Honest(1), Line::Honest(2)], true);
    let auditor = Auditor::new(&liar.url(), key.clone())
        .unwrap()
        .with_witness_policy(policy(TWO_OF_THREE));
    let first = auditor.audit(None).unwrap();
    for checkpoint in [&first.state.user, &first.state.system] {
        assert_eq!(checkpoint.cosigned_by().len(), 2);
    }
    let saved = auditor.encode_state(&first.state);
    let state = auditor.parse_state(saved.as_bytes()).unwrap();
    assert_eq!(state.user.signed(), first.state.user.signed());
    assert_eq!(state.system.signed(), first.state.system.signed());
    let second = auditor.audit(Some(state)).unwrap();
    assert_eq!(second.state, first.state);

    // A state saved before the policy was added (no cosignatures) is read,
    // and the audit goes on from it with witnessed checkpoints.
    let honest = client(&server.url());
    let unwitnessed = AuditState {
        user: honest.checkpoint().unwrap(),
        system: honest.system().unwrap().checkpoint().unwrap(),
    };
    let saved = auditor.encode_state(&unwitnessed);
    let state = auditor.parse_state(saved.as_bytes()).unwrap();
    assert!(state.user.cosigned_by().is_empty());
    let third = auditor.audit(Some(state)).unwrap();
    assert_eq!(third.state, first.state);
    // Served checkpoints without the cosignatures are refused.
    let auditor = Auditor::new(&server.url(), key)
        .unwrap()
        .with_witness_policy(policy(TWO_OF_THREE));
    let error = auditor.audit(None).unwrap_err();
    assert!(
        matches!(error, AuditError::Verify(Error::Witnesses { .. })),
        "{error}"
    );
}
