//! A register to publish (a real redb store, its sequencer running), and
//! the check of a published copy: every object a reader of its checkpoints
//! needs is there, with the store's bytes, and the RSF chain replays to the
//! checkpoint's root.

#![allow(dead_code)]

use std::io::BufReader;
use std::sync::Arc;

use bytes::Bytes;
use regis_merkle::tile::{TileKind, TilePath};
use regis_model::rsf::{Command, Policy, RsfReader};
use regis_model::{
    Cardinality, Datatype, Entry, Field, Item, Log, PerLog, RegisterName, Timestamp,
    definition_commands,
};
use regis_note::{SignedCheckpoint, Verifier, Verifiers};
use regis_publish::plan::{CHUNK, log_dir, tail_start};
use regis_publish::{LogKey, Publication, Settings, SharedStatus, Source, Target};
use regis_store::{
    RedbBackend, Registry, Request, Sequencer, SequencerConfig, SignedTree, Store, system_clock,
};

pub const NAME: &str = "demo";

/// A register with its sequencer running.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub registry: Registry,
    pub store: Store<RedbBackend>,
    pub keys: PerLog<LogKey>,
    sequencer: Option<Sequencer>,
    entries: u64,
}

fn time() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

impl Fixture {
    /// Register `demo` (fields `demo` and `text`), defined, no entries.
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(dir.path(), "regis.test");
        let name = RegisterName::new(NAME).unwrap();
        let register = registry.create::<RedbBackend>(&name).unwrap();
        let keys = PerLog::from_fn(|log| LogKey {
            origin: register.signers.origin(log).to_owned(),
            verifier: register.signers.verifier(log),
        });
        let store = register.store.clone();
        let sequencer = Sequencer::spawn(
            NAME,
            register.store,
            register.writer,
            register.signers,
            SequencerConfig::default(),
            system_clock(),
        )
        .unwrap();
        let field = |name: &str, datatype: &str| Field {
            name: name.into(),
            datatype: Datatype::from_name(datatype),
            cardinality: Cardinality::One,
            register: None,
            text: None,
            phase: None,
        };
        let commands = definition_commands(
            &name,
            &[field(NAME, "string"), field("text", "text")],
            "A register to publish",
            Some("Regis"),
            time(),
        )
        .unwrap();
        let mut fixture = Fixture {
            dir,
            registry,
            store,
            keys,
            sequencer: Some(sequencer),
            entries: 0,
        };
        fixture.load(commands);
        fixture
    }

    fn load(&mut self, commands: Vec<(u64, Command)>) {
        let sequencer = self.sequencer.as_ref().unwrap();
        sequencer
            .handle()
            .run(Request::Load {
                commands,
                policy: Policy::IMPORT,
            })
            .unwrap();
    }

    /// Appends `n` user entries in one commit.
    pub fn append(&mut self, n: u64) {
        let mut commands = Vec::new();
        for _ in 0..n {
            self.entries += 1;
            let key = format!("k{}", self.entries % 97);
            let item = Item::parse(&format!(
                r#"{{"{NAME}":"{key}","text":"entry {}"}}"#,
                self.entries
            ))
            .unwrap();
            let entry = Entry::new(Log::User, key, time(), item.hash());
            commands.push((0, Command::AddItem(item)));
            commands.push((0, Command::AppendEntry(entry)));
        }
        self.load(commands);
    }

    /// Appends a system entry (a new custodian) at the current user size.
    pub fn new_custodian(&mut self, custodian: &str) {
        let item = Item::parse(&format!(r#"{{"custodian":"{custodian}"}}"#)).unwrap();
        let entry = Entry::new(Log::System, "custodian", time(), item.hash());
        self.load(vec![
            (0, Command::AddItem(item)),
            (0, Command::AppendEntry(entry)),
        ]);
    }

    /// The register's directory.
    pub fn register_dir(&self) -> std::path::PathBuf {
        self.registry.dir(&RegisterName::new(NAME).unwrap())
    }

    /// What the publisher reads.
    pub fn source(&self, witness_policy: Option<Bytes>) -> Source<RedbBackend> {
        Source {
            name: NAME.to_owned(),
            dir: self.register_dir(),
            store: self.store.clone(),
            keys: self.keys.clone(),
            render_register: Arc::new(|snapshot| {
                Ok(format!(
                    "{{\"total-entries\":{},\"total-system-entries\":{}}}",
                    snapshot.size(Log::User),
                    snapshot.size(Log::System)
                )
                .into_bytes())
            }),
            witness_policy,
        }
    }

    /// A publication of this register to `target`.
    pub fn publication(
        &self,
        target: Arc<dyn Target>,
        settings: Settings,
    ) -> Publication<RedbBackend> {
        Publication {
            source: self.source(None),
            target,
            settings,
            status: SharedStatus::default(),
        }
    }

    /// The newest signed pair.
    pub fn pair(&self) -> PerLog<SignedTree> {
        let snapshot = self.store.snapshot().unwrap();
        PerLog::from_fn(|log| snapshot.checkpoint(log).unwrap().unwrap())
    }

    /// The sequencer's announcements of new checkpoints.
    pub fn checkpoints(&self) -> tokio::sync::watch::Receiver<PerLog<SignedTree>> {
        self.sequencer.as_ref().unwrap().handle().checkpoints()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(sequencer) = self.sequencer.take() {
            sequencer.join();
        }
    }
}

/// Fast settings for tests: short back-offs, one try per request.
pub fn quick() -> Settings {
    Settings {
        interval: std::time::Duration::from_millis(10),
        request_timeout: std::time::Duration::from_secs(5),
        concurrency: 8,
        tries: 1,
        first_back_off: std::time::Duration::from_millis(20),
        max_back_off: std::time::Duration::from_millis(200),
    }
}

/// Every tile and bundle of a log of `size` (tlog-tiles).
pub fn tiles_of(size: u64) -> Vec<TilePath> {
    let mut tiles = Vec::new();
    let mut kinds: Vec<TileKind> = (0..=63).map(|level| TileKind::Hashes { level }).collect();
    kinds.push(TileKind::Entries);
    for kind in kinds {
        let mut index = 0;
        while let Some(tile) = TilePath::in_tree(kind, index, size) {
            tiles.push(tile);
            index += 1;
        }
    }
    tiles
}

/// Reads `path` of the copy.
pub async fn get(target: &dyn Target, path: &str) -> Bytes {
    target
        .get(path)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{path} is missing from the copy"))
}

/// Checks the copy of register `demo` in `target` against `store`: its
/// checkpoints verify with `keys`; every tile and bundle of their sizes is
/// there with the store's bytes; the RSF chunks and tail chain to every
/// user entry and the system entries the system checkpoint covers, each
/// chunk's assertions matching the tree; `B/register` is there. Returns the
/// published sizes.
pub async fn verify_copy(
    target: &dyn Target,
    store: &Store<RedbBackend>,
    keys: &PerLog<LogKey>,
) -> PerLog<u64> {
    let snapshot = store.snapshot().unwrap();
    let mut checked = Vec::new();
    for log in PerLog::<()>::LOGS {
        let path = format!("registers/{NAME}/{}/checkpoint", log_dir(log));
        let bytes = get(target, &path).await;
        let signed = SignedCheckpoint::parse(&bytes).unwrap();
        let key: &LogKey = &keys[log];
        let verifier: &Verifier = &key.verifier;
        signed
            .verify(&key.origin, verifier, &Verifiers::default())
            .unwrap();
        let size = signed.checkpoint().size();
        checked.push((size, *signed.checkpoint().root_hash()));
        for tile in tiles_of(size) {
            let path = format!("registers/{NAME}/{}/{tile}", log_dir(log));
            let bytes = get(target, &path).await;
            assert_eq!(
                bytes.as_ref(),
                snapshot.tile(log, &tile).unwrap().unwrap(),
                "{path}"
            );
        }
    }
    // PerLog::LOGS is (user, system).
    let [(user, user_root), (system, _)] = checked[..] else {
        unreachable!()
    };
    let sizes = PerLog { user, system };
    let mut paths: Vec<String> = (0..)
        .map(|i| i * CHUNK)
        .take_while(|start| start + CHUNK < user)
        .map(|start| format!("{start}/{}", start + CHUNK))
        .collect();
    paths.push(format!("{}/{user}", tail_start(user)));
    let mut root = regis_merkle::Frontier::new().root();
    let mut user_entries = 0;
    let mut system_entries = 0;
    for part in paths {
        let bytes = get(target, &format!("registers/{NAME}/download-rsf/{part}")).await;
        let commands: Vec<(u64, Command)> = RsfReader::new(BufReader::new(&bytes[..]))
            .collect::<Result<_, _>>()
            .unwrap();
        let Some((_, Command::AssertRootHash(first))) = commands.first() else {
            panic!("{part} does not start with an assertion");
        };
        assert_eq!(*first, root, "{part} does not start where the last ended");
        for (_, command) in &commands {
            match command {
                Command::AppendEntry(entry) if entry.log == Log::User => user_entries += 1,
                Command::AppendEntry(_) => system_entries += 1,
                Command::AssertRootHash(hash) => root = *hash,
                Command::AddItem(_) => {}
            }
        }
    }
    assert_eq!(user_entries, user, "user entries in the RSF chain");
    assert!(system_entries >= system, "system entries in the RSF chain");
    assert_eq!(
        root, user_root,
        "the RSF chain ends at the checkpoint's root"
    );
    get(target, &format!("registers/{NAME}/register")).await;
    sizes
}
