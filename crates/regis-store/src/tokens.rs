//! Write tokens: bearer secrets that let a custodian append to one register
//! (or, for an admin token, create registers). Only a SHA-256 of each token
//! is kept, so the file does not give the tokens away; the token itself is
//! shown once, when it is minted.
//!
//! `DIR/tokens` (mode 0600) holds one line per token, appended (`O_APPEND`,
//! then fsync) so that `regis token` and a running server can both add to
//! it without a lock, and a reader never sees a half-written line as valid:
//!
//! ```text
//! register:<name> sha-256:<hex of SHA-256(token)>
//! admin sha-256:<hex>
//! ```
//!
//! A line that does not parse (the remains of an append torn by a crash)
//! matches no token and is skipped; the next append starts on a new line.
//!
//! A token is `regis_` and 43 characters of unpadded base64url: 256 bits
//! from the OS random source. Checking one hashes it and compares the hash
//! with every stored hash in constant time (`subtle`), without stopping at
//! the first match.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use base64::Engine as _;
use regis_model::RegisterName;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The file under the data directory.
pub const TOKENS_FILE: &str = "tokens";

/// What a token allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Appending to one register.
    Register(RegisterName),
    /// Creating registers.
    Admin,
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Register(name) => write!(f, "register:{name}"),
            Scope::Admin => f.write_str("admin"),
        }
    }
}

impl Scope {
    fn parse(text: &str) -> Option<Scope> {
        match text.strip_prefix("register:") {
            Some(name) => RegisterName::new(name).ok().map(Scope::Register),
            None => (text == "admin").then_some(Scope::Admin),
        }
    }
}

/// Why tokens could not be read or minted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read or written.
    #[error("{what} {path}: {error}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        error: std::io::Error,
    },
    /// The OS random source failed.
    #[error("no randomness for a token: {0}")]
    Random(getrandom::Error),
}

/// The stored hashes, as last read, and the file's length and modification
/// time then (a changed file is read again).
#[derive(Debug, Default)]
struct Loaded {
    stamp: Option<(u64, Option<SystemTime>)>,
    tokens: Vec<(Scope, [u8; 32])>,
}

/// The tokens of a data directory.
#[derive(Debug)]
pub struct Tokens {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

/// A newly minted token: shown once, never stored.
#[derive(Debug)]
pub struct MintedToken {
    /// The secret to give to the custodian.
    pub token: String,
    /// What it allows.
    pub scope: Scope,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TokenError {
    let path = path.to_owned();
    move |error| TokenError::Io { what, path, error }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// The tokens of data directory `data_dir` (the file need not exist).
    pub fn new(data_dir: &Path) -> Tokens {
        Tokens {
            path: data_dir.join(TOKENS_FILE),
            loaded: Mutex::new(Loaded::default()),
        }
    }

    /// Mints a token for `scope`, stores its hash durably, and returns it.
    pub fn mint(&self, scope: Scope) -> Result<MintedToken, TokenError> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(TokenError::Random)?;
        let token = format!(
            "regis_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        );
        let line = format!("{scope} sha-256:{}\n", hex::encode(digest(&token)));
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(io("creating", dir))?;
        }
        let mut options = OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&self.path)
            .map_err(io("opening", &self.path))?;
        let torn = file.metadata().map_err(io("reading", &self.path))?.len() > 0
            && !fs::read(&self.path)
                .map_err(io("reading", &self.path))?
                .ends_with(b"\n");
        let line = if torn { format!("\n{line}") } else { line };
        // One write of one short line: appends do not interleave.
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io("writing", &self.path))?;
        Ok(MintedToken { token, scope })
    }

    /// What `token` allows, or `None` for a token never minted here.
    pub fn scope(&self, token: &str) -> Result<Option<Scope>, TokenError> {
        let presented = digest(token);
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        self.refresh(&mut loaded)?;
        let mut found = None;
        for (scope, stored) in &loaded.tokens {
            // Every stored hash is compared, matched or not.
            if bool::from(stored.ct_eq(&presented)) && found.is_none() {
                found = Some(scope.clone());
            }
        }
        Ok(found)
    }

    /// Reads the file again if it changed since it was last read.
    fn refresh(&self, loaded: &mut Loaded) -> Result<(), TokenError> {
        let stamp = match fs::metadata(&self.path) {
            Ok(meta) => Some((meta.len(), meta.modified().ok())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("reading", &self.path)(e)),
        };
        if stamp.is_some() && stamp == loaded.stamp {
            return Ok(());
        }
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io("reading", &self.path)(e)),
        };
        let mut tokens = Vec::new();
        // A last line without its newline is an append in progress.
        let complete = text.rsplit_once('\n').map_or("", |(whole, _)| whole);
        for line in complete.lines() {
            let parsed = line.split_once(' ').and_then(|(scope, hash)| {
                let scope = Scope::parse(scope)?;
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(hash.strip_prefix("sha-256:")?, &mut bytes).ok()?;
                Some((scope, bytes))
            });
            tokens.extend(parsed);
        }
        loaded.tokens = tokens;
        loaded.stamp = stamp;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_found_with_their_scope_and_others_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::new(dir.path());
        assert_eq!(tokens.scope("regis_nothing").unwrap(), None);
        let country = Scope::Register(RegisterName::new("country").unwrap());
        let minted = tokens.mint(country.clone()).unwrap();
        let admin = tokens.mint(Scope::Admin).unwrap();
        assert!(minted.token.starts_with("regis_") && minted.token.len() == 49);
        assert_eq!(tokens.scope(&minted.token).unwrap(), Some(country));
        assert_eq!(tokens.scope(&admin.token).unwrap(), Some(Scope::Admin));
        assert_eq!(tokens.scope(&minted.token[..48]).unwrap(), None);
        // Another reader (another process) sees them; the file has hashes only.
        let again = Tokens::new(dir.path());
        assert_eq!(again.scope(&admin.token).unwrap(), Some(Scope::Admin));
        let text = fs::read_to_string(dir.path().join(TOKENS_FILE)).unwrap();
        assert!(!text.contains(&minted.token[6..]));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(TOKENS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_torn_line_matches_nothing_and_the_next_token_still_works() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::new(dir.path());
        let first = tokens.mint(Scope::Admin).unwrap();
        let path = dir.path().join(TOKENS_FILE);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"register:x sha-256:00").unwrap();
        drop(file);
        assert_eq!(tokens.scope(&first.token).unwrap(), Some(Scope::Admin));
        let second = tokens.mint(Scope::Admin).unwrap();
        let reader = Tokens::new(dir.path());
        assert_eq!(reader.scope(&first.token).unwrap(), Some(Scope::Admin));
        assert_eq!(reader.scope(&second.token).unwrap(), Some(Scope::Admin));
        assert_eq!(reader.loaded.lock().unwrap().tokens.len(), 2);
    }
}
