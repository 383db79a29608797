//! A proptest-driven fuzzer for every parser in the crate: notes, signed
//! checkpoints, checkpoints, signature and cosignature lines, verifier keys,
//! Go private keys, PKCS#8 PEM, tlog-proofs, tlog-policy files and
//! tlog-witness bodies. Inputs are arbitrary bytes and mutations (bit flips,
//! byte edits, inserted format tokens, truncation, splicing) of every string
//! in the vector files, the Tessera checkpoints, a PEM key, a tlog-proof, a
//! policy and an add-checkpoint request.
//!
//! Oracles: no parser panics; every error displays a message; and whatever
//! parses formats back to exactly the input (so parsing is canonical), a
//! parsed note verifies or fails with a typed error, a parsed policy's quorum
//! is met by all its witnesses and by none exactly when it is `none`, and a
//! parsed add-checkpoint request is judged without panicking.
//!
//! Cases per test follow PROPTEST_CASES (default 4,096, for CI). A long run:
//! `PROPTEST_CASES=200000 cargo test --release -p regis-note --test fuzz`.

use std::fmt::Display;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::Index;
use regis_merkle::{Edge, MemoryHashes, consistency_proof, inclusion_proof, leaf_hash};
use regis_note::{
    AddCheckpoint, Checkpoint, Cosignature, Cosigner, KeyName, MAX_POLICY_LOGS,
    MAX_POLICY_WITNESSES, Note, NoteSignature, NoteSigner, SignedCheckpoint, TlogProof, Verifier,
    Verifiers, WitnessPolicy, WitnessedTree, check_add_checkpoint, format_size_body,
    parse_size_body,
};
use serde_json::Value;

const VECTOR_FILES: [&str; 4] = [
    "tlog/golang-x-mod-sumdb/note_and_tlog_vectors.json",
    "tlog/transparency-dev-formats/formats_vectors.json",
    "tlog/sigsum-go/sigsum_checkpoint_vectors.json",
    "tlog/c2sp/c2sp_spec_examples.json",
];

/// Pieces of the formats, spliced in by mutations.
const TOKENS: [&str; 24] = [
    "\n",
    "\n\n",
    "\u{2014} ",
    "\u{2014}",
    " ",
    "+",
    "=",
    "==",
    "0",
    "/",
    "\r",
    "\0",
    "\u{a0}",
    "PRIVATE+KEY+",
    "-----BEGIN PRIVATE KEY-----\n",
    "-----END PRIVATE KEY-----\n",
    "\t",
    "#",
    "old ",
    "witness ",
    "group ",
    "quorum ",
    " any ",
    " none",
];

/// Seeds: every string in the vector files, the Tessera checkpoints, a PEM.
fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        fn strings(value: &Value, out: &mut Vec<Vec<u8>>) {
            match value {
                Value::String(string) => out.push(string.as_bytes().to_vec()),
                Value::Array(items) => items.iter().for_each(|item| strings(item, out)),
                Value::Object(fields) => fields.values().for_each(|field| strings(field, out)),
                _ => {}
            }
        }
        let mut corpus = Vec::new();
        for file in VECTOR_FILES {
            strings(&regis_fixtures::read_json(file), &mut corpus);
        }
        for path in regis_fixtures::files("tlog/tessera-testdata/testdata/log", "") {
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("checkpoint")
            {
                corpus.push(std::fs::read(path).unwrap());
            }
        }
        let cosigner = Cosigner::from_seed(KeyName::new("w").unwrap(), &[3; 32]);
        corpus.push(cosigner.to_pkcs8_pem().unwrap().as_bytes().to_vec());
        let checkpoint = Checkpoint::new("example.com/log", 7, [1; 32]).unwrap();
        corpus.push(
            cosigner
                .cosign(&checkpoint, 1_700_000_000)
                .unwrap()
                .to_string()
                .into_bytes(),
        );
        corpus.push(proof_seed().to_string().into_bytes());
        corpus.push(crate::common::example_policy().0.into_bytes());
        corpus.push(add_checkpoint_seed().to_bytes());
        corpus.push(b"20852014\n".to_vec());
        corpus
    })
}

/// The log key of the tlog-proof seed.
fn proof_signer() -> NoteSigner {
    NoteSigner::from_seed(
        KeyName::new("example.com/registers/country").unwrap(),
        &[5; 32],
    )
}

/// A valid tlog-proof: leaf 1 of a 3-leaf tree.
fn proof_seed() -> TlogProof {
    let leaves: Vec<[u8; 32]> = (0..3u8).map(|i| leaf_hash(&[i])).collect();
    let stored = MemoryHashes::from_leaf_hashes(leaves);
    let edge = Edge::from_reader(&stored, 3).unwrap();
    let path = inclusion_proof(&stored, &edge, 1).unwrap();
    let checkpoint = Checkpoint::new("example.com/registers/country", 3, edge.root()).unwrap();
    let signed = SignedCheckpoint::sign(checkpoint, &proof_signer());
    TlogProof::new(Some(b"extra".to_vec()), 1, path, signed)
}

