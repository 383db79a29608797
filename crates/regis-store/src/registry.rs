//! Where registers live on disk, and what each one needs to sign: the
//! register directories under `DIR/registers/`, their databases and their
//! Ed25519 signing keys.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use regis_model::{InvalidRegisterName, PerLog, RegisterName, origin};
use regis_note::{Checkpoint, KeyName, NoteSigner, SignedCheckpoint, Verifier};

use crate::{DirBackend, Files, Log, SignedTree, Store, StoreError, TreeHead, Writer};

/// The register's signing key: PKCS#8 PEM, mode 0600.
pub const KEY_FILE: &str = "signing.key";

/// The host the register's origins were made with when it was created. A
/// log's origin is in every checkpoint it signs, so it never changes after.
pub const HOST_FILE: &str = "host";

/// Why a register could not be listed, created or opened.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
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
    /// Not a register name.
    #[error(transparent)]
    Name(#[from] InvalidRegisterName),
    /// `create` of a register that exists.
    #[error("register {0} already exists")]
    Exists(String),
    /// `open` of a register that does not exist.
    #[error("no register {0}")]
    NotFound(String),
    /// The signing key is missing or unreadable.
    #[error("the signing key of register {name}: {reason}")]
    Key {
        /// The register.
        name: String,
        /// Why.
        reason: String,
    },
    /// The OS random number generator failed.
    #[error("the OS random number generator failed: {0}")]
    Random(getrandom::Error),
    /// The host makes an origin that is not a valid key name.
    #[error("origin {0:?} is not a valid note key name (no spaces, '+' or control characters)")]
    Origin(String),
    /// `open` of a mirror register: it has no signing key and is written
    /// only by verified copies of its upstream (`Registry::open_mirror`).
    #[error("register {0} is a mirror of another server's register, not one of this server's own")]
    IsMirror(String),
    /// `open_mirror` of a register that is not a mirror.
    #[error("register {0} is not a mirror")]
    NotMirror(String),
    /// A mirror's upstream file is missing or malformed.
    #[error("the upstream file of mirror {name}: {reason}")]
    Upstream {
        /// The mirror.
        name: String,
        /// Why.
        reason: String,
    },
    /// The register's store.
    #[error("register {name}: {error}")]
    Store {
        /// The register.
        name: String,
        /// The error.
        error: StoreError,
    },
}

/// The registers of one data directory, served under one host name.
#[derive(Clone, Debug)]
pub struct Registry {
    registers: PathBuf,
    host: String,
}

/// An open register: its store, its single writer and its signers.
#[derive(Debug)]
pub struct Register<B: crate::KvBackend> {
    /// Its name.
    pub name: RegisterName,
    /// The read side, shared.
    pub store: Store<B>,
    /// The write side: hand it to the register's sequencer.
    pub writer: Writer<B>,
    /// Signs both logs' checkpoints.
    pub signers: LogSigners,
}

/// The checkpoint signers of a register's two logs: one Ed25519 key, named
/// by each log's origin (so the two verifier keys differ in name and id).
#[derive(Debug)]
pub struct LogSigners {
    signers: PerLog<NoteSigner>,
}

impl LogSigners {
    /// Signers for `name` on `host` from the key's RFC 8032 seed.
    fn new(host: &str, name: &RegisterName, pem: &str) -> Result<Self, RegistryError> {
        let signer = |log| {
            let origin = origin(host, name, log);
            let key_name =
                KeyName::new(origin.clone()).map_err(|_| RegistryError::Origin(origin))?;
            NoteSigner::from_pkcs8_pem(key_name, pem).map_err(|e| RegistryError::Key {
                name: name.to_string(),
                reason: e.to_string(),
            })
        };
        Ok(LogSigners {
            signers: PerLog {
                user: signer(Log::User)?,
                system: signer(Log::System)?,
            },
        })
    }

    fn signer(&self, log: Log) -> &NoteSigner {
        &self.signers[log]
    }

    /// The log's origin (its checkpoints' first line and its key name).
    pub fn origin(&self, log: Log) -> &str {
        self.signer(log).name().as_str()
    }

    /// The log's verifier key (`name+<hex id>+<base64>`).
    pub fn verifier(&self, log: Log) -> Verifier {
        self.signer(log).verifier()
    }

    /// Signs `head` as `log`'s checkpoint.
    pub fn sign(&self, log: Log, head: TreeHead) -> Result<SignedTree, RegistryError> {
        let origin = self.origin(log);
        let checkpoint = Checkpoint::new(origin, head.size, head.root)
            .map_err(|_| RegistryError::Origin(origin.to_owned()))?;
        let text = SignedCheckpoint::sign(checkpoint, self.signer(log)).to_string();
        Ok(SignedTree {
            size: head.size,
            root: head.root,
            text,
        })
    }
}

pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError {
    let path = path.to_owned();
    move |error| RegistryError::Io { what, path, error }
}

impl Registry {
    /// The registers under `data_dir/registers`, with origins on `host`
    /// (such as `registers.example.gov.uk`).
    pub fn new(data_dir: &Path, host: &str) -> Self {
        Registry {
            registers: data_dir.join("registers"),
            host: host.to_owned(),
        }
    }

    /// The data directory (`DIR`).
    pub fn data_dir(&self) -> &Path {
        self.registers.parent().unwrap_or(&self.registers)
    }

    /// `DIR/registers/<name>`.
    pub fn dir(&self, name: &RegisterName) -> PathBuf {
        self.registers.join(name.as_str())
    }

    /// The host origins of new registers are made from.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether `name` exists (has a database of backend `B`).
    pub fn exists<B: DirBackend>(&self, name: &RegisterName) -> bool {
        B::exists_in(&self.dir(name))
    }

