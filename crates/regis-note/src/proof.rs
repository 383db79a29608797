//! C2SP tlog-proof: a self-contained, offline-verifiable proof that an entry
//! is in a log, as the log signed it.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64>            (optional, unauthenticated)
//! index <decimal>
//! <base64 hash>             (zero or more: the audit path, leaf's sibling first)
//!
//! <signed checkpoint note, verbatim>
//! ```
//!
//! Parsing is strict, like every format here: one encoding per value, so a
//! parsed proof formats back to exactly its input.

use std::fmt;

use base64::Engine as _;
use regis_merkle::{Hash, VerifyError as InclusionError, verify_inclusion};
use thiserror::Error;

use crate::checkpoint::{SignedCheckpoint, SignedCheckpointError};
use crate::note::{VerifiedSignature, VerifyError};
use crate::text::{BASE64, HashLinesError, Lines, parse_decimal};
use crate::verifier::{Verifier, Verifiers};

const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// The most hashes an audit path can hold in a tree of at most 2^64 - 1
/// leaves; longer proofs are refused while parsing.
pub const MAX_PROOF_HASHES: usize = 64;

/// An entry's index, its audit path, and the signed checkpoint of the tree
/// it is proved against.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TlogProof {
    extra: Option<Vec<u8>>,
    index: u64,
    path: Vec<Hash>,
    checkpoint: SignedCheckpoint,
}

/// Why bytes are not a tlog-proof. Lines are numbered from 1.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
pub enum TlogProofError {
    #[error("line 1: expected \"{HEADER}\"")]
    Header,
    #[error("line {line}: not valid UTF-8")]
    InvalidUtf8 { line: usize },
    #[error("line {line}: the extra data is not canonical base64")]
    Extra { line: usize },
    #[error("line {line}: expected \"index <decimal>\" without leading zeros")]
    Index { line: usize },
    #[error("line {line}: a proof hash must be canonical base64 of 32 bytes")]
    Hash { line: usize },
    #[error("more than {MAX_PROOF_HASHES} proof hashes")]
    TooManyHashes,
    #[error("no blank line before the checkpoint")]
    MissingCheckpoint,
    #[error("the checkpoint (from line {line}): {error}")]
    Checkpoint {
        line: usize,
        error: SignedCheckpointError,
    },
}

/// Why a well-formed tlog-proof does not prove what it claims.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
pub enum TlogProofVerifyError {
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] VerifyError),
    #[error("inclusion proof of entry {index} in the tree of size {size}: {error}")]
    Inclusion {
        index: u64,
        size: u64,
        error: InclusionError,
    },
}

impl TlogProof {
    /// A proof of leaf `index` by its audit path against `checkpoint`.
    /// The path's length is checked by [`Self::verify`], not here.
    pub fn new(
        extra: Option<Vec<u8>>,
        index: u64,
        path: Vec<Hash>,
        checkpoint: SignedCheckpoint,
    ) -> Self {
        Self {
            extra,
            index,
            path,
            checkpoint,
        }
    }

