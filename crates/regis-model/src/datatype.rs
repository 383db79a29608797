//! The datatypes of GOV.UK Registers fields and their validators.
//!
//! Each rule follows the reference implementation (openregister-java) where
//! it validated a datatype, and the specification where it did not:
//!
//! | datatype | a valid value |
//! |---|---|
//! | `string`, `text` | not blank (the reference treated both alike; `text` may hold Markdown) |
//! | `integer` | `0`, or an optional `-` and digits without a leading zero |
//! | `datetime` | `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, `YYYY-MM-DDThh[:mm[:ss]]Z`, or `YYYY-MM-DDThh:mm:ss` (no zone, as the reference accepted); a real calendar date, hour 00–23 (or 24:00:00), second up to 60 |
//! | `timestamp` | `YYYY-MM-DDThh:mm:ssZ` (RFC 3339 UTC, whole seconds) |
//! | `period` | `start/end` (start strictly before end), `start/duration`, `duration/end`, or a duration; start and end are datetimes; a duration is `P[nY][nM][nD][T[nH][nM][nS]]` with at least one part, and at least one after `T` |
//! | `curie` | `prefix:reference` with both parts non-empty, or a bare reference (relative to the field's register); at most one `:` |
//! | `url` | absolute: a scheme (`[A-Za-z][A-Za-z0-9+.-]*`), `:`, something; no whitespace or control characters; `http`/`https` need `//` and a host |
//! | `point` | `[x, y]`: two decimal numbers with a fractional part (`-?\d+\.\d+`), optional whitespace, as the reference's pattern |
//! | `hash` | `sha-256:` and 64 lower-case hex digits |
//!
//! A datatype the register defines but this list does not know (the
//! specification also named `polygon`, `attrname`…) is kept by name and
//! checks nothing, as the reference implementation did.

use std::fmt;

use crate::digest::parse_hash;
use crate::entry::{DateTimeParts, Timestamp, Zone};

/// The datatype of a field.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Datatype {
    /// A non-blank string.
    String,
    /// A non-blank string that may hold Markdown.
    Text,
    /// A decimal integer.
    Integer,
    /// An ISO 8601 date or date-time of reduced precision.
    Datetime,
    /// An RFC 3339 UTC timestamp with whole seconds.
    Timestamp,
    /// An ISO 8601 interval or duration.
    Period,
    /// A compact URI.
    Curie,
    /// An absolute URL.
    Url,
    /// A point `[x, y]`.
    Point,
    /// A `sha-256:` hash.
    Hash,
    /// A datatype this crate does not know: kept by name, not checked.
    Unvalidated(String),
}

const BLANK: &str = "it is blank";
const INTEGER: &str = "an integer is `0`, or an optional `-` and digits without a leading zero";
const DATETIME: &str =
    "a datetime is YYYY, YYYY-MM, YYYY-MM-DD, YYYY-MM-DDThh[:mm[:ss]]Z or YYYY-MM-DDThh:mm:ss";
const TIMESTAMP: &str = "a timestamp is YYYY-MM-DDThh:mm:ssZ with valid ranges";
const PERIOD: &str = "a period is start/end, start/duration, duration/end or a duration P[nY][nM][nD][T[nH][nM][nS]]";
const PERIOD_ORDER: &str = "the start of a period must be before its end";
const CURIE: &str = "a CURIE is `prefix:reference` with both parts non-empty, or a reference alone";
const URL: &str = "a URL is absolute (scheme `:` …), without whitespace; http(s) URLs need a host";
const POINT: &str = "a point is `[x, y]` with two decimal numbers such as `-0.2717007`";
const HASH: &str = "a hash is `sha-256:` and 64 lower-case hex digits";

impl Datatype {
    /// The datatype a field definition names.
    pub fn from_name(name: &str) -> Datatype {
        match name {
            "string" => Datatype::String,
            "text" => Datatype::Text,
            "integer" => Datatype::Integer,
            "datetime" => Datatype::Datetime,
            "timestamp" => Datatype::Timestamp,
            "period" => Datatype::Period,
            "curie" => Datatype::Curie,
            "url" => Datatype::Url,
            "point" => Datatype::Point,
            "hash" => Datatype::Hash,
            other => Datatype::Unvalidated(other.to_string()),
        }
    }

    /// The name field definitions use.
    pub fn name(&self) -> &str {
        match self {
            Datatype::String => "string",
            Datatype::Text => "text",
            Datatype::Integer => "integer",
            Datatype::Datetime => "datetime",
            Datatype::Timestamp => "timestamp",
            Datatype::Period => "period",
            Datatype::Curie => "curie",
            Datatype::Url => "url",
            Datatype::Point => "point",
            Datatype::Hash => "hash",
            Datatype::Unvalidated(name) => name,
        }
    }

