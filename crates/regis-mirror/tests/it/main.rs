//! The verifying mirror against real regis-servers loaded with the real
//! register dumps, over real sockets, into real stores on disk; and
//! against lying servers, each lie caught by the error that names it, with
//! the mirror's store unchanged.

#[path = "../../../regis-client/tests/it/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::{
    Cosign, Liar, Server, cosignature, cosigning, impostor, now, policy, rsf_commands,
    split_commands, try_rsf_commands, witness,
};
use regis_client::audit::Auditor;
use regis_client::{Client, Error};
use regis_merkle::tile::{TilePath, read_tile};
use regis_merkle::{Edge, MemoryHashes, TileVerifyError, leaf_hash};
use regis_mirror::{Mirror, MirrorError};
use regis_model::rsf::Command;
use regis_model::{Entry, Item, Log, PerLog, Timestamp};
use regis_note::{Checkpoint, SignedCheckpoint, VerifyError};
use regis_store::{KvSnapshot, RedbBackend, Registry, Snapshot, fsck_with_keys};

/// Everything a register's store serves that a mirror must reproduce:
/// both logs' sizes, roots, checkpoints and leaves, where each system
/// entry falls among user entries, and both logs' records.
#[derive(Debug, PartialEq, Eq)]
struct Contents {
    sizes: [u64; 2],
    roots: [[u8; 32]; 2],
    checkpoints: [Option<String>; 2],
    leaves: [Vec<Vec<u8>>; 2],
    positions: Vec<(u64, u64)>,
    records: [Vec<(String, u64, [u8; 32])>; 2],
}

fn contents<S: KvSnapshot>(snapshot: &Snapshot<S>) -> Contents {
    let per_log = |log| {
        (
            snapshot.size(log),
            snapshot.root(log).unwrap(),
            snapshot.checkpoint(log).unwrap().map(|c| c.text),
            snapshot
                .entries(log, 1, snapshot.size(log))
                .unwrap()
                .into_iter()
                .map(|(_, leaf)| leaf)
                .collect::<Vec<_>>(),
            snapshot
                .records(log, 0, u64::MAX)
                .unwrap()
                .into_iter()
                .map(|r| (r.key, r.entry_number, r.item_hash))
                .collect::<Vec<_>>(),
        )
    };
    let (user_size, user_root, user_checkpoint, user_leaves, user_records) = per_log(Log::User);
    let (system_size, system_root, system_checkpoint, system_leaves, system_records) =
        per_log(Log::System);
    let mut positions = Vec::new();
    snapshot
        .scan_system_positions(|number, position| {
            if number <= system_size {
                positions.push((number, position));
            }
            Ok(true)
        })
        .unwrap();
    Contents {
        sizes: [user_size, system_size],
        roots: [user_root, system_root],
        checkpoints: [user_checkpoint, system_checkpoint],
        leaves: [user_leaves, system_leaves],
        positions,
        records: [user_records, system_records],
    }
}

/// What the upstream server's store holds now.
fn upstream(server: &Server) -> Contents {
    let register = server.app.register(&server.name).unwrap();
    contents(&register.snapshot().unwrap())
}

/// A mirror of `url` in `dir`, with the honest server's pinned key.
fn mirror(server: &Server, dir: &std::path::Path, url: &str) -> Mirror<RedbBackend> {
    let registry = Registry::new(dir, "localhost");
    Mirror::open_or_create(&registry, url, server.loaded.key.clone())
        .unwrap()
        .0
}

fn sync(mirror: &mut Mirror<RedbBackend>) -> Result<regis_mirror::SyncReport, MirrorError> {
    mirror.sync(&mut |_| {})
}

fn held(mirror: &Mirror<RedbBackend>) -> Contents {
    contents(&mirror.store().snapshot().unwrap())
}

