//! Ed25519 signers: a named private key that makes plain note signatures
//! ([`NoteSigner`], type 0x01) or timestamped checkpoint cosignatures
//! ([`Cosigner`], type 0x04). The type parameter keeps the two apart, so one
//! key is not used for both by accident (signed-note: the same public key
//! SHOULD NOT be reused for different signature types).
//!
//! Keys come from a caller's 32-byte seed (this crate has no randomness), from
//! PKCS#8 PEM (read and write), or from Go's `PRIVATE+KEY+…` string (read).
//! Secret material is never printed: `Debug` shows only the name and key id.

use std::fmt;
use std::marker::PhantomData;

// The types ed25519-dalek's PKCS#8 support itself uses, through its re-exports.
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::spki::der::zeroize::Zeroizing;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use ed25519_dalek::{Signer as _, SigningKey};

use crate::checkpoint::Checkpoint;
use crate::cosignature::{Cosignature, TimestampOutOfRange, cosignature_message};
use crate::key::{KeyError, KeyId, KeyName, KeyString, SignatureType};
use crate::note::NoteSignature;
use crate::verifier::Verifier;

mod sealed {
    pub trait Sealed {}
}

/// What a [`Signer`] signs: [`Ed25519`] notes or [`CosignatureV1`] cosignatures.
pub trait SignerKind: sealed::Sealed {
    const SIGNATURE_TYPE: SignatureType;
}

/// Marker for plain Ed25519 note signatures (type 0x01).
#[derive(Clone, Copy, Debug)]
pub enum Ed25519 {}

/// Marker for cosignature/v1 checkpoint cosignatures (type 0x04).
#[derive(Clone, Copy, Debug)]
pub enum CosignatureV1 {}

impl sealed::Sealed for Ed25519 {}
impl sealed::Sealed for CosignatureV1 {}

impl SignerKind for Ed25519 {
    const SIGNATURE_TYPE: SignatureType = SignatureType::Ed25519;
}

impl SignerKind for CosignatureV1 {
    const SIGNATURE_TYPE: SignatureType = SignatureType::CosignatureV1;
}

/// A log's note signer.
pub type NoteSigner = Signer<Ed25519>;

/// A witness's checkpoint cosigner.
pub type Cosigner = Signer<CosignatureV1>;

/// A named Ed25519 private key for one signature type.
pub struct Signer<K: SignerKind> {
    name: KeyName,
    key_id: KeyId,
    key: SigningKey,
    kind: PhantomData<K>,
}

impl<K: SignerKind> Signer<K> {
    /// The key whose RFC 8032 seed is `seed`.
    pub fn from_seed(name: KeyName, seed: &[u8; 32]) -> Self {
        Self::from_signing_key(name, SigningKey::from_bytes(seed))
    }

