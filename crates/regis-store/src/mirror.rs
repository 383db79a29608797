//! Mirror registers: copies of another server's register, kept in the same
//! layout as a register of one's own, but with no signing key. A mirror's
//! checkpoints are the upstream's, signed by the upstream; the directory
//! holds, instead of `signing.key`, an `upstream` file naming the register
//! copied and the two verifier keys pinned when the mirror was made
//! (`spec/store.md`, "Mirrors"). Only a verifying copier (regis-mirror)
//! writes one; a server serves it read-only.

use std::fs;

use regis_model::{PerLog, RegisterName};
use regis_note::{Verifier, system_verifier};

use crate::registry::{io, write_atomically};
use crate::{DirBackend, Files, HOST_FILE, KEY_FILE, Log, Registry, RegistryError, Store, Writer};

/// The file that makes a register directory a mirror: its upstream's base
/// URL and pinned keys, UTF-8 text (see [`Upstream`]).
pub const UPSTREAM_FILE: &str = "upstream";

/// What a mirror copies: a register's base URL and the verifier keys of its
/// two logs, each named by the log's origin. The system key is the user
/// key's public key under the name `<user origin>/system` (as Regis signs
/// both logs with one key), so it is derived, never taken from the
/// upstream.
///
/// Its file is three lines, each `<field> <value>`, in this order:
///
/// ```text
/// url http://example.org/registers/country
/// log-public-key example.org/registers/country+0123abcd+AQ…
/// system-log-public-key example.org/registers/country/system+4567ef01+AQ…
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    url: String,
    verifiers: PerLog<Verifier>,
}

impl Upstream {
    /// The upstream at `url` whose user log is signed by `user_key`; the
    /// system log's key is derived from it. `None` if the user key's name
    /// cannot take the `/system` suffix or the key is not Ed25519.
    pub fn new(url: &str, user_key: Verifier) -> Option<Self> {
        let system = system_verifier(&user_key)?;
        Some(Upstream {
            url: url.trim_end_matches('/').to_owned(),
            verifiers: PerLog {
                user: user_key,
                system,
            },
        })
    }

    /// The register's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The log's pinned verifier key.
    pub fn verifier(&self, log: Log) -> &Verifier {
        &self.verifiers[log]
    }

    /// The log's origin: its key's name.
    pub fn origin(&self, log: Log) -> &str {
        self.verifier(log).name().as_str()
    }

    /// The file's text.
    pub fn encode(&self) -> String {
        format!(
            "url {}\nlog-public-key {}\nsystem-log-public-key {}\n",
            self.url, self.verifiers.user, self.verifiers.system
        )
    }

    /// Parses the file's text, exactly as [`Self::encode`] writes it, and
    /// checks that the system key is the one derived from the user key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut lines = text
            .strip_suffix('\n')
            .ok_or("it does not end with a newline")?
            .split('\n');
        let mut field = |name: &str| {
            lines
                .next()
                .and_then(|line| line.strip_prefix(name))
                .and_then(|line| line.strip_prefix(' '))
                .ok_or(format!("expected a line `{name} …`"))
        };
        let url = field("url")?.to_owned();
        let user = Verifier::parse(field("log-public-key")?)
            .map_err(|e| format!("log-public-key: {e}"))?;
        let system = Verifier::parse(field("system-log-public-key")?)
            .map_err(|e| format!("system-log-public-key: {e}"))?;
        if lines.next().is_some() {
            return Err("more than three lines".into());
        }
        let upstream = Upstream::new(&url, user)
            .ok_or("the log key's name cannot name a system log, or it is not Ed25519")?;
        if upstream.verifiers.system != system || upstream.url != url {
            return Err(
                "the system log key is not the log key's public key named <origin>/system".into(),
            );
        }
        Ok(upstream)
    }
}

/// An open mirror: its store, its writer (for the verifying copier only)
/// and what it copies.
#[derive(Debug)]
pub struct Mirror<B: crate::KvBackend> {
    /// Its name (the directory's).
    pub name: RegisterName,
    /// The read side, shared.
    pub store: Store<B>,
    /// The write side: only a copier that verified what it writes.
    pub writer: Writer<B>,
    /// The register copied, and its pinned keys.
    pub upstream: Upstream,
}

/// Whether a register directory is one of this server's own registers
/// (it signs) or a mirror (it copies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterKind {
    /// A register with its signing key.
    Own,
    /// A copy of another server's register.
    Mirror,
}

impl Registry {
    /// Whether `name` is a mirror or a register of one's own, by its files
    /// (an `upstream` file makes a mirror). Says nothing of whether its
    /// database exists ([`Registry::exists`]).
    pub fn kind(&self, name: &RegisterName) -> RegisterKind {
        if self.dir(name).join(UPSTREAM_FILE).exists() {
            RegisterKind::Mirror
        } else {
            RegisterKind::Own
        }
    }

    /// Creates an empty mirror of `upstream` named `name`: the upstream file
    /// (atomically), then the database. A directory left by a crash during
    /// an earlier `create_mirror` (an upstream file but no database) is
    /// completed, with the upstream given now: nothing was copied yet.
    pub fn create_mirror<B: DirBackend>(
        &self,
        name: &RegisterName,
        upstream: &Upstream,
    ) -> Result<Mirror<B>, RegistryError> {
        let dir = self.dir(name);
        if self.exists::<B>(name) || dir.join(KEY_FILE).exists() || dir.join(HOST_FILE).exists() {
            return Err(RegistryError::Exists(name.to_string()));
        }
        fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        write_atomically(&dir, UPSTREAM_FILE, upstream.encode().as_bytes(), 0o644)?;
        self.open_mirror(name)
    }

    /// Opens an existing mirror; fails if its store does not match the
    /// last (upstream-signed) checkpoint it stored, or if `name` is not a
    /// mirror ([`RegistryError::NotMirror`]).
    ///
    /// A server serving the mirror read-only takes `store` (and drops or
    /// parks `writer`), and the origins and keys from `upstream`.
    pub fn open_mirror<B: DirBackend>(
        &self,
        name: &RegisterName,
    ) -> Result<Mirror<B>, RegistryError> {
        let dir = self.dir(name);
        let file = dir.join(UPSTREAM_FILE);
        let text = match fs::read_to_string(&file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(if self.exists::<B>(name) || dir.join(KEY_FILE).exists() {
                    RegistryError::NotMirror(name.to_string())
                } else {
                    RegistryError::NotFound(name.to_string())
                });
            }
            other => other.map_err(io("reading", &file))?,
        };
        let upstream = Upstream::parse(&text).map_err(|reason| RegistryError::Upstream {
            name: name.to_string(),
            reason,
        })?;
        let store_error = |error| RegistryError::Store {
            name: name.to_string(),
            error,
        };
        let (store, writer) = Store::open(
            B::open_dir(&dir).map_err(store_error)?,
            Files::open_dir(&dir).map_err(store_error)?,
        )
        .map_err(store_error)?;
        Ok(Mirror {
            name: name.clone(),
            store,
            writer,
            upstream,
        })
    }
}
