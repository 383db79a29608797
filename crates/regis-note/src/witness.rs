//! C2SP tlog-witness, the wire format and the witness's decision:
//!
//! - [`AddCheckpoint`]: the `add-checkpoint` request body, `old <size>`, at
//!   most [`MAX_PROOF_LINES`] base64 consistency-proof hashes, an empty line,
//!   and the signed checkpoint. Parsed strictly; formats back byte for byte.
//! - The `409 Conflict` body ([`format_size_body`], [`parse_size_body`], media
//!   type [`SIZE_CONTENT_TYPE`]) and the `200` body of cosignature lines.
//! - [`check_add_checkpoint`]: the checks a witness makes, in the spec's
//!   order, each refusal carrying the HTTP status the spec gives it.
//!
//! Pure: the witness's state comes in as a [`WitnessedTree`] and the new one
//! goes out; persisting it atomically with the check is the caller's job.

use std::fmt;

use base64::Engine as _;
use regis_merkle::{EMPTY_ROOT, Hash, VerifyError as ConsistencyError, verify_consistency};
use thiserror::Error;

use crate::checkpoint::{SignedCheckpoint, SignedCheckpointError};
use crate::note::{NoteError, NoteSignature, VerifyError};
use crate::text::{BASE64, DecimalError, HashLinesError, Lines, parse_decimal};
use crate::verifier::Verifier;

/// The most consistency-proof lines a request may carry (tlog-witness).
pub const MAX_PROOF_LINES: usize = 63;

/// The media type of a `409 Conflict` body: the witness's latest size.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// An `add-checkpoint` request: the size the client believes the witness
/// last cosigned, the consistency proof from it, and the new checkpoint.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AddCheckpoint {
    pub old_size: u64,
    pub proof: Vec<Hash>,
    pub checkpoint: SignedCheckpoint,
}

/// Why bytes are not an `add-checkpoint` body. Lines are numbered from 1.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
pub enum AddCheckpointParseError {
    #[error("line 1: expected \"old <size>\"")]
    MissingOldSize,
    #[error("line 1: the old size: {0}")]
    OldSize(DecimalError),
    #[error("line {line}: not valid UTF-8")]
    InvalidUtf8 { line: usize },
    #[error("line {line}: a proof line must be canonical base64 of a 32-byte hash")]
    ProofHash { line: usize },
    #[error("more than {MAX_PROOF_LINES} proof lines")]
    TooManyProofLines,
    #[error("no empty line between the proof and the checkpoint")]
    MissingBlankLine,
    #[error("the checkpoint (from line {line}): {error}")]
    Checkpoint {
        line: usize,
        error: SignedCheckpointError,
    },
}

impl AddCheckpoint {
    /// Parses a request body strictly: every line ends in a newline, the old
    /// size is canonical decimal, each proof hash canonical base64 of 32 bytes.
    pub fn parse(body: &[u8]) -> Result<Self, AddCheckpointParseError> {
        let mut lines = Lines::new(body);
        let old_line = lines
            .next_line()
            .map_err(|line| AddCheckpointParseError::InvalidUtf8 { line })?;
        let old_size = old_line
            .and_then(|line| line.strip_prefix("old "))
            .ok_or(AddCheckpointParseError::MissingOldSize)?;
        let old_size = parse_decimal(old_size).map_err(AddCheckpointParseError::OldSize)?;
        let proof = lines
            .hashes_to_blank_line(MAX_PROOF_LINES)
            .map_err(|error| match error {
                HashLinesError::NotUtf8 { line } => AddCheckpointParseError::InvalidUtf8 { line },
                HashLinesError::NotAHash { line } => AddCheckpointParseError::ProofHash { line },
                HashLinesError::TooMany => AddCheckpointParseError::TooManyProofLines,
                HashLinesError::NoBlankLine => AddCheckpointParseError::MissingBlankLine,
            })?;
        let line = lines.line() + 1;
        let checkpoint = SignedCheckpoint::parse(lines.rest())
            .map_err(|error| AddCheckpointParseError::Checkpoint { line, error })?;
        Ok(Self {
            old_size,
            proof,
            checkpoint,
        })
    }

    /// The request body, exactly as the spec lays it out.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

/// The request body.
impl fmt::Display for AddCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "old {}", self.old_size)?;
        for hash in &self.proof {
            writeln!(f, "{}", BASE64.encode(hash))?;
        }
        writeln!(f)?;
        self.checkpoint.fmt(f)
    }
}

/// Why a `409 Conflict` body is not a tree size.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Error)]
pub enum SizeBodyError {
    #[error("a size body is a decimal tree size ending in a newline")]
    MissingFinalNewline,
    #[error("the tree size: {0}")]
    Size(DecimalError),
}

/// The `409 Conflict` body: the latest cosigned size and a newline.
pub fn format_size_body(size: u64) -> String {
    format!("{size}\n")
}

