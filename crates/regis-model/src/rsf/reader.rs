//! The streaming RSF reader: one line in memory at a time.

use std::io::{BufRead, ErrorKind};

use crate::digest::{ItemHash, parse_hash};
use crate::entry::{Entry, Log, Timestamp, check_key_syntax};
use crate::item::Item;
use crate::rsf::{Command, RsfError, RsfErrorKind};

/// The longest line a reader accepts unless told otherwise: 64 MiB.
pub const DEFAULT_MAX_LINE: usize = 64 << 20;

/// Reads RSF commands from a stream, yielding each with its 1-based line
/// number. Holds at most one line (when a line is split across the input's
/// buffer; otherwise it parses in place). Stops after the first error.
#[derive(Debug)]
pub struct RsfReader<R> {
    input: R,
    line: u64,
    spill: Vec<u8>,
    max_line: usize,
    failed: bool,
}

impl<R: BufRead> RsfReader<R> {
    /// A reader of `input`, refusing lines over [`DEFAULT_MAX_LINE`] bytes.
    pub fn new(input: R) -> Self {
        RsfReader {
            input,
            line: 0,
            spill: Vec::new(),
            max_line: DEFAULT_MAX_LINE,
            failed: false,
        }
    }

    /// The same reader with another line-length limit.
    pub fn with_max_line(mut self, max_line: usize) -> Self {
        self.max_line = max_line;
        self
    }

    /// Lines read so far.
    pub fn line(&self) -> u64 {
        self.line
    }

    fn read_command(&mut self) -> Option<Result<Command, RsfErrorKind>> {
        self.spill.clear();
        loop {
            let available = match self.input.fill_buf() {
                Ok(available) => available,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => {
                    self.line += 1;
                    return Some(Err(error.into()));
                }
            };
            if available.is_empty() {
                if self.spill.is_empty() {
                    return None;
                }
                self.line += 1;
                return Some(parse_line(&self.spill));
            }
            let newline = memchr::memchr(b'\n', available);
            let taken = newline.unwrap_or(available.len());
            if self.spill.len() + taken > self.max_line {
                self.line += 1;
                return Some(Err(RsfErrorKind::LineTooLong {
                    limit: self.max_line,
                }));
            }
            match newline {
                Some(end) if self.spill.is_empty() => {
                    let command = parse_line(&available[..end]);
                    self.input.consume(end + 1);
                    self.line += 1;
                    return Some(command);
                }
                Some(end) => {
                    self.spill.extend_from_slice(&available[..end]);
                    self.input.consume(end + 1);
                    self.line += 1;
                    return Some(parse_line(&self.spill));
                }
                None => {
                    self.spill.extend_from_slice(available);
                    self.input.consume(taken);
                }
            }
        }
    }
}

impl<R: BufRead> Iterator for RsfReader<R> {
    type Item = Result<(u64, Command), RsfError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let result = self.read_command()?;
        self.failed = result.is_err();
        Some(
            result
                .map(|command| (self.line, command))
                .map_err(|kind| kind.at(self.line)),
        )
    }
}

/// Parses one line (without its `\n`).
fn parse_line(line: &[u8]) -> Result<Command, RsfErrorKind> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(RsfErrorKind::EmptyLine);
    }
    let line = std::str::from_utf8(line).map_err(|_| RsfErrorKind::NotUtf8)?;
    let (command, arguments) = line.split_once('\t').unwrap_or((line, ""));
    match command {
        "add-item" => Ok(Command::AddItem(Item::from_canonical(arguments)?)),
        "append-entry" => append_entry(arguments).map(Command::AppendEntry),
        "assert-root-hash" if arguments.contains('\t') || arguments.is_empty() => {
            Err(RsfErrorKind::FieldCount {
                command: "assert-root-hash",
                expected: "1 field (sha-256:<hex>)",
                found: if arguments.is_empty() {
                    0
                } else {
                    arguments.split('\t').count()
                },
            })
        }
        "assert-root-hash" => Ok(Command::AssertRootHash(parse_hash(arguments)?)),
        other => Err(RsfErrorKind::UnknownCommand(
            other.chars().take(80).collect(),
        )),
    }
}

