//! The JSON of items, written and read by hand.
//!
//! **Canonical form** (GOV.UK Registers v1, checked against every item of the
//! real dumps): an object whose values are strings or arrays of strings; keys
//! sorted by UTF-16 code units (Java's `String.compareTo`, which the reference
//! implementation's Jackson `ORDER_MAP_ENTRIES_BY_KEYS` used; it differs from
//! byte order only between U+E000–U+FFFF and characters beyond U+FFFF); no
//! whitespace; in strings `"` and `\` escaped, control characters escaped as
//! `\b \t \n \f \r` where those exist and `\u00XX` (upper-case hex) otherwise,
//! everything else literal UTF-8 (`/` and U+2028 are not escaped). Array order
//! is kept.
//!
//! [`Parser`] reads both the canonical form (strict: any deviation is an
//! error; strings are borrowed unless they hold an escape) and any JSON
//! of the same shape (lenient: whitespace, any escape, any key order), so one
//! piece of code decides what an item is.
//!
//! Why not serde_json: the canonical form is the format's core, and a general
//! parser cannot hold it exactly. It must order keys as Jackson did (UTF-16,
//! not bytes), refuse duplicate keys rather than keep the last, and tell the
//! canonical bytes of an item from any other spelling of the same value,
//! since an item's hash is over those bytes.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::item::{ItemError, Value};

/// Compares field names as the canonical form orders them: by UTF-16 code
/// units.
pub fn compare_keys(a: &str, b: &str) -> Ordering {
    let first_difference = a.bytes().zip(b.bytes()).find(|(x, y)| x != y);
    match first_difference {
        None => a.len().cmp(&b.len()),
        // UTF-8 byte order is code point order. UTF-16 puts characters beyond
        // U+FFFF (lead bytes F0–F4, surrogates D800–DFFF in UTF-16) before
        // U+E000–U+FFFF (lead bytes EE, EF); every other pair agrees.
        Some((x, y)) => {
            let supplementary = |byte: u8| byte >= 0xF0;
            let high_bmp = |byte: u8| byte == 0xEE || byte == 0xEF;
            if (supplementary(x) && high_bmp(y)) || (high_bmp(x) && supplementary(y)) {
                y.cmp(&x)
            } else {
                x.cmp(&y)
            }
        }
    }
}

/// Appends `text` as a canonical JSON string, quotes included.
pub(crate) fn push_string(out: &mut String, text: &str) {
    out.push('"');
    let mut rest = text;
    while let Some(at) = rest
        .bytes()
        .position(|b| b < 0x20 || b == b'"' || b == b'\\')
    {
        let (plain, tail) = rest.split_at(at);
        out.push_str(plain);
        let mut chars = tail.chars();
        if let Some(special) = chars.next() {
            push_escape(out, special);
        }
        rest = chars.as_str();
    }
    out.push_str(rest);
    out.push('"');
}

fn push_escape(out: &mut String, special: char) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    match special {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\u{08}' => out.push_str("\\b"),
        '\t' => out.push_str("\\t"),
        '\n' => out.push_str("\\n"),
        '\u{0C}' => out.push_str("\\f"),
        '\r' => out.push_str("\\r"),
        control => {
            let code = control as u32;
            out.push_str("\\u00");
            out.push(char::from(HEX[(code >> 4 & 0xF) as usize]));
            out.push(char::from(HEX[(code & 0xF) as usize]));
        }
    }
}

/// Appends the canonical JSON object of `fields`, which must already be in
/// canonical key order without duplicates.
pub(crate) fn push_object<K: AsRef<str>>(out: &mut String, fields: &[(K, Value<'_>)]) {
    out.push('{');
    for (index, (name, value)) in fields.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_string(out, name.as_ref());
        out.push(':');
        match value {
            Value::One(text) => push_string(out, text),
            Value::Many(texts) => {
                out.push('[');
                for (index, text) in texts.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    push_string(out, text);
                }
                out.push(']');
            }
        }
    }
    out.push('}');
}