    /// Parses Go's private key string `PRIVATE+KEY+<name>+<hex key id>+<base64
    /// (type ‖ 32-byte seed)>` (golang.org/x/mod/sumdb/note). The type byte must
    /// be this signer's and the key id must match the derived public key.
    pub fn from_go_private_key(skey: &str) -> Result<Self, KeyError> {
        let fields = KeyString::parse(
            skey.strip_prefix("PRIVATE+KEY+")
                .ok_or(KeyError::NotPrivateKey)?,
        )?;
        let expected = K::SIGNATURE_TYPE;
        if fields.signature_type != expected.byte() {
            return Err(KeyError::WrongSignatureType {
                expected,
                found: fields.signature_type,
            });
        }
        let signer = Self::from_seed(fields.name.clone(), fields.key_32()?);
        fields.check_key_id(signer.key_id)?;
        Ok(signer)
    }

    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`). PEM
    /// carries no name, so the caller gives it.
    pub fn from_pkcs8_pem(name: KeyName, pem: &str) -> Result<Self, KeyError> {
        let key = SigningKey::from_pkcs8_pem(pem).map_err(KeyError::Pkcs8)?;
        Ok(Self::from_signing_key(name, key))
    }

    /// Writes the private key as PKCS#8 PEM (LF line endings); the returned
    /// string is zeroized when dropped.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(KeyError::Pkcs8)
    }

    pub fn name(&self) -> &KeyName {
        &self.name
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The verifier for this signer's signatures.
    pub fn verifier(&self) -> Verifier {
        Verifier::new(
            self.name.clone(),
            K::SIGNATURE_TYPE,
            self.key.verifying_key(),
        )
    }

    fn from_signing_key(name: KeyName, key: SigningKey) -> Self {
        let key_id = KeyId::compute(
            &name,
            K::SIGNATURE_TYPE.byte(),
            key.verifying_key().as_bytes(),
        );
        Self {
            name,
            key_id,
            key,
            kind: PhantomData,
        }
    }
}

impl NoteSigner {
    /// Signs the note text (Ed25519 is deterministic: same key and text, same
    /// signature).
    pub fn sign(&self, text: &str) -> NoteSignature {
        let signature = self.key.sign(text.as_bytes());
        NoteSignature::new(self.name.clone(), self.key_id, &signature.to_bytes())
    }
}

impl Cosigner {
    /// Cosigns the checkpoint as of `timestamp` (POSIX seconds, from the
    /// caller: this crate reads no clock).
    pub fn cosign(
        &self,
        checkpoint: &Checkpoint,
        timestamp: u64,
    ) -> Result<Cosignature, TimestampOutOfRange> {
        let timestamp = TimestampOutOfRange::check(timestamp)?;
        let message = cosignature_message(&checkpoint.to_string(), timestamp);
        let signature = self.key.sign(&message).to_bytes();
        Ok(Cosignature::new(
            self.name.clone(),
            self.key_id,
            timestamp,
            signature,
        ))
    }
}

impl<K: SignerKind> Clone for Signer<K> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.clone(),
            kind: PhantomData,
        }
    }
}

/// Shows the name, key id and type only: never the private key.
impl<K: SignerKind> fmt::Debug for Signer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("key_id", &self.key_id)
            .field("signature_type", &K::SIGNATURE_TYPE)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: [u8; 32] = [7; 32];

    fn name(name: &str) -> KeyName {
        KeyName::new(name).unwrap()
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let signer = NoteSigner::from_seed(name("example.com/log"), &SEED);
        let debug = format!("{signer:?}");
        assert!(debug.contains("example.com/log"), "{debug}");
        for secret in [
            format!("{SEED:?}"),
            "07070707".to_owned(),
            "7, 7, 7".to_owned(),
        ] {
            assert!(!debug.contains(&secret), "{debug}");
        }
    }

    #[test]
    fn pem_round_trips() {
        let signer = Cosigner::from_seed(name("witness.example/w1"), &SEED);
        let pem = signer.to_pkcs8_pem().unwrap();
        assert!(
            pem.starts_with("-----BEGIN PRIVATE KEY-----\n"),
            "{}",
            pem.as_str()
        );
        let read = Cosigner::from_pkcs8_pem(name("witness.example/w1"), &pem).unwrap();
        assert_eq!(read.verifier(), signer.verifier());
        assert!(matches!(
            Cosigner::from_pkcs8_pem(name("w"), "not pem"),
            Err(KeyError::Pkcs8(_))
        ));
    }

    #[test]
    fn signature_types_keep_key_ids_apart() {
        let note = NoteSigner::from_seed(name("example.com/k"), &SEED);
        let cosign = Cosigner::from_seed(name("example.com/k"), &SEED);
        assert_eq!(note.verifier().public_key(), cosign.verifier().public_key());
        assert_ne!(note.key_id(), cosign.key_id());
        assert_eq!(
            cosign.verifier().signature_type(),
            SignatureType::CosignatureV1
        );
    }

    #[test]
    fn go_private_keys_must_match_the_signer_type() {
        let skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
        let signer = NoteSigner::from_go_private_key(skey).unwrap();
        assert_eq!(signer.key_id().to_string(), "c74f20a3");
        assert!(matches!(
            Cosigner::from_go_private_key(skey),
            Err(KeyError::WrongSignatureType {
                expected: SignatureType::CosignatureV1,
                found: 1
            })
        ));
        assert!(matches!(
            NoteSigner::from_go_private_key(&skey["PRIVATE+KEY+".len()..]),
            Err(KeyError::NotPrivateKey)
        ));
        let wrong_id = skey.replace("c74f20a3", "c74f20a4");
        assert!(matches!(
            NoteSigner::from_go_private_key(&wrong_id),
            Err(KeyError::KeyIdMismatch { .. })
        ));
    }

    #[test]
    fn go_private_keys_of_type_0x04_make_cosigners() {
        use base64::Engine as _;
        let cosigner = Cosigner::from_seed(name("witness.example/w1"), &SEED);
        let key = crate::text::BASE64.encode([&[0x04][..], &SEED].concat());
        let skey = format!("PRIVATE+KEY+witness.example/w1+{}+{key}", cosigner.key_id());
        let parsed = Cosigner::from_go_private_key(&skey).unwrap();
        assert_eq!(parsed.verifier(), cosigner.verifier());
    }

    #[test]
    fn cosigning_rejects_timestamps_beyond_2_63() {
        let cosigner = Cosigner::from_seed(name("w"), &SEED);
        let checkpoint = Checkpoint::new("example.com/log", 1, [0; 32]).unwrap();
        assert!(cosigner.cosign(&checkpoint, 1 << 63).is_err());
        let cosignature = cosigner.cosign(&checkpoint, (1 << 63) - 1).unwrap();
        assert_eq!(cosignature.timestamp(), (1 << 63) - 1);
    }
}