/// A valid add-checkpoint request: from 3 leaves to 7, signed by the
/// tlog-proof seed's log.
fn add_checkpoint_seed() -> AddCheckpoint {
    let leaves: Vec<[u8; 32]> = (0..7u8).map(|i| leaf_hash(&[i])).collect();
    let stored = MemoryHashes::from_leaf_hashes(leaves);
    let edge = Edge::from_reader(&stored, 7).unwrap();
    let checkpoint = Checkpoint::new("example.com/registers/country", 7, edge.root()).unwrap();
    AddCheckpoint {
        old_size: 3,
        proof: consistency_proof(&stored, &edge, 3).unwrap(),
        checkpoint: SignedCheckpoint::sign(checkpoint, &proof_signer()),
    }
}

/// Keys the fuzzed notes are verified against: some seeds carry their
/// signatures, so mutations reach the verification paths.
struct Keys {
    known: Verifiers,
    logs: Vec<Verifier>,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let vkeys = [
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop",
            "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8",
            "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx",
            "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        ];
        let logs: Vec<Verifier> = vkeys
            .iter()
            .map(|vkey| Verifier::parse(vkey).unwrap())
            .chain([proof_signer().verifier()])
            .collect();
        let cosigner = Cosigner::from_seed(KeyName::new("w").unwrap(), &[3; 32]);
        let known = Verifiers::new(logs.iter().cloned().chain([cosigner.verifier()])).unwrap();
        Keys { known, logs }
    })
}

/// The value, after checking that an error at least says something.
fn typed<T, E: Display>(result: Result<T, E>) -> Option<T> {
    result
        .map_err(|error| assert!(!error.to_string().is_empty(), "an error without a message"))
        .ok()
}

/// Feeds `input` to every parser and checks the oracles.
fn exercise(input: &[u8]) {
    let keys = keys();
    if let Some(note) = typed(Note::parse(input)) {
        assert_eq!(
            note.to_string().as_bytes(),
            input,
            "a parsed note formats back to its bytes"
        );
        if let Some(verified) = typed(note.verify(&keys.known)) {
            assert!(!verified.is_empty());
        }
    }
    if let Some(signed) = typed(SignedCheckpoint::parse(input)) {
        assert_eq!(signed.to_string().as_bytes(), input);
        let origin = signed.checkpoint().origin();
        for log in &keys.logs {
            typed(signed.verify(origin, log, &keys.known));
        }
    }
    if let Some(proof) = typed(TlogProof::parse(input)) {
        assert_eq!(proof.to_string().as_bytes(), input);
        let origin = proof.checkpoint().checkpoint().origin();
        for log in &keys.logs {
            typed(proof.verify(&[0; 32], origin, log, &keys.known));
        }
    }
    if let Some(policy) = typed(WitnessPolicy::parse(input)) {
        assert!(policy.logs().len() <= MAX_POLICY_LOGS);
        assert!(policy.witnesses().len() <= MAX_POLICY_WITNESSES);
        let names = policy.witnesses().iter().map(|w| w.name.as_str());
        // Every threshold is between 1 and its group's size.
        assert!(policy.quorum_met(names));
        assert_eq!(
            policy.quorum_met(std::iter::empty()),
            !policy.requires_cosignatures()
        );
    }
    if let Some(request) = typed(AddCheckpoint::parse(input)) {
        assert_eq!(request.to_bytes(), input);
        let checkpoint = request.checkpoint.checkpoint();
        let latest = WitnessedTree {
            size: request.old_size,
            root: *checkpoint.root_hash(),
        };
        for log in &keys.logs {
            let trusted = Some(std::slice::from_ref(log));
            for latest in [None, Some(&latest)] {
                typed(check_add_checkpoint(&request, trusted, latest));
            }
        }
    }
    if let Some(size) = typed(parse_size_body(input)) {
        assert_eq!(format_size_body(size).as_bytes(), input);
    }
    if let Some(lines) = typed(NoteSignature::parse_lines(input)) {
        let formatted: String = lines.iter().map(|line| format!("{line}\n")).collect();
        assert_eq!(formatted.as_bytes(), input);
    }
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    if let Some(checkpoint) = typed(Checkpoint::parse(text)) {
        assert_eq!(checkpoint.to_string(), text);
    }
    if let Some(signer) = typed(NoteSigner::from_go_private_key(text)) {
        assert_eq!(signer.verifier().key_id(), signer.key_id());
    }
    if let Some(cosigner) = typed(Cosigner::from_go_private_key(text)) {
        assert_eq!(cosigner.verifier().key_id(), cosigner.key_id());
    }
    if let Some(signer) = typed(NoteSigner::from_pkcs8_pem(
        KeyName::new("fuzz").unwrap(),
        text,
    )) {
        let pem = signer.to_pkcs8_pem().unwrap();
        let reread = NoteSigner::from_pkcs8_pem(signer.name().clone(), &pem).unwrap();
        assert_eq!(reread.verifier(), signer.verifier());
    }
    for line in text.split('\n') {
        if let Some(verifier) = typed(Verifier::parse(line)) {
            assert_eq!(verifier.to_string(), line);
        }
        if let Some(signature) = typed(NoteSignature::parse(line)) {
            assert_eq!(signature.to_string(), line);
        }
        if let Some(cosignature) = typed(Cosignature::parse(line)) {
            assert_eq!(cosignature.to_string(), line);
        }
        if let Some(name) = typed(KeyName::new(line)) {
            assert_eq!(name.as_str(), line);
        }
    }
}

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(Index),
    SetByte(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Truncate(Index),
    Duplicate(Index, Index),
    Splice(Index, Index, Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let bytes = prop_oneof![
        prop::sample::select(&TOKENS[..]).prop_map(|token| token.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 1..8),
    ];
    // Small edits weigh more, so inputs stay near-valid and reach deep checks.
    prop_oneof![
        3 => any::<Index>().prop_map(Mutation::FlipBit),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::SetByte(at, byte)),
        3 => (any::<Index>(), bytes).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        2 => (any::<Index>(), 1..16usize).prop_map(|(at, length)| Mutation::Delete(at, length)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(from, to)| Mutation::Duplicate(from, to)),
        1 => (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(at, seed, from)| Mutation::Splice(at, seed, from)),
    ]
}

