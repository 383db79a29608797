//! The witness's data directory (`spec/witness.md`, "The witness's data
//! directory"): its cosigning key, and for each trusted log a directory
//! named by the hash of its origin holding the log's keys and the last
//! checkpoint cosigned for it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use regis_note::{Cosigner, KeyName, SignatureType, Verifier};
use sha2::{Digest as _, Sha256};

use crate::error::{WitnessError, corrupt, io};
use crate::files::{create_dir_durably, read_private, write_atomically};

/// The cosigning key: PKCS#8 PEM of its Ed25519 seed, mode 0600.
pub const KEY_FILE: &str = "witness-key";
/// The cosigning key's verifier key (type 0x04) and a newline: the name the
/// PEM lacks, and what clients pin.
pub const VKEY_FILE: &str = "witness-vkey";
/// One directory per trusted log, named by [`origin_hash`].
pub const LOGS_DIR: &str = "logs";
/// In a log's directory: its origin line, then one verifier key per line.
pub const LOG_FILE: &str = "log";
/// In a log's directory: the last checkpoint cosigned, as served.
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// Fork evidence, one JSON file per same-size-other-root checkpoint.
pub const EVIDENCE_DIR: &str = "evidence";

/// The lowercase hex SHA-256 of a log's origin: its directory's name and the
/// monitoring path's first segment (tlog-witness).
pub fn origin_hash(origin: &str) -> String {
    hex::encode(Sha256::digest(origin.as_bytes()))
}

/// Makes `dir` a witness's data directory with a new cosigning key named
/// `name`, from the OS's randomness; returns its verifier key. Refuses a
/// directory that already holds a witness. A key left by an `init` that
/// stopped before writing [`VKEY_FILE`] is kept: no witness ever opened with
/// it, so it never cosigned.
pub fn init(dir: &Path, name: KeyName) -> Result<Verifier, WitnessError> {
    if dir.join(VKEY_FILE).exists() {
        return Err(WitnessError::AlreadyInitialised(dir.to_owned()));
    }
    create_dir_durably(dir).map_err(io("creating", dir))?;
    let key_path = dir.join(KEY_FILE);
    let cosigner = match read_private(&key_path) {
        Ok(pem) => {
            Cosigner::from_pkcs8_pem(name, &pem).map_err(|e| corrupt(&key_path)(e.to_string()))?
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(WitnessError::Random)?;
            let cosigner = Cosigner::from_seed(name, &seed);
            let pem = cosigner
                .to_pkcs8_pem()
                .map_err(|e| corrupt(&key_path)(e.to_string()))?;
            write_atomically(dir, KEY_FILE, pem.as_bytes(), 0o600)
                .map_err(io("writing", &key_path))?;
            cosigner
        }
        Err(e) => return Err(io("reading", &key_path)(e)),
    };
    for sub in [LOGS_DIR, EVIDENCE_DIR] {
        let path = dir.join(sub);
        create_dir_durably(&path).map_err(io("creating", &path))?;
    }
    let verifier = cosigner.verifier();
    write_atomically(dir, VKEY_FILE, format!("{verifier}\n").as_bytes(), 0o644)
        .map_err(io("writing", &dir.join(VKEY_FILE)))?;
    Ok(verifier)
}

/// Reads the cosigning key of the witness in `dir`, checking it is the one
/// [`VKEY_FILE`] names.
pub(crate) fn read_cosigner(dir: &Path) -> Result<Cosigner, WitnessError> {
    let verifier = read_verifier(dir)?;
    let key_path = dir.join(KEY_FILE);
    let pem = read_private(&key_path).map_err(io("reading", &key_path))?;
    let cosigner = Cosigner::from_pkcs8_pem(verifier.name().clone(), &pem)
        .map_err(|e| corrupt(&key_path)(e.to_string()))?;
    if cosigner.verifier() != verifier {
        return Err(corrupt(&key_path)(format!(
            "it is not the key {VKEY_FILE} names ({verifier})"
        )));
    }
    Ok(cosigner)
}

/// The witness's verifier key, from [`VKEY_FILE`].
fn read_verifier(dir: &Path) -> Result<Verifier, WitnessError> {
    let path = dir.join(VKEY_FILE);
    let text = match fs::read_to_string(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(WitnessError::NotInitialised(dir.to_owned()));
        }
        other => other.map_err(io("reading", &path))?,
    };
    let verifier = text
        .strip_suffix('\n')
        .ok_or_else(|| "no newline after the key".to_owned())
        .and_then(|line| Verifier::parse(line).map_err(|e| e.to_string()))
        .map_err(corrupt(&path))?;
    if verifier.signature_type() != SignatureType::CosignatureV1 {
        return Err(corrupt(&path)(
            "not a cosignature/v1 key (type 0x04)".to_owned(),
        ));
    }
    Ok(verifier)
}

