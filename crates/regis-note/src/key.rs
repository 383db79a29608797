//! Key names, key ids, signature types, and the `name+<hex key id>+<base64
//! (type ‖ key)>` layout shared by verifier keys and Go's private-key strings
//! (C2SP signed-note, "Signatures" and "Verifier keys").

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use ed25519_dalek::pkcs8::spki::der::zeroize::Zeroizing;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::text::BASE64;

/// The name of a key, as written in signature lines and key strings:
/// non-empty, without Unicode white space, `+` or ASCII control characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct KeyName(String);

/// Why a string is not a valid key name. Positions are byte offsets.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Error)]
pub enum InvalidKeyName {
    #[error("key name is empty")]
    Empty,
    #[error("key name contains control character {byte:#04x} at byte {at}")]
    ControlCharacter { at: usize, byte: u8 },
    #[error("key name contains white space at byte {at}")]
    WhiteSpace { at: usize },
    #[error("key name contains '+' at byte {at}")]
    Plus { at: usize },
}

impl KeyName {
    /// Checks `name` against the signed-note rules for key names.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidKeyName> {
        let name = name.into();
        if name.is_empty() {
            return Err(InvalidKeyName::Empty);
        }
        for (at, c) in name.char_indices() {
            // `+` separates the fields of key strings; white space ends the
            // name in a signature line; control characters are banned from notes.
            if c < ' ' {
                return Err(InvalidKeyName::ControlCharacter { at, byte: c as u8 });
            }
            if c.is_whitespace() {
                return Err(InvalidKeyName::WhiteSpace { at });
            }
            if c == '+' {
                return Err(InvalidKeyName::Plus { at });
            }
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KeyName {
    type Err = InvalidKeyName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::new(name)
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The 4-byte key id that, with the key name, identifies the key (and so the
/// algorithm) behind a signature. Displayed as 8 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 4]);

impl KeyId {
    pub const fn from_bytes(bytes: [u8; 4]) -> Self {
        Self(bytes)
    }

    pub const fn to_bytes(self) -> [u8; 4] {
        self.0
    }

    /// `SHA-256(name ‖ 0x0A ‖ signature type ‖ public key)[:4]`: the key id
    /// signed-note recommends and Ed25519 (0x01) and cosignature/v1 (0x04)
    /// require. `public_key` is whatever the signature type defines as its key
    /// material (for 0x05, the RFC 6962 log id).
    pub fn compute(name: &KeyName, signature_type: u8, public_key: &[u8]) -> Self {
        let digest = Sha256::new()
            .chain_update(name.as_str())
            .chain_update([b'\n', signature_type])
            .chain_update(public_key)
            .finalize();
        let mut id = [0; 4];
        id.copy_from_slice(&digest[..4]);
        Self(id)
    }

    /// Exactly 8 lowercase hex digits: the spec's fixed-length lowercase hex.
    pub(crate) fn parse_hex(hex: &str) -> Option<Self> {
        let bytes = hex.as_bytes();
        if bytes.len() != 8 {
            return None;
        }
        let mut id = [0; 4];
        for (out, pair) in id.iter_mut().zip(bytes.chunks_exact(2)) {
            *out = (lowercase_hex_digit(pair[0])? << 4) | lowercase_hex_digit(pair[1])?;
        }
        Some(Self(id))
    }
}

fn lowercase_hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// The signature types this crate signs and verifies (signed-note "Signature
/// types"). Others (ECDSA 0x02, RFC 6962 0x05, ML-DSA 0x06) are recognised
/// only as unknown keys, whose signatures are ignored.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum SignatureType {
    /// 0x01: Ed25519 over the note text.
    Ed25519,
    /// 0x04: timestamped Ed25519 checkpoint cosignature (C2SP tlog-cosignature).
    CosignatureV1,
}

impl SignatureType {
    pub const fn byte(self) -> u8 {
        match self {
            Self::Ed25519 => 0x01,
            Self::CosignatureV1 => 0x04,
        }
    }

    pub const fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0x01 => Some(Self::Ed25519),
            0x04 => Some(Self::CosignatureV1),
            _ => None,
        }
    }
}

impl fmt::Display for SignatureType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Ed25519 => "Ed25519",
            Self::CosignatureV1 => "cosignature/v1",
        };
        write!(f, "{:#04x} ({name})", self.byte())
    }
}