/// A system entry appended after the last user entry: the delta to the
/// current user size carries it at its end.
fn custodian_change(name: &str) -> Vec<(u64, Command)> {
    let item = Item::parse(&format!("{{\"custodian\":\"{name}\"}}")).unwrap();
    let entry = Entry::new(
        Log::System,
        "custodian",
        Timestamp::parse("2021-03-01T00:00:00Z").unwrap(),
        item.hash(),
    );
    vec![
        (1, Command::AddItem(item)),
        (2, Command::AppendEntry(entry)),
    ]
}

#[test]
fn every_real_register_mirrors_with_its_roots_records_and_items_and_audits() {
    let files = regis_fixtures::files("registers/registry-data", ".rsf");
    assert!(files.len() >= 9);
    for file in files {
        let name = file.file_stem().unwrap().to_str().unwrap().to_owned();
        let relative = format!("registry-data/{name}.rsf");
        let server = Server::start(&name, split_commands(rsf_commands(&relative), 2));
        let dir = tempfile::tempdir().unwrap();
        let mut mirror = mirror(&server, dir.path(), &server.url());
        let report = sync(&mut mirror).unwrap();
        let expected = upstream(&server);
        assert_eq!(report.copied.user, expected.sizes[0], "{name}");
        assert_eq!(report.copied.system, expected.sizes[1], "{name}");
        assert_eq!(held(&mirror), expected, "{name}");

        // Items: byte for byte those the upstream serves.
        let client = Client::new(&server.url(), server.loaded.key.clone()).unwrap();
        let snapshot = mirror.store().snapshot().unwrap();
        for (_, _, hash) in server.loaded.records.iter().step_by(37) {
            let served = client.item(&regis_model::ItemHash(*hash)).unwrap();
            let stored = snapshot.item(hash).unwrap().unwrap();
            assert_eq!(stored, served.as_str().as_bytes(), "{name}");
        }
        // fsck of the mirror with the pinned keys.
        let registry = Registry::new(dir.path(), "localhost");
        drop(snapshot);
        let name_ = mirror.name().clone();
        drop(mirror);
        let opened = registry.open_mirror::<RedbBackend>(&name_).unwrap();
        let keys = PerLog::from_fn(|log| opened.upstream.verifier(log));
        let checked = fsck_with_keys(&opened.store.snapshot().unwrap(), keys).unwrap();
        assert_eq!(checked.checkpoints, 2, "{name}");
        drop(opened);

        // A second sync has nothing to do.
        let mut again = self::mirror(&server, dir.path(), &server.url());
        let report = sync(&mut again).unwrap();
        assert_eq!(report.before, report.after);
        assert_eq!((report.copied.user, report.copied.system), (0, 0));

        // The audit trusts on first use, then finds the same checkpoints
        // consistent.
        let auditor = Auditor::new(&server.url(), server.loaded.key.clone()).unwrap();
        let first = auditor.audit(None).unwrap();
        assert!(first.previous.is_none());
        let saved = auditor.encode_state(&first.state);
        let state = auditor.parse_state(saved.as_bytes()).unwrap();
        let second = auditor.audit(Some(state)).unwrap();
        assert_eq!(second.state, first.state);
    }
}

/// The register name a document defines (its `name` system entry), else
/// one made from its file name.
fn register_name_of(commands: &[(u64, Command)], path: &std::path::Path) -> String {
    let mut items = std::collections::HashMap::new();
    for (_, command) in commands {
        match command {
            Command::AddItem(item) => {
                items.insert(item.hash(), item.clone());
            }
            Command::AppendEntry(entry) if entry.log == Log::System && entry.key == "name" => {
                if let Some(name) = items
                    .get(&entry.item_hashes[0])
                    .and_then(|item| item.get_one("name"))
                {
                    return name.into_owned();
                }
            }
            _ => {}
        }
    }
    path.file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .to_lowercase()
        .replace(['_', '.'], "-")
}

/// Every other RSF document of the shared fixtures (GOV.UK's reference
/// implementation's, the API client's, with the API client's base and
/// update as one register), each mirrored if it loads: the mirror equals
/// its upstream. Documents that do not load (the deliberately invalid
/// ones, an update without its base) are skipped, and counted.
/// A register's name and the documents loaded into it, in order.
type Documents = Vec<(String, Vec<Vec<(u64, Command)>>)>;

