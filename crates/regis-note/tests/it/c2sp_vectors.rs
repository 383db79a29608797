//! Examples from the C2SP spec texts: the verifiable signed-note example,
//! format-only notes and checkpoints, the cosignature/v1 line and signed
//! message, and the checkpoints embedded in tlog-witness and tlog-proof
//! examples. Every vector in the file is checked or declared out of scope.

use crate::common::{Tally, field, has, name, vectors};
use regis_note::{
    Checkpoint, Cosignature, CosignatureError, Cosigner, KeyId, Note, NoteError,
    SignatureLineError, SignatureType, SignedCheckpoint, SignedCheckpointError, Verifier,
    Verifiers, VerifyError, cosignature_message,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

const FILE: &str = "tlog/c2sp/c2sp_spec_examples.json";

#[test]
fn every_c2sp_example() {
    let vectors = vectors(FILE);
    let cosigned = vectors
        .iter()
        .find(|vector| has(vector, "decoded_cosignature"))
        .expect("cosigned example");
    let cosigned = SignedCheckpoint::parse(field(cosigned, "note").as_bytes()).unwrap();
    let mut tally = Tally::default();
    for vector in &vectors {
        match field(vector, "spec") {
            "signed-note" if has(vector, "vkey") => tally.checked(verifiable_note(vector)),
            "signed-note" => tally.checked(format_only_note(vector)),
            "tlog-checkpoint / tlog-cosignature" => tally.checked(cosigned_checkpoint(vector)),
            "tlog-cosignature" if has(vector, "signed_message") => {
                tally.checked(cosignature_signed_message(vector, cosigned.checkpoint()))
            }
            "tlog-cosignature" => tally.out_of_scope(
                vector,
                "ML-DSA-44 subtree/v1 cosignatures are not supported",
            ),
            "tlog-witness" => tally.checked(witness_request(vector, &cosigned)),
            "tlog-proof" => tally.checked(proof_checkpoint(vector)),
            "tlog-tiles" => tally.out_of_scope(vector, "tile paths: regis-merkle"),
            other => panic!("unrecognised spec {other:?}: {vector}"),
        }
    }
    tally.finish(FILE, vectors.len());
}

fn verifiable_note(vector: &Value) -> usize {
    let verifier = Verifier::parse(field(vector, "vkey")).unwrap();
    assert_eq!(verifier.to_string(), field(vector, "vkey"));
    let note = Note::parse(field(vector, "note").as_bytes()).unwrap();
    assert_eq!(note.to_string(), field(vector, "note"));
    let known = Verifiers::new([verifier]).unwrap();
    assert_eq!(
        note.verify(&known).is_ok(),
        vector["verifies"].as_bool().unwrap()
    );
    1
}

fn format_only_note(vector: &Value) -> usize {
    let bytes = field(vector, "note");
    let note = Note::parse(bytes.as_bytes()).unwrap();
    // The text holds a blank line: the signatures follow the last one.
    assert_eq!(note.text(), field(vector, "note_text_is"));
    assert_eq!(note.signatures().len(), 1);
    assert_eq!(
        note.signatures()[0].name().as_str(),
        "quasimodo.example/salvatore"
    );
    assert_eq!(note.to_string(), bytes);
    assert_eq!(
        note.verify(&Verifiers::default()),
        Err(VerifyError::NoKnownSignature { signatures: 1 })
    );
    1
}

fn cosigned_checkpoint(vector: &Value) -> usize {
    let bytes = field(vector, "note");
    let signed = SignedCheckpoint::parse(bytes.as_bytes()).unwrap();
    assert_eq!(signed.to_string(), bytes);
    let [log, witness] = signed.note().signatures() else {
        panic!("two signature lines")
    };
    assert_eq!(log.name().as_str(), signed.checkpoint().origin());
    assert_eq!(
        Cosignature::try_from(log),
        Err(CosignatureError::Length { actual: 68 })
    );

    let decoded = &vector["decoded_cosignature"];
    let cosignature = Cosignature::try_from(witness).unwrap();
    assert_eq!(cosignature.name().as_str(), "witness.example.com/w1");
    assert_eq!(
        cosignature.key_id().to_string(),
        field(decoded, "key_id_hex")
    );
    assert_eq!(
        cosignature.timestamp(),
        decoded["timestamp"].as_u64().unwrap()
    );
    assert_eq!(
        cosignature.signature().len() as u64,
        decoded["sig_len"].as_u64().unwrap()
    );
    assert_eq!(cosignature.to_string(), witness.to_string());
    2
}

fn cosignature_signed_message(vector: &Value, checkpoint: &Checkpoint) -> usize {
    let expected = field(vector, "signed_message");
    let time_line = expected.lines().nth(1).unwrap();
    let timestamp: u64 = time_line.strip_prefix("time ").unwrap().parse().unwrap();
    assert_eq!(
        cosignature_message(&checkpoint.to_string(), timestamp),
        expected.as_bytes()
    );

    // key_id_rule and signature_bytes, on a cosigner of our own.
    let cosigner = Cosigner::from_seed(name("witness.example.com/w1"), &[4; 32]);
    let public_key = cosigner.verifier().public_key().to_bytes();
    let digest = Sha256::new()
        .chain_update("witness.example.com/w1\n")
        .chain_update([0x04])
        .chain_update(public_key)
        .finalize();
    assert_eq!(
        cosigner.key_id(),
        KeyId::from_bytes(digest[..4].try_into().unwrap())
    );
    assert_eq!(
        cosigner.verifier().signature_type(),
        SignatureType::CosignatureV1
    );
    let cosignature = cosigner.cosign(checkpoint, timestamp).unwrap();
    assert_eq!(
        regis_note::NoteSignature::from(&cosignature)
            .payload()
            .len(),
        76
    );
    3
}

/// The checkpoint after the add-checkpoint request's blank line (the rest of
/// the request is the witness protocol, not this crate).
fn witness_request(vector: &Value, cosigned: &SignedCheckpoint) -> usize {
    let body = field(vector, "request_body");
    let (_, note) = body.split_once("\n\n").unwrap();
    let signed = SignedCheckpoint::parse(note.as_bytes()).unwrap();
    assert_eq!(signed.checkpoint(), cosigned.checkpoint());
    assert_eq!(signed.note().signatures().len(), 2);
    1
}

/// The tlog-proof example elides its signature ("hI2DJw[...]1roloI="): the
/// checkpoint text parses, the note does not.
fn proof_checkpoint(vector: &Value) -> usize {
    let text = field(vector, "text");
    let (_, note) = text.split_once("\n\n").unwrap();
    let (body, _) = note.split_once("\n\n").unwrap();
    let checkpoint = Checkpoint::parse(&format!("{body}\n")).unwrap();
    assert_eq!(
        (checkpoint.origin(), checkpoint.size()),
        ("example.com/fancylog", 109482)
    );
    assert_eq!(
        SignedCheckpoint::parse(note.as_bytes()),
        Err(SignedCheckpointError::Note(NoteError::SignatureLine {
            line: 5,
            error: SignatureLineError::NotBase64
        }))
    );
    2
}