fn apply(mut bytes: Vec<u8>, mutation: &Mutation) -> Vec<u8> {
    let position = |at: &Index, bytes: &Vec<u8>| at.index(bytes.len() + 1);
    match mutation {
        Mutation::FlipBit(at) if !bytes.is_empty() => {
            let bit = at.index(bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
        }
        Mutation::SetByte(at, byte) if !bytes.is_empty() => {
            let at = at.index(bytes.len());
            bytes[at] = *byte;
        }
        Mutation::Insert(at, inserted) => {
            let at = position(at, &bytes);
            bytes.splice(at..at, inserted.iter().copied());
        }
        Mutation::Delete(at, length) => {
            let at = position(at, &bytes);
            bytes.drain(at..(at + length).min(bytes.len()));
        }
        Mutation::Truncate(at) => bytes.truncate(position(at, &bytes)),
        Mutation::Duplicate(from, to) => {
            let (from, to) = (position(from, &bytes), position(to, &bytes));
            let copy = bytes[from.min(to)..from.max(to)].to_vec();
            bytes.splice(to..to, copy);
        }
        Mutation::Splice(at, seed, from) => {
            let other = &corpus()[seed.index(corpus().len())];
            let (at, from) = (position(at, &bytes), from.index(other.len() + 1));
            bytes.truncate(at);
            bytes.extend_from_slice(&other[from..]);
        }
        Mutation::FlipBit(_) | Mutation::SetByte(..) => {}
    }
    bytes
}

/// Bytes weighted towards the formats' own characters.
fn arbitrary_input() -> impl Strategy<Value = Vec<u8>> {
    let format_byte = prop::sample::select(&b"\n +=/0aA\xe2\x80\x94-"[..]);
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        prop::collection::vec(format_byte, 0..300),
    ]
}

/// Mutations of a seed from `seeds`.
fn mutated_input(seeds: fn() -> &'static [Vec<u8>]) -> impl Strategy<Value = Vec<u8>> {
    (any::<Index>(), prop::collection::vec(mutation(), 1..4)).prop_map(move |(seed, mutations)| {
        let seed = seeds()[seed.index(seeds().len())].clone();
        mutations.iter().fold(seed, apply)
    })
}

/// The policy and add-checkpoint seeds alone: among all the others they
/// would be picked too seldom to reach the checks behind a valid parse.
fn witness_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let (example, _) = crate::common::example_policy();
        let annotated: String = example
            .lines()
            .map(|line| match line {
                _ if line.starts_with("witness X3 ") => format!("{line} https://x3.example/\n"),
                _ if line.starts_with("witness Y1 ") => format!("  # the Y operator\n\t{line}\t\n"),
                _ => format!("{line}\n"),
            })
            .collect();
        let seed = add_checkpoint_seed();
        let from_zero = AddCheckpoint {
            old_size: 0,
            proof: Vec::new(),
            ..seed.clone()
        };
        vec![
            example.into_bytes(),
            annotated.into_bytes(),
            b"# nothing to check\nquorum none\n".to_vec(),
            seed.to_bytes(),
            from_zero.to_bytes(),
        ]
    })
}

#[test]
fn every_seed_satisfies_the_oracles() {
    corpus().iter().for_each(|seed| exercise(seed));
    witness_seeds().iter().for_each(|seed| exercise(seed));
}

/// 4,096 cases per test unless PROPTEST_CASES says otherwise.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4096)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_bytes(input in arbitrary_input()) {
        exercise(&input);
    }

    #[test]
    fn mutated_vectors(input in mutated_input(corpus)) {
        exercise(&input);
    }

    #[test]
    fn mutated_policies_and_witness_requests(input in mutated_input(witness_seeds)) {
        exercise(&input);
    }
}
