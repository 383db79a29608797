//! Every answer tlog-witness gives, over HTTP: a register's two logs
//! driven through a table of requests in order, each with the status,
//! media type and body it must get; then the monitoring endpoint, the
//! other routes and the limits.

use std::io::Write as _;
use std::net::TcpStream;
use std::time::Duration;

use regis_note::{AddCheckpoint, Checkpoint, Note, NoteSignature, SignedCheckpoint};
use regis_witness::{Limits, Options, origin_hash};

use crate::common::{
    Answer, Register, Serving, check_cosignature, read_answer, temp_witness_dir, witness_dir,
};

const SIZE: &str = "text/x.tlog.size";
const TEXT: &str = "text/plain; charset=utf-8";

/// What an answer must be.
enum Expect {
    /// 200: one cosignature of the checkpoint of this size, by the witness.
    Cosigned,
    /// 409 with the witness's size.
    Conflict(u64),
    /// This status, a plain-text body containing this.
    Refused(u16, &'static str),
}

#[test]
fn every_answer_of_the_spec() {
    let (_temp, dir) = temp_witness_dir();
    let register = Register::new("country", [1; 32], "real", (40, 7));
    let witness = witness_dir(&dir, &register);
    let served = Serving::start(&dir, Options::default(), Limits::default());
    let (user, system) = (&register.user, &register.system);
    // The same key and origin over other leaves: a fork.
    let fork = Register::new("country", [1; 32], "fork", (40, 7)).user;
    // The same origin, signed by a key the witness does not trust.
    let impostor = Register::new("country", [2; 32], "real", (40, 7)).user;
    let stranger = Register::new("elsewhere", [3; 32], "real", (40, 7)).user;
    let request = |old, proof, checkpoint| {
        AddCheckpoint {
            old_size: old,
            proof,
            checkpoint,
        }
        .to_bytes()
    };
    let mut flipped = user.proof(20, 30);
    flipped[1][0] ^= 1;
    let bad_signature = {
        let checkpoint = user.checkpoint(30);
        let line = NoteSignature::new(user.signer.name().clone(), user.signer.key_id(), &[7; 64]);
        let note = Note::new(checkpoint.note().text(), vec![line]).unwrap();
        SignedCheckpoint::from_note(note).unwrap()
    };
    let empty_with_a_root = {
        let checkpoint = Checkpoint::new(system.origin.clone(), 0, [9; 32]).unwrap();
        SignedCheckpoint::sign(checkpoint, &system.signer)
    };
    let cases: Vec<(&str, &crate::common::Log, Vec<u8>, u64, Expect)> = vec![
        (
            "a first checkpoint, from 0",
            user,
            user.request(0, 10),
            10,
            Expect::Cosigned,
        ),
        (
            "from 0 again: the witness is at 10",
            user,
            user.request(0, 10),
            10,
            Expect::Conflict(10),
        ),
        (
            "an old size above the checkpoint's",
            user,
            request(11, Vec::new(), user.checkpoint(10)),
            10,
            Expect::Refused(400, "old size 11 is above the checkpoint's size 10"),
        ),
        (
            "10 to 20 with its proof",
            user,
            user.request(10, 20),
            20,
            Expect::Cosigned,
        ),
        (
            "from a stale size",
            user,
            user.request(10, 25),
            25,
            Expect::Conflict(20),
        ),
        (
            "a proof with a flipped bit",
            user,
            request(20, flipped, user.checkpoint(30)),
            30,
            Expect::Refused(422, "the consistency proof does not verify"),
        ),
        (
            "a fork's proof and checkpoint",
            user,
            fork.request(20, 30),
            30,
            Expect::Refused(422, "the consistency proof does not verify"),
        ),
        (
            "the same size and root again",
            user,
            user.request(20, 20),
            20,
            Expect::Cosigned,
        ),
        (
            "the same size, another root",
            user,
            fork.request(20, 20),
            20,
            Expect::Refused(422, "same size 20 but another root hash"),
        ),
        (
            "signed only by a key the witness does not trust",
            user,
            impostor.request(20, 30),
            30,
            Expect::Refused(403, "not signed by the log"),
        ),
        (
            "a trusted key's signature that fails",
            user,
            request(20, user.proof(20, 30), bad_signature),
            30,
            Expect::Refused(403, "is invalid"),
        ),
        (
            "an origin the witness does not know",
            &stranger,
            stranger.request(0, 10),
            10,
            Expect::Refused(404, "witness.test/registers/elsewhere"),
        ),
        (
            "a body without the blank line",
            user,
            b"old 20\n".to_vec(),
            0,
            Expect::Refused(400, "malformed request"),
        ),
        (
            "an empty body",
            user,
            Vec::new(),
            0,
            Expect::Refused(400, "malformed request: line 1"),
        ),
        (
            "an old size with a leading zero",
            user,
            String::from_utf8(user.request(20, 30))
                .unwrap()
                .replacen("old 20", "old 020", 1)
                .into_bytes(),
            0,
            Expect::Refused(400, "malformed request: line 1"),
        ),
        (
            "a proof from 0",
            system,
            request(0, system.proof(3, 7), system.checkpoint(7)),
            7,
            Expect::Refused(422, "old size 0 needs no consistency proof"),
        ),
        (
            "size 0 with a root other than the empty tree's",
            system,
            request(0, Vec::new(), empty_with_a_root),
            0,
            Expect::Refused(422, "empty tree's root hash"),
        ),
        (
            "size 0 with the empty tree's root",
            system,
            system.request(0, 0),
            0,
            Expect::Cosigned,
        ),
        (
            "0 to 7, no proof needed",
            system,
            system.request(0, 7),
            7,
            Expect::Cosigned,
        ),
    ];
    let mut last_timestamps = std::collections::HashMap::new();
    for (case, log, body, size, expected) in cases {
        let answer = served.add_checkpoint(&body);
        match expected {
            Expect::Cosigned => {
                assert_eq!(answer.status, 200, "{case}: {answer:?}");
                assert_eq!(answer.content_type, TEXT, "{case}");
                let timestamp =
                    check_cosignature(&answer.body, &log.checkpoint(size), log, &witness);
                let last = last_timestamps.insert(&log.origin, timestamp);
                assert!(
                    last <= Some(timestamp),
                    "{case}: a log's timestamps never decrease"
                );
            }
            Expect::Conflict(latest) => {
                assert_eq!(answer.status, 409, "{case}: {answer:?}");
                assert_eq!(answer.content_type, SIZE, "{case}");
                assert_eq!(answer.body, format!("{latest}\n"), "{case}");
            }
            Expect::Refused(status, says) => {
                assert_eq!(answer.status, status, "{case}: {answer:?}");
                assert_eq!(answer.content_type, TEXT, "{case}");
                assert!(answer.body.contains(says), "{case}: {answer:?}");
                assert!(answer.body.ends_with('\n'), "{case}");
            }
        }
    }
    // The monitoring endpoint: the last checkpoint cosigned, the log's
    // signature and the witness's.
    for (log, size) in [(user, 20), (system, 7)] {
        let answer = served.checkpoint_of(log);
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.content_type, TEXT);
        let signed = SignedCheckpoint::parse(answer.body.as_bytes()).unwrap();
        assert_eq!(signed.checkpoint(), log.checkpoint(size).checkpoint());
        assert_eq!(signed.note().signatures().len(), 2, "{}", answer.body);
        let witnesses = regis_note::Verifiers::new([witness.clone()]).unwrap();
        let key = log.key();
        let cosigned = signed.verify(&log.origin, &key, &witnesses).unwrap();
        assert_eq!(cosigned.len(), 1);
    }
}

