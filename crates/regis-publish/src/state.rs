//! The durable publication state: per register and target, the last pair
//! of sizes published, in `DATA/registers/NAME/published-to/<first 16 hex
//! of SHA-256(target URL)>` (`spec/static.md`, "State"):
//!
//! ```text
//! regis-published/1
//! url s3://bucket/prefix
//! log 1234
//! system-log 9
//! ```
//!
//! It is replaced whole (temporary file, fsync, rename, directory fsync)
//! after the checkpoints of a publication are stored.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use regis_model::{Log, PerLog};
use regis_note::parse_decimal;
use sha2::{Digest as _, Sha256};

use crate::plan::log_dir;

/// The folder of state files, in a register's directory.
pub const STATE_DIR: &str = "published-to";

/// The first line of a state file.
const VERSION: &str = "regis-published/1";

/// The most a state file may hold (a URL and two numbers).
const MAX_BYTES: u64 = 16 << 10;

/// A state file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("{what} {path}: {error}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// Replacing it failed.
    #[error("writing {path}: {error}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        error: regis_store::RegistryError,
    },
    /// It does not parse, or names another target.
    #[error("{path}: {problem}")]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
}

/// A target's state file name: the first 16 hex digits of SHA-256 of its
/// URL.
pub fn file_name(url: &str) -> String {
    hex::encode(&Sha256::digest(url.as_bytes())[..8])
}

/// The state file of the register in `dir` for the target at `url`.
pub fn path(dir: &Path, url: &str) -> PathBuf {
    dir.join(STATE_DIR).join(file_name(url))
}

/// The bytes of a state file.
pub fn encode(url: &str, sizes: PerLog<u64>) -> Vec<u8> {
    format!(
        "{VERSION}\nurl {url}\n{} {}\n{} {}\n",
        log_dir(Log::User),
        sizes[Log::User],
        log_dir(Log::System),
        sizes[Log::System]
    )
    .into_bytes()
}

/// Parses a state file for `url`, strictly.
pub fn decode(bytes: &[u8], url: &str) -> Result<PerLog<u64>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "it is not UTF-8".to_owned())?;
    let body = text
        .strip_suffix('\n')
        .ok_or("it does not end with a newline")?;
    let lines: Vec<&str> = body.split('\n').collect();
    let [version, url_line, user, system] = lines[..] else {
        return Err(format!("it has {} lines, not 4", lines.len()));
    };
    if version != VERSION {
        return Err(format!("line 1 is not {VERSION:?}"));
    }
    match url_line.strip_prefix("url ") {
        Some(found) if found == url => {}
        Some(found) => return Err(format!("line 2 names another target, {found}")),
        None => return Err("line 2 is not \"url URL\"".to_owned()),
    }
    let size = |line: &str, number: usize, log: Log| -> Result<u64, String> {
        let value = line
            .strip_prefix(log_dir(log))
            .and_then(|rest| rest.strip_prefix(' '))
            .ok_or_else(|| format!("line {number} is not \"{} SIZE\"", log_dir(log)))?;
        parse_decimal(value).map_err(|error| format!("line {number}: {error}"))
    };
    Ok(PerLog {
        user: size(user, 3, Log::User)?,
        system: size(system, 4, Log::System)?,
    })
}

/// The sizes last published from the register in `dir` to `url`; `None`
/// if nothing was.
pub fn read(dir: &Path, url: &str) -> Result<Option<PerLog<u64>>, StateError> {
    let path = path(dir, url);
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(StateError::Io {
                what: "opening",
                path,
                error,
            });
        }
    };
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| StateError::Io {
            what: "reading",
            path: path.clone(),
            error,
        })?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(StateError::Bad {
            path,
            problem: format!("it is larger than {MAX_BYTES} bytes"),
        });
    }
    decode(&bytes, url)
        .map(Some)
        .map_err(|problem| StateError::Bad { path, problem })
}

/// Replaces the state of the register in `dir` for `url` with `sizes`,
/// durably.
pub fn write(dir: &Path, url: &str, sizes: PerLog<u64>) -> Result<(), StateError> {
    let folder = dir.join(STATE_DIR);
    std::fs::create_dir_all(&folder).map_err(|error| StateError::Io {
        what: "creating",
        path: folder.clone(),
        error,
    })?;
    let name = file_name(url);
    regis_store::write_atomically(&folder, &name, &encode(url, sizes), 0o644).map_err(|error| {
        StateError::Write {
            path: folder.join(&name),
            error,
        }
    })
}
