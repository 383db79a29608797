//! Register lifecycle: directories, keys, origins, listing.

use regis_model::RegisterName;
use regis_note::{SignedCheckpoint, Verifiers};
use regis_store::{DirBackend, KEY_FILE, Log, RedbBackend, Registry, RegistryError};

fn name(text: &str) -> RegisterName {
    RegisterName::new(text).unwrap()
}

#[test]
fn create_list_open_and_sign() {
    let data = tempfile::tempdir().unwrap();
    let registry = Registry::new(data.path(), "registers.example");
    assert!(registry.list::<RedbBackend>().unwrap().is_empty());
    let country = name("country");
    let created = registry.create::<RedbBackend>(&country).unwrap();
    assert!(matches!(
        registry.create::<RedbBackend>(&country),
        Err(RegistryError::Exists(_))
    ));
    registry.create::<RedbBackend>(&name("allergen")).unwrap();
    assert_eq!(
        registry.list::<RedbBackend>().unwrap(),
        vec![name("allergen"), name("country")]
    );

    let dir = data.path().join("registers/country");
    assert!(RedbBackend::exists_in(&dir));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let pem = std::fs::read_to_string(dir.join(KEY_FILE)).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));

    // Origins per spec/formats.md; one key, two names, two verifier keys.
    let signers = &created.signers;
    assert_eq!(
        signers.origin(Log::User),
        "registers.example/registers/country"
    );
    assert_eq!(
        signers.origin(Log::System),
        "registers.example/registers/country/system"
    );
    let user_key = signers.verifier(Log::User);
    let system_key = signers.verifier(Log::System);
    assert_ne!(user_key.to_string(), system_key.to_string());
    assert_eq!(user_key.public_key(), system_key.public_key());

    // A signed checkpoint verifies under the log's key and origin only.
    let head = created.writer.head(Log::User);
    let signed = signers.sign(Log::User, head).unwrap();
    assert_eq!(signed.size, 0);
    let parsed = SignedCheckpoint::parse(signed.text.as_bytes()).unwrap();
    assert_eq!(parsed.checkpoint().root_hash(), &head.root);
    let none = Verifiers::default();
    parsed
        .verify(signers.origin(Log::User), &user_key, &none)
        .unwrap();
    assert!(
        parsed
            .verify(signers.origin(Log::User), &system_key, &none)
            .is_err()
    );
    drop(created);

    // Reopening keeps the key: the verifier key is stable.
    let reopened = registry.open::<RedbBackend>(&country).unwrap();
    assert_eq!(
        reopened.signers.verifier(Log::User).to_string(),
        user_key.to_string()
    );
    assert!(matches!(
        registry.open::<RedbBackend>(&name("nothing")),
        Err(RegistryError::NotFound(_))
    ));
}

#[test]
fn create_completes_a_register_left_half_made() {
    let data = tempfile::tempdir().unwrap();
    let registry = Registry::new(data.path(), "h");
    let first = registry.create::<RedbBackend>(&name("r")).unwrap();
    let key = first.signers.verifier(Log::User).to_string();
    drop(first);
    // A crash after the key was written but before the database was.
    let dir = data.path().join("registers/r");
    std::fs::remove_file(dir.join(regis_store::REDB_FILE)).unwrap();
    assert!(registry.list::<RedbBackend>().unwrap().is_empty());
    let again = registry.create::<RedbBackend>(&name("r")).unwrap();
    assert_eq!(again.signers.verifier(Log::User).to_string(), key);
}

#[test]
fn hosts_that_make_bad_origins_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let registry = Registry::new(data.path(), "bad host");
    assert!(matches!(
        registry.create::<RedbBackend>(&name("r")),
        Err(RegistryError::Origin(_))
    ));
}

#[test]
fn origins_keep_the_host_the_register_was_created_with() {
    let data = tempfile::tempdir().unwrap();
    let first = Registry::new(data.path(), "first.example");
    drop(first.create::<RedbBackend>(&name("r")).unwrap());
    let second = Registry::new(data.path(), "second.example");
    let register = second.open::<RedbBackend>(&name("r")).unwrap();
    assert_eq!(
        register.signers.origin(Log::User),
        "first.example/registers/r"
    );
}

#[test]
fn a_register_without_its_key_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let registry = Registry::new(data.path(), "h");
    drop(registry.create::<RedbBackend>(&name("r")).unwrap());
    std::fs::remove_file(data.path().join("registers/r").join(KEY_FILE)).unwrap();
    assert!(matches!(
        registry.open::<RedbBackend>(&name("r")),
        Err(RegistryError::Key { .. })
    ));
}

/// A signing key that group or others may read or write is refused at
/// open, with its mode and the fix; 0600 and 0400 open.
#[cfg(unix)]
#[test]
fn a_signing_key_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let data = tempfile::tempdir().unwrap();
    let registry = Registry::new(data.path(), "registers.example");
    let country = name("country");
    drop(registry.create::<RedbBackend>(&country).unwrap());
    let key = data.path().join("registers/country").join(KEY_FILE);
    for (mode, refused) in [
        (0o644, true),
        (0o640, true),
        (0o604, true),
        (0o620, true),
        (0o602, true),
        (0o600, false),
        (0o400, false),
    ] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let opened = registry.open::<RedbBackend>(&country);
        if !refused {
            drop(opened.unwrap());
            continue;
        }
        let Err(RegistryError::Key { reason, .. }) = opened else {
            panic!("mode {mode:o} was not refused");
        };
        assert_eq!(
            reason,
            format!(
                "{} has mode {mode:04o}: group or others may read or write it; run `chmod 600 {}`",
                key.display(),
                key.display()
            )
        );
    }
}
