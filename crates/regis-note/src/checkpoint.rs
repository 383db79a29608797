//! Checkpoints (C2SP tlog-checkpoint): the note text `<origin>\n<tree
//! size>\n<base64 root hash>\n` and optional non-empty extension lines, and a
//! [`SignedCheckpoint`] pairing one with its note (log signature and witness
//! cosignatures).
//!
//! Parsing is strict so that a checkpoint has one text: the size is decimal
//! with no sign or leading zero and fits in a u64; the root hash is canonical
//! base64 of exactly 32 bytes (RFC 6962 with SHA-256). Formatting a parsed
//! checkpoint gives back its exact text. Origins may contain spaces or `+`
//! (the spec only recommends against them, and sum.golang.org's has spaces).

use std::fmt;

use base64::Engine as _;
use thiserror::Error;

use crate::key::KeyName;
use crate::note::{Note, NoteError, NoteSignature, VerifiedSignature, VerifyError};
use crate::signer::NoteSigner;
use crate::text::{BASE64, DecimalError, parse_decimal};
use crate::verifier::{Verifier, Verifiers};

/// A log's tree head: origin, tree size, root hash, extension lines.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root_hash: [u8; 32],
    extension_lines: Vec<String>,
}

/// Why a text is not a checkpoint. Lines are numbered from 1.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
pub enum CheckpointError {
    #[error("the checkpoint text must end in a newline")]
    MissingFinalNewline,
    #[error("line {line}: missing the {what} line")]
    MissingLine { line: usize, what: &'static str },
    #[error("line {line}: control character {byte:#04x}")]
    ControlCharacter { line: usize, byte: u8 },
    #[error("line 1: the origin is empty")]
    EmptyOrigin,
    #[error("line 2: the tree size is not a decimal number")]
    SizeNotDecimal,
    #[error("line 2: the tree size has a leading zero")]
    SizeLeadingZero,
    #[error("line 2: the tree size does not fit in 64 bits")]
    SizeOverflow,
    #[error("line 3: the root hash is not valid base64")]
    RootHashNotBase64,
    #[error("line 3: the root hash is {actual} bytes, expected 32")]
    RootHashLength { actual: usize },
    #[error("line {line}: empty extension line")]
    EmptyExtensionLine { line: usize },
}

impl Checkpoint {
    /// A checkpoint without extension lines. The origin must be non-empty and
    /// hold no control characters (newline included).
    pub fn new(
        origin: impl Into<String>,
        size: u64,
        root_hash: [u8; 32],
    ) -> Result<Self, CheckpointError> {
        let origin = origin.into();
        check_origin(&origin)?;
        Ok(Self {
            origin,
            size,
            root_hash,
            extension_lines: Vec::new(),
        })
    }

    /// Appends an extension line: non-empty, no control characters. The spec
    /// does not recommend them (monitors cannot audit them).
    pub fn with_extension_line(mut self, line: impl Into<String>) -> Result<Self, CheckpointError> {
        let line = line.into();
        let number = 4 + self.extension_lines.len();
        if line.is_empty() {
            return Err(CheckpointError::EmptyExtensionLine { line: number });
        }
        check_line(&line, number)?;
        self.extension_lines.push(line);
        Ok(self)
    }

    /// Parses a checkpoint note text.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::MissingFinalNewline)?;
        let mut lines = body.split('\n');
        // Checked line by line, so the error is about the first bad line.
        let origin = lines.next().unwrap_or_default();
        check_origin(origin)?;
        let size = lines.next().ok_or(CheckpointError::MissingLine {
            line: 2,
            what: "tree size",
        })?;
        let size = parse_size(size)?;
        let root_hash = lines.next().ok_or(CheckpointError::MissingLine {
            line: 3,
            what: "root hash",
        })?;
        let root_hash = parse_root_hash(root_hash)?;
        let mut checkpoint = Self {
            origin: origin.to_owned(),
            size,
            root_hash,
            extension_lines: Vec::new(),
        };
        for line in lines {
            checkpoint = checkpoint.with_extension_line(line)?;
        }
        Ok(checkpoint)
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The number of leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The RFC 6962 root hash of the tree at this size.
    pub fn root_hash(&self) -> &[u8; 32] {
        &self.root_hash
    }

