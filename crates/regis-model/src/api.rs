//! Bodies of the GOV.UK Registers v1 API, byte for byte as the reference
//! implementation wrote them (its test fixtures are the tests here).
//!
//! JSON:
//! - an entry is exactly its leaf bytes, so a list of entries is
//!   `[leaf,leaf,…]`;
//! - records are `{"<key>":{"index-entry-number":"N","entry-number":"N","entry-timestamp":"T","key":"K","item":[<item>]},…}`,
//!   the item in canonical JSON.
//!
//! CSV (lines end with CRLF; cardinality-n values joined with `;`; absent
//! fields empty): a field is quoted, `"` doubled, when it is longer than 24
//! UTF-16 units or holds a character below `-` (U+002D), which is the rule
//! of the Jackson CSV encoder GOV.UK used (`"sha-256:…"`, `"The Entry 1"`
//! quoted; `2016-03-01T01:02:03Z`, `field1;field2` not).
//! - entries: `index-entry-number,entry-number,entry-timestamp,key,item-hash`;
//! - records: `index-entry-number,entry-number,entry-timestamp,key,<fields…>`,
//!   one row per item;
//! - items: `<fields…>`.
//!
//! Every cell is safe to open in a spreadsheet: one that begins with `=`,
//! `+`, `-`, `@`, TAB or CR is prefixed with `'` and quoted (OWASP, "CSV
//! injection"; negative numbers included), and control characters are
//! written escaped as in JSON (`\n`, `\u0007`).
//!
//! The fields are the register definition's, in its order
//! ([`RegisterDefinition::fields`](crate::RegisterDefinition)).

use std::borrow::Cow;

use crate::entry::Entry;
use crate::item::{Item, Value};
use crate::json::push_string;
use crate::register::Record;

/// `[{entry},…]`: each entry is its leaf bytes.
pub fn entries_json<'a>(entries: impl IntoIterator<Item = (u64, &'a Entry)>) -> String {
    let mut out = String::from("[");
    for (index, (number, entry)) in entries.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        entry.push_leaf(number, &mut out);
    }
    out.push(']');
    out
}

/// `{"<key>":{…,"item":[…]},…}`, one member per record (one for a single
/// record's body).
pub fn records_json<'a>(records: impl IntoIterator<Item = Record<'a>>) -> String {
    let mut out = String::from("{");
    for (index, record) in records.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_string(&mut out, &record.entry.key);
        out.push(':');
        record.entry.push_json_fields(record.number, &mut out);
        out.push_str(",\"item\":[");
        for (index, item) in record.items.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str(item.as_str());
        }
        out.push_str("]}");
    }
    out.push('}');
    out
}

const ENTRY_COLUMNS: [&str; 4] = [
    "index-entry-number",
    "entry-number",
    "entry-timestamp",
    "key",
];

/// The entries as CSV.
pub fn entries_csv<'a>(entries: impl IntoIterator<Item = (u64, &'a Entry)>) -> String {
    let mut out = String::new();
    push_row(&mut out, ENTRY_COLUMNS.iter().copied().chain(["item-hash"]));
    for (number, entry) in entries {
        let hashes: Vec<String> = entry.item_hashes.iter().map(ToString::to_string).collect();
        let number = number.to_string();
        let cells = [
            number.as_str(),
            &number,
            entry.timestamp.as_str(),
            &entry.key,
            &hashes.join(";"),
        ];
        push_row(&mut out, cells);
    }
    out
}

/// The records as CSV, with the register's `fields` as columns.
pub fn records_csv<'a>(fields: &[String], records: impl IntoIterator<Item = Record<'a>>) -> String {
    let mut out = String::new();
    push_row(
        &mut out,
        ENTRY_COLUMNS
            .iter()
            .copied()
            .chain(fields.iter().map(String::as_str)),
    );
    for record in records {
        let number = record.number.to_string();
        for item in &record.items {
            let values = field_values(fields, item);
            let entry_cells = [
                number.as_str(),
                &number,
                record.entry.timestamp.as_str(),
                &record.entry.key,
            ];
            push_row(
                &mut out,
                entry_cells
                    .into_iter()
                    .chain(values.iter().map(AsRef::as_ref)),
            );
        }
    }
    out
}