    /// Checks one value; the error is the rule it breaks.
    pub fn check(&self, value: &str) -> Result<(), &'static str> {
        let valid = match self {
            Datatype::String | Datatype::Text => return non_blank(value),
            Datatype::Integer => is_integer(value),
            Datatype::Datetime => return datetime(value).map(|_| ()),
            Datatype::Timestamp => Timestamp::parse(value).is_ok(),
            Datatype::Period => return period(value),
            Datatype::Curie => is_curie(value),
            Datatype::Url => is_url(value),
            Datatype::Point => is_point(value),
            Datatype::Hash => parse_hash(value).is_ok(),
            Datatype::Unvalidated(_) => true,
        };
        if valid { Ok(()) } else { Err(self.rule()) }
    }

    fn rule(&self) -> &'static str {
        match self {
            Datatype::String | Datatype::Text | Datatype::Unvalidated(_) => BLANK,
            Datatype::Integer => INTEGER,
            Datatype::Datetime => DATETIME,
            Datatype::Timestamp => TIMESTAMP,
            Datatype::Period => PERIOD,
            Datatype::Curie => CURIE,
            Datatype::Url => URL,
            Datatype::Point => POINT,
            Datatype::Hash => HASH,
        }
    }
}

impl fmt::Display for Datatype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn non_blank(value: &str) -> Result<(), &'static str> {
    if value.chars().all(char::is_whitespace) {
        Err(BLANK)
    } else {
        Ok(())
    }
}

fn is_integer(value: &str) -> bool {
    let digits = value.strip_prefix('-').unwrap_or(value);
    match digits.as_bytes() {
        [b'0'] => digits.len() == value.len(),
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

fn datetime(value: &str) -> Result<DateTimeParts, &'static str> {
    let parts = DateTimeParts::parse(value).ok_or(DATETIME)?;
    // Without a zone, only the full date-time the reference accepted.
    if parts.zone == Zone::Unmarked && parts.hour.is_some() && parts.second.is_none() {
        return Err(DATETIME);
    }
    parts.check()?;
    Ok(parts)
}

fn period(value: &str) -> Result<(), &'static str> {
    let Some((first, second)) = value.split_once('/') else {
        return if is_duration(value) {
            Ok(())
        } else {
            Err(PERIOD)
        };
    };
    match (datetime(first), datetime(second)) {
        (Ok(start), Ok(end)) if start.instant() < end.instant() => Ok(()),
        (Ok(_), Ok(_)) => Err(PERIOD_ORDER),
        (Ok(_), Err(_)) if is_duration(second) => Ok(()),
        (Err(_), Ok(_)) if is_duration(first) => Ok(()),
        _ => Err(PERIOD),
    }
}

/// `P[nY][nM][nD][T[nH][nM][nS]]`, at least one part, at least one after `T`.
fn is_duration(value: &str) -> bool {
    let Some(rest) = value.strip_prefix('P') else {
        return false;
    };
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (rest, None),
    };
    match (
        designated_parts(date, b"YMD"),
        time.map(|time| designated_parts(time, b"HMS")),
    ) {
        (Some(parts), None) => parts > 0,
        (Some(_), Some(Some(parts))) => parts > 0,
        _ => false,
    }
}

/// How many `<digits><designator>` parts `text` is made of, designators in
/// the order of `order`, each at most once; `None` if it is anything else.
fn designated_parts(text: &str, order: &[u8]) -> Option<usize> {
    let mut rest = text.as_bytes();
    let mut allowed = order;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (&designator, tail) = rest.get(digits..)?.split_first()?;
        if digits == 0 {
            return None;
        }
        let at = allowed.iter().position(|&d| d == designator)?;
        allowed = allowed.get(at + 1..)?;
        rest = tail;
        parts += 1;
    }
    Some(parts)
}

fn is_curie(value: &str) -> bool {
    match value.split_once(':') {
        None => !value.is_empty(),
        Some((prefix, reference)) => {
            !prefix.is_empty() && !reference.is_empty() && !reference.contains(':')
        }
    }
}

fn is_url(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once(':') else {
        return false;
    };
    let mut scheme_chars = scheme.chars();
    let scheme_ok = scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let clean = !value.chars().any(|c| c.is_whitespace() || c.is_control());
    let host_ok = if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
        rest.strip_prefix("//").is_some_and(|authority| {
            !authority
                .split(['/', '?', '#'])
                .next()
                .unwrap_or_default()
                .is_empty()
        })
    } else {
        !rest.is_empty()
    };
    scheme_ok && clean && host_ok
}