    /// Parses a tlog-proof, strictly.
    pub fn parse(bytes: &[u8]) -> Result<Self, TlogProofError> {
        let mut lines = Lines::new(bytes);
        fn next_line<'a>(lines: &mut Lines<'a>) -> Result<Option<&'a str>, TlogProofError> {
            lines
                .next_line()
                .map_err(|line| TlogProofError::InvalidUtf8 { line })
        }
        if next_line(&mut lines)? != Some(HEADER) {
            return Err(TlogProofError::Header);
        }
        let mut line = next_line(&mut lines)?;
        let mut extra = None;
        if let Some(encoded) = line.and_then(|l| l.strip_prefix("extra ")) {
            let data = BASE64
                .decode(encoded)
                .ok()
                .filter(|data| !data.is_empty())
                .ok_or(TlogProofError::Extra { line: lines.line() })?;
            extra = Some(data);
            line = next_line(&mut lines)?;
        }
        let index = line
            .and_then(|l| l.strip_prefix("index "))
            .and_then(|index| parse_decimal(index).ok())
            .ok_or(TlogProofError::Index { line: lines.line() })?;
        let path = lines
            .hashes_to_blank_line(MAX_PROOF_HASHES)
            .map_err(|error| match error {
                HashLinesError::NotUtf8 { line } => TlogProofError::InvalidUtf8 { line },
                HashLinesError::NotAHash { line } => TlogProofError::Hash { line },
                HashLinesError::TooMany => TlogProofError::TooManyHashes,
                HashLinesError::NoBlankLine => TlogProofError::MissingCheckpoint,
            })?;
        let checkpoint_line = lines.line() + 1;
        let checkpoint =
            SignedCheckpoint::parse(lines.rest()).map_err(|error| TlogProofError::Checkpoint {
                line: checkpoint_line,
                error,
            })?;
        Ok(Self {
            extra,
            index,
            path,
            checkpoint,
        })
    }

    /// The unauthenticated extra data, if any.
    pub fn extra(&self) -> Option<&[u8]> {
        self.extra.as_deref()
    }

    /// The entry's 0-based index in the log.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The audit path, the leaf's sibling first.
    pub fn path(&self) -> &[Hash] {
        &self.path
    }

    /// The signed checkpoint the entry is proved against.
    pub fn checkpoint(&self) -> &SignedCheckpoint {
        &self.checkpoint
    }

    /// Checks that the log `origin` with key `log` signed the checkpoint and
    /// that the entry whose leaf hash is `leaf_hash` is at [`Self::index`] in
    /// it. Returns the witnesses' verified cosignatures, for the caller's
    /// witness policy.
    pub fn verify<'v>(
        &self,
        leaf_hash: &Hash,
        origin: &str,
        log: &'v Verifier,
        witnesses: &'v Verifiers,
    ) -> Result<Vec<VerifiedSignature<'v>>, TlogProofVerifyError> {
        let cosignatures = self.checkpoint.verify(origin, log, witnesses)?;
        let tree = self.checkpoint.checkpoint();
        verify_inclusion(
            leaf_hash,
            self.index,
            tree.size(),
            &self.path,
            tree.root_hash(),
        )
        .map_err(|error| TlogProofVerifyError::Inclusion {
            index: self.index,
            size: tree.size(),
            error,
        })?;
        Ok(cosignatures)
    }
}

/// The proof's exact bytes.
impl fmt::Display for TlogProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&tlog_proof_text(
            self.extra.as_deref(),
            self.index,
            &self.path,
            &self.checkpoint.to_string(),
        ))
    }
}

