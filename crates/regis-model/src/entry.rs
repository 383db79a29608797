//! Entries, their timestamps and keys, and the exact v1 leaf bytes.
//!
//! An entry records that, at a time, a key took the value of one or more
//! items. Entries live in one of two logs, user (the data) and system (the
//! register's own definition), each numbered from 1. Entry `N` of a log is
//! leaf `N - 1` of that log's Merkle tree, whose input is the entry's leaf
//! bytes:
//!
//! `{"index-entry-number":"N","entry-number":"N","entry-timestamp":"T","key":"K","item-hash":["sha-256:H"]}`
//!
//! built here by hand, key and timestamp escaped as canonical JSON strings.
//! An [`Entry`] does not hold its number: the number is its position in a
//! log, given wherever it matters (leaf bytes, API bodies).

use std::fmt;
use std::str::FromStr;

use regis_merkle::{Hash, leaf_hash};

use crate::digest::{ItemHash, parse_hash, push_hash};
use crate::item::Value;
use crate::json::{Parser, push_string};

/// The log an entry belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Log {
    /// The register's data; its tree is the one GOV.UK published roots of.
    User,
    /// The register's definition: `name`, `register-name`, `custodian`,
    /// `field:<f>`, `register:<r>`.
    System,
}

impl Log {
    /// `user` or `system`, as RSF and the API write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Log::User => "user",
            Log::System => "system",
        }
    }
}

