//! C2SP tlog-witness: the request body (the spec's example, malformed
//! bodies), the 409 and 200 bodies, and `check_add_checkpoint` against real
//! trees and consistency proofs from regis-merkle: every case of the spec
//! gives the status the spec says.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use regis_merkle::{EMPTY_ROOT, Edge, Hash, MemoryHashes, consistency_proof, leaf_hash};
use regis_note::{
    AddCheckpoint, AddCheckpointParseError, AddCheckpointRefusal, Checkpoint, CheckpointError,
    DecimalError, MAX_PROOF_LINES, Note, NoteError, NoteSignature, NoteSigner, SignedCheckpoint,
    SignedCheckpointError, SizeBodyError, Verifier, VerifyError, WitnessedTree,
    check_add_checkpoint, format_cosignature_lines, format_size_body, parse_cosignature_lines,
    parse_size_body,
};

use crate::common::{EXAMPLE_ORIGIN, cosigner, example_log, name};

/// The example request body of tlog-witness, "add-checkpoint".
const SPEC_BODY: &str = "old 20852014
PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=
jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=
5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=
/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=

example.com/behind-the-sofa
20852163
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=
\u{2014} example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=
";

#[test]
fn the_specs_example_body_parses_and_formats_back() {
    let request = AddCheckpoint::parse(SPEC_BODY.as_bytes()).unwrap();
    assert_eq!(request.old_size, 20852014);
    let proof: Vec<String> = request.proof.iter().map(|h| BASE64.encode(h)).collect();
    assert_eq!(proof, SPEC_BODY.lines().skip(1).take(4).collect::<Vec<_>>());
    let checkpoint = request.checkpoint.checkpoint();
    assert_eq!(checkpoint.origin(), "example.com/behind-the-sofa");
    assert_eq!(checkpoint.size(), 20852163);
    assert_eq!(request.checkpoint.note().signatures().len(), 2);
    assert_eq!(request.to_bytes(), SPEC_BODY.as_bytes());
}

/// A well-formed body of `old 5`, one proof line, and the example log's
/// checkpoint.
fn small_body() -> String {
    let checkpoint = Checkpoint::new(EXAMPLE_ORIGIN, 9, [3; 32]).unwrap();
    let request = AddCheckpoint {
        old_size: 5,
        proof: vec![[1; 32]],
        checkpoint: SignedCheckpoint::sign(checkpoint, &example_log()),
    };
    String::from_utf8(request.to_bytes()).unwrap()
}