/// A trusted log as its [`LOG_FILE`] states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LogFile {
    pub origin: String,
    pub keys: Vec<Verifier>,
}

impl LogFile {
    fn parse(text: &str) -> Result<Self, String> {
        let body = text
            .strip_suffix('\n')
            .ok_or("the last line does not end in a newline")?;
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default().to_owned();
        let mut keys: Vec<Verifier> = Vec::new();
        for (number, line) in (2..).zip(lines) {
            let key = Verifier::parse(line).map_err(|e| format!("line {number}: {e}"))?;
            check_log_key(&origin, &key).map_err(|e| format!("line {number}: {e}"))?;
            if keys.contains(&key) {
                return Err(format!("line {number}: {key} is listed twice"));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err("no keys".to_owned());
        }
        Ok(LogFile { origin, keys })
    }

    fn to_text(&self) -> String {
        let mut text = format!("{}\n", self.origin);
        for key in &self.keys {
            text.push_str(&format!("{key}\n"));
        }
        text
    }
}

/// A key the witness can trust for `origin`: an Ed25519 note key (0x01),
/// whatever its name. Regis names each log's key by its origin; other C2SP
/// logs need not (Go's checksum database, `go.sum database tree`, signs
/// with `sum.golang.org`), and their fork evidence names the origin.
fn check_log_key(origin: &str, key: &Verifier) -> Result<(), WitnessError> {
    if key.signature_type() != SignatureType::Ed25519 {
        return Err(WitnessError::LogKey {
            origin: origin.to_owned(),
            key: key.to_string(),
            reason: "a log's key is an Ed25519 note key (type 0x01), not a cosigner's",
        });
    }
    Ok(())
}

/// Trusts `key` for the log `origin` in the witness at `dir`. Returns
/// whether anything changed (adding a key already trusted does nothing). A
/// running witness reads its logs when it starts.
pub fn add_log(dir: &Path, origin: &str, key: &Verifier) -> Result<bool, WitnessError> {
    read_verifier(dir)?;
    check_log_key(origin, key)?;
    let log_dir = dir.join(LOGS_DIR).join(origin_hash(origin));
    let mut log = match read_log_file(&log_dir)? {
        Some(log) if log.keys.contains(key) => return Ok(false),
        Some(log) => log,
        None => LogFile {
            origin: origin.to_owned(),
            keys: Vec::new(),
        },
    };
    log.keys.push(key.clone());
    create_dir_durably(&log_dir).map_err(io("creating", &log_dir))?;
    write_atomically(&log_dir, LOG_FILE, log.to_text().as_bytes(), 0o644)
        .map_err(io("writing", &log_dir.join(LOG_FILE)))?;
    Ok(true)
}

/// The log file in `log_dir`, if there is one; it must belong to the
/// directory (its origin hashes to the directory's name).
fn read_log_file(log_dir: &Path) -> Result<Option<LogFile>, WitnessError> {
    let path = log_dir.join(LOG_FILE);
    let text = match fs::read_to_string(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        other => other.map_err(io("reading", &path))?,
    };
    let log = LogFile::parse(&text).map_err(corrupt(&path))?;
    let hash = origin_hash(&log.origin);
    if log_dir.file_name().and_then(|name| name.to_str()) != Some(hash.as_str()) {
        return Err(corrupt(&path)(format!(
            "the origin {:?} belongs in the directory {hash}",
            log.origin
        )));
    }
    Ok(Some(log))
}

/// Every trusted log under `dir/logs`, with its directory. A directory
/// without a log file is one whose `add-log` stopped before writing it: it
/// trusts nothing and holds nothing, and is passed over.
pub(crate) fn read_logs(dir: &Path) -> Result<Vec<(PathBuf, LogFile)>, WitnessError> {
    let logs_dir = dir.join(LOGS_DIR);
    let entries = match fs::read_dir(&logs_dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other.map_err(io("listing", &logs_dir))?,
    };
    let mut logs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io("listing", &logs_dir))?;
        let log_dir = entry.path();
        if !log_dir.is_dir() {
            continue;
        }
        if let Some(log) = read_log_file(&log_dir)? {
            logs.push((log_dir, log));
        }
    }
    logs.sort_by(|a, b| a.1.origin.cmp(&b.1.origin));
    Ok(logs)
}