#[test]
fn other_paths_methods_and_unknown_logs_get_plain_text_answers() {
    let (_temp, dir) = temp_witness_dir();
    let register = Register::new("country", [1; 32], "real", (4, 2));
    witness_dir(&dir, &register);
    let served = Serving::start(&dir, Options::default(), Limits::default());
    let cases: [(&str, Answer, u16, &str); 7] = [
        ("healthz", served.get("/healthz"), 200, "ok\n"),
        (
            "a trusted log never cosigned",
            served.checkpoint_of(&register.user),
            404,
            "no checkpoint cosigned",
        ),
        (
            "an origin hash nobody has",
            served.get(&format!("/{}/checkpoint", origin_hash("nobody"))),
            404,
            "no checkpoint cosigned",
        ),
        (
            "an unknown path",
            served.get("/registers"),
            404,
            "a witness serves",
        ),
        (
            "GET of add-checkpoint",
            served.get("/add-checkpoint"),
            405,
            "method not allowed",
        ),
        (
            "POST of healthz",
            served.post("/healthz", b""),
            405,
            "method not allowed",
        ),
        (
            "POST of a checkpoint",
            served.post(
                &format!("/{}/checkpoint", origin_hash(&register.user.origin)),
                b"",
            ),
            405,
            "method not allowed",
        ),
    ];
    for (case, answer, status, says) in cases {
        assert_eq!(answer.status, status, "{case}: {answer:?}");
        assert_eq!(answer.content_type, TEXT, "{case}");
        assert!(answer.body.contains(says), "{case}: {answer:?}");
    }
}

#[test]
fn bodies_too_large_or_too_slow_are_refused() {
    let (_temp, dir) = temp_witness_dir();
    let register = Register::new("country", [1; 32], "real", (4, 2));
    witness_dir(&dir, &register);
    let limits = Limits {
        request_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let served = Serving::start(&dir, Options::default(), limits);
    let send = |request: &[u8]| {
        let mut stream = TcpStream::connect(served.addr).unwrap();
        stream.write_all(request).unwrap();
        read_answer(stream)
    };
    // Declared too large: refused before a byte of it is read.
    let declared = send(
        b"POST /add-checkpoint HTTP/1.1\r\nHost: t\r\nContent-Length: 65537\r\nConnection: close\r\n\r\n",
    );
    // Chunked, no length declared: refused once the body passes the bound.
    let mut chunked =
        b"POST /add-checkpoint HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec();
    chunked.extend_from_slice(format!("{:x}\r\n", 70_000).as_bytes());
    chunked.extend_from_slice(&[b'a'; 70_000]);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let streamed = send(&chunked);
    // Ten bytes of a hundred, then nothing.
    let slow = send(
        b"POST /add-checkpoint HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\nConnection: close\r\n\r\nold 0\n\nex",
    );
    for (case, answer, status, says) in [
        ("declared", declared, 413, "over 65536 bytes"),
        ("chunked", streamed, 413, "over 65536 bytes"),
        ("slow", slow, 408, "did not arrive within 0.3 s"),
    ] {
        assert_eq!(answer.status, status, "{case}: {answer:?}");
        assert!(answer.body.contains(says), "{case}: {answer:?}");
    }
    // None of them changed anything.
    assert_eq!(served.checkpoint_of(&register.user).status, 404);
    let answer = served.add_checkpoint(&register.user.request(0, 4));
    assert_eq!(answer.status, 200, "{answer:?}");
}
