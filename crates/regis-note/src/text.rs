//! Byte-level rules shared by notes, signature lines and checkpoints: where a
//! byte sits (its 1-based line), which control characters are forbidden, and
//! the one base64 flavour every format here uses.

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
}