/// The text of the tlog-proof of leaf `index` with `extra` and `path`,
/// against the signed checkpoint whose note is `checkpoint` (its text,
/// verbatim): what a [`TlogProof`] formats to, for a server that keeps its
/// checkpoint as text and need not parse it for every proof.
pub fn tlog_proof_text(
    extra: Option<&[u8]>,
    index: u64,
    path: &[Hash],
    checkpoint: &str,
) -> String {
    let mut out = String::with_capacity(
        64 + 45 * path.len() + 4 * extra.map_or(0, <[u8]>::len) / 3 + checkpoint.len(),
    );
    out.push_str(HEADER);
    out.push('\n');
    if let Some(extra) = extra {
        out.push_str("extra ");
        BASE64.encode_string(extra, &mut out);
        out.push('\n');
    }
    out.push_str("index ");
    out.push_str(&index.to_string());
    out.push('\n');
    for hash in path {
        BASE64.encode_string(hash, &mut out);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(checkpoint);
    out
}

#[cfg(test)]
mod tests {
    use regis_merkle::{Edge, MemoryHashes, inclusion_proof, leaf_hash};

    use super::*;
    use crate::checkpoint::Checkpoint;
    use crate::key::KeyName;
    use crate::signer::NoteSigner;

    const ORIGIN: &str = "example.com/registers/country";

    fn signer() -> NoteSigner {
        NoteSigner::from_seed(KeyName::new(ORIGIN).unwrap(), &[7; 32])
    }

    /// A 5-leaf log, and the tlog-proof of leaf `index` in it.
    fn proof_of(index: u64, extra: Option<Vec<u8>>) -> (TlogProof, Hash) {
        let leaves: Vec<Hash> = (0..5u8).map(|i| leaf_hash(&[i])).collect();
        let stored = MemoryHashes::from_leaf_hashes(leaves.iter().copied());
        let edge = Edge::from_reader(&stored, 5).unwrap();
        let path = inclusion_proof(&stored, &edge, index).unwrap();
        let checkpoint = Checkpoint::new(ORIGIN, 5, edge.root()).unwrap();
        let signed = SignedCheckpoint::sign(checkpoint, &signer());
        (
            TlogProof::new(extra, index, path, signed),
            leaves[index as usize],
        )
    }

    #[test]
    fn round_trips_and_verifies() {
        let log = signer().verifier();
        let witnesses = Verifiers::new([]).unwrap();
        for index in 0..5 {
            for extra in [None, Some(b"context".to_vec())] {
                let (proof, leaf) = proof_of(index, extra);
                let text = proof.to_string();
                let parsed = TlogProof::parse(text.as_bytes()).unwrap();
                assert_eq!(parsed, proof);
                assert_eq!(parsed.to_string(), text);
                parsed.verify(&leaf, ORIGIN, &log, &witnesses).unwrap();
                let other = leaf_hash(b"not logged");
                assert!(matches!(
                    parsed.verify(&other, ORIGIN, &log, &witnesses),
                    Err(TlogProofVerifyError::Inclusion { .. })
                ));
                assert!(matches!(
                    parsed.verify(&leaf, "example.com/registers/other", &log, &witnesses),
                    Err(TlogProofVerifyError::Checkpoint(
                        VerifyError::WrongOrigin { .. }
                    ))
                ));
            }
        }
    }

    #[test]
    fn rejects_malformed_proofs_with_the_line() {
        let (proof, _) = proof_of(2, None);
        let good = proof.to_string();
        let hash_line = good.lines().nth(2).unwrap().to_owned();
        let cases: Vec<(String, TlogProofError)> = vec![
            (
                good.replacen(HEADER, "c2sp.org/tlog-proof@v2", 1),
                TlogProofError::Header,
            ),
            (
                good.replacen("index 2", "index 02", 1),
                TlogProofError::Index { line: 2 },
            ),
            (
                good.replacen("index 2", "index -2", 1),
                TlogProofError::Index { line: 2 },
            ),
            (
                good.replacen("index 2\n", "", 1),
                TlogProofError::Index { line: 2 },
            ),
            (
                good.replacen("index 2", "extra !!\nindex 2", 1),
                TlogProofError::Extra { line: 2 },
            ),
            (
                good.replacen(&hash_line, &hash_line[..40], 1),
                TlogProofError::Hash { line: 3 },
            ),
            (
                good.replacen("\n\n", "\n", 1),
                TlogProofError::Hash { line: 6 },
            ),
            (
                format!("{HEADER}\nindex 0\n"),
                TlogProofError::MissingCheckpoint,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(TlogProof::parse(text.as_bytes()), Err(want), "{text}");
        }
        let too_long = good.replacen(&hash_line, &format!("{hash_line}\n").repeat(65), 1);
        assert_eq!(
            TlogProof::parse(too_long.as_bytes()),
            Err(TlogProofError::TooManyHashes)
        );
        let truncated = &good[..good.len() - 1];
        assert!(matches!(
            TlogProof::parse(truncated.as_bytes()),
            Err(TlogProofError::Checkpoint { line: 7, .. })
        ));
    }
}
