//! sigsum-go vectors: a checkpoint signed with a known seed, the mutations
//! that must break it, signature lines that must be ignored or rejected, and a
//! cosignature line. Every vector in the file is checked.

use crate::common::{Tally, field, has, hex32, name, strings, vectors};
use regis_note::{
    Checkpoint, Cosignature, KeyId, Note, NoteError, NoteSignature, NoteSigner, SignatureError,
    SignatureLineError, SignedCheckpoint, SignedCheckpointError, Verifiers, VerifyError,
};
use serde_json::Value;

const FILE: &str = "tlog/sigsum-go/sigsum_checkpoint_vectors.json";

#[test]
fn every_sigsum_vector() {
    let vectors = vectors(FILE);
    let mut tally = Tally::default();
    for vector in &vectors {
        if has(vector, "checkpoint") {
            tally.checked(signed_checkpoint(vector));
        } else if has(vector, "line") {
            tally.checked(cosignature_line(vector, &vectors));
        } else {
            panic!("unrecognised vector: {vector}");
        }
    }
    tally.finish(FILE, vectors.len());
}

fn signed_checkpoint(vector: &Value) -> usize {
    let origin = field(vector, "origin");
    let signer = NoteSigner::from_seed(name(origin), &hex32(field(vector, "ed25519_seed_hex")));
    let log = signer.verifier();
    assert_eq!(
        log.public_key().as_bytes(),
        &hex32(field(vector, "ed25519_public_hex"))
    );
    assert_eq!(log.key_id().to_string(), field(vector, "key_id_hex"));

    // The desc: size 10, root 1c0e47 then 29 zero bytes.
    let mut root = [0; 32];
    root[..3].copy_from_slice(&[0x1c, 0x0e, 0x47]);
    let bytes = field(vector, "checkpoint");
    let signed = SignedCheckpoint::sign(Checkpoint::new(origin, 10, root).unwrap(), &signer);
    assert_eq!(signed.to_string(), bytes);
    let parsed = SignedCheckpoint::parse(bytes.as_bytes()).unwrap();
    assert_eq!(parsed, signed);
    let none = Verifiers::default();
    assert_eq!(parsed.verify(origin, &log, &none).unwrap(), []);

    let mut cases = 1;
    for mutation in strings(vector, "must_reject_after_mutation") {
        let (mutated, mutated_origin) = mutate(&parsed, mutation);
        let expected = if mutation.starts_with("key id") {
            // Another key id is another, unknown key.
            VerifyError::NotSignedByLog {
                name: log.name().clone(),
                key_id: log.key_id(),
            }
        } else {
            VerifyError::InvalidSignature {
                line: 5,
                name: log.name().clone(),
                key_id: log.key_id(),
                error: SignatureError::Mismatch,
            }
        };
        assert_eq!(
            mutated.verify(&mutated_origin, &log, &none),
            Err(expected),
            "{mutation}"
        );
        cases += 1;
    }

    // Unknown lines are ignored after, before and around the log's line.
    let lines = &vector["extra_signature_lines"];
    let (text, log_line) = bytes.split_once("\n\n").unwrap();
    let ignored = strings(lines, "ignored_ok");
    let orders = ignored
        .iter()
        .flat_map(|line| {
            [
                vec![log_line.trim_end(), line],
                vec![line, log_line.trim_end()],
            ]
        })
        .chain([[&[log_line.trim_end()][..], &ignored].concat()]);
    for order in orders {
        let note = format!("{text}\n\n{}\n", order.join("\n"));
        let with_unknown = SignedCheckpoint::parse(note.as_bytes()).unwrap();
        assert_eq!(
            with_unknown.verify(origin, &log, &none).unwrap(),
            [],
            "{note}"
        );
        cases += 1;
    }
    // "— example.org/log DEADB (invalid base64 -> checkpoint parse fails)"
    let failing = field(lines, "parse_failure").split(" (").next().unwrap();
    let note = format!("{bytes}{failing}\n");
    assert_eq!(
        SignedCheckpoint::parse(note.as_bytes()),
        Err(SignedCheckpointError::Note(NoteError::SignatureLine {
            line: 6,
            error: SignatureLineError::NotBase64
        }))
    );
    cases + 1
}

/// Applies one named mutation to the checkpoint or its signature line;
/// returns the re-parsed result and its origin.
fn mutate(parsed: &SignedCheckpoint, mutation: &str) -> (SignedCheckpoint, String) {
    let signature = &parsed.note().signatures()[0];
    let checkpoint = parsed.checkpoint();
    let (mut origin, mut size, mut root) = (
        checkpoint.origin().to_owned(),
        checkpoint.size(),
        *checkpoint.root_hash(),
    );
    let mut payload = signature.payload().to_vec();
    match mutation {
        "origin+'x'" => origin.push('x'),
        "key id byte 2 ^= 1" => payload[2] ^= 1,
        "size+1" => size += 1,
        "root hash byte 3 ^= 1" => root[3] ^= 1,
        "signature byte 4 ^= 1" => payload[4 + 4] ^= 1,
        other => panic!("unrecognised mutation {other:?}"),
    }
    let text = Checkpoint::new(origin.clone(), size, root)
        .unwrap()
        .to_string();
    let key_id = KeyId::from_bytes(payload[..4].try_into().unwrap());
    let line = NoteSignature::new(signature.name().clone(), key_id, &payload[4..]);
    let bytes = Note::new(text, vec![line]).unwrap().to_string();
    (SignedCheckpoint::parse(bytes.as_bytes()).unwrap(), origin)
}

fn cosignature_line(vector: &Value, vectors: &[Value]) -> usize {
    let line = field(vector, "line");
    let cosignature = Cosignature::parse(line.trim_end_matches('\n')).unwrap();
    // The desc's values.
    assert_eq!(cosignature.name().as_str(), "example.org/witness-key");
    assert_eq!(
        cosignature.key_id(),
        KeyId::from_bytes([117, 230, 157, 109])
    );
    assert_eq!(cosignature.timestamp(), 0xe79ff9d79a75ca1d);
    let mut signature = [0; 64];
    signature[..3].copy_from_slice(&[0xfd, 0xca, 0x1d]);
    assert_eq!(cosignature.signature(), &signature);
    assert_eq!(format!("{cosignature}\n"), line);

    // A response with a log line and a cosignature line: only one of them is
    // a cosignature/v1 (76 bytes).
    let log_line = vectors
        .iter()
        .filter_map(|vector| vector["extra_signature_lines"]["ignored_ok"].as_array())
        .flatten()
        .map(|line| line.as_str().unwrap())
        .next()
        .unwrap();
    let response = format!("{log_line}\n{line}");
    let lines = NoteSignature::parse_lines(response.as_bytes()).unwrap();
    let cosignatures: Vec<_> = lines
        .iter()
        .filter_map(|line| Cosignature::try_from(line).ok())
        .collect();
    assert_eq!(cosignatures, [cosignature]);
    2
}