#[test]
fn every_other_loadable_fixture_mirrors_exactly() {
    let mut documents: Documents = Vec::new();
    let mut unreadable = 0;
    for suffix in [".rsf", ".tsv"] {
        for path in regis_fixtures::files("registers", suffix) {
            let relative = path.to_string_lossy();
            if relative.contains("/registry-data/") || relative.contains("/source-tsv-yaml/") {
                continue;
            }
            let Ok(commands) = try_rsf_commands(&path) else {
                unreadable += 1;
                continue;
            };
            let name = register_name_of(&commands, &path);
            let users = commands
                .iter()
                .filter(|(_, c)| matches!(c, Command::AppendEntry(e) if e.log == Log::User))
                .count();
            let steps = if users >= 2 {
                split_commands(commands, 2)
            } else {
                vec![commands]
            };
            documents.push((name, steps));
        }
    }
    let base = regis_fixtures::path("registers/api-client/country_register.rsf");
    let update = regis_fixtures::path("registers/api-client/country_register_update.rsf");
    documents.push((
        "country".into(),
        vec![
            try_rsf_commands(&base).unwrap(),
            try_rsf_commands(&update).unwrap(),
        ],
    ));
    let mut mirrored = 0;
    for (name, steps) in documents {
        let Ok(server) = Server::try_start(&name, steps) else {
            continue;
        };
        let dir = tempfile::tempdir().unwrap();
        let mut mirror = mirror(&server, dir.path(), &server.url());
        sync(&mut mirror).unwrap();
        assert_eq!(held(&mirror), upstream(&server), "{name}");
        mirrored += 1;
    }
    eprintln!("{mirrored} documents mirrored, {unreadable} not RSF");
    // country-data, the metadata-only documents, the reference's valid
    // ones, the API client's base alone and with its update, at least.
    assert!(
        mirrored >= 9,
        "{mirrored} mirrored, {unreadable} unreadable"
    );
}

/// Requests a proxy passed on, by path under the register.
fn counting(server: &Server) -> (Liar, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let liar = Liar::start(server, move |path, honest| {
        log.lock().unwrap().push(path.to_owned());
        honest
    });
    (liar, seen)
}

const NAME: &str = "local-authority-eng";

fn three_steps() -> Vec<Vec<(u64, Command)>> {
    split_commands(rsf_commands("registry-data/local-authority-eng.rsf"), 3)
}

#[test]
fn a_second_sync_fetches_only_what_is_new() {
    let mut steps = three_steps().into_iter();
    let server = Server::start(NAME, vec![steps.next().unwrap()]);
    let (proxy, seen) = counting(&server);
    let dir = tempfile::tempdir().unwrap();
    let mut mirror = mirror(&server, dir.path(), &proxy.url());
    sync(&mut mirror).unwrap();
    assert_eq!(held(&mirror), upstream(&server));
    let first_size = held(&mirror).sizes[0];
    let first_system = held(&mirror).sizes[1];
    assert!(first_size > 0 && first_size < 387);

    // More user entries, and a system entry after the last of them.
    server.append(steps.next().unwrap());
    server.append(custodian_change("Mirror Test 1"));
    seen.lock().unwrap().clear();
    let report = sync(&mut mirror).unwrap();
    let expected = upstream(&server);
    assert_eq!(held(&mirror), expected);
    assert_eq!(report.copied.user, expected.sizes[0] - first_size);
    assert_eq!(report.copied.system, expected.sizes[1] - first_system);
    let paths = seen.lock().unwrap().clone();
    let deltas: Vec<_> = paths
        .iter()
        .filter(|p| p.starts_with("download-rsf"))
        .collect();
    assert_eq!(
        deltas,
        [&format!(
            "download-rsf/{first_size}/{}?system-size={first_system}",
            expected.sizes[0]
        )],
        "{paths:?}"
    );
    // No entry bundle, and no item fetched alone: the delta carries them.
    assert!(
        !paths.iter().any(|p| p.contains("/tile/entries")),
        "{paths:?}"
    );
    assert!(!paths.iter().any(|p| p.starts_with("items/")), "{paths:?}");
    // Of the level-0 tiles, only those of the new entries: the first full
    // tile (entries 1-256) is not fetched again when the mirror already
    // held all of it.
    if first_size >= 256 {
        assert!(!paths.iter().any(|p| p == "log/tile/0/000"), "{paths:?}");
    }

    // Told the system size the mirror holds, the next delta does not carry
    // the system entry at the previous user size again.
    server.append(steps.next().unwrap());
    let report = sync(&mut mirror).unwrap();
    assert_eq!(held(&mirror), upstream(&server));
    assert_eq!(report.copied.system, 0);

    // Nothing new: checkpoints only.
    seen.lock().unwrap().clear();
    let report = sync(&mut mirror).unwrap();
    assert_eq!(report.before, report.after);
    let paths = seen.lock().unwrap().clone();
    assert!(
        paths
            .iter()
            .all(|p| p.ends_with("checkpoint") || p == "register"),
        "{paths:?}"
    );
}