/// The reference's pattern, after Java's `trim`:
/// `^\[\s*-?\d+\.\d+\s*,\s*-?\d+\.\d+\s*\]$`.
fn is_point(value: &str) -> bool {
    let java_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r');
    let trimmed = value.trim_matches(|c: char| c <= ' ');
    let Some(inner) = trimmed
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    else {
        return false;
    };
    let Some((x, y)) = inner.split_once(',') else {
        return false;
    };
    let decimal = |text: &str| {
        let text = text.trim_matches(java_space);
        let digits = text.strip_prefix('-').unwrap_or(text);
        digits.split_once('.').is_some_and(|(whole, fraction)| {
            !whole.is_empty()
                && !fraction.is_empty()
                && whole.bytes().all(|b| b.is_ascii_digit())
                && fraction.bytes().all(|b| b.is_ascii_digit())
        })
    };
    decimal(x) && decimal(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(datatype: &Datatype, values: &[&str]) {
        for value in values {
            assert_eq!(datatype.check(value), Ok(()), "{datatype} {value:?}");
        }
    }

    fn invalid(datatype: &Datatype, values: &[&str]) {
        for value in values {
            assert!(datatype.check(value).is_err(), "{datatype} {value:?}");
        }
    }

    #[test]
    fn strings() {
        valid(&Datatype::String, &["a", " a ", "Côte d'Ivoire"]);
        invalid(&Datatype::String, &["", " ", "\t\n"]);
        invalid(&Datatype::Text, &[""]);
    }

    #[test]
    fn integers() {
        valid(
            &Datatype::Integer,
            &["0", "100", "-200", "9223372036854775808000"],
        );
        invalid(
            &Datatype::Integer,
            &["", "-", "-0", "007", "1.0", "+1", "1e3", " 1", "٣"],
        );
    }

    #[test]
    fn datetimes() {
        valid(
            &Datatype::Datetime,
            &[
                "2001",
                "2001-01",
                "2001-01-31",
                "2018-10-11T12Z",
                "2018-10-11T12:14Z",
                "2001-01-31T23:20:55Z",
                "2001-01-31T23:20:55",
                "2016-02-29",
                "2001-01-31T24:00:00Z",
            ],
        );
        invalid(
            &Datatype::Datetime,
            &[
                "",
                "01",
                "2001-1",
                "2001-13",
                "2001-02-29",
                "2001-01-32",
                "2001-01-31T",
                "2001-01-31T12",
                "2001-01-31T12:00",
                "2001-01-31T25Z",
                "2001-01-31T24:01Z",
                "2001Z",
                "2001-01-31 12:00:00Z",
                "2001-01-31T12:00:00+01:00",
                "2001-01-31T12:00:00.5Z",
            ],
        );
    }

    #[test]
    fn timestamps() {
        valid(&Datatype::Timestamp, &["2018-07-15T14:38:05Z"]);
        invalid(&Datatype::Timestamp, &["2018-07-15", "2018-07-15T14:38:05"]);
    }

    #[test]
    fn periods() {
        valid(
            &Datatype::Period,
            &[
                "2007-03-01T13:00:00Z/2008-05-11T15:30:00Z",
                "2007-03-01T13:00:00Z/P1Y2M10DT2H30M",
                "P1Y2M10DT2H30M/2008-05-11T15:30:00Z",
                "P1Y2M10DT2H30M",
                "P3Y9M27D",
                "PT0S",
                "2018-01-01/P1M",
                "2017/2018",
            ],
        );
        invalid(
            &Datatype::Period,
            &[
                "",
                "P",
                "PT",
                "P1YT",
                "P1D2Y",
                "P1Y1Y",
                "1Y",
                "P-1Y",
                "P1.5Y",
                "2008/2007",
                "2008/2008",
                "P1Y/P1M",
                "2007/P1M/2008",
                "2007-13/P1M",
                "P1H",
            ],
        );
    }

    #[test]
    fn curies() {
        valid(
            &Datatype::Curie,
            &[
                "country:GB",
                "government-organisation:D10",
                "GB",
                "example:foo/bar",
            ],
        );
        invalid(&Datatype::Curie, &["", ":GB", "country:", "a:b:c"]);
    }

    #[test]
    fn urls() {
        valid(
            &Datatype::Url,
            &[
                "https://www.gov.uk/service-manual",
                "http://example.org",
                "mailto:x@example.org",
                "ftp://h/p",
            ],
        );
        invalid(
            &Datatype::Url,
            &[
                "",
                "www.gov.uk",
                "http:/x",
                "https://",
                "http:// x",
                "1http://x",
                "https://a b",
            ],
        );
    }

    #[test]
    fn points() {
        valid(
            &Datatype::Point,
            &[
                "[51.8379454,-0.2717007]",
                " [ -0.1 , 51.5 ] ",
                "[1.0,\t2.0]",
            ],
        );
        invalid(
            &Datatype::Point,
            &[
                "",
                "[1,2]",
                "[1.0]",
                "1.0,2.0",
                "[1.0,2.0,3.0]",
                "[.5,1.0]",
                "[1.0,2.0]x",
            ],
        );
    }

    #[test]
    fn hashes_and_unknown_datatypes() {
        valid(
            &Datatype::Hash,
            &["sha-256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
        );
        invalid(
            &Datatype::Hash,
            &["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
        );
        assert_eq!(
            Datatype::from_name("polygon"),
            Datatype::Unvalidated("polygon".into())
        );
        valid(&Datatype::from_name("polygon"), &["anything", ""]);
        for name in [
            "string",
            "text",
            "integer",
            "datetime",
            "timestamp",
            "period",
            "curie",
            "url",
            "point",
            "hash",
        ] {
            assert_eq!(Datatype::from_name(name).name(), name);
        }
    }
}