impl fmt::Display for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One value for each log, indexed by the log: `values[Log::User]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PerLog<T> {
    /// The user log's.
    pub user: T,
    /// The system log's.
    pub system: T,
}

impl<T> PerLog<T> {
    /// The two logs, in the order every listing of them uses.
    pub const LOGS: [Log; 2] = [Log::User, Log::System];

    /// The value `make` gives for each log.
    pub fn from_fn(mut make: impl FnMut(Log) -> T) -> Self {
        PerLog {
            user: make(Log::User),
            system: make(Log::System),
        }
    }

    /// Each value turned by `map`, which also gets its log.
    pub fn map<U>(self, mut map: impl FnMut(Log, T) -> U) -> PerLog<U> {
        PerLog {
            user: map(Log::User, self.user),
            system: map(Log::System, self.system),
        }
    }

    /// Borrows each value.
    pub fn as_ref(&self) -> PerLog<&T> {
        PerLog {
            user: &self.user,
            system: &self.system,
        }
    }

    /// Each log with its value, user first.
    pub fn iter(&self) -> impl Iterator<Item = (Log, &T)> {
        [(Log::User, &self.user), (Log::System, &self.system)].into_iter()
    }
}

impl<T> IntoIterator for PerLog<T> {
    type Item = (Log, T);
    type IntoIter = std::array::IntoIter<(Log, T), 2>;
    /// Each log with its value, user first.
    fn into_iter(self) -> Self::IntoIter {
        [(Log::User, self.user), (Log::System, self.system)].into_iter()
    }
}

impl<T> std::ops::Index<Log> for PerLog<T> {
    type Output = T;
    fn index(&self, log: Log) -> &T {
        match log {
            Log::User => &self.user,
            Log::System => &self.system,
        }
    }
}

impl<T> std::ops::IndexMut<Log> for PerLog<T> {
    fn index_mut(&mut self, log: Log) -> &mut T {
        match log {
            Log::User => &mut self.user,
            Log::System => &mut self.system,
        }
    }
}

/// An entry: a key taking the value of some items at some time.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The log it belongs to.
    pub log: Log,
    /// The record's key (for system entries, a system key such as `field:name`).
    pub key: String,
    /// When it was appended, as given (not necessarily monotonic).
    pub timestamp: Timestamp,
    /// The items; one in all published data, never none.
    pub item_hashes: Vec<ItemHash>,
}

impl Entry {
    /// An entry of one item.
    pub fn new(log: Log, key: impl Into<String>, timestamp: Timestamp, item: ItemHash) -> Self {
        Entry {
            log,
            key: key.into(),
            timestamp,
            item_hashes: vec![item],
        }
    }

    /// Appends the v1 leaf bytes of this entry as entry `number` of its log.
    pub fn push_leaf(&self, number: u64, out: &mut String) {
        self.push_json_fields(number, out);
        out.push_str(",\"item-hash\":[");
        self.push_item_hashes(out);
        out.push_str("]}");
    }

    /// The v1 leaf bytes of this entry as entry `number` of its log.
    pub fn leaf_bytes(&self, number: u64) -> Vec<u8> {
        let mut out = String::with_capacity(120 + self.key.len() + 73 * self.item_hashes.len());
        self.push_leaf(number, &mut out);
        out.into_bytes()
    }

    /// Reads v1 leaf bytes back (a store keeps entries as their leaves); the
    /// leaf does not say which log it belongs to, so the caller does.
    /// Accepts only the exact bytes [`Self::leaf_bytes`] writes. Returns the
    /// entry's number and the entry.
    pub fn parse_leaf(log: Log, leaf: &[u8]) -> Result<(u64, Entry), LeafError> {
        let text = std::str::from_utf8(leaf).map_err(|_| LeafError("it is not UTF-8"))?;
        let mut parser = Parser::strict(text);
        let mut next = |name: &str| match parser.next_field() {
            Ok(Some((field, value))) if field == name => Ok(value),
            _ => Err(LeafError("its fields are not those of a v1 leaf, in order")),
        };
        let one = |value: Value<'_>| match value {
            Value::One(text) => Ok(text.into_owned()),
            Value::Many(_) => Err(LeafError("a field that must be a string is an array")),
        };
        let index_number = one(next("index-entry-number")?)?;
        let number_text = one(next("entry-number")?)?;
        let timestamp = one(next("entry-timestamp")?)?;
        let key = one(next("key")?)?;
        let Value::Many(hashes) = next("item-hash")? else {
            return Err(LeafError("`item-hash` is not an array"));
        };
        if !matches!(parser.next_field(), Ok(None)) {
            return Err(LeafError("it has fields after `item-hash`"));
        }
        let number: u64 = number_text
            .parse()
            .map_err(|_| LeafError("`entry-number` is not a number"))?;
        if index_number != number_text {
            return Err(LeafError(
                "`index-entry-number` differs from `entry-number`",
            ));
        }
        let entry = Entry {
            log,
            key,
            timestamp: Timestamp::parse(&timestamp)
                .map_err(|_| LeafError("`entry-timestamp` is not a timestamp"))?,
            item_hashes: hashes
                .iter()
                .map(|hash| parse_hash(hash).map(ItemHash))
                .collect::<Result<_, _>>()
                .map_err(|_| LeafError("`item-hash` holds something other than hashes"))?,
        };
        if entry.item_hashes.is_empty() || entry.leaf_bytes(number) != leaf {
            return Err(LeafError("it is not in the exact v1 form"));
        }
        Ok((number, entry))
    }

    /// The RFC 6962 leaf hash of [`Self::leaf_bytes`].
    pub fn leaf_hash(&self, number: u64) -> Hash {
        leaf_hash(&self.leaf_bytes(number))
    }

    /// Appends `{"index-entry-number":"N","entry-number":"N","entry-timestamp":"T","key":"K"`,
    /// the part the leaf and the API's entry and record bodies share.
    pub(crate) fn push_json_fields(&self, number: u64, out: &mut String) {
        use std::fmt::Write;
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "{{\"index-entry-number\":\"{number}\",\"entry-number\":\"{number}\""
        );
        out.push_str(",\"entry-timestamp\":");
        push_string(out, self.timestamp.as_str());
        out.push_str(",\"key\":");
        push_string(out, &self.key);
    }

    /// Appends `"sha-256:…","sha-256:…"`.
    pub(crate) fn push_item_hashes(&self, out: &mut String) {
        for (index, hash) in self.item_hashes.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push('"');
            push_hash(out, hash.as_bytes());
            out.push('"');
        }
    }
}

/// The longest v1 leaf an entry may have: entry bundles (C2SP tlog-tiles)
/// prefix each leaf with its length as a big-endian u16.
pub const MAX_LEAF_BYTES: usize = u16::MAX as usize;

/// Bytes that are not the v1 leaf of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not v1 leaf bytes: {0}")]
pub struct LeafError(pub &'static str);

/// The leaf index of entry `number` (entries are numbered from 1); `None`
/// for 0, which numbers no entry.
pub fn leaf_index(number: u64) -> Option<u64> {
    number.checked_sub(1)
}

/// The number of the entry at leaf `index`.
pub fn entry_number(index: u64) -> u64 {
    index.saturating_add(1)
}

/// A timestamp that is not RFC 3339 UTC with whole seconds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not a timestamp: expected YYYY-MM-DDThh:mm:ssZ (UTC, whole seconds), {problem}"
)]
pub struct TimestampError {
    /// The rejected text (at most 80 characters of it).
    pub text: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

/// 1970-01-01T00:00:00, from which Unix seconds count.
const UNIX_EPOCH: jiff::civil::DateTime = jiff::civil::datetime(1970, 1, 1, 0, 0, 0, 0);

/// An RFC 3339 UTC timestamp with whole seconds, `YYYY-MM-DDThh:mm:ssZ`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp([u8; 20]);

impl Timestamp {
    /// Parses and checks `YYYY-MM-DDThh:mm:ssZ`: a real calendar date, hour
    /// 00–23, minute 00–59, second 00–60 (a leap second is allowed).
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        let error = |problem| TimestampError {
            text: text.chars().take(80).collect(),
            problem,
        };
        let bytes: [u8; 20] = text
            .as_bytes()
            .try_into()
            .map_err(|_| error("not 20 characters"))?;
        let parts = DateTimeParts::parse(text).ok_or_else(|| error("not that form"))?;
        if parts.zone != Zone::Utc || parts.second.is_none() {
            return Err(error("not that form"));
        }
        parts.check().map_err(error)?;
        if parts.hour == Some(24) {
            return Err(error("the hour is not 00–23"));
        }
        Ok(Timestamp(bytes))
    }

    /// The timestamp `seconds` after 1970-01-01T00:00:00Z; `None` outside
    /// the years 0000–9999.
    pub fn from_unix_seconds(seconds: i64) -> Option<Timestamp> {
        // Civil arithmetic, not `jiff::Timestamp`: its range stops a day
        // short of 9999-12-31 (it allows for any UTC offset).
        let time = UNIX_EPOCH
            .checked_add(jiff::SignedDuration::from_secs(seconds))
            .ok()?;
        if !(0..=9999).contains(&time.year()) {
            return None;
        }
        let text = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            time.year(),
            time.month(),
            time.day(),
            time.hour(),
            time.minute(),
            time.second()
        );
        Timestamp::parse(&text).ok()
    }

    /// Seconds since 1970-01-01T00:00:00Z (a leap second counts as the next
    /// second).
    pub fn unix_seconds(&self) -> i64 {
        let digits = |range: std::ops::Range<usize>| {
            let digits = self.0.get(range).unwrap_or_default();
            digits.iter().fold(0i16, |acc, &digit| {
                acc * 10 + i16::from(digit) - i16::from(b'0')
            })
        };
        // Two digits fit an i8. `parse` checked that the date is a real one
        // of the years 0000–9999, all of which jiff represents.
        let date = jiff::civil::Date::new(digits(0..4), digits(5..7) as i8, digits(8..10) as i8);
        debug_assert!(date.is_ok(), "{self:?}: {date:?}");
        let midnight = date.map_or(0, |date| {
            date.to_datetime(jiff::civil::Time::midnight())
                .duration_since(UNIX_EPOCH)
                .as_secs()
        });
        midnight
            + i64::from(digits(11..13)) * 3600
            + i64::from(digits(14..16)) * 60
            + i64::from(digits(17..19))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.as_str())
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(text: &str) -> Result<Self, TimestampError> {
        Timestamp::parse(text)
    }
}

/// How a date-time ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Zone {
    /// `Z`.
    Utc,
    /// Nothing (local time, which GOV.UK's datetime datatype tolerated).
    Unmarked,
}

/// The parts of an ISO 8601 date or date-time of reduced precision:
/// `YYYY[-MM[-DD[Thh[:mm[:ss]][Z]]]]`. Shared by entry timestamps and the
/// `datetime`, `timestamp` and `period` datatypes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DateTimeParts {
    pub year: u16,
    pub month: Option<u8>,
    pub day: Option<u8>,
    pub hour: Option<u8>,
    pub minute: Option<u8>,
    pub second: Option<u8>,
    pub zone: Zone,
}

impl DateTimeParts {
    /// Splits the form; `None` if it is not `YYYY[-MM[-DD[Thh[:mm[:ss]][Z]]]]`
    /// with two-digit parts. Ranges are checked by [`Self::check`].
    pub fn parse(text: &str) -> Option<DateTimeParts> {
        let (text, zone) = match text.strip_suffix('Z') {
            Some(rest) => (rest, Zone::Utc),
            None => (text, Zone::Unmarked),
        };
        let (date, time) = match text.split_once('T') {
            Some((date, time)) => (date, Some(time)),
            None => (text, None),
        };
        let mut date_parts = date.split('-');
        let year = number(date_parts.next()?, 4)?;
        let month = two_digits(date_parts.next())?;
        let day = two_digits(date_parts.next())?;
        if date_parts.next().is_some() {
            return None;
        }
        let mut parts = DateTimeParts {
            year,
            month,
            day,
            hour: None,
            minute: None,
            second: None,
            zone,
        };
        match time {
            None if zone == Zone::Utc => return None,
            None => {}
            Some(time) => {
                parts.day?;
                let mut time_parts = time.split(':');
                parts.hour = Some(two_digits(Some(time_parts.next()?))??);
                parts.minute = two_digits(time_parts.next())?;
                parts.second = two_digits(time_parts.next())?;
                if time_parts.next().is_some() {
                    return None;
                }
            }
        }
        Some(parts)
    }

    /// Checks the ranges: a real calendar date; hour 00–23 (or 24:00:00,
    /// the end of a day); minute 00–59; second 00–60.
    pub fn check(&self) -> Result<(), &'static str> {
        if let Some(month) = self.month
            && !(1..=12).contains(&month)
        {
            return Err("the month is not 01–12");
        }
        if let (Some(month), Some(day)) = (self.month, self.day)
            && jiff::civil::Date::new(self.year as i16, month as i8, day as i8).is_err()
        {
            return Err("the day is not in the month");
        }
        let end_of_day =
            self.hour == Some(24) && self.minute.unwrap_or(0) == 0 && self.second.unwrap_or(0) == 0;
        if self.hour.is_some_and(|hour| hour > 23) && !end_of_day {
            return Err("the hour is not 00–23");
        }
        if self.minute.is_some_and(|minute| minute > 59) {
            return Err("the minute is not 00–59");
        }
        if self.second.is_some_and(|second| second > 60) {
            return Err("the second is not 00–60");
        }
        Ok(())
    }

    /// The parts as a sortable tuple, missing parts at their smallest.
    pub fn instant(&self) -> (u16, u8, u8, u8, u8, u8) {
        (
            self.year,
            self.month.unwrap_or(1),
            self.day.unwrap_or(1),
            self.hour.unwrap_or(0),
            self.minute.unwrap_or(0),
            self.second.unwrap_or(0),
        )
    }
}

/// `text` as a number of exactly `digits` ASCII digits.
fn number(text: &str, digits: usize) -> Option<u16> {
    if text.len() != digits || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A part that may be absent (`Some(None)`), or two digits; `None` if it is
/// anything else.
fn two_digits(part: Option<&str>) -> Option<Option<u8>> {
    match part {
        None => Some(None),
        Some(part) => number(part, 2)
            .and_then(|value| u8::try_from(value).ok())
            .map(Some),
    }
}

/// A user key that breaks the key rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("key `{key}` is not valid: {problem}")]
pub struct KeyError {
    /// The key (at most 80 characters of it).
    pub key: String,
    /// The rule it breaks.
    pub problem: &'static str,
}

/// What any key must be, old or new, to be written in RSF and JSON at all:
/// not empty, no ASCII control character (TAB and newlines would break an
/// RSF line).
pub fn check_key_syntax(key: &str) -> Result<(), KeyError> {
    let error = |problem| KeyError {
        key: key.chars().take(80).collect(),
        problem,
    };
    if key.is_empty() {
        return Err(error("it is empty"));
    }
    if key.chars().any(|c| c.is_ascii_control()) {
        return Err(error("it contains a control character"));
    }
    Ok(())
}

/// The key rule of GOV.UK's reference implementation for new entries: ASCII
/// letters, digits and `-_./`, starting with a letter or digit, never two of
/// `-_./` in a row (`200010.11`, `E09000033`, `ft_openregister_test` pass).
pub fn check_key(key: &str) -> Result<(), KeyError> {
    let error = |problem| KeyError {
        key: key.chars().take(80).collect(),
        problem,
    };
    let punctuation = |c: char| matches!(c, '-' | '_' | '.' | '/');
    let mut chars = key.chars();
    match chars.next() {
        None => return Err(error("it is empty")),
        Some(first) if !first.is_ascii_alphanumeric() => {
            return Err(error("it must start with an ASCII letter or digit"));
        }
        Some(_) => {}
    }
    if key
        .chars()
        .any(|c| !c.is_ascii_alphanumeric() && !punctuation(c))
    {
        return Err(error("only ASCII letters, digits and `-_./` are allowed"));
    }
    if key
        .as_bytes()
        .windows(2)
        .any(|pair| punctuation(char::from(pair[0])) && punctuation(char::from(pair[1])))
    {
        return Err(error("two of `-_./` may not follow each other"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_bytes_match_the_published_example() {
        let entry = Entry::new(
            Log::User,
            "SU",
            "2016-04-05T13:23:05Z".parse().unwrap(),
            "sha-256:e94c4a9ab00d951dadde848ee2c9fe51628b22ff2e0a88bff4cca6e4e6086d7a"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            String::from_utf8(entry.leaf_bytes(1)).unwrap(),
            r#"{"index-entry-number":"1","entry-number":"1","entry-timestamp":"2016-04-05T13:23:05Z","key":"SU","item-hash":["sha-256:e94c4a9ab00d951dadde848ee2c9fe51628b22ff2e0a88bff4cca6e4e6086d7a"]}"#
        );
    }

    #[test]
    fn leaves_parse_back_exactly() {
        let entry = Entry::new(
            Log::System,
            "field:a\"b",
            "2016-04-05T13:23:05Z".parse().unwrap(),
            ItemHash::of(b"{}"),
        );
        let leaf = entry.leaf_bytes(12);
        assert_eq!(
            Entry::parse_leaf(Log::System, &leaf),
            Ok((12, entry.clone()))
        );
        let text = String::from_utf8(leaf).unwrap();
        for bad in [
            text.replace("\"12\"", "\"012\""),
            text.replacen("\"12\"", "\"13\"", 1),
            text.replace(":\"2016", ": \"2016"),
            text.replace("[\"sha", "\"sha").replace("\"]}", "\"}"),
            text.replace("]}", "],\"x\":\"y\"}"),
            text.replace("\"key\"", "\"kee\""),
            text.replace("a\\\"b", "a\\u0022b"),
            String::new(),
        ] {
            assert!(
                Entry::parse_leaf(Log::System, bad.as_bytes()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn keys_are_escaped_in_leaves() {
        let mut entry = Entry::new(
            Log::User,
            "a\"b\\",
            "2016-04-05T13:23:05Z".parse().unwrap(),
            ItemHash::of(b"{}"),
        );
        entry.item_hashes.push(ItemHash::of(b"{}"));
        let leaf = String::from_utf8(entry.leaf_bytes(7)).unwrap();
        assert!(leaf.contains(r#""key":"a\"b\\""#), "{leaf}");
        assert!(leaf.contains(r#""entry-number":"7""#), "{leaf}");
        assert_eq!(leaf.matches("sha-256:").count(), 2);
    }

    #[test]
    fn timestamps_are_checked() {
        for good in [
            "2016-04-05T13:23:05Z",
            "2016-02-29T23:59:60Z",
            "0000-01-01T00:00:00Z",
        ] {
            assert_eq!(Timestamp::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "2016-04-05T13:23:05",
            "2016-04-05 13:23:05Z",
            "2016-04-05T13:23:05.1Z",
            "2016-04-05T13:23:05+00:00",
            "2015-02-29T00:00:00Z",
            "2016-13-01T00:00:00Z",
            "2016-04-05T24:00:00Z",
            "2016-04-05T13:60:00Z",
            "2016-04-05T1:23:05Zx",
            "２016-04-05T13:23:05Z",
            "",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_convert_to_and_from_unix_seconds() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (1_459_862_585, "2016-04-05T13:23:05Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (-62_167_219_200, "0000-01-01T00:00:00Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
        ];
        for (seconds, text) in cases {
            let timestamp = Timestamp::from_unix_seconds(seconds).unwrap();
            assert_eq!(timestamp.as_str(), text);
            assert_eq!(timestamp.unix_seconds(), seconds);
        }
        assert_eq!(Timestamp::from_unix_seconds(253_402_300_800), None);
        assert_eq!(Timestamp::from_unix_seconds(-62_167_219_201), None);
    }

    #[test]
    fn key_rule() {
        for good in [
            "200010.11",
            "E09000033",
            "ft_openregister_test",
            "a/b-c",
            "9",
        ] {
            assert_eq!(check_key(good), Ok(()), "{good}");
        }
        for bad in ["", "-a", "a--b", "a./b", "a b", "é", "a:b", "a\tb"] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn entry_numbers_and_leaf_indexes() {
        assert_eq!(leaf_index(1), Some(0));
        assert_eq!(leaf_index(0), None);
        assert_eq!(entry_number(0), 1);
    }
}