/// Why a verifier key string, private key string or PKCS#8 PEM key was
/// rejected. Messages never include private key material.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("not a private key string: it must start with PRIVATE+KEY+")]
    NotPrivateKey,
    #[error("missing the {0} field (fields are separated by '+')")]
    MissingField(&'static str),
    #[error(transparent)]
    Name(#[from] InvalidKeyName),
    #[error("key id must be exactly 8 lowercase hex digits")]
    KeyIdNotHex,
    #[error("key is not valid base64")]
    KeyNotBase64,
    #[error("key is empty: it must start with a signature type byte")]
    EmptyKey,
    #[error(
        "signature type {found:#04x} is not supported (only 0x01 Ed25519 and 0x04 cosignature/v1)"
    )]
    UnsupportedSignatureType { found: u8 },
    #[error("signature type is {found:#04x}, expected {expected}")]
    WrongSignatureType { expected: SignatureType, found: u8 },
    #[error("key is {actual} bytes after the type byte, expected {expected}")]
    KeyLength { expected: usize, actual: usize },
    #[error("public key is not a valid Ed25519 point")]
    InvalidPublicKey,
    #[error("key id {stated} does not match the key (computed {computed})")]
    KeyIdMismatch { stated: KeyId, computed: KeyId },
    #[error("PKCS#8: {0}")]
    Pkcs8(ed25519_dalek::pkcs8::Error),
}

/// The fields of `name+<hex key id>+<base64(type ‖ key)>`. `key` is zeroized on
/// drop because private key strings put the seed there.
pub(crate) struct KeyString {
    pub(crate) name: KeyName,
    pub(crate) key_id: KeyId,
    pub(crate) signature_type: u8,
    pub(crate) key: Zeroizing<Vec<u8>>,
}

impl KeyString {
    pub(crate) fn parse(text: &str) -> Result<Self, KeyError> {
        // Names and hex ids contain no '+', base64 may: split at the first two.
        let mut fields = text.splitn(3, '+');
        let name = fields.next().unwrap_or_default();
        let key_id = fields.next().ok_or(KeyError::MissingField("key id"))?;
        let key = fields.next().ok_or(KeyError::MissingField("key"))?;
        let name = KeyName::new(name)?;
        let key_id = KeyId::parse_hex(key_id).ok_or(KeyError::KeyIdNotHex)?;
        let mut decoded = Zeroizing::new(BASE64.decode(key).map_err(|_| KeyError::KeyNotBase64)?);
        if decoded.is_empty() {
            return Err(KeyError::EmptyKey);
        }
        let signature_type = decoded.remove(0);
        Ok(Self {
            name,
            key_id,
            signature_type,
            key: decoded,
        })
    }

    /// The key bytes, which must be exactly 32 (an Ed25519 public key or seed).
    pub(crate) fn key_32(&self) -> Result<&[u8; 32], KeyError> {
        self.key
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::KeyLength {
                expected: 32,
                actual: self.key.len(),
            })
    }

    /// Fails unless `computed` (from the key material) is the stated key id.
    pub(crate) fn check_key_id(&self, computed: KeyId) -> Result<(), KeyError> {
        if computed == self.key_id {
            Ok(())
        } else {
            Err(KeyError::KeyIdMismatch {
                stated: self.key_id,
                computed,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_follow_the_spec() {
        assert!(KeyName::new("example.com/log").is_ok());
        assert!(KeyName::new("ünïcødé").is_ok());
        assert_eq!(KeyName::new(""), Err(InvalidKeyName::Empty));
        assert_eq!(
            KeyName::new("a b"),
            Err(InvalidKeyName::WhiteSpace { at: 1 })
        );
        assert_eq!(
            KeyName::new("a\u{a0}b"),
            Err(InvalidKeyName::WhiteSpace { at: 1 })
        );
        assert_eq!(
            KeyName::new("ab\u{2028}"),
            Err(InvalidKeyName::WhiteSpace { at: 2 })
        );
        assert_eq!(KeyName::new("a+b"), Err(InvalidKeyName::Plus { at: 1 }));
        assert_eq!(
            KeyName::new("a\nb"),
            Err(InvalidKeyName::ControlCharacter { at: 1, byte: b'\n' })
        );
        assert_eq!(
            KeyName::new("\u{1}"),
            Err(InvalidKeyName::ControlCharacter { at: 0, byte: 1 })
        );
    }

    #[test]
    fn key_ids_are_eight_lowercase_hex_digits() {
        let id = KeyId::parse_hex("c74f20a3").unwrap();
        assert_eq!(id.to_bytes(), [0xc7, 0x4f, 0x20, 0xa3]);
        assert_eq!(id.to_string(), "c74f20a3");
        assert_eq!(format!("{id:?}"), "KeyId(c74f20a3)");
        for bad in [
            "C74F20A3",
            "c74f20a",
            "c74f20a30",
            "+74f20a3",
            "c74f20g3",
            "",
            "c74f20é",
        ] {
            assert_eq!(KeyId::parse_hex(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn signature_type_bytes_round_trip() {
        for kind in [SignatureType::Ed25519, SignatureType::CosignatureV1] {
            assert_eq!(SignatureType::from_byte(kind.byte()), Some(kind));
        }
        assert_eq!(SignatureType::from_byte(0x05), None);
        assert_eq!(
            SignatureType::CosignatureV1.to_string(),
            "0x04 (cosignature/v1)"
        );
    }
}
