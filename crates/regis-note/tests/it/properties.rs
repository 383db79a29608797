//! Properties over random inputs: signing then verifying round-trips, any
//! single-bit flip of a signed note breaks it, checkpoints and cosigned
//! checkpoints format and parse back to themselves, and unknown signature
//! lines never change the outcome. Case counts follow PROPTEST_CASES
//! (default 256).

use proptest::prelude::*;
use proptest::sample::Index;
use regis_note::{
    Checkpoint, Cosigner, KeyId, KeyName, MAX_COSIGNATURE_TIMESTAMP, Note, NoteSignature,
    NoteSigner, SignedCheckpoint, Verifiers,
};

/// A note text: lines without control characters, each ending in a newline.
fn note_text() -> impl Strategy<Value = String> {
    prop::collection::vec("[^\\x00-\\x1f]{0,30}", 1..6).prop_map(|lines| lines.join("\n") + "\n")
}

fn key_name() -> impl Strategy<Value = KeyName> {
    "[^\\s+\\x00-\\x1f]{1,20}".prop_map(|name| KeyName::new(name).unwrap())
}

fn checkpoint() -> impl Strategy<Value = Checkpoint> {
    (
        "[^\\x00-\\x1f]{1,40}",
        any::<u64>(),
        any::<[u8; 32]>(),
        prop::collection::vec("[^\\x00-\\x1f]{1,20}", 0..3),
    )
        .prop_map(|(origin, size, root, extensions)| {
            extensions.into_iter().fold(
                Checkpoint::new(origin, size, root).unwrap(),
                |checkpoint, line| checkpoint.with_extension_line(line).unwrap(),
            )
        })
}

fn signed_note(text: &str, signer: &NoteSigner) -> String {
    Note::new(text, vec![signer.sign(text)])
        .unwrap()
        .to_string()
}

fn flip(bytes: &str, bit: Index) -> Vec<u8> {
    let mut bytes = bytes.as_bytes().to_vec();
    let bit = bit.index(bytes.len() * 8);
    bytes[bit / 8] ^= 1 << (bit % 8);
    bytes
}

proptest! {
    #[test]
    fn signed_notes_verify(text in note_text(), name in key_name(), seed in any::<[u8; 32]>()) {
        let signer = NoteSigner::from_seed(name, &seed);
        let bytes = signed_note(&text, &signer);
        let note = Note::parse(bytes.as_bytes()).unwrap();
        prop_assert_eq!(note.text(), &text);
        prop_assert_eq!(note.to_string(), bytes);
        let known = Verifiers::new([signer.verifier()]).unwrap();
        let verified = note.verify(&known).unwrap();
        prop_assert_eq!(verified.len(), 1);
        prop_assert_eq!(verified[0].verifier(), &signer.verifier());
    }

    #[test]
    fn any_bit_flip_breaks_a_signed_note(
        text in note_text(), name in key_name(), seed in any::<[u8; 32]>(), bit in any::<Index>(),
    ) {
        let signer = NoteSigner::from_seed(name, &seed);
        let flipped = flip(&signed_note(&text, &signer), bit);
        let known = Verifiers::new([signer.verifier()]).unwrap();
        let outcome = Note::parse(&flipped).map(|note| note.verify(&known).map(|verified| verified.len()));
        prop_assert!(!matches!(outcome, Ok(Ok(_))), "{:?} verified", String::from_utf8_lossy(&flipped));
    }

    #[test]
    fn checkpoints_format_and_parse_back(checkpoint in checkpoint()) {
        let text = checkpoint.to_string();
        let parsed = Checkpoint::parse(&text).unwrap();
        prop_assert_eq!(parsed.to_string(), text);
        prop_assert_eq!(parsed, checkpoint);
    }

    #[test]
    fn cosigned_checkpoints_verify(
        checkpoint in checkpoint(),
        log_seed in any::<[u8; 32]>(),
        witness_seed in any::<[u8; 32]>(),
        timestamp in 0..=MAX_COSIGNATURE_TIMESTAMP,
    ) {
        let origin = checkpoint.origin().to_owned();
        let log = NoteSigner::from_seed(KeyName::new("example.com/log").unwrap(), &log_seed);
        let witness = Cosigner::from_seed(KeyName::new("example.com/witness").unwrap(), &witness_seed);
        let mut signed = SignedCheckpoint::sign(checkpoint.clone(), &log);
        signed.add_signature(witness.cosign(&checkpoint, timestamp).unwrap().into()).unwrap();

        let bytes = signed.to_string();
        let parsed = SignedCheckpoint::parse(bytes.as_bytes()).unwrap();
        prop_assert_eq!(&parsed, &signed);
        let (log, witnesses) = (log.verifier(), Verifiers::new([witness.verifier()]).unwrap());
        let cosigned = parsed.verify(&origin, &log, &witnesses).unwrap();
        prop_assert_eq!(cosigned.len(), 1);
        prop_assert_eq!(cosigned[0].timestamp(), Some(timestamp));
    }

    #[test]
    fn any_bit_flip_breaks_a_cosigned_checkpoint(
        checkpoint in checkpoint(), seed in any::<[u8; 32]>(), timestamp in 0..=MAX_COSIGNATURE_TIMESTAMP, bit in any::<Index>(),
    ) {
        let origin = checkpoint.origin().to_owned();
        let log = NoteSigner::from_seed(KeyName::new("log").unwrap(), &seed);
        let witness = Cosigner::from_seed(KeyName::new("witness").unwrap(), &seed.map(|byte| !byte));
        let mut signed = SignedCheckpoint::sign(checkpoint.clone(), &log);
        signed.add_signature(witness.cosign(&checkpoint, timestamp).unwrap().into()).unwrap();
        let flipped = flip(&signed.to_string(), bit);

        let witnesses = Verifiers::new([witness.verifier()]).unwrap();
        // Verified means: log signature and cosignature both still good.
        let fully_verified = SignedCheckpoint::parse(&flipped).is_ok_and(|parsed| {
            parsed.verify(&origin, &log.verifier(), &witnesses).is_ok_and(|cosigned| cosigned.len() == 1)
        });
        prop_assert!(!fully_verified, "{:?} verified", String::from_utf8_lossy(&flipped));
    }

    #[test]
    fn unknown_signature_lines_are_ignored(
        text in note_text(),
        seed in any::<[u8; 32]>(),
        unknown in prop::collection::vec((key_name(), any::<[u8; 4]>(), prop::collection::vec(any::<u8>(), 0..80)), 0..8),
        position in any::<Index>(),
    ) {
        let signer = NoteSigner::from_seed(KeyName::new("known").unwrap(), &seed);
        let mut signatures: Vec<NoteSignature> = unknown
            .into_iter()
            .filter(|(name, key_id, _)| (name, KeyId::from_bytes(*key_id)) != (signer.name(), signer.key_id()))
            .map(|(name, key_id, signature)| NoteSignature::new(name, KeyId::from_bytes(key_id), &signature))
            .collect();
        signatures.insert(position.index(signatures.len() + 1), signer.sign(&text));
        let count = signatures.len();
        let note = Note::parse(Note::new(text, signatures).unwrap().to_string().as_bytes()).unwrap();
        prop_assert_eq!(note.signatures().len(), count);
        let known = Verifiers::new([signer.verifier()]).unwrap();
        prop_assert_eq!(note.verify(&known).unwrap().len(), 1);
    }
}
