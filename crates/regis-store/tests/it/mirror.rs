//! Mirror registers on disk: made, listed, told apart from registers of
//! one's own, reopened with their upstream and pinned keys, and refused
//! where a register of one's own is expected (and the reverse).

use regis_model::RegisterName;
use regis_note::system_verifier;
use regis_note::{KeyName, NoteSigner, Verifier};
use regis_store::{
    HOST_FILE, KEY_FILE, Log, RedbBackend, RegisterKind, Registry, RegistryError, UPSTREAM_FILE,
    Upstream,
};

fn name(text: &str) -> RegisterName {
    RegisterName::new(text).unwrap()
}

/// The verifier of a key named like a Regis user log.
fn user_key(origin: &str, seed: u8) -> Verifier {
    NoteSigner::from_seed(KeyName::new(origin).unwrap(), &[seed; 32]).verifier()
}

fn upstream() -> Upstream {
    Upstream::new(
        "http://upstream.example/registers/country/",
        user_key("upstream.example/registers/country", 1),
    )
    .unwrap()
}

#[test]
fn the_system_key_is_the_user_key_named_for_the_system_log() {
    let user = user_key("upstream.example/registers/country", 1);
    let system = system_verifier(&user).unwrap();
    assert_eq!(
        system.name().as_str(),
        "upstream.example/registers/country/system"
    );
    assert_eq!(system.public_key(), user.public_key());
    assert_ne!(system.key_id(), user.key_id());
    // As the register's own signer makes it.
    let signer = NoteSigner::from_seed(
        KeyName::new("upstream.example/registers/country/system").unwrap(),
        &[1; 32],
    );
    assert_eq!(system, signer.verifier());
}

#[test]
fn the_upstream_file_round_trips_and_refuses_a_system_key_not_derived() {
    let upstream = upstream();
    assert_eq!(upstream.url(), "http://upstream.example/registers/country");
    let text = upstream.encode();
    assert_eq!(Upstream::parse(&text).unwrap(), upstream);
    assert!(text.starts_with("url http://upstream.example/registers/country\nlog-public-key "));

    let other_system = system_verifier(&user_key("upstream.example/registers/country", 2)).unwrap();
    let forged = format!(
        "url {}\nlog-public-key {}\nsystem-log-public-key {other_system}\n",
        upstream.url(),
        upstream.verifier(Log::User)
    );
    assert!(Upstream::parse(&forged).is_err());
    for bad in [
        "",
        &text[..text.len() - 1],
        &format!("{text}extra\n"),
        &text.replace("url ", "link "),
        &text.replace("log-public-key ", "log-public-key x"),
    ] {
        assert!(Upstream::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn mirrors_are_listed_told_apart_and_opened_only_as_mirrors() {
    let data = tempfile::tempdir().unwrap();
    let registry = Registry::new(data.path(), "here.example");
    let own = name("allergen");
    let copy = name("country");
    registry.create::<RedbBackend>(&own).unwrap();
    let mirror = registry
        .create_mirror::<RedbBackend>(&copy, &upstream())
        .unwrap();
    assert_eq!(mirror.upstream, upstream());
    assert_eq!(mirror.name, copy);
    assert_eq!(
        mirror.upstream.origin(Log::System),
        "upstream.example/registers/country/system"
    );
    drop(mirror);

    let dir = registry.dir(&copy);
    assert!(dir.join(UPSTREAM_FILE).is_file());
    assert!(!dir.join(KEY_FILE).exists() && !dir.join(HOST_FILE).exists());
    assert_eq!(
        registry.list::<RedbBackend>().unwrap(),
        vec![own.clone(), copy.clone()]
    );
    assert_eq!(registry.kind(&own), RegisterKind::Own);
    assert_eq!(registry.kind(&copy), RegisterKind::Mirror);

    // Each is opened only as what it is.
    let error = registry.open::<RedbBackend>(&copy).unwrap_err();
    assert!(
        matches!(&error, RegistryError::IsMirror(n) if n == "country"),
        "{error}"
    );
    assert!(error.to_string().contains("is a mirror"), "{error}");
    assert!(matches!(
        registry.open_mirror::<RedbBackend>(&own),
        Err(RegistryError::NotMirror(_))
    ));
    assert!(matches!(
        registry.open_mirror::<RedbBackend>(&name("nothing")),
        Err(RegistryError::NotFound(_))
    ));
    // Neither name can be made again, as either kind.
    assert!(matches!(
        registry.create::<RedbBackend>(&copy),
        Err(RegistryError::Exists(_))
    ));
    assert!(matches!(
        registry.create_mirror::<RedbBackend>(&own, &upstream()),
        Err(RegistryError::Exists(_))
    ));
    assert!(matches!(
        registry.create_mirror::<RedbBackend>(&copy, &upstream()),
        Err(RegistryError::Exists(_))
    ));

    // Reopened: the same upstream, an empty store.
    let reopened = registry.open_mirror::<RedbBackend>(&copy).unwrap();
    assert_eq!(reopened.upstream, upstream());
    let snapshot = reopened.store.snapshot().unwrap();
    assert_eq!(
        (snapshot.size(Log::User), snapshot.size(Log::System)),
        (0, 0)
    );
    assert!(snapshot.checkpoint(Log::User).unwrap().is_none());
}

#[test]
fn a_damaged_upstream_file_is_refused_and_a_half_made_mirror_is_completed() {
    let data = tempfile::tempdir().unwrap();
    let registry = Registry::new(data.path(), "here.example");
    let copy = name("country");
    // A crash after the upstream file, before the database.
    let dir = registry.dir(&copy);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(UPSTREAM_FILE),
        "url http://old.example/registers/country\n",
    )
    .unwrap();
    let mirror = registry
        .create_mirror::<RedbBackend>(&copy, &upstream())
        .unwrap();
    assert_eq!(mirror.upstream, upstream());
    drop(mirror);

    std::fs::write(dir.join(UPSTREAM_FILE), "url x\n").unwrap();
    assert!(matches!(
        registry.open_mirror::<RedbBackend>(&copy),
        Err(RegistryError::Upstream { .. })
    ));
}
