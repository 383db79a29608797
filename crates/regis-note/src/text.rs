//! Byte-level rules shared by the formats: where a byte sits (its 1-based
//! line), which control characters are forbidden, the one base64 flavour
//! every format here uses, canonical decimals, and the line-based framing
//! tlog-proof and tlog-witness share (a few lines, hash lines, a blank line,
//! then a signed note).

use base64::Engine as _;
use regis_merkle::Hash;
use thiserror::Error;

/// Standard base64 with padding, canonical only: non-zero trailing bits and
/// missing or extra padding are rejected, so a decoded value re-encodes to the
/// exact input and no two strings decode to the same bytes.
pub(crate) use base64::engine::general_purpose::STANDARD as BASE64;

/// The 1-based line on which byte `offset` of `bytes` sits.
pub(crate) fn line_at(bytes: &[u8], offset: usize) -> usize {
    let before = bytes.get(..offset).unwrap_or(bytes);
    before.iter().filter(|&&byte| byte == b'\n').count() + 1
}

/// The first ASCII control character other than newline, as (line, byte).
/// Signed notes must contain none (C2SP signed-note, "Format").
pub(crate) fn find_control_character(bytes: &[u8]) -> Option<(usize, u8)> {
    let (offset, &byte) = bytes
        .iter()
        .enumerate()
        .find(|&(_, &byte)| byte < 0x20 && byte != b'\n')?;
    Some((line_at(bytes, offset), byte))
}

/// Why a string is not a canonical decimal u64.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Error)]
pub enum DecimalError {
    #[error("not a decimal number")]
    NotDecimal,
    #[error("a leading zero")]
    LeadingZero,
    #[error("does not fit in 64 bits")]
    Overflow,
}

/// A decimal without sign or leading zeros (`0` itself excepted) that fits a
/// u64: one encoding per number.
pub fn parse_decimal(text: &str) -> Result<u64, DecimalError> {
    // Digits only: `str::parse` would also take a leading '+'.
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(DecimalError::NotDecimal);
    }
    if text.len() > 1 && text.starts_with('0') {
        return Err(DecimalError::LeadingZero);
    }
    text.parse().map_err(|_| DecimalError::Overflow)
}

/// A hash line: canonical base64 of exactly 32 bytes.
pub(crate) fn decode_hash(text: &str) -> Option<Hash> {
    BASE64
        .decode(text)
        .ok()
        .and_then(|bytes| Hash::try_from(bytes).ok())
}

/// Newline-terminated UTF-8 lines, counted from 1, leaving the rest of the
/// bytes (a signed note) to its own parser.
#[derive(Debug)]
pub(crate) struct Lines<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: usize,
}

/// Why a block of hash lines ended badly. Lines are numbered from 1.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum HashLinesError {
    NotUtf8 { line: usize },
    NotAHash { line: usize },
    TooMany,
    NoBlankLine,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            offset: 0,
            line: 0,
        }
    }

    /// The number of the line last read (0 before the first).
    pub(crate) fn line(&self) -> usize {
        self.line
    }

    /// The bytes after the line last read.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.offset..).unwrap_or_default()
    }

    /// The next line without its newline; `None` at the end or when the
    /// last line has no newline (these formats end every line in one).
    /// `Err` holds the number of a line that is not UTF-8.
    pub(crate) fn next_line(&mut self) -> Result<Option<&'a str>, usize> {
        let rest = self.rest();
        let Some(end) = rest.iter().position(|&byte| byte == b'\n') else {
            return Ok(None);
        };
        self.line += 1;
        self.offset += end + 1;
        std::str::from_utf8(&rest[..end])
            .map(Some)
            .map_err(|_| self.line)
    }

    /// Hash lines up to and including a blank line, at most `max` of them.
    pub(crate) fn hashes_to_blank_line(&mut self, max: usize) -> Result<Vec<Hash>, HashLinesError> {
        let mut hashes = Vec::new();
        loop {
            match self.next_line() {
                Err(line) => return Err(HashLinesError::NotUtf8 { line }),
                Ok(None) => return Err(HashLinesError::NoBlankLine),
                Ok(Some("")) => return Ok(hashes),
                Ok(Some(encoded)) => {
                    if hashes.len() == max {
                        return Err(HashLinesError::TooMany);
                    }
                    let hash =
                        decode_hash(encoded).ok_or(HashLinesError::NotAHash { line: self.line })?;
                    hashes.push(hash);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_counted_from_one() {
        assert_eq!(line_at(b"a\nb\nc", 0), 1);
        assert_eq!(line_at(b"a\nb\nc", 1), 1);
        assert_eq!(line_at(b"a\nb\nc", 2), 2);
        assert_eq!(line_at(b"a\nb\nc", 4), 3);
        assert_eq!(line_at(b"a\n", 99), 2);
    }

    #[test]
    fn control_characters_other_than_newline_are_found() {
        assert_eq!(find_control_character(b"a\nb\n"), None);
        assert_eq!(find_control_character(b"a\nb\r\n"), Some((2, b'\r')));
        assert_eq!(find_control_character(b"\ta"), Some((1, b'\t')));
        assert_eq!(find_control_character("\u{7f}é\n".as_bytes()), None);
    }

    #[test]
    fn decimals_have_one_encoding() {
        assert_eq!(parse_decimal("0"), Ok(0));
        assert_eq!(parse_decimal("120"), Ok(120));
        assert_eq!(parse_decimal("18446744073709551615"), Ok(u64::MAX));
        for (text, error) in [
            ("", DecimalError::NotDecimal),
            ("+1", DecimalError::NotDecimal),
            ("-1", DecimalError::NotDecimal),
            (" 1", DecimalError::NotDecimal),
            ("١", DecimalError::NotDecimal),
            ("00", DecimalError::LeadingZero),
            ("01", DecimalError::LeadingZero),
            ("18446744073709551616", DecimalError::Overflow),
        ] {
            assert_eq!(parse_decimal(text), Err(error), "{text:?}");
        }
    }
}
