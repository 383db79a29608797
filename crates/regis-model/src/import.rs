//! Custodians' tabular files into new entries.
//!
//! GOV.UK's custodians kept their data as TSV (and some as CSV): the first
//! row names the fields, each further row is one item. TSV has no escaping
//! at all (a `"` is just a character); CSV quotes as RFC 4180. An empty cell
//! means the field is absent; a cardinality-n field's values are joined with
//! `;` (a cardinality-1 value may contain `;`, so the register's definition
//! decides). The column named like the register is the primary key and
//! becomes the entry's key. Each row becomes an item and a user entry with
//! the timestamp the caller gives (the crate has no clock); the rows are
//! streamed.

use std::io::Read;

use crate::entry::{Entry, Log, Timestamp};
use crate::item::{Item, ItemError, Value};
use crate::rsf::Command;
use crate::schema::{Cardinality, Schema};

/// The two tabular formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// TAB-separated, no quoting or escaping.
    Tsv,
    /// Comma-separated, RFC 4180 quoting.
    Csv,
}

/// A file that cannot be imported, and the line where it went wrong.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ImportError {
    /// 1-based line number (0 when the input could not be read at all).
    pub line: u64,
    /// What is wrong.
    pub kind: ImportErrorKind,
}

/// What is wrong with a tabular file.
#[derive(Debug, thiserror::Error)]
pub enum ImportErrorKind {
    /// The file is not well-formed (unequal rows, not UTF-8, unreadable).
    #[error("{0}")]
    Format(String),
    /// The register's name is not known, so neither is its key column.
    #[error("the register's name is unknown (no `name` system entry)")]
    Unnamed,
    /// No column is named like the register.
    #[error("no column is named `{0}`, the register's primary key")]
    NoKeyColumn(String),
    /// A column that is not a defined field.
    #[error("column `{0}` is not a field with a definition")]
    UnknownColumn(String),
    /// A column named twice.
    #[error("column `{0}` appears twice")]
    DuplicateColumn(String),
    /// A row without a primary key.
    #[error("the primary-key column `{0}` is empty")]
    EmptyKey(String),
    /// A cell that cannot be an item value.
    #[error("{0}")]
    Item(#[from] ItemError),
}

/// Reads rows as `(item, entry)` pairs.
pub struct Importer<R> {
    rows: csv::StringRecordsIntoIter<R>,
    columns: Vec<(String, Cardinality)>,
    key_column: usize,
    timestamp: Timestamp,
}

impl<R: Read> Importer<R> {
    /// Reads the header of `input` and checks it against `schema`.
    pub fn new(
        input: R,
        format: Format,
        schema: &Schema,
        timestamp: Timestamp,
    ) -> Result<Self, ImportError> {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(if format == Format::Tsv { b'\t' } else { b',' })
            .quoting(format == Format::Csv)
            .from_reader(input);
        let header = reader.headers().map_err(csv_error)?.clone();
        let at_header = |kind| ImportError { line: 1, kind };
        let name = schema
            .name()
            .ok_or_else(|| at_header(ImportErrorKind::Unnamed))?;
        let mut columns: Vec<(String, Cardinality)> = Vec::with_capacity(header.len());
        for column in &header {
            if columns.iter().any(|(name, _)| name == column) {
                return Err(at_header(ImportErrorKind::DuplicateColumn(
                    column.to_string(),
                )));
            }
            let field = schema
                .field(column)
                .ok_or_else(|| at_header(ImportErrorKind::UnknownColumn(column.to_string())))?;
            columns.push((column.to_string(), field.cardinality));
        }
        let key_column = columns
            .iter()
            .position(|(column, _)| column == name)
            .ok_or_else(|| at_header(ImportErrorKind::NoKeyColumn(name.to_string())))?;
        Ok(Importer {
            rows: reader.into_records(),
            columns,
            key_column,
            timestamp,
        })
    }

    fn row(&self, row: &csv::StringRecord) -> Result<(Item, Entry), ImportErrorKind> {
        let key = row.get(self.key_column).unwrap_or_default();
        if key.is_empty() {
            let column = self
                .columns
                .get(self.key_column)
                .map(|(name, _)| name.clone())
                .unwrap_or_default();
            return Err(ImportErrorKind::EmptyKey(column));
        }
        let fields = self
            .columns
            .iter()
            .zip(row)
            .filter(|(_, cell)| !cell.is_empty())
            .map(|((name, cardinality), cell)| {
                let value = match cardinality {
                    Cardinality::One => Value::one(cell),
                    Cardinality::Many => Value::many(cell.split(';')),
                };
                (name.as_str(), value)
            })
            .collect();
        let item = Item::from_fields(fields)?;
        let entry = Entry::new(Log::User, key, self.timestamp, item.hash());
        Ok((item, entry))
    }
}

impl<R> std::fmt::Debug for Importer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Importer")
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

impl<R: Read> Iterator for Importer<R> {
    type Item = Result<(Item, Entry), ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        let row = match self.rows.next()? {
            Ok(row) => row,
            Err(error) => return Some(Err(csv_error(error))),
        };
        let line = row.position().map_or(0, csv::Position::line);
        Some(self.row(&row).map_err(|kind| ImportError { line, kind }))
    }
}

/// The RSF commands of imported rows: each item, then its entry.
pub fn commands<I>(rows: I) -> impl Iterator<Item = Result<Command, ImportError>>
where
    I: IntoIterator<Item = Result<(Item, Entry), ImportError>>,
{
    rows.into_iter().flat_map(|row| {
        let (first, second) = match row {
            Ok((item, entry)) => (
                Ok(Command::AddItem(item)),
                Some(Ok(Command::AppendEntry(entry))),
            ),
            Err(error) => (Err(error), None),
        };
        std::iter::once(first).chain(second)
    })
}

fn csv_error(error: csv::Error) -> ImportError {
    let line = error.position().map_or(0, csv::Position::line);
    ImportError {
        line,
        kind: ImportErrorKind::Format(error.to_string()),
    }
}
