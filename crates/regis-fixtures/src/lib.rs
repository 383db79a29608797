//! Where tests find the shared fixtures: `$REGIS_FIXTURES`, else
//! `../shared/fixtures` beside the workspace root; and the third-party
//! clients that interop tests run: `$REGIS_CLIENTS`, else
//! `../shared/clients`.
//!
//! The fixtures are real data and public vectors that the project must not
//! copy into its repository (nor the clients). A test that needs them fails
//! loudly when they are missing: vector tests never skip silently.

use std::path::{Path, PathBuf};

/// The fixtures directory. Panics (this is test support) if it is missing.
pub fn dir() -> PathBuf {
    shared("REGIS_FIXTURES", "fixtures")
}

/// The third-party clients' directory. Panics if it is missing.
pub fn clients() -> PathBuf {
    shared("REGIS_CLIENTS", "clients")
}

/// `$variable`, else `../shared/folder` beside the workspace root; it must
/// be a directory.
fn shared(variable: &str, folder: &str) -> PathBuf {
    let dir = match std::env::var_os(variable) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared")
            .join(folder),
    };
    assert!(
        dir.is_dir(),
        "{folder} not found at {} (set {variable} to the shared {folder} folder)",
        dir.display()
    );
    dir
}

/// `dir()/relative`.
pub fn path(relative: impl AsRef<Path>) -> PathBuf {
    dir().join(relative)
}

/// The bytes of a fixture file.
pub fn read(relative: impl AsRef<Path>) -> Vec<u8> {
    let path = path(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A fixture file as UTF-8 text.
pub fn read_string(relative: impl AsRef<Path>) -> String {
    let path = path(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A JSON fixture.
pub fn read_json(relative: impl AsRef<Path>) -> serde_json::Value {
    let relative = relative.as_ref();
    serde_json::from_slice(&read(relative))
        .unwrap_or_else(|e| panic!("parsing {}: {e}", relative.display()))
}

/// Every file under `dir()/relative` whose name ends with `suffix`, sorted,
/// recursively.
pub fn files(relative: impl AsRef<Path>, suffix: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, suffix, out);
            } else if path.to_string_lossy().ends_with(suffix) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&path(relative), suffix, &mut out);
    out.sort();
    out
}