/// The items as CSV, with the register's `fields` as columns.
pub fn items_csv<'a>(fields: &[String], items: impl IntoIterator<Item = &'a Item>) -> String {
    let mut out = String::new();
    push_row(&mut out, fields.iter().map(String::as_str));
    for item in items {
        let values = field_values(fields, item);
        push_row(&mut out, values.iter().map(AsRef::as_ref));
    }
    out
}

/// The CSV cell of each of `fields` in `item`.
fn field_values<'i>(fields: &[String], item: &'i Item) -> Vec<Cow<'i, str>> {
    let present: Vec<_> = item.fields().collect();
    fields
        .iter()
        .map(
            |field| match present.iter().find(|(name, _)| name == field) {
                None => Cow::Borrowed(""),
                Some((_, Value::One(text))) => text.clone(),
                Some((_, Value::Many(texts))) => Cow::Owned(texts.join(";")),
            },
        )
        .collect()
}

fn push_row<'a>(out: &mut String, cells: impl IntoIterator<Item = &'a str>) {
    for (index, cell) in cells.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_cell(out, cell);
    }
    out.push_str("\r\n");
}

/// One cell, safe to open in a spreadsheet (OWASP's advice on CSV
/// injection): a cell that begins with `=`, `+`, `-`, `@`, TAB or CR, which
/// a spreadsheet would run as a formula, is prefixed with `'` and quoted
/// (a negative number such as `-5` too: OWASP's rule cannot tell it from
/// `-1+cmd`); and a control character is written escaped as in JSON
/// (`\n`, `\u0007`, `\u007F`), never raw. The exact values are in the JSON bodies.
fn push_cell(out: &mut String, cell: &str) {
    let formula = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let controls = cell.chars().any(char::is_control);
    let cell: Cow<'_, str> = if controls {
        let mut escaped = String::with_capacity(cell.len() + 8);
        for c in cell.chars() {
            match c {
                '\n' => escaped.push_str("\\n"),
                '\r' => escaped.push_str("\\r"),
                '\t' => escaped.push_str("\\t"),
                c if c.is_control() => {
                    use std::fmt::Write;
                    // Writing to a String cannot fail.
                    let _ = write!(escaped, "\\u{:04X}", u32::from(c));
                }
                c => escaped.push(c),
            }
        }
        Cow::Owned(escaped)
    } else {
        Cow::Borrowed(cell)
    };
    let quoted = formula || cell.encode_utf16().count() > 24 || cell.bytes().any(|b| b < b'-');
    if quoted {
        out.push('"');
        if formula {
            out.push('\'');
        }
        out.push_str(&cell.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&cell);
    }
}

/// What a path segment keeps as it is: ASCII letters, digits, `-` and `_`.
/// Everything else is percent-encoded, so that a key's `/` or `.` can neither
/// split the path nor be read as a format suffix (`.json`).
const PATH_SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// `text` (a record key, a field value) percent-encoded as one URL path
/// segment or query value.
///
/// ```
/// use regis_model::api::path_segment;
/// assert_eq!(path_segment("E09000033"), "E09000033");
/// assert_eq!(path_segment("a/b.c d"), "a%2Fb%2Ec%20d");
/// assert_eq!(path_segment("é"), "%C3%A9");
/// ```
pub fn path_segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, PATH_SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_as_jackson_did() {
        let cell = |text| {
            let mut out = String::new();
            push_cell(&mut out, text);
            out
        };
        assert_eq!(cell("value1"), "value1");
        assert_eq!(cell("2016-03-01T01:02:03Z"), "2016-03-01T01:02:03Z");
        assert_eq!(cell("field1;field2"), "field1;field2");
        assert_eq!(cell(""), "");
        assert_eq!(cell("The Entry 1"), "\"The Entry 1\"");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("abcdefghijklmnopqrstuvwx"), "abcdefghijklmnopqrstuvwx");
        assert_eq!(
            cell("abcdefghijklmnopqrstuvwxy"),
            "\"abcdefghijklmnopqrstuvwxy\""
        );
    }
}