#[test]
fn system_entries_appended_after_the_checkpoints_wait_for_the_next_sync() {
    let mut steps = three_steps().into_iter();
    let server = Server::start(NAME, vec![steps.next().unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    let mut first = mirror(&server, dir.path(), &server.url());
    sync(&mut first).unwrap();
    drop(first);
    server.append(steps.next().unwrap());
    let at_read = upstream(&server);
    // A custodian appended at the same user size once the mirror has read
    // the checkpoints: a proxy that still serves those checkpoints.
    server.append(custodian_change("Read too late"));
    let [user, system] = at_read.checkpoints.clone().map(Option::unwrap);
    let proxy = Liar::start(&server, move |path, honest| match path {
        "log/checkpoint" => Some(user.clone().into_bytes()),
        "system-log/checkpoint" => Some(system.clone().into_bytes()),
        _ => honest,
    });
    let registry = Registry::new(dir.path(), "localhost");
    let opened = registry
        .open_mirror::<RedbBackend>(&regis_model::RegisterName::new(NAME).unwrap())
        .unwrap();
    let mut through_proxy = Mirror::new(regis_store::Mirror {
        upstream: regis_store::Upstream::new(&proxy.url(), server.loaded.key.clone()).unwrap(),
        ..opened
    })
    .unwrap();
    // The delta carries the custodian after the last user entry; the sync
    // stops there, at the checkpoints it read.
    sync(&mut through_proxy).unwrap();
    assert_eq!(held(&through_proxy), at_read);
    drop(through_proxy);
    let mut again = mirror(&server, dir.path(), &server.url());
    let report = sync(&mut again).unwrap();
    assert_eq!((report.copied.user, report.copied.system), (0, 1));
    assert_eq!(held(&again), upstream(&server));
}

/// A mirror at the first step of local-authority-eng, the server at all
/// three, and the mirror's contents before the lying sync.
struct Setup {
    server: Server,
    dir: tempfile::TempDir,
    before: Contents,
}

fn setup() -> Setup {
    let mut steps = three_steps().into_iter();
    let server = Server::start(NAME, vec![steps.next().unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    let mut mirror = mirror(&server, dir.path(), &server.url());
    sync(&mut mirror).unwrap();
    let before = held(&mirror);
    server.append(steps.next().unwrap());
    server.append(steps.next().unwrap());
    server.append(custodian_change("After the delta"));
    Setup {
        server,
        dir,
        before,
    }
}

impl Setup {
    /// Syncs through `liar` (the mirror keeps its upstream URL: it is
    /// opened over the same directory with the liar's), and checks the
    /// store did not change.
    fn sync_through(&self, liar: &Liar) -> MirrorError {
        let registry = Registry::new(self.dir.path(), "localhost");
        let opened = registry
            .open_mirror::<RedbBackend>(&regis_model::RegisterName::new(NAME).unwrap())
            .unwrap();
        // The same mirror, pointed at the liar for this one sync.
        let mut mirror = Mirror::new(regis_store::Mirror {
            upstream: regis_store::Upstream::new(&liar.url(), self.server.loaded.key.clone())
                .unwrap(),
            ..opened
        })
        .unwrap();
        let error = sync(&mut mirror).unwrap_err();
        assert_eq!(
            held(&mirror),
            self.before,
            "the lie changed the store: {error}"
        );
        error
    }
}

/// Flips one bit.
fn flip(mut bytes: Vec<u8>, at: usize) -> Vec<u8> {
    bytes[at] ^= 1;
    bytes
}

#[test]
fn a_forked_log_is_refused_and_changes_nothing() {
    let setup = setup();
    let signer = setup.server.signer();
    let origin = setup.server.loaded.key.name().as_str().to_owned();
    let size = 400;
    let forked =
        MemoryHashes::from_leaf_hashes((0..size).map(|i: u64| leaf_hash(&i.to_be_bytes())));
    let root = Edge::from_reader(&forked, size).unwrap().root();
    let text =
        SignedCheckpoint::sign(Checkpoint::new(&origin, size, root).unwrap(), &signer).to_string();
    let liar = Liar::start(&setup.server, move |path, honest| {
        if path == "log/checkpoint" {
            return Some(text.clone().into_bytes());
        }
        match path.strip_prefix("log/") {
            Some(tile) if tile.starts_with("tile/") && !tile.starts_with("tile/entries") => {
                read_tile(&forked, &TilePath::parse(tile).ok()?).ok()
            }
            _ => honest,
        }
    });
    let error = setup.sync_through(&liar);
    assert!(
        matches!(
            error,
            MirrorError::Verify(Error::Inconsistent { new: 400, .. })
        ),
        "{error}"
    );
}

/// Rewrites the timestamp year of the first user entry line after line
/// `after` of an RSF body.
fn rewrite_entry(body: Vec<u8>, after: usize) -> Vec<u8> {
    let text = String::from_utf8(body).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let at = lines
        .iter()
        .enumerate()
        .position(|(i, line)| i > after && line.starts_with("append-entry\tuser\t"))
        .unwrap();
    lines[at] = lines[at].replacen("\t20", "\t19", 1);
    (lines.join("\n") + "\n").into_bytes()
}

#[test]
fn a_rewritten_entry_in_the_delta_is_refused_and_changes_nothing() {
    let setup = setup();
    let liar = Liar::start(&setup.server, |path, honest| {
        let honest = honest?;
        Some(if path.starts_with("download-rsf/") {
            rewrite_entry(honest, 40)
        } else {
            honest
        })
    });
    let error = setup.sync_through(&liar);
    assert!(
        matches!(error, MirrorError::Verify(Error::DeltaLeafHash { log: Log::User, number, .. }) if number > setup.before.sizes[0]),
        "{error}"
    );
}

#[test]
fn an_altered_item_in_the_delta_is_refused_and_changes_nothing() {
    let setup = setup();
    let liar = Liar::start(&setup.server, |path, honest| {
        let honest = honest?;
        if !path.starts_with("download-rsf/") {
            return Some(honest);
        }
        // A stale value: the item's first string changed.
        let text = String::from_utf8(honest).unwrap();
        let at = text.find("add-item\t").unwrap();
        let mut text = text;
        let quote = at + text[at..].find("\":\"").unwrap() + 3;
        text.insert_str(quote, "stale ");
        Some(text.into_bytes())
    });
    let error = setup.sync_through(&liar);
    assert!(
        matches!(&error, MirrorError::Verify(Error::ItemHash { expected, found }) if expected != found),
        "{error}"
    );
}

#[test]
fn an_altered_system_item_is_refused_and_changes_nothing() {
    let setup = setup();
    let liar = Liar::start(&setup.server, |path, honest| {
        let honest = honest?;
        Some(if path.starts_with("download-rsf/") {
            String::from_utf8(honest)
                .unwrap()
                .replace("After the delta", "Someone else")
                .into_bytes()
        } else {
            honest
        })
    });
    let error = setup.sync_through(&liar);
    assert!(
        matches!(&error, MirrorError::Verify(Error::ItemHash { .. })),
        "{error}"
    );
}

#[test]
fn a_tile_that_does_not_match_the_checkpoint_is_refused_and_changes_nothing() {
    let setup = setup();
    // 387 leaves: the right edge is tile 0/001.p/131.
    let liar = Liar::start(&setup.server, |path, honest| {
        let honest = honest?;
        Some(if path == "log/tile/0/001.p/131" {
            flip(honest, 100)
        } else {
            honest
        })
    });
    let error = setup.sync_through(&liar);
    assert!(
        matches!(
            error,
            MirrorError::Verify(Error::Tiles {
                size: 387,
                error: TileVerifyError::RootMismatch { size: 387 }
            })
        ),
        "{error}"
    );
}

#[test]
fn a_full_tile_that_does_not_match_its_parent_is_refused_and_changes_nothing() {
    let setup = setup();
    let liar = Liar::start(&setup.server, |path, honest| {
        let honest = honest?;
        Some(if path == "log/tile/0/000" {
            flip(honest, 8191)
        } else {
            honest
        })
    });
    let error = setup.sync_through(&liar);
    // The mirror held fewer than 256 entries, so it reads the tile.
    assert!(setup.before.sizes[0] < 256);
    assert!(
        matches!(
            error,
            MirrorError::Verify(Error::Tiles {
                error: TileVerifyError::TileMismatch { .. },
                ..
            })
        ),
        "{error}"
    );
}

#[test]
fn checkpoints_signed_by_another_key_are_refused_and_change_nothing() {
    for log in ["log", "system-log"] {
        let setup = setup();
        let forger = if log == "log" {
            impostor(&setup.server.loaded.key)
        } else {
            let system = regis_note::system_verifier(&setup.server.loaded.key).unwrap();
            impostor(&system)
        };
        let wanted = format!("{log}/checkpoint");
        let liar = Liar::start(&setup.server, move |path, honest| {
            let honest = honest?;
            if path != wanted {
                return Some(honest);
            }
            let real = SignedCheckpoint::parse(&honest).unwrap();
            Some(
                SignedCheckpoint::sign(real.checkpoint().clone(), &forger)
                    .to_string()
                    .into_bytes(),
            )
        });
        let error = setup.sync_through(&liar);
        assert!(
            matches!(
                &error,
                MirrorError::Verify(Error::CheckpointSignature { url, error: VerifyError::NotSignedByLog { .. } })
                    if url.ends_with(&format!("/{log}/checkpoint"))
            ),
            "{error}"
        );
    }
}

#[test]
fn a_served_system_key_other_than_the_derived_one_is_refused() {
    let setup = setup();
    let liar = Liar::start(&setup.server, |path, honest| {
        let honest = honest?;
        if path != "register" {
            return Some(honest);
        }
        let mut json: serde_json::Value = serde_json::from_slice(&honest).unwrap();
        let other = impostor(&regis_note::system_verifier(&common_key(&json)).unwrap());
        json["system-log-public-key"] = other.verifier().to_string().into();
        Some(json.to_string().into_bytes())
    });
    let error = setup.sync_through(&liar);
    assert!(
        matches!(
            error,
            MirrorError::KeyMismatch {
                log: Log::System,
                ..
            }
        ),
        "{error}"
    );
}

fn common_key(json: &serde_json::Value) -> regis_note::Verifier {
    regis_note::Verifier::parse(json["log-public-key"].as_str().unwrap()).unwrap()
}

#[test]
fn a_mirror_of_another_upstream_is_not_reused() {
    let setup = setup();
    let registry = Registry::new(setup.dir.path(), "localhost");
    let other = impostor(&setup.server.loaded.key).verifier();
    let error =
        Mirror::<RedbBackend>::open_or_create(&registry, &setup.server.url(), other).unwrap_err();
    assert!(
        matches!(error, MirrorError::OtherUpstream { .. }),
        "{error}"
    );
}

#[test]
fn follow_copies_each_new_checkpoint_as_it_is_published() {
    use regis_mirror::FollowEvent;
    use std::time::Duration;

    let mut steps = three_steps().into_iter();
    let server = Server::start(NAME, vec![steps.next().unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    let mut mirror = mirror(&server, dir.path(), &server.url());
    let stop = Arc::new(AtomicBool::new(false));
    let (events, received) = std::sync::mpsc::channel::<Option<[u64; 2]>>();
    let stopping = Arc::clone(&stop);
    let follower = std::thread::spawn(move || {
        let mut observe = |event: FollowEvent| match event {
            FollowEvent::Connected => events.send(None).unwrap(),
            FollowEvent::Synced(report) => events
                .send(Some([report.after.user.size, report.after.system.size]))
                .unwrap(),
            FollowEvent::Retrying { reason, .. } => panic!("{reason}"),
        };
        let result = mirror.follow(
            Duration::from_secs(30),
            &|| stopping.load(Ordering::SeqCst),
            &mut observe,
            &mut |_| {},
        );
        (result, mirror)
    });
    let wait = || received.recv_timeout(Duration::from_secs(30)).unwrap();
    let first = upstream(&server).sizes;
    assert_eq!(wait(), Some(first));
    assert_eq!(wait(), None);
    // Each append publishes checkpoints; the follower copies them.
    for commands in [steps.next().unwrap(), custodian_change("Followed")] {
        server.append(commands);
        let expected = upstream(&server).sizes;
        loop {
            match wait() {
                Some(sizes) if sizes == expected => break,
                _ => {}
            }
        }
    }
    // Stop: the next line of the stream (the next checkpoint) ends it.
    stop.store(true, Ordering::SeqCst);
    server.append(steps.next().unwrap());
    let (result, mirror) = follower.join().unwrap();
    result.unwrap();
    let mut mirror = mirror;
    sync(&mut mirror).unwrap();
    assert_eq!(held(&mirror), upstream(&server));
}

/// A TCP forwarder to `upstream` whose connections can all be cut at
/// once: a dropped event stream, as a restart or a network fault makes.
struct Cutter {
    addr: std::net::SocketAddr,
    open: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl Cutter {
    fn start(upstream: std::net::SocketAddr) -> Cutter {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(Mutex::new(Vec::new()));
        let tracked = Arc::clone(&open);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = std::net::TcpStream::connect(upstream) else {
                    continue;
                };
                let mut held = tracked.lock().unwrap();
                held.push(client.try_clone().unwrap());
                held.push(server.try_clone().unwrap());
                drop(held);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Cutter { addr, open }
    }

    fn cut_all(&self) {
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn follow_reconnects_when_the_event_stream_drops() {
    use regis_mirror::FollowEvent;
    use std::time::Duration;

    let mut steps = three_steps().into_iter();
    let server = Server::start(NAME, vec![steps.next().unwrap()]);
    let upstream_addr: std::net::SocketAddr = server
        .url()
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let cutter = Cutter::start(upstream_addr);
    let url = format!("http://{}/registers/{NAME}", cutter.addr);
    let dir = tempfile::tempdir().unwrap();
    let mut mirror = mirror(&server, dir.path(), &url);
    let stop = Arc::new(AtomicBool::new(false));
    let (events, received) = std::sync::mpsc::channel::<String>();
    let stopping = Arc::clone(&stop);
    let follower = std::thread::spawn(move || {
        let mut observe = |event: FollowEvent| {
            let _ = events.send(match event {
                FollowEvent::Connected => "connected".into(),
                FollowEvent::Synced(report) => format!("synced {}", report.after.user.size),
                FollowEvent::Retrying { .. } => "retrying".into(),
            });
        };
        mirror.follow(
            Duration::from_secs(30),
            &|| stopping.load(Ordering::SeqCst),
            &mut observe,
            &mut |_| {},
        )
    });
    let wait_for = |wanted: &str| loop {
        let event = received.recv_timeout(Duration::from_secs(30)).unwrap();
        if event == wanted {
            break;
        }
    };
    wait_for("connected");
    cutter.cut_all();
    wait_for("retrying");
    wait_for("connected");
    server.append(steps.next().unwrap());
    let size = upstream(&server).sizes[0];
    wait_for(&format!("synced {size}"));
    stop.store(true, Ordering::SeqCst);
    server.append(steps.next().unwrap());
    follower.join().unwrap().unwrap();
}

/// Any two of witnesses 1, 2 and 3.
const TWO_OF_THREE: &str = "\
witness w1 {1}
witness w2 {2}
witness w3 {3}
group two 2 w1 w2 w3
quorum two
";

/// The cosignatures of witnesses `honest`, and of `forged` with a bit
/// flipped, all made at `time`.
fn cosigned_by(honest: &'static [u8], forged: &'static [u8], time: u64) -> Box<Cosign> {
    Box::new(move |checkpoint| {
        let honest = honest.iter().map(|n| (n, false));
        let forged = forged.iter().map(|n| (n, true));
        honest
            .chain(forged)
            .map(|(n, forged)| cosignature(&witness(*n), checkpoint, time, forged))
            .collect()
    })
}

/// A mirror of `url` in `dir` requiring the cosignatures of any two of
/// witnesses 1, 2 and 3.
fn witnessed_mirror(server: &Server, dir: &std::path::Path, url: &str) -> Mirror<RedbBackend> {
    mirror(server, dir, url).with_witness_policy(policy(TWO_OF_THREE))
}

#[test]
fn a_witnessed_mirror_stores_the_checkpoints_with_their_cosignatures_as_served() {
    let mut steps = three_steps().into_iter();
    let server = Server::start(NAME, vec![steps.next().unwrap()]);
    let liar = cosigning(&server, false, cosigned_by(&[1, 3], &[], now()));
    let dir = tempfile::tempdir().unwrap();
    let check = |mirror: &Mirror<RedbBackend>| {
        let served = Client::new(&liar.url(), server.loaded.key.clone()).unwrap();
        let held = held(mirror);
        for (log, client) in [(0, served.clone()), (1, served.system().unwrap())] {
            let text = client.checkpoint().unwrap().to_string();
            assert!(
                text.contains("\n\u{2014} witness-1.test ")
                    && text.contains("\n\u{2014} witness-3.test "),
                "{text}"
            );
            assert_eq!(held.checkpoints[log].as_deref(), Some(text.as_str()));
        }
        let upstream = upstream(&server);
        assert_eq!(
            held,
            Contents {
                checkpoints: held.checkpoints.clone(),
                ..upstream
            }
        );
    };
    let mut mirror = witnessed_mirror(&server, dir.path(), &liar.url());
    sync(&mut mirror).unwrap();
    check(&mirror);
    // The next sync checks the stored checkpoints under the policy too,
    // and copies what is new, cosigned.
    server.append(steps.next().unwrap());
    let report = sync(&mut mirror).unwrap();
    assert!(report.copied.user > 0);
    check(&mirror);
}

#[test]
fn a_witnessed_mirror_refuses_checkpoints_without_the_quorum_and_stores_nothing() {
    let server = Server::start(NAME, vec![three_steps().remove(0)]);
    let one = cosigning(&server, false, cosigned_by(&[2], &[], now()));
    let forged = cosigning(&server, false, cosigned_by(&[1, 2], &[3], now()));
    for (url, reason) in [
        (server.url(), "quorum not met: no policy witness cosigned"),
        (one.url(), "quorum not met: cosigned by w2"),
        (forged.url(), "witness w3: the cosignature on line"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut mirror = witnessed_mirror(&server, dir.path(), &url);
        let error = sync(&mut mirror).unwrap_err();
        assert!(
            matches!(&error, MirrorError::Verify(Error::Witnesses { error, .. }) if error.to_string().contains(reason)),
            "{url}: {error}"
        );
        let held = held(&mirror);
        assert_eq!(held.sizes, [0, 0], "{url}");
        assert_eq!(held.checkpoints, [None, None], "{url}");
    }
}
