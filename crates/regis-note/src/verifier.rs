//! Verifiers: a named public key for one signature type, written as a
//! verifier key string (`name+<hex key id>+<base64(type ‖ key)>`), and the set
//! of verifiers a note is checked against.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use thiserror::Error;

use crate::cosignature::{TimestampOutOfRange, cosignature_message};
use crate::key::{KeyError, KeyId, KeyName, KeyString, SignatureType};
use crate::text::BASE64;

/// A public key that checks signatures of one type under one name.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Verifier {
    name: KeyName,
    key_id: KeyId,
    signature_type: SignatureType,
    public_key: VerifyingKey,
}

/// Why a signature from a known key failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Error)]
pub enum SignatureError {
    #[error("signature is {actual} bytes after the key id, expected {expected}")]
    Length { expected: usize, actual: usize },
    #[error(transparent)]
    Timestamp(#[from] TimestampOutOfRange),
    #[error("signature does not verify")]
    Mismatch,
}

impl Verifier {
    /// The verifier for `public_key` under `name`; the key id is derived.
    pub fn new(name: KeyName, signature_type: SignatureType, public_key: VerifyingKey) -> Self {
        let key_id = KeyId::compute(&name, signature_type.byte(), public_key.as_bytes());
        Self {
            name,
            key_id,
            signature_type,
            public_key,
        }
    }

    /// Parses a verifier key string strictly: a valid name, 8 lowercase hex
    /// digits, canonical base64 of a supported type byte and a 32-byte key that
    /// is a valid Ed25519 point, and a key id that matches the key.
    pub fn parse(vkey: &str) -> Result<Self, KeyError> {
        let fields = KeyString::parse(vkey)?;
        let signature_type = SignatureType::from_byte(fields.signature_type).ok_or(
            KeyError::UnsupportedSignatureType {
                found: fields.signature_type,
            },
        )?;
        let public_key =
            VerifyingKey::from_bytes(fields.key_32()?).map_err(|_| KeyError::InvalidPublicKey)?;
        let verifier = Self::new(fields.name.clone(), signature_type, public_key);
        fields.check_key_id(verifier.key_id)?;
        Ok(verifier)
    }

    pub fn name(&self) -> &KeyName {
        &self.name
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub fn signature_type(&self) -> SignatureType {
        self.signature_type
    }

    pub fn public_key(&self) -> &VerifyingKey {
        &self.public_key
    }

    /// Checks `signature` (the bytes after the key id) over the note `text`.
    /// For cosignature/v1 it returns the signed timestamp.
    pub fn verify(&self, text: &str, signature: &[u8]) -> Result<Option<u64>, SignatureError> {
        match self.signature_type {
            SignatureType::Ed25519 => self.check(text.as_bytes(), signature).map(|()| None),
            SignatureType::CosignatureV1 => {
                const LENGTH: usize = 8 + 64;
                let length_error = SignatureError::Length {
                    expected: LENGTH,
                    actual: signature.len(),
                };
                let (timestamp, ed25519) =
                    signature.split_first_chunk::<8>().ok_or(length_error)?;
                if ed25519.len() != 64 {
                    return Err(length_error);
                }
                let timestamp = TimestampOutOfRange::check(u64::from_be_bytes(*timestamp))?;
                self.check(&cosignature_message(text, timestamp), ed25519)?;
                Ok(Some(timestamp))
            }
        }
    }

    fn check(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        let signature: &[u8; 64] = signature.try_into().map_err(|_| SignatureError::Length {
            expected: 64,
            actual: signature.len(),
        })?;
        // Strict: rejects non-canonical and small-order encodings, so a
        // signature has one valid form.
        self.public_key
            .verify_strict(message, &Signature::from_bytes(signature))
            .map_err(|_| SignatureError::Mismatch)
    }
}

/// The verifier of a Regis register's system log, given its user log's:
/// Regis signs both logs with one Ed25519 key, named by each log's origin,
/// the system log's being `<user origin>/system`. `None` for a key of
/// another type.
pub fn system_verifier(user_key: &Verifier) -> Option<Verifier> {
    if user_key.signature_type() != SignatureType::Ed25519 {
        return None;
    }
    let name = KeyName::new(format!("{}/system", user_key.name())).ok()?;
    Some(Verifier::new(
        name,
        SignatureType::Ed25519,
        *user_key.public_key(),
    ))
}

impl FromStr for Verifier {
    type Err = KeyError;

