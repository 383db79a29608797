use std::path::PathBuf;

/// Why a witness's data directory could not be made, changed or opened.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// A file or directory operation failed.
    #[error("{what} {path}: {error}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On what.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// `init` of a directory that already holds a witness.
    #[error("{0} already holds a witness (its key is kept; nothing was changed)")]
    AlreadyInitialised(PathBuf),
    /// No witness in the directory.
    #[error("{0} holds no witness: run `regis witness init` first")]
    NotInitialised(PathBuf),
    /// The OS random number generator failed.
    #[error("the OS random number generator failed: {0}")]
    Random(getrandom::Error),
    /// A file of the data directory does not hold what it must.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A key `add-log` cannot trust for the origin.
    #[error("the key {key} cannot sign checkpoints of {origin:?}: {reason}")]
    LogKey {
        /// The log's origin.
        origin: String,
        /// The key given.
        key: String,
        /// Why not.
        reason: &'static str,
    },
}

pub(crate) fn io(
    what: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> WitnessError {
    let path = path.to_owned();
    move |error| WitnessError::Io { what, path, error }
}

pub(crate) fn corrupt(path: &std::path::Path) -> impl FnOnce(String) -> WitnessError {
    let path = path.to_owned();
    move |reason| WitnessError::Corrupt { path, reason }
}
