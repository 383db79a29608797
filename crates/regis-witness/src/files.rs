//! Files the witness writes whole. A file is replaced by writing a
//! temporary file beside it, syncing it, renaming it over the old one and
//! syncing the directory: a crash leaves the old contents or the new, and
//! once the call returns the new contents survive a power cut.

use std::fmt;
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::path::Path;

/// Where the witness's state and evidence go. [`Disk`] is the file system;
/// tests give one that fails, to check that a failed write cosigns nothing.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Replaces `dir/file` with `bytes`: when this returns `Ok` the new
    /// contents are durable; on an error, or a crash meanwhile, the file
    /// holds its old contents or the new.
    fn replace(&self, dir: &Path, file: &str, bytes: &[u8]) -> io::Result<()>;
}

/// The file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct Disk;

impl Storage for Disk {
    fn replace(&self, dir: &Path, file: &str, bytes: &[u8]) -> io::Result<()> {
        write_atomically(dir, file, bytes, 0o644)
    }
}

/// The suffix of the temporary file a replacement writes first. A leftover
/// one (a crash before its rename) is never read and is overwritten by the
/// next replacement.
pub const TEMPORARY_SUFFIX: &str = ".new";

/// Writes `bytes` to `dir/file` with permissions `mode` (on Unix), atomically
/// and durably (module docs).
pub(crate) fn write_atomically(dir: &Path, file: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
    let path = dir.join(file);
    let temporary = dir.join(format!("{file}{TEMPORARY_SUFFIX}"));
    // Removed first, so the file is created anew with `mode`.
    match fs::remove_file(&temporary) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut out = options.open(&temporary)?;
    out.write_all(bytes)?;
    out.sync_all()?;
    drop(out);
    fs::rename(&temporary, &path)?;
    sync_dir(dir)
}

/// Syncs a directory, so that the entries created or renamed in it last.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Creates `dir` (and its parents) and syncs its parent, so that the new
/// directory's entry is durable.
pub(crate) fn create_dir_durably(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}

/// Reads a private key file, refusing one that group or others may read or
/// write (as ssh does a private key): whoever reads it can cosign in the
/// witness's name. The mode is that of the file opened, so nothing changes
/// between the check and the read.
pub(crate) fn read_private(path: &Path) -> io::Result<String> {
    let mut file = fs::File::open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = file.metadata()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "it has mode {mode:04o}: group or others may read or write it; run `chmod 600 {}`",
                    path.display()
                ),
            ));
        }
    }
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text)
}
