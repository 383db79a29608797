//! Defining a new register by name and fields: the system entries GOV.UK
//! registers begin with, ready to load.

use crate::entry::{Entry, Log, Timestamp};
use crate::item::{Item, ItemError, Value};
use crate::name::RegisterName;
use crate::register::Register;
use crate::rsf::{Command, Policy, RsfError};
use crate::schema::Field;

/// Why a definition cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// A register's records are keyed by the field named like it.
    #[error("register {0} needs a field named {0}, its primary key")]
    NoPrimaryKey(String),
    /// Two fields of one name.
    #[error("field {0} is defined twice")]
    DuplicateField(String),
    /// An item could not be made (a bad name or text).
    #[error(transparent)]
    Item(#[from] ItemError),
    /// The definition breaks a rule of new definitions (a name or text too
    /// long or with a control character, an unknown datatype…).
    #[error(transparent)]
    Invalid(#[from] RsfError),
}

/// The system entries that define register `name` with `fields` (the
/// first named like the register is its primary key), described by
/// `text`, kept by `custodian` if given: `name`, `custodian`, one
/// `field:<f>` per field, then `register:<name>`, each after its item, all
/// stamped `timestamp`, to be loaded with `Policy::APPEND`. They are
/// checked here first, by loading them into an empty register in memory
/// under the same rules, so that a caller can refuse a bad definition
/// before it creates anything.
pub fn definition_commands(
    name: &RegisterName,
    fields: &[Field],
    text: &str,
    custodian: Option<&str>,
    timestamp: Timestamp,
) -> Result<Vec<(u64, Command)>, DefinitionError> {
    if !fields.iter().any(|field| field.name == name.as_str()) {
        return Err(DefinitionError::NoPrimaryKey(name.to_string()));
    }
    for (i, field) in fields.iter().enumerate() {
        if fields[..i].iter().any(|other| other.name == field.name) {
            return Err(DefinitionError::DuplicateField(field.name.clone()));
        }
    }
    let mut entries = vec![(
        "name".to_owned(),
        Item::from_fields(vec![("name", Value::one(name.as_str()))])?,
    )];
    if let Some(custodian) = custodian {
        entries.push((
            "custodian".to_owned(),
            Item::from_fields(vec![("custodian", Value::one(custodian))])?,
        ));
    }
    for field in fields {
        let mut properties = vec![
            ("cardinality", Value::one(field.cardinality.as_str())),
            ("datatype", Value::one(field.datatype.name())),
            ("field", Value::one(field.name.as_str())),
        ];
        let optional = [
            ("register", &field.register),
            ("text", &field.text),
            ("phase", &field.phase),
        ];
        for (property, value) in optional {
            if let Some(value) = value {
                properties.push((property, Value::one(value.as_str())));
            }
        }
        entries.push((
            format!("field:{}", field.name),
            Item::from_fields(properties)?,
        ));
    }
    let definition = Item::from_fields(vec![
        (
            "fields",
            Value::many(fields.iter().map(|field| field.name.as_str())),
        ),
        ("register", Value::one(name.as_str())),
        ("text", Value::one(text)),
    ])?;
    entries.push((format!("register:{name}"), definition));
    let mut commands = Vec::with_capacity(entries.len() * 2);
    for (line, (key, item)) in (1u64..).step_by(2).zip(entries) {
        let entry = Entry::new(Log::System, key, timestamp, item.hash());
        commands.push((line, Command::AddItem(item)));
        commands.push((line + 1, Command::AppendEntry(entry)));
    }
    Register::named(name.as_str()).apply(
        commands.iter().map(|(_, command)| command.clone()),
        Policy::APPEND,
    )?;
    Ok(commands)
}
