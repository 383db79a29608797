//! The RSF writer, and GOV.UK's full-dump layout.

use std::io::{self, Write};

use regis_merkle::{Frontier, Hash};

use crate::digest::push_hash;
use crate::entry::{Entry, Log, check_key_syntax};
use crate::item::Item;
use crate::rsf::Command;

/// Writes RSF lines, keeping the user log's tree of the entries it writes so
/// that [`Self::assert_root_hash`] can state the root they lead to.
#[derive(Debug)]
pub struct RsfWriter<W> {
    out: W,
    user: Frontier,
    line: String,
}

impl<W: Write> RsfWriter<W> {
    /// A writer whose user log starts empty.
    pub fn new(out: W) -> Self {
        RsfWriter::resume(out, Frontier::new())
    }

    /// A writer whose user log starts as `user` (for a delta).
    pub fn resume(out: W, user: Frontier) -> Self {
        RsfWriter {
            out,
            user,
            line: String::new(),
        }
    }

    /// `add-item<TAB><canonical JSON>`.
    pub fn add_item(&mut self, item: &Item) -> io::Result<()> {
        self.line.clear();
        self.line.push_str("add-item\t");
        self.line.push_str(item.as_str());
        self.flush_line()
    }

    /// `append-entry<TAB>user|system<TAB><key><TAB><timestamp><TAB><hashes>`;
    /// a user entry also joins the writer's tree as its next leaf.
    pub fn append_entry(&mut self, entry: &Entry) -> io::Result<()> {
        if let Err(error) = check_key_syntax(&entry.key) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, error));
        }
        if entry.item_hashes.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an entry needs at least one item",
            ));
        }
        self.line.clear();
        self.line.push_str("append-entry\t");
        self.line.push_str(entry.log.as_str());
        self.line.push('\t');
        self.line.push_str(&entry.key);
        self.line.push('\t');
        self.line.push_str(entry.timestamp.as_str());
        self.line.push('\t');
        for (index, hash) in entry.item_hashes.iter().enumerate() {
            if index > 0 {
                self.line.push(';');
            }
            push_hash(&mut self.line, hash.as_bytes());
        }
        if entry.log == Log::User {
            let number = self.user.size() + 1;
            self.user
                .push(&entry.leaf_bytes(number))
                .map_err(|full| io::Error::new(io::ErrorKind::InvalidInput, full))?;
        }
        self.flush_line()
    }

    /// `assert-root-hash` of the user entries so far.
    pub fn assert_root_hash(&mut self) -> io::Result<()> {
        self.write_assertion(&self.user.root())
    }

    /// Writes `command` as it is (an assertion with the hash it carries).
    pub fn write_command(&mut self, command: &Command) -> io::Result<()> {
        match command {
            Command::AddItem(item) => self.add_item(item),
            Command::AppendEntry(entry) => self.append_entry(entry),
            Command::AssertRootHash(hash) => self.write_assertion(hash),
        }
    }

    /// The tree of the user entries so far.
    pub fn user_log(&self) -> &Frontier {
        &self.user
    }

    /// The output.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn write_assertion(&mut self, hash: &Hash) -> io::Result<()> {
        self.line.clear();
        self.line.push_str("assert-root-hash\t");
        push_hash(&mut self.line, hash);
        self.flush_line()
    }

    fn flush_line(&mut self) -> io::Result<()> {
        self.line.push('\n');
        self.out.write_all(self.line.as_bytes())
    }
}

/// Writes a full dump in GOV.UK's layout (see the [module docs](crate::rsf)):
/// the empty-tree assertion, `items` in the order given (GOV.UK: the system
/// entries' items, then the user entries'), every system entry, every user
/// entry, and the final assertion. Returns the output and the user root.
pub fn write_dump<'a, W: Write>(
    out: W,
    items: impl IntoIterator<Item = &'a Item>,
    system_entries: impl IntoIterator<Item = &'a Entry>,
    user_entries: impl IntoIterator<Item = &'a Entry>,
) -> io::Result<(W, Hash)> {
    let mut writer = RsfWriter::new(out);
    writer.assert_root_hash()?;
    for item in items {
        writer.add_item(item)?;
    }
    for entry in system_entries.into_iter().chain(user_entries) {
        writer.append_entry(entry)?;
    }
    writer.assert_root_hash()?;
    let root = writer.user_log().root();
    Ok((writer.into_inner(), root))
}
