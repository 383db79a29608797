//! Where tests find the shared fixtures: `$REGIS_FIXTURES`, else
//! `../shared/fixtures` beside the workspace root; and the third-party
//! clients that interop tests run: `$REGIS_CLIENTS`, else
//! `../shared/clients`.
//!
//! The fixtures are real data and public vectors that the project must not
//! copy into its repository (nor the clients; the project's own, in
//! `fixtures/`, are found by [`project_path`]). A test that needs them fails
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
    files_under(&path(relative), suffix)
}

/// A fixture the project writes itself: `relative` under the repository's
/// `fixtures/` (beside the code, unlike the shared real data).
pub fn project_path(relative: impl AsRef<Path>) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(relative)
}

/// Every project fixture under `fixtures/relative` whose name ends with
/// `suffix`, sorted, recursively.
pub fn project_files(relative: impl AsRef<Path>, suffix: &str) -> Vec<PathBuf> {
    files_under(&project_path(relative), suffix)
}

fn files_under(dir: &Path, suffix: &str) -> Vec<PathBuf> {
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
    walk(dir, suffix, &mut out);
    out.sort();
    out
}

/// A fixture of `fixtures/quirks/`: a slip that published history holds,
/// which an import takes with a warning and new writes refuse; with what
/// loading it gives (`fixtures/quirks/expected.json`).
#[derive(Clone, Debug)]
pub struct Quirk {
    /// The RSF file.
    pub path: PathBuf,
    /// The register it defines.
    pub register: String,
    /// The warnings an import gives, in line order.
    pub warnings: Vec<QuirkWarning>,
    /// Items added.
    pub items: u64,
    /// User entries.
    pub user_entries: u64,
    /// System entries.
    pub system_entries: u64,
    /// `assert-root-hash` lines.
    pub assertions: u64,
    /// The user log's root after the load, `sha-256:<hex>`.
    pub root: String,
    /// The system log's root after the load.
    pub system_root: String,
}

/// One warning a [`Quirk`] gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuirkWarning {
    /// Its line.
    pub line: u64,
    /// `unknown-system-key` or `orphan-item`.
    pub kind: String,
    /// The orphan item's hash, for `orphan-item`.
    pub item: Option<String>,
}

/// Every quirk fixture, in the manifest's order.
pub fn quirks() -> Vec<Quirk> {
    let manifest = project_path("quirks/expected.json");
    let text = std::fs::read_to_string(&manifest)
        .unwrap_or_else(|e| panic!("reading {}: {e}", manifest.display()));
    let value: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("parsing {}: {e}", manifest.display()));
    let text_of = |value: &serde_json::Value, field: &str| -> String {
        value[field]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no string {field}", manifest.display()))
            .to_owned()
    };
    let number = |value: &serde_json::Value, field: &str| -> u64 {
        value[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: no number {field}", manifest.display()))
    };
    // A quirk gives at least one warning, and there is at least one quirk:
    // a test over none would pass whatever the loader did.
    let list = |value: &serde_json::Value| -> Vec<serde_json::Value> {
        match value.as_array() {
            Some(list) if !list.is_empty() => list.clone(),
            _ => panic!("{}: an empty or missing list", manifest.display()),
        }
    };
    list(&value)
        .iter()
        .map(|quirk| Quirk {
            path: project_path(format!("quirks/{}", text_of(quirk, "file"))),
            register: text_of(quirk, "register"),
            warnings: list(&quirk["warnings"])
                .iter()
                .map(|warning| QuirkWarning {
                    line: number(warning, "line"),
                    kind: text_of(warning, "kind"),
                    item: warning["item"].as_str().map(str::to_owned),
                })
                .collect(),
            items: number(quirk, "items"),
            user_entries: number(quirk, "user-entries"),
            system_entries: number(quirk, "system-entries"),
            assertions: number(quirk, "assertions"),
            root: text_of(quirk, "root"),
            system_root: text_of(quirk, "system-root"),
        })
        .collect()
}