    pub fn extension_lines(&self) -> &[String] {
        &self.extension_lines
    }
}

/// The checkpoint note text, each line ending in a newline.
impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}\n{}\n{}",
            self.origin,
            self.size,
            BASE64.encode(self.root_hash)
        )?;
        self.extension_lines
            .iter()
            .try_for_each(|line| writeln!(f, "{line}"))
    }
}

fn check_origin(origin: &str) -> Result<(), CheckpointError> {
    if origin.is_empty() {
        return Err(CheckpointError::EmptyOrigin);
    }
    check_line(origin, 1)
}

/// Line `number` holds no control characters (so no newline either).
fn check_line(line: &str, number: usize) -> Result<(), CheckpointError> {
    match line.bytes().find(|&byte| byte < 0x20) {
        Some(byte) => Err(CheckpointError::ControlCharacter { line: number, byte }),
        None => Ok(()),
    }
}

fn parse_size(size: &str) -> Result<u64, CheckpointError> {
    parse_decimal(size).map_err(|error| match error {
        DecimalError::NotDecimal => CheckpointError::SizeNotDecimal,
        DecimalError::LeadingZero => CheckpointError::SizeLeadingZero,
        DecimalError::Overflow => CheckpointError::SizeOverflow,
    })
}

fn parse_root_hash(root_hash: &str) -> Result<[u8; 32], CheckpointError> {
    let bytes = BASE64
        .decode(root_hash)
        .map_err(|_| CheckpointError::RootHashNotBase64)?;
    let actual = bytes.len();
    bytes
        .try_into()
        .map_err(|_| CheckpointError::RootHashLength { actual })
}

/// A checkpoint and the signed note that carries it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SignedCheckpoint {
    checkpoint: Checkpoint,
    note: Note,
}

/// Why bytes are not a signed checkpoint: a bad note, or a bad checkpoint text.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
pub enum SignedCheckpointError {
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

impl SignedCheckpoint {
    pub fn parse(bytes: &[u8]) -> Result<Self, SignedCheckpointError> {
        Ok(Self::from_note(Note::parse(bytes)?)?)
    }

    /// The checkpoint a parsed note carries.
    pub fn from_note(note: Note) -> Result<Self, CheckpointError> {
        Ok(Self {
            checkpoint: Checkpoint::parse(note.text())?,
            note,
        })
    }

    /// Signs `checkpoint` with the log's key.
    pub fn sign(checkpoint: Checkpoint, signer: &NoteSigner) -> Self {
        let text = checkpoint.to_string();
        let signature = signer.sign(&text);
        Self {
            checkpoint,
            note: Note::new_unchecked(text, signature),
        }
    }

    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    pub fn note(&self) -> &Note {
        &self.note
    }

    /// Appends a signature line, typically a witness cosignature.
    pub fn add_signature(&mut self, signature: NoteSignature) -> Result<(), NoteError> {
        self.note.add_signature(signature)
    }

    /// Verifies a checkpoint from the log `origin` whose key is `log`: the
    /// origin must match, the log's signature must verify, and so must every
    /// signature from a key in `cosigners`. Returns the cosigners' verified
    /// signatures (with their timestamps), for the caller's witness policy.
    pub fn verify<'v>(
        &self,
        origin: &str,
        log: &'v Verifier,
        cosigners: &'v Verifiers,
    ) -> Result<Vec<VerifiedSignature<'v>>, VerifyError> {
        if self.checkpoint.origin != origin {
            return Err(VerifyError::WrongOrigin {
                expected: origin.to_owned(),
                found: self.checkpoint.origin.clone(),
            });
        }
        let is_log = |name: &KeyName, key_id| log.name() == name && log.key_id() == key_id;
        let verified = self.note.verify_known(|name, key_id| {
            if is_log(name, key_id) {
                Some(log)
            } else {
                cosigners.find(name, key_id)
            }
        })?;
        let (by_log, by_cosigners): (Vec<_>, Vec<_>) = verified
            .into_iter()
            .partition(|signature| signature.verifier() == log);
        if by_log.is_empty() {
            return Err(VerifyError::NotSignedByLog {
                name: log.name().clone(),
                key_id: log.key_id(),
            });
        }
        Ok(by_cosigners)
    }
}

