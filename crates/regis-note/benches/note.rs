//! Benchmarks: signing a checkpoint note, parsing and verifying a signed
//! checkpoint (one signature; one known and five unknown), cosigning and
//! verifying a cosigned checkpoint, and parsing a verifier key; and, as the
//! peer, bare ed25519-dalek signing and strict verification of the same text
//! (the floor: what a note adds is everything above it).
//!
//! `cargo bench -p regis-note --bench note` (add `-- --quick` for a short run).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::{Signer as _, SigningKey};
use regis_note::{
    Checkpoint, Cosigner, KeyId, KeyName, Note, NoteSignature, NoteSigner, SignedCheckpoint,
    Verifier, Verifiers,
};

const ORIGIN: &str = "registers.example.gov.uk/registers/country";

fn name(name: &str) -> KeyName {
    KeyName::new(name).unwrap()
}

fn checkpoint() -> Checkpoint {
    Checkpoint::new(ORIGIN, 20_852_163, [0x5a; 32]).unwrap()
}

fn bench(c: &mut Criterion) {
    let log = NoteSigner::from_seed(name(ORIGIN), &[1; 32]);
    let log_verifier = log.verifier();
    let no_cosigners = Verifiers::default();

    c.bench_function("sign checkpoint note", |b| {
        b.iter(|| SignedCheckpoint::sign(black_box(checkpoint()), &log).to_string())
    });

    let signed = SignedCheckpoint::sign(checkpoint(), &log);
    let one_signature = signed.to_string();
    c.bench_function("parse and verify, 1 signature", |b| {
        b.iter(|| {
            let parsed = SignedCheckpoint::parse(black_box(one_signature.as_bytes())).unwrap();
            parsed
                .verify(ORIGIN, &log_verifier, &no_cosigners)
                .unwrap()
                .len()
        })
    });

    let mut with_unknown = Note::parse(one_signature.as_bytes()).unwrap();
    for index in 0..5u8 {
        let unknown = NoteSignature::new(
            name(&format!("witness{index}.example")),
            KeyId::from_bytes([index; 4]),
            &[index; 72],
        );
        with_unknown.add_signature(unknown).unwrap();
    }
    let with_unknown = with_unknown.to_string();
    c.bench_function("parse and verify, 1 known + 5 unknown signatures", |b| {
        b.iter(|| {
            let parsed = SignedCheckpoint::parse(black_box(with_unknown.as_bytes())).unwrap();
            parsed
                .verify(ORIGIN, &log_verifier, &no_cosigners)
                .unwrap()
                .len()
        })
    });

    let witness = Cosigner::from_seed(name("witness.example/w1"), &[2; 32]);
    c.bench_function("cosign checkpoint", |b| {
        b.iter(|| {
            witness
                .cosign(black_box(signed.checkpoint()), 1_700_000_000)
                .unwrap()
        })
    });

    let mut cosigned = signed.clone();
    cosigned
        .add_signature(
            witness
                .cosign(signed.checkpoint(), 1_700_000_000)
                .unwrap()
                .into(),
        )
        .unwrap();
    let cosigned = cosigned.to_string();
    let witnesses = Verifiers::new([witness.verifier()]).unwrap();
    c.bench_function("parse and verify, log signature + 1 cosignature", |b| {
        b.iter(|| {
            let parsed = SignedCheckpoint::parse(black_box(cosigned.as_bytes())).unwrap();
            parsed
                .verify(ORIGIN, &log_verifier, &witnesses)
                .unwrap()
                .len()
        })
    });

    let raw = SigningKey::from_bytes(&[1; 32]);
    let text = checkpoint().to_string();
    c.bench_function("peer: ed25519-dalek sign, same text", |b| {
        b.iter(|| raw.sign(black_box(text.as_bytes())))
    });
    let signature = raw.sign(text.as_bytes());
    let raw_verifier = raw.verifying_key();
    c.bench_function("peer: ed25519-dalek verify_strict, same text", |b| {
        b.iter(|| {
            raw_verifier
                .verify_strict(black_box(text.as_bytes()), &signature)
                .unwrap()
        })
    });

    let vkey = log_verifier.to_string();
    c.bench_function("parse verifier key", |b| {
        b.iter(|| Verifier::parse(black_box(&vkey)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