    fn from_str(vkey: &str) -> Result<Self, Self::Err> {
        Self::parse(vkey)
    }
}

/// The verifier key string.
impl fmt::Display for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = Vec::with_capacity(33);
        key.push(self.signature_type.byte());
        key.extend_from_slice(self.public_key.as_bytes());
        write!(f, "{}+{}+{}", self.name, self.key_id, BASE64.encode(key))
    }
}

/// The keys a note is verified against, each (name, key id) at most once.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Verifiers(Vec<Verifier>);

/// Two verifiers share a name and key id, so a signature could not say which
/// one made it.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
#[error("ambiguous key {name}+{key_id}: given more than once")]
pub struct DuplicateVerifier {
    pub name: KeyName,
    pub key_id: KeyId,
}

impl Verifiers {
    pub fn new(verifiers: impl IntoIterator<Item = Verifier>) -> Result<Self, DuplicateVerifier> {
        let mut set: Vec<Verifier> = Vec::new();
        for verifier in verifiers {
            if set
                .iter()
                .any(|known| known.name == verifier.name && known.key_id == verifier.key_id)
            {
                return Err(DuplicateVerifier {
                    name: verifier.name,
                    key_id: verifier.key_id,
                });
            }
            set.push(verifier);
        }
        Ok(Self(set))
    }

    /// The verifier with this name and key id. Matching only one of the two
    /// is not a match (signed-note: such signatures are ignored).
    pub fn find(&self, name: &KeyName, key_id: KeyId) -> Option<&Verifier> {
        self.0
            .iter()
            .find(|verifier| verifier.key_id == key_id && &verifier.name == name)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Verifier> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a Verifiers {
    type Item = &'a Verifier;
    type IntoIter = std::slice::Iter<'a, Verifier>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PETER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

    #[test]
    fn parse_and_format_are_inverse() {
        let verifier = Verifier::parse(PETER).unwrap();
        assert_eq!(verifier.name().as_str(), "PeterNeumann");
        assert_eq!(verifier.key_id().to_string(), "c74f20a3");
        assert_eq!(verifier.signature_type(), SignatureType::Ed25519);
        assert_eq!(verifier.to_string(), PETER);
    }

    #[test]
    fn each_malformation_has_its_own_error() {
        type IsExpected = fn(&KeyError) -> bool;
        let cases: [(&str, IsExpected); 9] = [
            ("PeterNeumann", |e| {
                matches!(e, KeyError::MissingField("key id"))
            }),
            ("PeterNeumann+c74f20a3", |e| {
                matches!(e, KeyError::MissingField("key"))
            }),
            ("+c74f20a3+AQ==", |e| matches!(e, KeyError::Name(_))),
            (
                "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                |e| matches!(e, KeyError::KeyIdNotHex),
            ),
            (
                "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
                |e| matches!(e, KeyError::KeyNotBase64),
            ),
            ("PeterNeumann+c74f20a3+", |e| {
                matches!(e, KeyError::EmptyKey)
            }),
            ("PeterNeumann+c74f20a3+AQID", |e| {
                matches!(
                    e,
                    KeyError::KeyLength {
                        expected: 32,
                        actual: 2
                    }
                )
            }),
            (
                "PeterNeumann+c74f20a3+BRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                |e| matches!(e, KeyError::UnsupportedSignatureType { found: 0x05 }),
            ),
            (
                "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                |e| matches!(e, KeyError::KeyIdMismatch { .. }),
            ),
        ];
        for (vkey, expected) in cases {
            let error = Verifier::parse(vkey).unwrap_err();
            assert!(expected(&error), "{vkey}: {error:?}");
        }
    }

    #[test]
    fn the_system_verifier_is_the_user_key_named_for_the_system_log() {
        let user = Verifier::parse(PETER).unwrap();
        let system = system_verifier(&user).unwrap();
        assert_eq!(system.name().as_str(), "PeterNeumann/system");
        assert_eq!(system.public_key(), user.public_key());
        assert_ne!(system.key_id(), user.key_id());
        let cosigner = Verifier::new(
            user.name().clone(),
            SignatureType::CosignatureV1,
            *user.public_key(),
        );
        assert_eq!(system_verifier(&cosigner), None);
    }

    #[test]
    fn duplicate_verifiers_are_ambiguous() {
        let verifier = Verifier::parse(PETER).unwrap();
        let error = Verifiers::new([verifier.clone(), verifier]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "ambiguous key PeterNeumann+c74f20a3: given more than once"
        );
    }
}
