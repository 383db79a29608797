//! golang.org/x/mod sumdb/note (and tlog) vectors: signer and verifier keys,
//! the deterministic signed note, notes Go rejects, bad verifier keys and the
//! signature-count limit. Every vector in the file is checked or declared out
//! of scope for this crate.

use std::collections::BTreeMap;

use crate::common::{Tally, field, has, hex32, name, strings, vectors};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use regis_note::{
    Checkpoint, KeyError, KeyId, MAX_SIGNATURES, Note, NoteError, NoteSignature, NoteSigner,
    SignatureError, SignatureLineError, Verifier, Verifiers, VerifyError,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

const FILE: &str = "tlog/golang-x-mod-sumdb/note_and_tlog_vectors.json";

#[test]
fn every_go_vector() {
    let vectors = vectors(FILE);
    // Some vectors refer to keys given in others.
    let vkeys: BTreeMap<String, Verifier> = vectors
        .iter()
        .filter(|vector| has(vector, "vkey"))
        .map(|vector| {
            let verifier = Verifier::parse(field(vector, "vkey")).unwrap();
            (verifier.name().to_string(), verifier)
        })
        .collect();
    let peter_note = vectors
        .iter()
        .find(|vector| has(vector, "skey"))
        .map(|vector| field(vector, "signed_note"));
    let peter_note = peter_note.expect("the signed-note vector");
    let mut tally = Tally::default();
    for vector in &vectors {
        if has(vector, "skey") {
            tally.checked(signer_and_signed_note(vector));
        } else if has(vector, "signed_note_two_sigs") {
            tally.checked(two_signatures(vector, &vkeys));
        } else if has(vector, "bad_vkeys") {
            tally.checked(bad_verifier_keys(vector, &vkeys["PeterNeumann"]));
        } else if has(vector, "malformed") {
            tally.checked(malformed_notes(vector));
        } else if has(vector, "signed_note") {
            tally.checked(spliced_signature(vector, &vkeys["PeterNeumann"]));
        } else if has(vector, "limit") {
            tally.checked(signature_limit(vector, peter_note, &vkeys["PeterNeumann"]));
        } else if has(vector, "tree_size") {
            tally.checked(tree_note(vector));
        } else if has(vector, "want") {
            tally.out_of_scope(vector, "sumdb record framing, not a note");
        } else if has(vector, "examples") || has(vector, "columns") {
            tally.out_of_scope(vector, "tile paths and counts: regis-merkle");
        } else {
            panic!("unrecognised vector: {vector}");
        }
    }
    tally.finish(FILE, vectors.len());
}

fn signer_and_signed_note(vector: &Value) -> usize {
    let signer = NoteSigner::from_go_private_key(field(vector, "skey")).unwrap();
    assert_eq!(signer.name().as_str(), field(vector, "key_name"));
    assert_eq!(signer.key_id().to_string(), field(vector, "key_id_hex"));
    let verifier = signer.verifier();
    assert_eq!(verifier.to_string(), field(vector, "vkey"));
    assert_eq!(Verifier::parse(field(vector, "vkey")).unwrap(), verifier);
    assert_eq!(
        verifier.public_key().as_bytes(),
        &hex32(field(vector, "ed25519_public_hex"))
    );
    let from_seed = NoteSigner::from_seed(
        name(field(vector, "key_name")),
        &hex32(field(vector, "ed25519_seed_hex")),
    );
    assert_eq!(from_seed.verifier(), verifier);

    // Signing reproduces Go's bytes; the note parses back and verifies.
    let text = field(vector, "note_text");
    let signed = field(vector, "signed_note");
    assert_eq!(
        Note::new(text, vec![signer.sign(text)])
            .unwrap()
            .to_string(),
        signed
    );
    let note = Note::parse(signed.as_bytes()).unwrap();
    assert_eq!(note.text(), text);
    let known = Verifiers::new([verifier.clone()]).unwrap();
    let verified = note.verify(&known).unwrap();
    assert_eq!(verified.len(), 1);
    assert_eq!(verified[0].verifier(), &verifier);
    assert_eq!(verified[0].timestamp(), None);

    // The same key through PKCS#8 PEM signs the same bytes.
    let pem = signer.to_pkcs8_pem().unwrap();
    let reread = NoteSigner::from_pkcs8_pem(signer.name().clone(), &pem).unwrap();
    assert_eq!(reread.sign(text), signer.sign(text));
    7
}

fn two_signatures(vector: &Value, vkeys: &BTreeMap<String, Verifier>) -> usize {
    let (peter, enoch) = (&vkeys["PeterNeumann"], &vkeys["EnochRoot"]);
    assert_eq!(enoch.key_id().to_string(), field(vector, "key_id_hex"));
    assert_eq!(
        enoch.public_key().as_bytes(),
        &hex32(field(vector, "ed25519_public_hex"))
    );
    let note = Note::parse(field(vector, "signed_note_two_sigs").as_bytes()).unwrap();
    assert_eq!(note.signatures().len(), 2);

    let verified_by = |known: Vec<&Verifier>| -> Vec<String> {
        let known = Verifiers::new(known.into_iter().cloned()).unwrap();
        let verified = note.verify(&known).unwrap();
        verified
            .iter()
            .map(|signature| signature.verifier().name().to_string())
            .collect()
    };
    assert_eq!(
        verified_by(vec![peter, enoch]),
        ["PeterNeumann", "EnochRoot"]
    );
    assert_eq!(
        verified_by(vec![enoch, peter]),
        ["PeterNeumann", "EnochRoot"],
        "line order"
    );
    // With only Peter known, Enoch's signature is kept but not verified.
    assert_eq!(verified_by(vec![peter]), ["PeterNeumann"]);
    assert_eq!(verified_by(vec![enoch]), ["EnochRoot"]);

    let ambiguous = Verifiers::new([enoch.clone(), enoch.clone()]).unwrap_err();
    assert!(
        ambiguous
            .to_string()
            .contains("ambiguous key EnochRoot+af0cfe78"),
        "{ambiguous}"
    );
    6
}

fn bad_verifier_keys(vector: &Value, good: &Verifier) -> usize {
    let bad = strings(vector, "bad_vkeys");
    let reasons = strings(vector, "reasons");
    assert_eq!(bad.len(), reasons.len());
    for (vkey, reason) in bad.iter().zip(&reasons) {
        let error = Verifier::parse(vkey).unwrap_err();
        let key = vkey.splitn(3, '+').nth(2).unwrap();
        let expected = if BASE64.decode(key).is_err() {
            // Go's lenient base64 ignores non-zero trailing bits ("…EY=="):
            // we reject such non-canonical base64 before looking at the length.
            matches!(error, KeyError::KeyNotBase64)
        } else if reason.contains("wrong length") {
            matches!(error, KeyError::KeyLength { expected: 32, .. })
        } else if reason.contains("unknown algorithm") {
            matches!(error, KeyError::UnsupportedSignatureType { .. })
        } else {
            panic!("unrecognised reason {reason:?}")
        };
        assert!(expected, "{vkey} ({reason}): {error:?}");
    }

    // The vector's note: every proper substring and every single-byte
    // increment of a good key must be rejected.
    let good = good.to_string();
    let mut cases = bad.len();
    for start in 0..good.len() {
        for end in start..=good.len() {
            if (start, end) != (0, good.len()) {
                assert!(
                    Verifier::parse(&good[start..end]).is_err(),
                    "{:?}",
                    &good[start..end]
                );
                cases += 1;
            }
        }
    }
    for index in 0..good.len() {
        let mut mangled = good.clone().into_bytes();
        mangled[index] = mangled[index].wrapping_add(1);
        let mangled = String::from_utf8(mangled).unwrap();
        assert!(Verifier::parse(&mangled).is_err(), "{mangled}");
        cases += 1;
    }
    cases
}

fn malformed_notes(vector: &Value) -> usize {
    use NoteError::*;
    let expected = [
        MissingSeparator,
        NoSignatures,
        MissingFinalNewline,
        ControlCharacter {
            line: 1,
            byte: 0x01,
        },
        InvalidUtf8 { line: 1 },
        MissingFinalNewline,
        SignatureLine {
            line: 5,
            error: SignatureLineError::MissingPrefix,
        },
    ];
    let malformed = strings(vector, "malformed");
    assert_eq!(
        malformed.len(),
        expected.len(),
        "one expected error per malformed note"
    );
    for (note, expected) in malformed.iter().zip(expected) {
        // The vector's desc: U+00FF stands for the raw byte 0xff.
        let bytes: Vec<u8> = note
            .chars()
            .flat_map(|c| {
                if c == '\u{ff}' {
                    vec![0xff]
                } else {
                    c.to_string().into_bytes()
                }
            })
            .collect();
        assert_eq!(Note::parse(&bytes), Err(expected), "{note:?}");
    }
    malformed.len()
}

fn spliced_signature(vector: &Value, peter: &Verifier) -> usize {
    let note = Note::parse(field(vector, "signed_note").as_bytes()).unwrap();
    let known = Verifiers::new([peter.clone()]).unwrap();
    let error = note.verify(&known).unwrap_err();
    assert_eq!(
        error,
        VerifyError::InvalidSignature {
            line: 4,
            name: peter.name().clone(),
            key_id: peter.key_id(),
            error: SignatureError::Length {
                expected: 64,
                actual: 67
            },
        }
    );
    assert!(
        error.to_string().contains("PeterNeumann+c74f20a3"),
        "{error}"
    );
    1
}

/// Peter's signed note plus unknown signature lines, up to and over the limit.
fn signature_limit(vector: &Value, peter_note: &str, peter: &Verifier) -> usize {
    let limit = usize::try_from(vector["limit"].as_u64().unwrap()).unwrap();
    assert_eq!(MAX_SIGNATURES, limit);
    // signed-note: verifiers must accept at least 16.
    const { assert!(MAX_SIGNATURES >= 16) };
    let note_with = |signatures: usize| {
        let mut note = peter_note.to_owned();
        for index in 1..signatures {
            let unknown = NoteSignature::new(
                name(&format!("unknown{index}")),
                KeyId::from_bytes([0; 4]),
                &[0; 64],
            );
            note.push_str(&format!("{unknown}\n"));
        }
        note
    };
    let known = Verifiers::new([peter.clone()]).unwrap();
    for count in [16, limit] {
        let note = Note::parse(note_with(count).as_bytes()).unwrap();
        assert_eq!(note.signatures().len(), count);
        assert_eq!(note.verify(&known).unwrap().len(), 1);
    }
    assert_eq!(
        Note::parse(note_with(limit + 1).as_bytes()),
        Err(NoteError::TooManySignatures { found: limit + 1 })
    );
    3
}

fn tree_note(vector: &Value) -> usize {
    let text = field(vector, "note_text");
    let checkpoint = Checkpoint::parse(text).unwrap();
    assert_eq!(checkpoint.origin(), "go.sum database tree");
    assert_eq!(checkpoint.size(), vector["tree_size"].as_u64().unwrap());
    // The desc: the hash is RecordHash("hello world") = SHA-256(0x00 ‖ "hello world").
    let record_hash: [u8; 32] = Sha256::new()
        .chain_update([0])
        .chain_update("hello world")
        .finalize()
        .into();
    assert_eq!(checkpoint.root_hash(), &record_hash);
    let rebuilt = Checkpoint::new(checkpoint.origin(), checkpoint.size(), record_hash).unwrap();
    assert_eq!(rebuilt.to_string(), text);
    assert!(text.contains(field(vector, "hash_b64")));
    1
}
