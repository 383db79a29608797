//! Register names, and the origins of a register's two logs: the names
//! their checkpoints begin with and their verifier keys carry.

use crate::entry::Log;

/// A register name: 1 to 64 of `a-z`, `0-9` and `-`, not starting with `-`
/// (GOV.UK's names, such as `local-authority-eng`). Being a path component
/// and part of URLs and origins, nothing else is accepted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegisterName(String);

/// A name that is not a [`RegisterName`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid register name {0:?}: use 1 to 64 lowercase letters, digits and '-', starting with a letter or digit"
)]
pub struct InvalidRegisterName(pub String);

impl RegisterName {
    /// Checks `name`.
    pub fn new(name: &str) -> Result<Self, InvalidRegisterName> {
        let valid = (1..=64).contains(&name.len())
            && !name.starts_with('-')
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(RegisterName(name.to_owned()))
        } else {
            Err(InvalidRegisterName(name.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RegisterName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The origin of register `name`'s `log` on `host`: `<host>/registers/<name>`
/// for the user log, `…/system` for the system log.
pub fn origin(host: &str, name: &RegisterName, log: Log) -> String {
    match log {
        Log::User => format!("{host}/registers/{name}"),
        Log::System => format!("{host}/registers/{name}/system"),
    }
}