#[test]
fn malformed_bodies_are_refused_with_the_line() {
    use AddCheckpointParseError::*;
    let hash = "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=";
    let proof_lines = |count: usize| format!("{hash}\n").repeat(count);
    let checkpoint = SPEC_BODY.split_once("\n\n").unwrap().1;
    let body = |old: &str, proof: &str| format!("{old}\n{proof}\n{checkpoint}");
    let cases: Vec<(Vec<u8>, AddCheckpointParseError)> = vec![
        (body("old 0", &proof_lines(64)).into(), TooManyProofLines),
        (body("old 0", &proof_lines(100)).into(), TooManyProofLines),
        (
            body("old 020852014", "").into(),
            OldSize(DecimalError::LeadingZero),
        ),
        (
            body("old 00", "").into(),
            OldSize(DecimalError::LeadingZero),
        ),
        (body("old -1", "").into(), OldSize(DecimalError::NotDecimal)),
        (body("old +1", "").into(), OldSize(DecimalError::NotDecimal)),
        (body("old  1", "").into(), OldSize(DecimalError::NotDecimal)),
        (body("old 1 ", "").into(), OldSize(DecimalError::NotDecimal)),
        (
            body("old 1\r", "").into(),
            OldSize(DecimalError::NotDecimal),
        ),
        (body("old ", "").into(), OldSize(DecimalError::NotDecimal)),
        (
            body("old 18446744073709551616", "").into(),
            OldSize(DecimalError::Overflow),
        ),
        (body("Old 1", "").into(), MissingOldSize),
        (body("old\t1", "").into(), MissingOldSize),
        (body("", "").into(), MissingOldSize),
        (b"".to_vec(), MissingOldSize),
        (b"old 0".to_vec(), MissingOldSize),
        (b"old 0\n".to_vec(), MissingBlankLine),
        (format!("old 0\n{hash}\n").into_bytes(), MissingBlankLine),
        // Without the blank line, the origin line is read as a proof line.
        (
            SPEC_BODY.replacen("\n\n", "\n", 1).into_bytes(),
            ProofHash { line: 6 },
        ),
        (
            body("old 1", &format!("{}\n", &hash[..43])).into(),
            ProofHash { line: 2 },
        ),
        (
            body("old 1", &format!("{hash}\n{}\n", hash.replace('=', ""))).into(),
            ProofHash { line: 3 },
        ),
        (
            body("old 1", &format!("{}\n", hash.replace("w=", "x="))).into(),
            ProofHash { line: 2 },
        ),
        (
            body("old 1", &format!("{}\n", BASE64.encode([7; 31]))).into(),
            ProofHash { line: 2 },
        ),
        (
            body("old 1", &format!("{}\n", BASE64.encode([7; 33]))).into(),
            ProofHash { line: 2 },
        ),
        (body("old 1", " \n").into(), ProofHash { line: 2 }),
        (
            [b"old 1\n\xff\n\n".as_slice(), checkpoint.as_bytes()].concat(),
            InvalidUtf8 { line: 2 },
        ),
        (
            SPEC_BODY.as_bytes()[..SPEC_BODY.len() - 1].to_vec(),
            Checkpoint {
                line: 7,
                error: SignedCheckpointError::Note(NoteError::MissingFinalNewline),
            },
        ),
        (
            body("old 1", "")
                .replace("20852163", "020852163")
                .into_bytes(),
            Checkpoint {
                line: 3,
                error: SignedCheckpointError::Checkpoint(CheckpointError::SizeLeadingZero),
            },
        ),
        (
            format!("old 1\n\n{}", checkpoint.split_once("\n\n").unwrap().0).into_bytes(),
            Checkpoint {
                line: 3,
                error: SignedCheckpointError::Note(NoteError::MissingSeparator),
            },
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(
            AddCheckpoint::parse(&body),
            Err(expected),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    let most = body("old 0", &proof_lines(MAX_PROOF_LINES));
    assert_eq!(
        AddCheckpoint::parse(most.as_bytes()).unwrap().proof.len(),
        MAX_PROOF_LINES
    );
    let small = small_body();
    assert_eq!(
        AddCheckpoint::parse(small.as_bytes()).unwrap().to_bytes(),
        small.as_bytes()
    );
    assert_eq!(
        AddCheckpoint::parse(SPEC_BODY.replace("old 20852014", "old 0").as_bytes())
            .unwrap()
            .old_size,
        0
    );
}

#[test]
fn size_bodies_are_a_decimal_and_a_newline() {
    assert_eq!(format_size_body(0), "0\n");
    assert_eq!(format_size_body(20852014), "20852014\n");
    let cases: [(&[u8], Result<u64, SizeBodyError>); 11] = [
        (b"0\n", Ok(0)),
        (b"20852014\n", Ok(20852014)),
        (b"18446744073709551615\n", Ok(u64::MAX)),
        (b"123", Err(SizeBodyError::MissingFinalNewline)),
        (b"", Err(SizeBodyError::MissingFinalNewline)),
        (b"\n", Err(SizeBodyError::Size(DecimalError::NotDecimal))),
        (
            b"0123\n",
            Err(SizeBodyError::Size(DecimalError::LeadingZero)),
        ),
        (
            b"123\n\n",
            Err(SizeBodyError::Size(DecimalError::NotDecimal)),
        ),
        (
            b"123\r\n",
            Err(SizeBodyError::Size(DecimalError::NotDecimal)),
        ),
        (
            b"\xff\n",
            Err(SizeBodyError::Size(DecimalError::NotDecimal)),
        ),
        (
            b"18446744073709551616\n",
            Err(SizeBodyError::Size(DecimalError::Overflow)),
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(parse_size_body(body), expected, "{body:?}");
    }
    for size in [0, 1, 409, u64::MAX] {
        assert_eq!(parse_size_body(format_size_body(size).as_bytes()), Ok(size));
    }
}

#[test]
fn cosignature_bodies_round_trip() {
    let checkpoint = Checkpoint::new(EXAMPLE_ORIGIN, 9, [3; 32]).unwrap();
    let lines: Vec<NoteSignature> = [cosigner("w1", 1), cosigner("w2", 2)]
        .iter()
        .map(|c| c.cosign(&checkpoint, 1_700_000_000).unwrap().into())
        .collect();
    let body = format_cosignature_lines(&lines);
    assert_eq!(body.lines().count(), 2);
    assert!(body.starts_with("\u{2014} witness.example/w1 "), "{body}");
    assert!(body.ends_with('\n'));
    assert_eq!(parse_cosignature_lines(body.as_bytes()), Ok(lines));
    assert_eq!(
        parse_cosignature_lines(body.trim_end().as_bytes()),
        Err(NoteError::MissingFinalNewline)
    );
    assert_eq!(parse_cosignature_lines(b""), Err(NoteError::NoSignatures));
    assert!(matches!(
        parse_cosignature_lines(format!("{body}\n").as_bytes()),
        Err(NoteError::SignatureLine { line: 3, .. })
    ));
}

/// A log of 40 leaves: the stored hashes and the root at every size.
struct Tree {
    stored: MemoryHashes,
    roots: Vec<Hash>,
}

const LEAVES: u64 = 40;

impl Tree {
    /// Leaf `i` is `salt ‖ i`: trees of different salts share no hash.
    fn new(salt: u8) -> Self {
        let leaf = |i: u64| leaf_hash(&[&[salt][..], &i.to_be_bytes()].concat());
        let stored = MemoryHashes::from_leaf_hashes((0..LEAVES).map(leaf));
        let roots = (0..=LEAVES)
            .map(|size| Edge::from_reader(&stored, size).unwrap().root())
            .collect();
        Self { stored, roots }
    }

    fn root(&self, size: u64) -> Hash {
        self.roots[size as usize]
    }

    fn proof(&self, old: u64, size: u64) -> Vec<Hash> {
        let edge = Edge::from_reader(&self.stored, size).unwrap();
        consistency_proof(&self.stored, &edge, old).unwrap()
    }

    fn tree(&self, size: u64) -> WitnessedTree {
        WitnessedTree {
            size,
            root: self.root(size),
        }
    }
}

/// The checkpoint of `size` leaves with `root`, signed by `signer`.
fn signed(size: u64, root: Hash, signer: &NoteSigner) -> SignedCheckpoint {
    SignedCheckpoint::sign(Checkpoint::new(EXAMPLE_ORIGIN, size, root).unwrap(), signer)
}

/// The request a well-behaved log sends to move a witness from `old` to `size`.
fn request(tree: &Tree, old: u64, size: u64, signer: &NoteSigner) -> AddCheckpoint {
    AddCheckpoint {
        old_size: old,
        proof: tree.proof(old, size),
        checkpoint: signed(size, tree.root(size), signer),
    }
}

/// Through the wire: parsed from the bytes a log sends.
fn sent(request: &AddCheckpoint) -> AddCheckpoint {
    AddCheckpoint::parse(&request.to_bytes()).unwrap()
}

#[test]
fn every_consistent_pair_of_sizes_is_cosigned_and_every_mutated_proof_refused() {
    let tree = Tree::new(0);
    let log = example_log();
    let keys = [log.verifier()];
    let checkpoints: Vec<SignedCheckpoint> = (0..=LEAVES)
        .map(|size| signed(size, tree.root(size), &log))
        .collect();
    let (mut accepted, mut refused) = (0, 0);
    for size in 0..=LEAVES {
        for old in 0..=size {
            let latest = tree.tree(old);
            let good = sent(&AddCheckpoint {
                old_size: old,
                proof: tree.proof(old, size),
                checkpoint: checkpoints[size as usize].clone(),
            });
            assert_eq!(
                check_add_checkpoint(&good, Some(&keys), Some(&latest)),
                Ok(tree.tree(size)),
                "{old} -> {size}"
            );
            accepted += 1;
            if old == 0 {
                // A witness that never cosigned starts from the empty tree.
                assert_eq!(
                    check_add_checkpoint(&good, Some(&keys), None),
                    Ok(tree.tree(size))
                );
            }
            let mut refuse = |proof: Vec<Hash>| {
                let request = AddCheckpoint {
                    proof,
                    ..good.clone()
                };
                let refusal = check_add_checkpoint(&request, Some(&keys), Some(&latest))
                    .expect_err("a mutated proof is refused");
                assert_eq!(refusal.status(), 422, "{old} -> {size}: {refusal}");
                refused += 1;
            };
            for index in 0..good.proof.len() {
                for bit in [0, 7 * 8 + 3, 31 * 8 + 7] {
                    let mut proof = good.proof.clone();
                    proof[index][bit / 8] ^= 1 << (bit % 8);
                    refuse(proof);
                }
            }
            if let Some((_, shorter)) = good.proof.split_last() {
                refuse(shorter.to_vec());
                let mut swapped = good.proof.clone();
                swapped.reverse();
                if swapped != good.proof {
                    refuse(swapped);
                }
            }
            refuse([good.proof.clone(), vec![[0; 32]]].concat());
        }
    }
    println!("{accepted} consistent pairs cosigned, {refused} mutated proofs refused");
}

#[test]
fn each_case_of_the_spec_has_its_status() {
    let tree = Tree::new(0);
    let log = example_log();
    let keys = [log.verifier()];
    let impostor = NoteSigner::from_seed(name(EXAMPLE_ORIGIN), &[2; 32]);
    let bystander = NoteSigner::from_seed(name("example.com/bystander"), &[3; 32]);
    let latest = tree.tree(10);

    // The log's signature with one bit flipped, under the log's name and key id.
    let bad_signature = {
        let good = request(&tree, 10, 20, &log);
        let line = &good.checkpoint.note().signatures()[0];
        let mut signature = line.signature().to_vec();
        signature[0] ^= 1;
        let line = NoteSignature::new(line.name().clone(), log.key_id(), &signature);
        let note = Note::new(good.checkpoint.note().text(), vec![line]).unwrap();
        AddCheckpoint {
            checkpoint: SignedCheckpoint::from_note(note).unwrap(),
            ..good
        }
    };
    let also_signed_by = |mut request: AddCheckpoint, other: &NoteSigner| {
        let text = request.checkpoint.note().text().to_owned();
        request.checkpoint.add_signature(other.sign(&text)).unwrap();
        request
    };
    let other_root = [0x5a; 32];
    type Case<'a> = (
        &'a str,
        AddCheckpoint,
        Option<&'a [Verifier]>,
        Option<WitnessedTree>,
        Result<WitnessedTree, AddCheckpointRefusal>,
        u16,
    );
    let cases: Vec<Case> = vec![
        (
            "consistent",
            request(&tree, 10, 20, &log),
            Some(&keys),
            Some(latest),
            Ok(tree.tree(20)),
            200,
        ),
        (
            "unknown signatures are ignored",
            also_signed_by(request(&tree, 10, 20, &log), &bystander),
            Some(&keys),
            Some(latest),
            Ok(tree.tree(20)),
            200,
        ),
        (
            "the same checkpoint again",
            request(&tree, 10, 10, &log),
            Some(&keys),
            Some(latest),
            Ok(latest),
            200,
        ),
        (
            "unknown origin",
            request(&tree, 10, 20, &log),
            None,
            Some(latest),
            Err(AddCheckpointRefusal::UnknownLog),
            404,
        ),
        (
            "no trusted signature",
            request(&tree, 10, 20, &impostor),
            Some(&keys),
            Some(latest),
            Err(AddCheckpointRefusal::NotSignedByLog(
                VerifyError::NoKnownSignature { signatures: 1 },
            )),
            403,
        ),
        (
            "a trusted key's signature fails",
            bad_signature.clone(),
            Some(&keys),
            Some(latest),
            Err(AddCheckpointRefusal::NotSignedByLog(
                VerifyError::InvalidSignature {
                    line: 5,
                    name: name(EXAMPLE_ORIGIN),
                    key_id: log.key_id(),
                    error: regis_note::SignatureError::Mismatch,
                },
            )),
            403,
        ),
        (
            "a trusted key's signature fails beside a good one",
            also_signed_by(bad_signature, &log),
            Some(&keys),
            Some(latest),
            Err(AddCheckpointRefusal::NotSignedByLog(
                VerifyError::InvalidSignature {
                    line: 5,
                    name: name(EXAMPLE_ORIGIN),
                    key_id: log.key_id(),
                    error: regis_note::SignatureError::Mismatch,
                },
            )),
            403,
        ),
        (
            "old size above the checkpoint's",
            AddCheckpoint {
                old_size: 21,
                proof: vec![],
                checkpoint: signed(20, tree.root(20), &log),
            },
            Some(&keys),
            Some(latest),
            Err(AddCheckpointRefusal::OldSizeAboveSize { old: 21, size: 20 }),
            400,
        ),
        (
            "old size below the latest",
            request(&tree, 9, 20, &log),
            Some(&keys),
            Some(latest),
            Err(AddCheckpointRefusal::Conflict { latest: 10 }),
            409,
        ),
        (
            "old size above the latest",
            request(&tree, 11, 20, &log),
            Some(&keys),
            Some(latest),
            Err(AddCheckpointRefusal::Conflict { latest: 10 }),
            409,
        ),
        (
            "a first request must start from 0",
            request(&tree, 10, 20, &log),
            Some(&keys),
            None,
            Err(AddCheckpointRefusal::Conflict { latest: 0 }),
            409,
        ),
        (
            "old 0 after a cosigned checkpoint",
            request(&tree, 0, 20, &log),
            Some(&keys),
            Some(latest),
            Err(AddCheckpointRefusal::Conflict { latest: 10 }),
            409,
        ),
        (
            "the empty tree with another root",
            AddCheckpoint {
                old_size: 0,
                proof: vec![],
                checkpoint: signed(0, other_root, &log),
            },
            Some(&keys),
            None,
            Err(AddCheckpointRefusal::EmptyTreeRoot),
            422,
        ),
        (
            "the empty tree",
            request(&tree, 0, 0, &log),
            Some(&keys),
            None,
            Ok(WitnessedTree {
                size: 0,
                root: EMPTY_ROOT,
            }),
            200,
        ),
        (
            "a proof from old size 0",
            AddCheckpoint {
                proof: vec![tree.root(5)],
                ..request(&tree, 0, 20, &log)
            },
            Some(&keys),
            None,
            Err(AddCheckpointRefusal::ProofNotEmpty),
            422,
        ),
        (
            "a proof from another tree",
            AddCheckpoint {
                proof: Tree::new(1).proof(10, 20),
                ..request(&tree, 10, 20, &log)
            },
            Some(&keys),
            Some(latest),
            Err(AddCheckpointRefusal::BadProof(
                regis_merkle::VerifyError::OldRootMismatch,
            )),
            422,
        ),
        (
            "a tree that does not extend the latest",
            AddCheckpoint {
                old_size: 10,
                proof: tree.proof(10, 20),
                checkpoint: signed(20, other_root, &log),
            },
            Some(&keys),
            Some(latest),
            Err(AddCheckpointRefusal::BadProof(
                regis_merkle::VerifyError::RootMismatch,
            )),
            422,
        ),
        (
            "the same size with another root",
            AddCheckpoint {
                old_size: 10,
                proof: vec![],
                checkpoint: signed(10, other_root, &log),
            },
            Some(&keys),
            Some(latest),
            Err(AddCheckpointRefusal::SameSizeDifferentRoot { latest }),
            422,
        ),
        (
            "the same size with another root, and a proof",
            AddCheckpoint {
                old_size: 10,
                proof: tree.proof(5, 10),
                checkpoint: signed(10, other_root, &log),
            },
            Some(&keys),
            Some(latest),
            Err(AddCheckpointRefusal::SameSizeDifferentRoot { latest }),
            422,
        ),
        (
            "the same checkpoint with a needless proof",
            AddCheckpoint {
                proof: tree.proof(5, 10),
                ..request(&tree, 10, 10, &log)
            },
            Some(&keys),
            Some(latest),
            Err(AddCheckpointRefusal::BadProof(
                regis_merkle::VerifyError::WrongLength {
                    got: 5,
                    expected: 0,
                },
            )),
            422,
        ),
    ];
    for (what, request, keys, latest, expected, status) in cases {
        let request = sent(&request);
        let result = check_add_checkpoint(&request, keys, latest.as_ref());
        assert_eq!(result, expected, "{what}");
        let got = result
            .as_ref()
            .map_or_else(|refusal| refusal.status(), |_| 200);
        assert_eq!(got, status, "{what}");
        if let Err(refusal) = result {
            assert!(!refusal.to_string().is_empty());
        }
    }
    assert_eq!(
        AddCheckpointRefusal::Conflict { latest: 10 }.to_string(),
        "old size does not match the latest cosigned size 10"
    );
}

#[test]
fn a_log_trusted_under_several_keys_may_sign_with_any() {
    let tree = Tree::new(0);
    let old_key = example_log();
    let new_key = NoteSigner::from_seed(name(EXAMPLE_ORIGIN), &[4; 32]);
    let keys = [old_key.verifier(), new_key.verifier()];
    let latest = tree.tree(3);
    for signer in [&old_key, &new_key] {
        assert_eq!(
            check_add_checkpoint(&request(&tree, 3, 7, signer), Some(&keys), Some(&latest)),
            Ok(tree.tree(7))
        );
    }
}
