//! transparency-dev/formats vectors: the real sum.golang.org checkpoint and
//! its extra signatures, Go test key pairs, checkpoint parse cases, and
//! static-ct-api (type 0x05) checkpoints. Every vector in the file is checked
//! or declared out of scope.

use crate::common;

use std::collections::BTreeMap;

use crate::common::{Tally, field, has, strings, vectors};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use regis_note::{
    Checkpoint, CheckpointError, KeyError, KeyId, Note, NoteSigner, SignedCheckpoint,
    SignedCheckpointError, Verifier, Verifiers, VerifyError,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

const FILE: &str = "tlog/transparency-dev-formats/formats_vectors.json";

#[test]
fn every_formats_vector() {
    let vectors = vectors(FILE);
    // The sum.golang.org key and the Go test signers are used across vectors.
    let sumdb = vectors
        .iter()
        .find(|vector| has(vector, "vkey") && has(vector, "note"))
        .expect("sumdb vector");
    let sumdb = Verifier::parse(field(sumdb, "vkey")).unwrap();
    let signers: BTreeMap<String, NoteSigner> = vectors
        .iter()
        .filter_map(|vector| vector["keypairs"].as_array())
        .flatten()
        .map(|pair| {
            (
                field(pair, "name").to_owned(),
                NoteSigner::from_go_private_key(field(pair, "skey_go_format")).unwrap(),
            )
        })
        .collect();
    let mut tally = Tally::default();
    for vector in &vectors {
        if has(vector, "get_sth_json") {
            tally.checked(rfc6962_key_id(vector));
        } else if has(vector, "log_id_hex") {
            tally.checked(rfc6962_checkpoint(vector));
        } else if has(vector, "python_verification") {
            tally.checked(extra_signatures(vector, &sumdb));
        } else if has(vector, "vkey") && has(vector, "note") {
            tally.checked(sumdb_checkpoint(vector));
        } else if has(vector, "keypairs") {
            tally.checked(key_pairs(vector, &signers));
        } else if has(vector, "note") {
            tally.checked(derived_log_note(vector, &signers["Log"]));
        } else if has(vector, "valid") {
            tally.checked(checkpoint_texts(vector));
        } else if has(vector, "cases") {
            tally.out_of_scope(
                vector,
                "formats' log identifier, not part of the note or checkpoint formats",
            );
        } else {
            panic!("unrecognised vector: {vector}");
        }
    }
    tally.finish(FILE, vectors.len());
}

fn sumdb_checkpoint(vector: &Value) -> usize {
    let log = Verifier::parse(field(vector, "vkey")).unwrap();
    assert_eq!(log.to_string(), field(vector, "vkey"));
    let bytes = field(vector, "note");
    let signed = SignedCheckpoint::parse(bytes.as_bytes()).unwrap();
    assert_eq!(signed.to_string(), bytes);
    let origin = field(vector, "origin");
    assert_eq!(signed.checkpoint().origin(), origin);
    assert_eq!(signed.checkpoint().size(), vector["size"].as_u64().unwrap());
    assert_eq!(
        signed.verify(origin, &log, &Verifiers::default()).unwrap(),
        []
    );
    assert_eq!(
        signed
            .note()
            .verify(&Verifiers::new([log]).unwrap())
            .unwrap()
            .len(),
        1
    );
    2
}

fn extra_signatures(vector: &Value, sumdb: &Verifier) -> usize {
    let bytes = field(vector, "note");
    let signed = SignedCheckpoint::parse(bytes.as_bytes()).unwrap();
    let origin = signed.checkpoint().origin().to_owned();
    let expected = vector["python_verification"].as_object().unwrap();
    let witnesses = strings(vector, "vkeys");
    assert_eq!(witnesses.len(), expected.len());
    for vkey in &witnesses {
        let known = common::verifiers([*vkey]);
        let verifies = expected[*vkey].as_bool().unwrap();
        assert_eq!(signed.note().verify(&known).is_ok(), verifies, "{vkey}");
        if verifies {
            // Verified as a cosigner of the sum.golang.org checkpoint.
            let cosigned = signed.verify(&origin, sumdb, &known).unwrap();
            assert_eq!(cosigned.len(), 1, "{vkey}");
        }
    }
    let all = common::verifiers(witnesses.iter().copied());
    assert_eq!(
        signed.verify(&origin, sumdb, &all).unwrap().len(),
        witnesses.len()
    );

    // Lines from unknown names are ignored, wherever they are.
    let random = strings(vector, "also_random_sig_lines");
    let mut with_random = bytes.to_owned();
    random
        .iter()
        .for_each(|line| with_random.push_str(&format!("{line}\n")));
    let with_random = SignedCheckpoint::parse(with_random.as_bytes()).unwrap();
    assert_eq!(with_random.note().signatures().len(), 4 + random.len());
    assert_eq!(
        with_random.verify(&origin, sumdb, &all).unwrap().len(),
        witnesses.len()
    );
    witnesses.len() + 2
}

fn key_pairs(vector: &Value, signers: &BTreeMap<String, NoteSigner>) -> usize {
    let pairs = vector["keypairs"].as_array().unwrap();
    for pair in pairs {
        let signer = &signers[field(pair, "name")];
        assert_eq!(signer.verifier().to_string(), field(pair, "vkey"));
        assert_eq!(
            Verifier::parse(field(pair, "vkey")).unwrap(),
            signer.verifier()
        );
    }

    // formats' ParseCheckpoint semantics, on the vector's checkpoint with a
    // 32-byte root (its 6-byte "hash" is not a valid root here, see below).
    let origin = "TestParseCheckpoint";
    let root: [u8; 32] = Sha256::digest("abcdef").into();
    let checkpoint = Checkpoint::new(origin, 42, root).unwrap();
    let log = signers["Log"].verifier();
    let (known, known_again) = (
        signers["Known"].verifier(),
        signers["KnownAgain"].verifier(),
    );
    let witnesses = Verifiers::new([known.clone(), known_again]).unwrap();

    let mut signed = SignedCheckpoint::sign(checkpoint.clone(), &signers["Log"]);
    assert_eq!(signed.verify(origin, &log, &witnesses).unwrap(), []);
    for other in ["Known", "KnownAgain", "Unknown"] {
        signed
            .add_signature(signers[other].sign(signed.note().text()))
            .unwrap();
    }
    let reparsed = SignedCheckpoint::parse(signed.to_string().as_bytes()).unwrap();
    let cosigned = reparsed.verify(origin, &log, &witnesses).unwrap();
    let names: Vec<_> = cosigned
        .iter()
        .map(|signature| signature.verifier().name().as_str())
        .collect();
    assert_eq!(
        names,
        ["Known", "KnownAgain"],
        "unknown signatures are ignored"
    );

    assert!(matches!(
        reparsed.verify("Other", &log, &witnesses),
        Err(VerifyError::WrongOrigin { .. })
    ));

    let witness_only = SignedCheckpoint::sign(checkpoint, &signers["Known"]);
    assert_eq!(
        witness_only.verify(origin, &log, &Verifiers::new([known]).unwrap()),
        Err(VerifyError::NotSignedByLog {
            name: log.name().clone(),
            key_id: log.key_id()
        })
    );
    pairs.len() + 4
}

fn derived_log_note(vector: &Value, log: &NoteSigner) -> usize {
    let bytes = field(vector, "note");
    let note = Note::parse(bytes.as_bytes()).unwrap();
    assert_eq!(
        Note::new(note.text(), vec![log.sign(note.text())])
            .unwrap()
            .to_string(),
        bytes
    );
    assert_eq!(
        note.verify(&Verifiers::new([log.verifier()]).unwrap())
            .unwrap()
            .len(),
        1
    );
    // Its root hash is 6 bytes ("abcdef"): a note, but not a checkpoint here.
    assert_eq!(
        SignedCheckpoint::parse(bytes.as_bytes()),
        Err(SignedCheckpointError::Checkpoint(
            CheckpointError::RootHashLength { actual: 6 }
        ))
    );
    2
}

/// formats does not check the root hash length; this crate requires 32
/// bytes. Each valid case must fail on exactly that, and parse to the
/// expected fields once its root line is replaced by a 32-byte root.
fn checkpoint_texts(vector: &Value) -> usize {
    let valid = vector["valid"].as_array().unwrap();
    let root = BASE64.encode([0x5a; 32]);
    for case in valid {
        let text = field(case, "text");
        let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
        let hash = BASE64.decode(lines[2].trim_end_matches('\n')).unwrap();
        assert_eq!(
            Checkpoint::parse(text),
            Err(CheckpointError::RootHashLength { actual: hash.len() }),
            "{text:?}"
        );
        if let Some(ascii) = case["hash_ascii"].as_str() {
            assert_eq!(hash, ascii.as_bytes());
        }

        let root_line = format!("{root}\n");
        lines[2] = &root_line;
        let text = lines.concat();
        let checkpoint = Checkpoint::parse(&text).unwrap();
        assert_eq!(checkpoint.to_string(), text);
        if let Some(origin) = case["origin"].as_str() {
            assert_eq!(checkpoint.origin(), origin);
        }
        if let Some(size) = case["size"].as_u64() {
            assert_eq!(checkpoint.size(), size);
        }
        let rest: String = checkpoint
            .extension_lines()
            .iter()
            .map(|line| format!("{line}\n"))
            .collect();
        assert_eq!(rest, case["rest"].as_str().unwrap_or(""));
    }

    use CheckpointError::*;
    let expected = [
        MissingLine {
            line: 3,
            what: "root hash",
        },
        EmptyOrigin,
        MissingFinalNewline,
        SizeNotDecimal,
        SizeNotDecimal,
        SizeOverflow,
        RootHashNotBase64,
    ];
    let invalid = strings(vector, "invalid");
    assert_eq!(
        invalid.len(),
        expected.len(),
        "one expected error per invalid case"
    );
    for (text, expected) in invalid.iter().zip(expected) {
        assert_eq!(Checkpoint::parse(text), Err(expected), "{text:?}");
    }
    valid.len() + invalid.len()
}

/// A Sunlight checkpoint signed with an RFC 6962 tree head signature (type
/// 0x05, ECDSA): parsed and its key id checked; this crate verifies only
/// Ed25519, so the signature is an unknown one.
fn rfc6962_checkpoint(vector: &Value) -> usize {
    let bytes = field(vector, "checkpoint");
    let signed = SignedCheckpoint::parse(bytes.as_bytes()).unwrap();
    assert_eq!(signed.to_string(), bytes);
    assert_eq!(signed.checkpoint().origin(), "rome.ct.filippo.io/2024h1");

    let spki = BASE64
        .decode(field(vector, "public_key_spki_der_b64"))
        .unwrap();
    let log_id: [u8; 32] = Sha256::digest(&spki).into();
    assert_eq!(hex::encode(log_id), field(vector, "log_id_hex"));
    let key_id = rfc6962_key_id_of(field(vector, "vkey"), &log_id);
    let signature = &signed.note().signatures()[0];
    assert_eq!(signature.key_id(), Some(key_id));

    // key id ‖ timestamp (ms) ‖ DigitallySigned(hash, signature algorithm, …)
    let payload = signature.payload();
    let timestamp = u64::from_be_bytes(payload[4..12].try_into().unwrap());
    assert_eq!(timestamp, vector["timestamp_ms"].as_u64().unwrap());
    assert_eq!(u64::from(payload[12]), vector["hash_alg"].as_u64().unwrap());
    assert_eq!(u64::from(payload[13]), vector["sig_alg"].as_u64().unwrap());

    assert_eq!(
        signed.note().verify(&Verifiers::default()),
        Err(VerifyError::NoKnownSignature { signatures: 1 })
    );
    3
}

/// The argon2024 verifier key: its type-0x05 key id is checked; turning a
/// get-sth response into a checkpoint is static-ct-api, not this crate.
fn rfc6962_key_id(vector: &Value) -> usize {
    let spki = BASE64
        .decode(field(vector, "public_key_spki_der_b64"))
        .unwrap();
    let key_id = rfc6962_key_id_of(field(vector, "vkey"), &Sha256::digest(&spki).into());
    assert_eq!(key_id.to_string(), field(vector, "key_id_check"));
    1
}

/// Checks a type-0x05 vkey: unsupported by [`Verifier`], its key id is
/// SHA-256(name ‖ 0x0A ‖ 0x05 ‖ log id)[:4]. Returns the key id.
fn rfc6962_key_id_of(vkey: &str, log_id: &[u8; 32]) -> KeyId {
    assert!(matches!(
        Verifier::parse(vkey),
        Err(KeyError::UnsupportedSignatureType { found: 0x05 })
    ));
    let mut fields = vkey.splitn(3, '+');
    let name = common::name(fields.next().unwrap());
    let key_id = KeyId::compute(&name, 0x05, log_id);
    assert_eq!(key_id.to_string(), fields.next().unwrap());
    key_id
}