/// The fields of an `append-entry` line after the command, in any of its
/// three forms.
fn append_entry(arguments: &str) -> Result<Entry, RsfErrorKind> {
    let mut fields = [""; 4];
    let mut count = 0;
    for field in arguments.split('\t') {
        if let Some(slot) = fields.get_mut(count) {
            *slot = field;
        }
        count += 1;
    }
    if arguments.is_empty() {
        count = 0;
    }
    let [first, second, third, fourth] = fields;
    let (log, key, timestamp, hashes) = match count {
        4 => {
            let log = match first {
                "user" => Log::User,
                "system" => Log::System,
                other => return Err(RsfErrorKind::Log(other.chars().take(80).collect())),
            };
            (log, second, third, fourth)
        }
        // 2016 to May 2017: timestamp, hash, key.
        3 if second.starts_with("sha-256:") => (Log::User, third, first, second),
        // One week of May 2017: key, timestamp, hash.
        3 => (Log::User, first, second, third),
        found => {
            return Err(RsfErrorKind::FieldCount {
                command: "append-entry",
                expected: "4 fields (type, key, timestamp, hash) or one of the two 3-field historical forms",
                found,
            });
        }
    };
    check_key_syntax(key)?;
    let timestamp = Timestamp::parse(timestamp)?;
    let item_hashes = hashes
        .split(';')
        .map(|hash| parse_hash(hash).map(ItemHash))
        .collect::<Result<_, _>>()?;
    Ok(Entry {
        log,
        key: key.to_string(),
        timestamp,
        item_hashes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    const HASH: &str = "sha-256:3cee6dfc567f2157208edc4a0ef9c1b417302bad69ee06b3e96f80988b37f254";

    fn read(text: &str) -> Vec<Result<(u64, Command), String>> {
        RsfReader::new(text.as_bytes())
            .map(|result| result.map_err(|error| error.to_string()))
            .collect()
    }

    #[test]
    fn the_three_append_entry_forms() {
        let expected = |log, key: &str| {
            Command::AppendEntry(Entry::new(
                log,
                key,
                "2016-11-02T14:45:54Z".parse().unwrap(),
                HASH.parse().unwrap(),
            ))
        };
        let text = format!(
            "append-entry\tuser\tk1\t2016-11-02T14:45:54Z\t{HASH}\n\
             append-entry\tsystem\tname\t2016-11-02T14:45:54Z\t{HASH}\r\n\
             append-entry\t2016-11-02T14:45:54Z\t{HASH}\tk2\n\
             append-entry\tk3\t2016-11-02T14:45:54Z\t{HASH}"
        );
        assert_eq!(
            read(&text),
            vec![
                Ok((1, expected(Log::User, "k1"))),
                Ok((2, expected(Log::System, "name"))),
                Ok((3, expected(Log::User, "k2"))),
                Ok((4, expected(Log::User, "k3"))),
            ]
        );
    }

    #[test]
    fn several_item_hashes() {
        let text = format!("append-entry\tuser\tk\t2016-11-02T14:45:54Z\t{HASH};{HASH}\n");
        let Ok((_, Command::AppendEntry(entry))) = &read(&text)[0] else {
            panic!()
        };
        assert_eq!(entry.item_hashes.len(), 2);
    }

    #[test]
    fn errors_name_the_line_and_stop_the_reader() {
        let cases = [
            ("\n", "RSF line 1: the line is empty"),
            (
                "add-item\t{}\nfoo bar\nadd-item\t{}\n",
                "RSF line 2: unknown command `foo bar`",
            ),
            ("add-item\t{ }\n", "RSF line 1: item JSON is not canonical"),
            (
                "append-entry\t2016-11-02T14:45:54Z\tsha-256:00\tk\n",
                "RSF line 1: `sha-256:00` is not a hash",
            ),
            (
                "append-entry\t2016-11-02T14:45:54Z\tsha-256:00\n",
                "RSF line 1: `append-entry` takes 4 fields",
            ),
            (
                "append-entry\tx\n",
                "RSF line 1: `append-entry` takes 4 fields",
            ),
            (
                "append-entry\tuser\t\t2016-11-02T14:45:54Z\tsha-256:00\n",
                "RSF line 1: key `` is not valid: it is empty",
            ),
            (
                "append-entry\tsys\tk\t2016-11-02T14:45:54Z\tsha-256:00\n",
                "RSF line 1: entry type `sys`",
            ),
            (
                "assert-root-hash\n",
                "RSF line 1: `assert-root-hash` takes 1 field",
            ),
            (
                "assert-root-hash\tsha-256:K3rfuFF1e",
                "RSF line 1: `sha-256:K3rfuFF1e` is not a hash",
            ),
            (
                "add-item\t{\"a\":1}",
                "RSF line 1: field `a`: a value must be a string",
            ),
        ];
        for (text, start) in cases {
            let results = read(text);
            let error = results.last().unwrap().as_ref().unwrap_err();
            assert!(error.starts_with(start), "{text:?}: {error}");
        }
        assert_eq!(read("add-item\t{}\n\u{0}\nadd-item\t{}\n").len(), 2);
        let bytes = b"add-item\t{\"a\":\"\xff\"}\n";
        let error = RsfReader::new(&bytes[..]).next().unwrap().unwrap_err();
        assert!(matches!(error.kind, RsfErrorKind::NotUtf8));
    }

    #[test]
    fn lines_split_across_buffers_and_the_line_limit() {
        let item = format!("add-item\t{{\"a\":\"{}\"}}\n", "x".repeat(100));
        let text = item.repeat(3);
        let reader = RsfReader::new(BufReader::with_capacity(7, text.as_bytes()));
        assert_eq!(reader.filter(Result::is_ok).count(), 3);
        let reader = RsfReader::new(BufReader::with_capacity(7, text.as_bytes())).with_max_line(50);
        let results: Vec<_> = reader.collect();
        assert_eq!(results.len(), 1);
        assert!(matches!(
            results[0],
            Err(RsfError {
                line: 1,
                kind: RsfErrorKind::LineTooLong { limit: 50 }
            })
        ));
    }
}
