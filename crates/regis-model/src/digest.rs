//! SHA-256 digests as GOV.UK Registers writes them: `sha-256:` and 64
//! lower-case hex digits, for item hashes and root hashes alike.

use regis_merkle::Hash;
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

const PREFIX: &str = "sha-256:";
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Text that is not `sha-256:` followed by 64 lower-case hex digits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a hash: expected `sha-256:` and 64 lower-case hex digits")]
pub struct HashError {
    /// The rejected text (at most 80 characters of it).
    pub text: String,
}

/// Parses `sha-256:<64 lower-case hex>`. Upper-case hex is refused: hashes
/// are looked up by their text, so only one spelling may exist.
pub fn parse_hash(text: &str) -> Result<Hash, HashError> {
    let error = || HashError {
        text: text.chars().take(80).collect(),
    };
    let hex = text.strip_prefix(PREFIX).ok_or_else(error)?.as_bytes();
    if hex.len() != 64 {
        return Err(error());
    }
    let mut hash = [0u8; 32];
    for (byte, pair) in hash.iter_mut().zip(hex.chunks_exact(2)) {
        let (Some(high), Some(low)) = (nibble(pair[0]), nibble(pair[1])) else {
            return Err(error());
        };
        *byte = high << 4 | low;
    }
    Ok(hash)
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

/// `sha-256:<lower-case hex>`, as ASCII bytes on the stack: what
/// [`format_hash`] returns, without allocating.
pub fn hash_text(hash: &Hash) -> [u8; PREFIX.len() + 64] {
    let mut text = [0u8; PREFIX.len() + 64];
    let (prefix, hex) = text.split_at_mut(PREFIX.len());
    prefix.copy_from_slice(PREFIX.as_bytes());
    for (pair, byte) in hex.chunks_exact_mut(2).zip(hash) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
    text
}

/// Appends `sha-256:<lower-case hex>` to `out`.
pub(crate) fn push_hash(out: &mut String, hash: &Hash) {
    let text = hash_text(hash);
    // Every byte of the text is ASCII (`PREFIX` and `HEX`), so it is UTF-8.
    out.push_str(std::str::from_utf8(&text).unwrap_or_default());
}

/// `sha-256:<lower-case hex>`.
pub fn format_hash(hash: &Hash) -> String {
    let mut out = String::with_capacity(PREFIX.len() + 64);
    push_hash(&mut out, hash);
    out
}

/// The identity of an item: SHA-256 of its canonical JSON.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemHash(pub Hash);

impl ItemHash {
    /// SHA-256 of `canonical_json` (which the caller vouches is canonical).
    pub fn of(canonical_json: &[u8]) -> ItemHash {
        ItemHash(Sha256::digest(canonical_json).into())
    }

    /// The 32 digest bytes.
    pub fn as_bytes(&self) -> &Hash {
        &self.0
    }
}

impl fmt::Display for ItemHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No allocation: answers write thousands of these at a time.
        let text = hash_text(&self.0);
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for ItemHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for ItemHash {
    type Err = HashError;
    fn from_str(text: &str) -> Result<Self, HashError> {
        parse_hash(text).map(ItemHash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_and_refuse_other_spellings() {
        let text = "sha-256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let hash: ItemHash = text.parse().unwrap();
        assert_eq!(hash, ItemHash::of(b""));
        assert_eq!(hash.to_string(), text);
        for bad in [
            &text.to_uppercase().replace("SHA-256", "sha-256"),
            &text[..70],
            &text.replace("sha-256:", "sha256:"),
            "sha-256:",
            "sha-256:é3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
        ] {
            assert!(bad.parse::<ItemHash>().is_err(), "{bad}");
        }
    }
}