    /// The registers that exist, by name.
    pub fn list<B: DirBackend>(&self) -> Result<Vec<RegisterName>, RegistryError> {
        let entries = match fs::read_dir(&self.registers) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            other => other.map_err(io("listing", &self.registers))?,
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io("listing", &self.registers))?;
            let Some(name) = entry
                .file_name()
                .to_str()
                .and_then(|n| RegisterName::new(n).ok())
            else {
                continue;
            };
            if self.exists::<B>(&name) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Creates an empty register with a new signing key. Refuses a name
    /// used by a mirror ([`RegistryError::Exists`]). A directory left
    /// by a crash during an earlier `create` (a key but no database) is
    /// completed, keeping its key: no checkpoint was ever signed with it.
    pub fn create<B: DirBackend>(&self, name: &RegisterName) -> Result<Register<B>, RegistryError> {
        self.create_with(name, B::open_dir)
    }

    /// [`Self::create`], with the backend opened by `backend` (its options).
    pub fn create_with<B: DirBackend>(
        &self,
        name: &RegisterName,
        backend: impl FnOnce(&Path) -> Result<B, StoreError>,
    ) -> Result<Register<B>, RegistryError> {
        let dir = self.dir(name);
        if self.exists::<B>(name) || dir.join(crate::mirror::UPSTREAM_FILE).exists() {
            return Err(RegistryError::Exists(name.to_string()));
        }
        fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let key = dir.join(KEY_FILE);
        if !key.exists() {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(RegistryError::Random)?;
            // The key name is irrelevant to the PEM, which holds the seed only.
            let placeholder =
                KeyName::new(name.as_str()).map_err(|_| InvalidRegisterName(name.to_string()))?;
            let pem = NoteSigner::from_seed(placeholder, &seed)
                .to_pkcs8_pem()
                .map_err(|e| RegistryError::Key {
                    name: name.to_string(),
                    reason: e.to_string(),
                })?;
            write_atomically(&dir, KEY_FILE, pem.as_bytes(), 0o600)?;
        }
        if !dir.join(HOST_FILE).exists() {
            write_atomically(&dir, HOST_FILE, self.host.as_bytes(), 0o644)?;
        }
        self.open_with(name, backend)
    }

    /// Opens an existing register; fails if its store does not match its
    /// last signed checkpoint.
    pub fn open<B: DirBackend>(&self, name: &RegisterName) -> Result<Register<B>, RegistryError> {
        self.open_with(name, B::open_dir)
    }

    /// [`Self::open`], with the backend opened by `backend` (its options).
    pub fn open_with<B: DirBackend>(
        &self,
        name: &RegisterName,
        backend: impl FnOnce(&Path) -> Result<B, StoreError>,
    ) -> Result<Register<B>, RegistryError> {
        let dir = self.dir(name);
        if dir.join(crate::mirror::UPSTREAM_FILE).exists() {
            return Err(RegistryError::IsMirror(name.to_string()));
        }
        let key = dir.join(KEY_FILE);
        let pem = match read_key(&key) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && B::exists_in(&dir) => {
                return Err(RegistryError::Key {
                    name: name.to_string(),
                    reason: format!("{} is missing", key.display()),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RegistryError::NotFound(name.to_string()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(RegistryError::Key {
                    name: name.to_string(),
                    reason: e.to_string(),
                });
            }
            other => other.map_err(io("reading", &key))?,
        };
        // The origins are those the register was created with.
        let host_file = dir.join(HOST_FILE);
        let host = match fs::read_to_string(&host_file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.host.clone(),
            other => other.map_err(io("reading", &host_file))?,
        };
        let signers = LogSigners::new(&host, name, &pem)?;
        let store_error = |error| RegistryError::Store {
            name: name.to_string(),
            error,
        };
        let (store, writer) = Store::open(
            backend(&dir).map_err(store_error)?,
            Files::open_dir(&dir).map_err(store_error)?,
        )
        .map_err(store_error)?;
        // Every stored checkpoint must verify under the origins `host`
        // makes: an edited `host` must not serve new origins beside them.
        let snapshot = store.snapshot().map_err(store_error)?;
        for log in [Log::User, Log::System] {
            if let Some(checkpoint) = snapshot.checkpoint(log).map_err(store_error)? {
                crate::fsck::check_checkpoint(log, &checkpoint, &signers.verifier(log))
                    .map_err(|what| store_error(StoreError::Corrupt(what)))?;
            }
        }
        drop(snapshot);
        Ok(Register {
            name: name.clone(),
            store,
            writer,
            signers,
        })
    }
}

/// Reads a signing key file, refusing one that group or others may read
/// or write (as ssh does a private key): whoever reads it can sign
/// checkpoints in the register's name. The mode is that of the file opened
/// (no window between the check and the read).
fn read_key(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut file = fs::File::open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = file.metadata()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{} has mode {mode:04o}: group or others may read or write it; run `chmod 600 {}`",
                    path.display(),
                    path.display()
                ),
            ));
        }
    }
    let mut pem = String::new();
    file.read_to_string(&mut pem)?;
    Ok(pem)
}

/// Writes `bytes` to `dir/file` with permissions `mode`, atomically: a
/// temporary file, synced, renamed into place, and the directory synced.
pub fn write_atomically(
    dir: &Path,
    file: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<(), RegistryError> {
    let path = dir.join(file);
    let temporary = dir.join(format!("{file}.new"));
    match fs::remove_file(&temporary) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io("removing", &temporary)(e));
        }
        _ => {}
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut out = options
        .open(&temporary)
        .map_err(io("creating", &temporary))?;
    out.write_all(bytes)
        .and_then(|()| out.sync_all())
        .map_err(io("writing", &temporary))?;
    fs::rename(&temporary, &path).map_err(io("renaming", &temporary))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing", dir))
}
