#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
//! Signed notes, checkpoints, verifier keys and cosignatures for Regis, byte
//! for byte as the C2SP specifications write them:
//!
//! - [`Note`]: a C2SP signed-note (text, blank line, `— <name> <base64>`
//!   signature lines), parsed strictly and verified against [`Verifiers`];
//!   unknown keys' signatures are kept and ignored, a failing known key is an
//!   error, at most [`MAX_SIGNATURES`] lines.
//! - [`Checkpoint`] and [`SignedCheckpoint`]: C2SP tlog-checkpoint.
//! - [`Verifier`] (verifier key strings `name+<hex id>+<base64>`) and
//!   [`Signer`] ([`NoteSigner`] for Ed25519 type 0x01, [`Cosigner`] for
//!   cosignature/v1 type 0x04), with PKCS#8 PEM and Go's `PRIVATE+KEY+…`;
//!   [`system_verifier`]: a register's system-log key from its user-log key.
//! - [`Cosignature`]: C2SP tlog-cosignature, Ed25519 cosignature/v1.
//! - [`TlogProof`]: C2SP tlog-proof, an entry's inclusion proof and the
//!   signed checkpoint it is proved against, checkable offline.
//! - [`WitnessPolicy`]: C2SP tlog-policy, the witnesses a verifier knows and
//!   the quorum of cosignatures a checkpoint needs.
//! - [`AddCheckpoint`] and [`check_add_checkpoint`]: C2SP tlog-witness, the
//!   request and response bodies and the witness's checks.
//!
//! The crate is pure: no I/O, no clock (cosigning takes the timestamp), no
//! randomness (keys come from a caller's seed or file contents). Parsing never
//! panics and every error says what is wrong and, for notes and checkpoints,
//! on which line. A parsed value formats back to exactly its input bytes.
//!
//! Choices where the specs leave room:
//! - At most 100 signature lines per note (Go's bound; the spec asks for at
//!   least 16).
//! - Base64 must be canonical (padding, zero trailing bits) and key ids
//!   lowercase hex, so each value has one encoding; Go is laxer on both.
//! - Root hashes must be 32 bytes (RFC 6962 with SHA-256).
//! - Ed25519 verification is strict (`verify_strict`).
//! - A signature line whose payload is under 4 bytes has no key id, so it is
//!   kept and ignored like any unknown key's (sigsum-go accepts such lines).
//! - A cosignature's timestamp decodes whatever its value; above 2^63-1 it
//!   never verifies and is never produced.
//! - [`SignedCheckpoint::verify`] checks the origin and requires the log's own
//!   signature, so a checkpoint of another log with the same key (say a
//!   register's system log) or one signed only by witnesses is rejected.

mod checkpoint;
mod cosignature;
mod key;
mod note;
mod policy;
mod proof;
mod signer;
mod text;
mod verifier;
mod witness;

pub use checkpoint::{Checkpoint, CheckpointError, SignedCheckpoint, SignedCheckpointError};
pub use cosignature::{
    Cosignature, CosignatureError, MAX_COSIGNATURE_TIMESTAMP, TimestampOutOfRange,
    cosignature_message,
};
pub use ed25519_dalek::VerifyingKey;
pub use ed25519_dalek::pkcs8::spki::der::zeroize::Zeroizing;
pub use key::{InvalidKeyName, KeyError, KeyId, KeyName, SignatureType};
pub use note::{
    MAX_SIGNATURES, Note, NoteError, NoteSignature, SignatureLineError, VerifiedSignature,
    VerifyError,
};
pub use policy::{
    MAX_FUTURE_SKEW, MAX_POLICY_GROUPS, MAX_POLICY_LOGS, MAX_POLICY_WITNESSES, PolicyError,
    PolicyLineError, PolicyLog, PolicyParseError, PolicyRole, PolicyWitness, WitnessPolicy,
    Witnessed,
};
pub use proof::{
    MAX_PROOF_HASHES, TlogProof, TlogProofError, TlogProofVerifyError, tlog_proof_text,
};
pub use signer::{CosignatureV1, Cosigner, Ed25519, NoteSigner, Signer, SignerKind};
pub use text::{DecimalError, parse_decimal};
pub use verifier::{DuplicateVerifier, SignatureError, Verifier, Verifiers, system_verifier};
pub use witness::{
    AddCheckpoint, AddCheckpointParseError, AddCheckpointRefusal, MAX_PROOF_LINES,
    SIZE_CONTENT_TYPE, SizeBodyError, WitnessedTree, check_add_checkpoint,
    format_cosignature_lines, format_size_body, parse_cosignature_lines, parse_size_body,
};
