//! cosignature/v1 (C2SP tlog-cosignature, Ed25519, signature type 0x04): a
//! witness's timestamped signature over a checkpoint, carried as one more
//! signature line on the checkpoint note.
//!
//! Key id: `SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[:4]`. Line payload:
//! `key id (4) ‖ timestamp (8, big-endian) ‖ Ed25519 signature (64)`. Signed
//! message: `cosignature/v1\ntime <timestamp>\n<checkpoint note text>`.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::key::{KeyId, KeyName};
use crate::note::{NoteSignature, SignatureLineError};

/// The largest timestamp a cosignature may carry: 2^63 - 1 (tlog-cosignature).
pub const MAX_COSIGNATURE_TIMESTAMP: u64 = (1 << 63) - 1;

/// Bytes in a cosignature/v1 line payload: key id, timestamp, signature.
const PAYLOAD_LENGTH: usize = 4 + 8 + 64;

/// A cosignature timestamp above [`MAX_COSIGNATURE_TIMESTAMP`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Error)]
#[error("cosignature timestamp {0} exceeds 2^63-1")]
pub struct TimestampOutOfRange(pub u64);

impl TimestampOutOfRange {
    /// `timestamp`, if a cosignature may carry it.
    pub(crate) fn check(timestamp: u64) -> Result<u64, Self> {
        if timestamp <= MAX_COSIGNATURE_TIMESTAMP {
            Ok(timestamp)
        } else {
            Err(Self(timestamp))
        }
    }
}

/// The message a cosigner signs for note `text` at `timestamp`.
pub fn cosignature_message(text: &str, timestamp: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{text}").into_bytes()
}

/// A decoded cosignature/v1 signature line. Decoding checks the layout only:
/// which key made it, and whether it verifies (including the timestamp bound),
/// is for a [`crate::Verifier`] of type cosignature/v1.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Cosignature {
    name: KeyName,
    key_id: KeyId,
    timestamp: u64,
    signature: [u8; 64],
}

/// Why a signature line is not a cosignature/v1 line.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
pub enum CosignatureError {
    #[error(transparent)]
    Line(#[from] SignatureLineError),
    #[error(
        "signature is {actual} bytes, a cosignature/v1 is 76 (key id, timestamp, Ed25519 signature)"
    )]
    Length { actual: usize },
}

impl Cosignature {
    pub(crate) fn new(name: KeyName, key_id: KeyId, timestamp: u64, signature: [u8; 64]) -> Self {
        Self {
            name,
            key_id,
            timestamp,
            signature,
        }
    }

    /// Parses one signature line (`— <name> <base64>`, no trailing newline).
    pub fn parse(line: &str) -> Result<Self, CosignatureError> {
        Self::try_from(&NoteSignature::parse(line)?)
    }

    pub fn name(&self) -> &KeyName {
        &self.name
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// POSIX seconds at which the witness signed.
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }
}

impl TryFrom<&NoteSignature> for Cosignature {
    type Error = CosignatureError;

    fn try_from(line: &NoteSignature) -> Result<Self, Self::Error> {
        let payload: &[u8; PAYLOAD_LENGTH] =
            line.payload()
                .try_into()
                .map_err(|_| CosignatureError::Length {
                    actual: line.payload().len(),
                })?;
        let (mut key_id, mut timestamp, mut signature) = ([0; 4], [0; 8], [0; 64]);
        key_id.copy_from_slice(&payload[..4]);
        timestamp.copy_from_slice(&payload[4..12]);
        signature.copy_from_slice(&payload[12..]);
        Ok(Self::new(
            line.name().clone(),
            KeyId::from_bytes(key_id),
            u64::from_be_bytes(timestamp),
            signature,
        ))
    }
}

impl From<&Cosignature> for NoteSignature {
    fn from(cosignature: &Cosignature) -> Self {
        let mut signature = Vec::with_capacity(8 + 64);
        signature.extend_from_slice(&cosignature.timestamp.to_be_bytes());
        signature.extend_from_slice(&cosignature.signature);
        NoteSignature::new(cosignature.name.clone(), cosignature.key_id, &signature)
    }
}

impl From<Cosignature> for NoteSignature {
    fn from(cosignature: Cosignature) -> Self {
        Self::from(&cosignature)
    }
}

impl FromStr for Cosignature {
    type Err = CosignatureError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        Self::parse(line)
    }
}

/// The signature line, without its newline.
impl fmt::Display for Cosignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        NoteSignature::from(self).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_header_time_and_text() {
        assert_eq!(
            cosignature_message("o\n1\nAA==\n", 1679315147),
            b"cosignature/v1\ntime 1679315147\no\n1\nAA==\n"
        );
    }

    #[test]
    fn lines_of_other_lengths_are_not_cosignatures() {
        let short = NoteSignature::new(
            KeyName::new("w").unwrap(),
            KeyId::from_bytes([1; 4]),
            &[0; 64],
        );
        assert_eq!(
            Cosignature::try_from(&short),
            Err(CosignatureError::Length { actual: 68 })
        );
    }

    #[test]
    fn line_round_trips() {
        let cosignature = Cosignature::new(
            KeyName::new("w").unwrap(),
            KeyId::from_bytes([1, 2, 3, 4]),
            42,
            [9; 64],
        );
        let line = cosignature.to_string();
        assert!(line.starts_with("— w "), "{line}");
        assert_eq!(Cosignature::parse(&line), Ok(cosignature));
    }
}