/// Parses a `409 Conflict` body, strictly (`123\n`, nothing else).
pub fn parse_size_body(body: &[u8]) -> Result<u64, SizeBodyError> {
    let size = body
        .strip_suffix(b"\n")
        .ok_or(SizeBodyError::MissingFinalNewline)?;
    // Not UTF-8 is not digits either.
    let size =
        std::str::from_utf8(size).map_err(|_| SizeBodyError::Size(DecimalError::NotDecimal))?;
    parse_decimal(size).map_err(SizeBodyError::Size)
}

/// Parses a `200` body: one or more signature lines, each ending in a
/// newline. Which of them to trust is for the caller's witness keys.
pub fn parse_cosignature_lines(body: &[u8]) -> Result<Vec<NoteSignature>, NoteError> {
    NoteSignature::parse_lines(body)
}

/// A `200` body: each signature line followed by a newline.
pub fn format_cosignature_lines(lines: &[NoteSignature]) -> String {
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// What a witness holds for one log: the size and root it last cosigned.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct WitnessedTree {
    pub size: u64,
    pub root: Hash,
}

/// Why a witness refuses an `add-checkpoint`; [`Self::status`] is the HTTP
/// status tlog-witness gives each case.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
pub enum AddCheckpointRefusal {
    #[error("unknown log origin")]
    UnknownLog,
    #[error("not signed by the log: {0}")]
    NotSignedByLog(VerifyError),
    #[error("old size {old} is above the checkpoint's size {size}")]
    OldSizeAboveSize { old: u64, size: u64 },
    #[error("old size does not match the latest cosigned size {latest}")]
    Conflict { latest: u64 },
    #[error("a checkpoint of size 0 must have the empty tree's root hash")]
    EmptyTreeRoot,
    #[error("old size 0 needs no consistency proof, but one was given")]
    ProofNotEmpty,
    #[error("the consistency proof does not verify: {0}")]
    BadProof(ConsistencyError),
    #[error(
        "the latest cosigned checkpoint has the same size {} but another root hash",
        .latest.size
    )]
    SameSizeDifferentRoot { latest: WitnessedTree },
}

impl AddCheckpointRefusal {
    /// The HTTP status tlog-witness prescribes.
    pub fn status(&self) -> u16 {
        match self {
            Self::UnknownLog => 404,
            Self::NotSignedByLog(_) => 403,
            Self::OldSizeAboveSize { .. } => 400,
            Self::Conflict { .. } => 409,
            Self::EmptyTreeRoot
            | Self::ProofNotEmpty
            | Self::BadProof(_)
            | Self::SameSizeDifferentRoot { .. } => 422,
        }
    }
}

/// The witness's checks, in the spec's order, for `request` on a log it
/// trusts under `keys` (`None`: an unknown origin) whose last cosigned tree
/// is `latest` (`None`: never cosigned, so the old size must be 0). `Ok` is
/// the new tree, to persist before cosigning.
///
/// When the old size equals the checkpoint's and the roots differ, the
/// refusal is [`AddCheckpointRefusal::SameSizeDifferentRoot`] whatever proof
/// came along: two signed roots for one size are fork evidence.
pub fn check_add_checkpoint(
    request: &AddCheckpoint,
    keys: Option<&[Verifier]>,
    latest: Option<&WitnessedTree>,
) -> Result<WitnessedTree, AddCheckpointRefusal> {
    let keys = keys.ok_or(AddCheckpointRefusal::UnknownLog)?;
    let note = request.checkpoint.note();
    let verified = note
        .verify_known(|name, key_id| {
            keys.iter()
                .find(|key| key.name() == name && key.key_id() == key_id)
        })
        .map_err(AddCheckpointRefusal::NotSignedByLog)?;
    if verified.is_empty() {
        return Err(AddCheckpointRefusal::NotSignedByLog(
            VerifyError::NoKnownSignature {
                signatures: note.signatures().len(),
            },
        ));
    }
    let checkpoint = request.checkpoint.checkpoint();
    let new = WitnessedTree {
        size: checkpoint.size(),
        root: *checkpoint.root_hash(),
    };
    let old = request.old_size;
    if old > new.size {
        return Err(AddCheckpointRefusal::OldSizeAboveSize {
            old,
            size: new.size,
        });
    }
    let latest = latest.copied().unwrap_or(WitnessedTree {
        size: 0,
        root: EMPTY_ROOT,
    });
    if old != latest.size {
        return Err(AddCheckpointRefusal::Conflict {
            latest: latest.size,
        });
    }
    if new.size == 0 && new.root != EMPTY_ROOT {
        return Err(AddCheckpointRefusal::EmptyTreeRoot);
    }
    if old == 0 && !request.proof.is_empty() {
        return Err(AddCheckpointRefusal::ProofNotEmpty);
    }
    if old == new.size && latest.root != new.root {
        return Err(AddCheckpointRefusal::SameSizeDifferentRoot { latest });
    }
    verify_consistency(old, new.size, &request.proof, &latest.root, &new.root)
        .map_err(AddCheckpointRefusal::BadProof)?;
    Ok(new)
}