/// Where a parser stands in the object it reads.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Start,
    InObject,
    Done,
}

/// Reads the members of one item object, in order, borrowing from the text
/// wherever a string holds no escape.
#[derive(Debug)]
pub(crate) struct Parser<'a> {
    text: &'a str,
    pos: usize,
    strict: bool,
    state: State,
}

impl<'a> Parser<'a> {
    /// A parser that accepts only the canonical form (key order is the
    /// caller's to check: see [`check_canonical`]).
    pub(crate) fn strict(text: &'a str) -> Self {
        Parser {
            text,
            pos: 0,
            strict: true,
            state: State::Start,
        }
    }

    /// A parser that accepts any JSON object of strings and string arrays.
    pub(crate) fn lenient(text: &'a str) -> Self {
        Parser {
            text,
            pos: 0,
            strict: false,
            state: State::Start,
        }
    }

    /// The next member, or `None` after the closing brace (and nothing but
    /// whitespace after it).
    pub(crate) fn next_field(&mut self) -> Result<Option<(Cow<'a, str>, Value<'a>)>, ItemError> {
        match self.state {
            State::Done => return Ok(None),
            State::Start => {
                self.skip_whitespace();
                self.expect(b'{', "`{` (an item is a JSON object)")?;
                self.skip_whitespace();
                if self.peek() == Some(b'}') {
                    return self.close();
                }
                self.state = State::InObject;
            }
            State::InObject => {
                self.skip_whitespace();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.skip_whitespace();
                    }
                    Some(b'}') => return self.close(),
                    _ => return Err(self.syntax("`,` or `}`")),
                }
            }
        }
        if self.peek() != Some(b'"') {
            return Err(self.syntax("a field name in double quotes"));
        }
        let name = self.string()?;
        self.skip_whitespace();
        self.expect(b':', "`:`")?;
        self.skip_whitespace();
        let value = self.value(&name)?;
        Ok(Some((name, value)))
    }

    fn close(&mut self) -> Result<Option<(Cow<'a, str>, Value<'a>)>, ItemError> {
        self.pos += 1;
        self.skip_whitespace();
        if self.pos != self.text.len() {
            return Err(self.syntax("the end of the item after its closing `}`"));
        }
        self.state = State::Done;
        Ok(None)
    }

    fn value(&mut self, field: &str) -> Result<Value<'a>, ItemError> {
        match self.peek() {
            Some(b'"') => Ok(Value::One(self.string()?)),
            Some(b'[') => {
                self.pos += 1;
                self.skip_whitespace();
                let mut values = Vec::new();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(Value::Many(values));
                }
                loop {
                    match self.peek() {
                        Some(b'"') => values.push(self.string()?),
                        other => return Err(self.not_a_string(field, other, true)),
                    }
                    self.skip_whitespace();
                    match self.peek() {
                        Some(b',') => {
                            self.pos += 1;
                            self.skip_whitespace();
                        }
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Value::Many(values));
                        }
                        _ => return Err(self.syntax("`,` or `]`")),
                    }
                }
            }
            other => Err(self.not_a_string(field, other, false)),
        }
    }

    fn not_a_string(&self, field: &str, first: Option<u8>, in_array: bool) -> ItemError {
        let found = match first {
            Some(b'{') => "an object",
            Some(b'[') if in_array => "a nested array",
            Some(b't' | b'f') => "a boolean",
            Some(b'n') => "null",
            Some(b'-' | b'0'..=b'9') => "a number",
            _ => return self.syntax("a string or an array of strings"),
        };
        ItemError::FieldValue {
            field: field.to_string(),
            found,
        }
    }

    /// Reads a string starting at its opening quote.
    fn string(&mut self) -> Result<Cow<'a, str>, ItemError> {
        let bytes = self.text.as_bytes();
        let start = self.pos + 1;
        let rest = bytes.get(start..).unwrap_or_default();
        let Some(end) = memchr::memchr2(b'"', b'\\', rest) else {
            return Err(self.syntax_at(bytes.len(), "a closing `\"`"));
        };
        if let Some(control) = rest[..end].iter().position(|&b| b < 0x20) {
            return Err(self.syntax_at(start + control, "no raw control character in a string"));
        }
        if rest[end] == b'"' {
            self.pos = start + end + 1;
            return Ok(Cow::Borrowed(
                self.text.get(start..start + end).unwrap_or_default(),
            ));
        }
        self.pos = start;
        self.escaped_string()
    }

    /// The slow path of [`Self::string`]: a string holding an escape.
    fn escaped_string(&mut self) -> Result<Cow<'a, str>, ItemError> {
        let mut out = String::new();
        loop {
            let rest = self.text.get(self.pos..).unwrap_or_default();
            let Some(at) = rest
                .bytes()
                .position(|b| b < 0x20 || b == b'"' || b == b'\\')
            else {
                return Err(self.syntax_at(self.text.len(), "a closing `\"`"));
            };
            out.push_str(rest.get(..at).unwrap_or_default());
            self.pos += at;
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    let escape_at = self.pos;
                    self.pos += 1;
                    let decoded = self.escape()?;
                    let written = self.text.get(escape_at..self.pos).unwrap_or_default();
                    if self.strict && !is_canonical_escape(decoded, written) {
                        return Err(self.syntax_at(escape_at, "the canonical escape"));
                    }
                    out.push(decoded);
                }
                _ => return Err(self.syntax("no raw control character in a string")),
            }
        }
    }

    /// Decodes the escape after a backslash.
    fn escape(&mut self) -> Result<char, ItemError> {
        let Some(kind) = self.peek() else {
            return Err(self.syntax("an escape character"));
        };
        self.pos += 1;
        Ok(match kind {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{08}',
            b'f' => '\u{0C}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                match unit {
                    0xD800..=0xDBFF => {
                        let low_at = self.pos;
                        if self.text.as_bytes().get(low_at..low_at + 2) != Some(b"\\u") {
                            return Err(self.syntax_at(low_at, "a low surrogate after a high one"));
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(self.syntax_at(low_at, "a low surrogate after a high one"));
                        }
                        let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                        char::from_u32(code)
                            .ok_or_else(|| self.syntax_at(low_at, "a valid surrogate pair"))?
                    }
                    _ => char::from_u32(unit)
                        .ok_or_else(|| self.syntax_at(self.pos - 6, "no lone low surrogate"))?,
                }
            }
            _ => return Err(self.syntax_at(self.pos - 1, "one of `\"\\/bfnrtu` after `\\`")),
        })
    }

    fn hex4(&mut self) -> Result<u32, ItemError> {
        let digits = self.text.as_bytes().get(self.pos..self.pos + 4);
        let value = digits.and_then(|digits| {
            digits.iter().try_fold(0u32, |acc, &digit| {
                Some(acc << 4 | char::from(digit).to_digit(16)?)
            })
        });
        let value = value.ok_or_else(|| self.syntax("four hex digits after `\\u`"))?;
        self.pos += 4;
        Ok(value)
    }

    fn skip_whitespace(&mut self) {
        if !self.strict {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.pos += 1;
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8, expected: &'static str) -> Result<(), ItemError> {
        if self.peek() != Some(byte) {
            return Err(self.syntax(expected));
        }
        self.pos += 1;
        Ok(())
    }

    fn syntax(&self, expected: &'static str) -> ItemError {
        self.syntax_at(self.pos, expected)
    }

    fn syntax_at(&self, offset: usize, expected: &'static str) -> ItemError {
        ItemError::Syntax { offset, expected }
    }
}