/// The signed checkpoint's exact bytes.
impl fmt::Display for SignedCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.note.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";

    #[test]
    fn parse_and_format_are_inverse() {
        for text in [
            format!("example.com/behind-the-sofa\n20852163\n{ROOT}\n"),
            format!("go.sum database tree\n0\n{ROOT}\n"),
            format!("o\n18446744073709551615\n{ROOT}\next 1\n+ext 2\n"),
        ] {
            let checkpoint = Checkpoint::parse(&text).unwrap();
            assert_eq!(checkpoint.to_string(), text);
        }
    }

    #[test]
    fn each_malformation_has_its_own_error() {
        use CheckpointError::*;
        let cases = [
            (String::new(), MissingFinalNewline),
            ("\n".to_owned(), EmptyOrigin),
            (
                "o\n".to_owned(),
                MissingLine {
                    line: 2,
                    what: "tree size",
                },
            ),
            (
                "o\n1\n".to_owned(),
                MissingLine {
                    line: 3,
                    what: "root hash",
                },
            ),
            (format!("o\n1\n{ROOT}"), MissingFinalNewline),
            (
                format!("o\u{1}\n1\n{ROOT}\n"),
                ControlCharacter { line: 1, byte: 1 },
            ),
            (format!("o\n\n{ROOT}\n"), SizeNotDecimal),
            (format!("o\n+1\n{ROOT}\n"), SizeNotDecimal),
            (format!("o\n 1\n{ROOT}\n"), SizeNotDecimal),
            (format!("o\n1 \n{ROOT}\n"), SizeNotDecimal),
            (format!("o\n١\n{ROOT}\n"), SizeNotDecimal),
            (format!("o\n00\n{ROOT}\n"), SizeLeadingZero),
            (format!("o\n01\n{ROOT}\n"), SizeLeadingZero),
            (format!("o\n18446744073709551616\n{ROOT}\n"), SizeOverflow),
            ("o\n1\n\n".to_owned(), RootHashLength { actual: 0 }),
            ("o\n1\nAAAA\n".to_owned(), RootHashLength { actual: 3 }),
            (
                "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n".to_owned(),
                RootHashNotBase64,
            ),
            (
                "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n".to_owned(),
                RootHashNotBase64,
            ),
            (format!("o\n1\n{ROOT}\n\n"), EmptyExtensionLine { line: 4 }),
            (
                format!("o\n1\n{ROOT}\na\n\nb\n"),
                EmptyExtensionLine { line: 5 },
            ),
            (
                format!("o\n1\n{ROOT}\na\tb\n"),
                ControlCharacter {
                    line: 4,
                    byte: b'\t',
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(Checkpoint::parse(&text), Err(expected), "{text:?}");
        }
    }

    #[test]
    fn constructors_keep_lines_whole() {
        assert_eq!(
            Checkpoint::new("a\nb", 1, [0; 32]),
            Err(CheckpointError::ControlCharacter {
                line: 1,
                byte: b'\n'
            })
        );
        let checkpoint = Checkpoint::new("o", 1, [0; 32]).unwrap();
        assert_eq!(
            checkpoint.clone().with_extension_line("x\ny"),
            Err(CheckpointError::ControlCharacter {
                line: 4,
                byte: b'\n'
            })
        );
        assert_eq!(
            checkpoint.with_extension_line(""),
            Err(CheckpointError::EmptyExtensionLine { line: 4 })
        );
    }
}