/// Whether `written` (backslash included) is how the canonical form escapes
/// `decoded`.
fn is_canonical_escape(decoded: char, written: &str) -> bool {
    let mut canonical = String::with_capacity(6);
    push_escape(&mut canonical, decoded);
    (decoded < '\u{20}' || decoded == '"' || decoded == '\\') && canonical == written
}

/// Checks that `text` is an item in canonical form, allocating only for
/// strings with escapes and for arrays. Any error means "not canonical"; ask
/// [`Parser::lenient`] why.
pub(crate) fn check_canonical(text: &str) -> Result<(), ItemError> {
    let mut parser = Parser::strict(text);
    let mut previous: Option<Cow<'_, str>> = None;
    while let Some((name, _)) = parser.next_field()? {
        if let Some(previous) = &previous
            && compare_keys(previous, &name) != Ordering::Less
        {
            return Err(ItemError::Syntax {
                offset: parser.pos,
                expected: "keys in canonical order",
            });
        }
        previous = Some(name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        let mut out = String::new();
        push_string(&mut out, text);
        out
    }

    #[test]
    fn strings_escape_exactly_as_the_reference_did() {
        assert_eq!(canonical("a\"b\\c/d"), r#""a\"b\\c/d""#);
        assert_eq!(canonical("\u{08}\t\n\u{0C}\r"), r#""\b\t\n\f\r""#);
        assert_eq!(canonical("\u{00}\u{1F}\u{7F}"), "\"\\u0000\\u001F\u{7F}\"");
        assert_eq!(canonical("é€😀\u{2028}"), "\"é€😀\u{2028}\"");
    }

    #[test]
    fn keys_sort_by_utf16_code_units() {
        assert_eq!(compare_keys("a", "b"), Ordering::Less);
        assert_eq!(compare_keys("ab", "a"), Ordering::Greater);
        assert_eq!(compare_keys("end-date", "end"), Ordering::Greater);
        // U+FF21 (EF BC A1) sorts after U+1F600 in UTF-16, before it in UTF-8.
        assert_eq!(compare_keys("\u{FF21}", "\u{1F600}"), Ordering::Greater);
        assert_eq!(compare_keys("\u{1F600}", "\u{FF21}"), Ordering::Less);
        assert_eq!(compare_keys("\u{E000}", "\u{D7FF}"), Ordering::Greater);
    }

    #[test]
    fn strict_parsing_refuses_every_non_canonical_spelling() {
        for text in [
            r#"{"a":"b"}"#,
            r#"{"a":["b","c"],"b":[]}"#,
            r#"{"a":"\"\\\b\t\n\f\r\u001F/"}"#,
            "{}",
        ] {
            assert_eq!(check_canonical(text), Ok(()), "{text}");
        }
        for text in [
            r#"{ "a":"b"}"#,
            r#"{"a":"b" }"#,
            r#"{"b":"a","a":"b"}"#,
            r#"{"a":"b","a":"b"}"#,
            r#"{"a":"\/"}"#,
            r#"{"a":"\u00e9"}"#,
            r#"{"a":"\u001f"}"#,
            r#"{"a":"\u000A"}"#,
            r#"{"a":"b"} "#,
            r#"{"a":1}"#,
        ] {
            assert!(check_canonical(text).is_err(), "{text}");
            assert!(
                Parser::lenient(text).next_field().is_ok() || text.contains(":1"),
                "{text}"
            );
        }
    }

    #[test]
    fn lenient_parsing_decodes_every_escape() {
        let mut parser = Parser::lenient(r#" { "a" : "\u00e9\/\uD83D\uDE00" } "#);
        let (name, value) = parser.next_field().unwrap().unwrap();
        assert_eq!(name, "a");
        assert_eq!(value, Value::One("é/😀".into()));
        assert_eq!(parser.next_field(), Ok(None));
        for bad in [
            r#"{"a":"\uD83D"}"#,
            r#"{"a":"\uDE00"}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"b"#,
        ] {
            let mut parser = Parser::lenient(bad);
            assert!(
                matches!(parser.next_field(), Err(ItemError::Syntax { .. })),
                "{bad}"
            );
        }
    }
}
