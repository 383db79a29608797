//! The verifying client and the auditor against a real regis-server loaded
//! with real register dumps, and against lying servers: every lie is
//! caught, by the error that names it.

mod common;
mod witnesses;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use common::{Liar, Server, impostor, rsf_commands, split_commands};
use regis_client::audit::{AuditError, Auditor, Evidence, ForkKind};
use regis_client::{CheckedEntries, Client, Error, FetchFailure, LogRange, ReplayedRecord};
use regis_merkle::tile::{TilePath, parse_bundle, read_tile};
use regis_merkle::{Edge, Frontier, MemoryHashes, TileVerifyError, inclusion_proof, leaf_hash};
use regis_model::rsf::Command;
use regis_model::{Entry, Item, ItemHash, Log, Timestamp};
use regis_note::{Checkpoint, SignedCheckpoint, TlogProof, VerifyError};

const NAME: &str = "local-authority-eng";

/// One honest server for every test: local-authority-eng (387 user
/// entries: one full tile and partial ones), loaded in three steps so that
/// older checkpoints of the same log exist.
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let steps = split_commands(rsf_commands("registry-data/local-authority-eng.rsf"), 3);
        Server::start(NAME, steps)
    })
}

fn client(url: &str) -> Client {
    Client::new(url, server().loaded.key.clone()).unwrap()
}

/// Flips one bit of `bytes`.
fn flip(mut bytes: Vec<u8>, at: usize) -> Vec<u8> {
    bytes[at] ^= 1;
    bytes
}

#[test]
fn honest_server_verifies_records_tiles_and_replay() {
    let server = server();
    let client = client(&server.url());
    let checkpoint = client.checkpoint().unwrap();
    assert_eq!(checkpoint.size(), 387);
    client.verify_tree(&checkpoint).unwrap();

    for (key, number, item_hash) in &server.loaded.records {
        let record = client.record(key, &checkpoint).unwrap();
        assert_eq!(&record.entry.key, key);
        assert_eq!(record.number, *number);
        assert_eq!(record.items.len(), 1);
        assert_eq!(record.items[0].hash(), ItemHash(*item_hash));
        assert_eq!(record.checkpoint, checkpoint);
    }

    let replay = client.replay_bundles(&checkpoint).unwrap();
    assert_eq!(replay.entries, 387);
    let derived: Vec<(String, u64, [u8; 32])> = replay
        .records
        .iter()
        .unwrap()
        .map(|record| {
            let record = record.unwrap();
            (
                record.entry.key,
                record.number,
                record.entry.item_hashes[0].0,
            )
        })
        .collect();
    let mut stored = server.loaded.records.clone();
    stored.sort();
    assert_eq!(derived, stored);
    assert!(replay.items > 0 && replay.items <= 387);
}

#[test]
fn older_checkpoints_are_consistent_with_newer_ones_and_not_the_reverse() {
    let server = server();
    let client = client(&server.url());
    let latest = client.checkpoint().unwrap();
    let signed: Vec<_> = server
        .loaded
        .checkpoints
        .iter()
        .map(|text| client.verify_checkpoint(text.as_bytes(), "saved").unwrap())
        .collect();
    assert_eq!(signed.len(), 3);
    assert!(signed[0].size() < signed[1].size() && signed[1].size() < latest.size());
    for old in &signed {
        client.consistency(old, &latest).unwrap();
        client.consistency(old, old).unwrap();
    }
    assert!(matches!(
        client.consistency(&latest, &signed[0]),
        Err(Error::Shrunk { old: 387, .. })
    ));
    // A record proved against the latest checkpoint is accepted by a client
    // that trusts an older one, because the two are consistent.
    let (key, number, _) = &server.loaded.records[0];
    let record = client.record(key, &signed[0]).unwrap();
    assert_eq!(record.number, *number);
    assert_eq!(record.checkpoint, latest);
}

#[test]
fn a_checkpoint_signed_by_another_key_is_refused() {
    let server = server();
    let forger = impostor(&server.loaded.key);
    let liar = Liar::start(server, move |path, honest| {
        let honest = honest?;
        if path != "log/checkpoint" {
            return Some(honest);
        }
        let real = SignedCheckpoint::parse(&honest).unwrap();
        let checkpoint = real.checkpoint().clone();
        Some(
            SignedCheckpoint::sign(checkpoint, &forger)
                .to_string()
                .into_bytes(),
        )
    });
    let error = client(&liar.url()).checkpoint().unwrap_err();
    assert!(
        matches!(
            &error,
            Error::CheckpointSignature { url, error: VerifyError::NotSignedByLog { .. } }
                if url.ends_with("/log/checkpoint")
        ),
        "{error}"
    );
}

#[test]
fn a_checkpoint_of_another_origin_is_refused() {
    let server = server();
    let signer = server.signer();
    let liar = Liar::start(server, move |path, honest| {
        let honest = honest?;
        if path != "log/checkpoint" {
            return Some(honest);
        }
        let real = SignedCheckpoint::parse(&honest).unwrap();
        let other = Checkpoint::new(
            "regis.test/registers/other",
            real.checkpoint().size(),
            *real.checkpoint().root_hash(),
        )
        .unwrap();
        Some(
            SignedCheckpoint::sign(other, &signer)
                .to_string()
                .into_bytes(),
        )
    });
    let error = client(&liar.url()).checkpoint().unwrap_err();
    assert!(
        matches!(
            &error,
            Error::CheckpointSignature {
                error: VerifyError::WrongOrigin { .. },
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn a_right_edge_tile_that_does_not_match_the_checkpoint_is_refused() {
    let server = server();
    // 387 leaves: level-0 tiles 000 (full) and 001.p/131.
    let liar = Liar::start(server, |path, honest| {
        let honest = honest?;
        Some(if path == "log/tile/0/001.p/131" {
            flip(honest, 100)
        } else {
            honest
        })
    });
    let client = client(&liar.url());
    let checkpoint = client.checkpoint().unwrap();
    let error = client.verify_tree(&checkpoint).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Tiles {
                size: 387,
                error: TileVerifyError::RootMismatch { size: 387 }
            }
        ),
        "{error}"
    );
}

#[test]
fn a_full_tile_that_does_not_match_its_parent_is_refused() {
    let server = server();
    let liar = Liar::start(server, |path, honest| {
        let honest = honest?;
        Some(if path == "log/tile/0/000" {
            flip(honest, 8191)
        } else {
            honest
        })
    });
    let client = client(&liar.url());
    let checkpoint = client.checkpoint().unwrap();
    // The right edge does not include the full tile: the root checks out.
    client.verify_tree(&checkpoint).unwrap();
    let error = client.replay_bundles(&checkpoint).unwrap_err();
    let expected = TilePath::hashes(0, 0, 256).unwrap();
    assert!(
        matches!(
            error,
            Error::Tiles { error: TileVerifyError::TileMismatch { tile }, .. } if tile == expected
        ),
        "{error}"
    );
}

#[test]
fn a_truncated_tile_is_refused_by_its_length() {
    let server = server();
    let liar = Liar::start(server, |path, honest| {
        let mut honest = honest?;
        if path == "log/tile/0/001.p/131" {
            honest.truncate(64);
        }
        Some(honest)
    });
    let client = client(&liar.url());
    let checkpoint = client.checkpoint().unwrap();
    let error = client.verify_tree(&checkpoint).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Tiles {
                error: TileVerifyError::Length {
                    got: 64,
                    expected: 4192,
                    ..
                },
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn an_oversized_tile_is_cut_off() {
    let server = server();
    let liar = Liar::start(server, |path, honest| {
        let mut honest = honest?;
        if path == "log/tile/0/001.p/131" {
            honest.extend_from_slice(&[0; 1 << 20]);
        }
        Some(honest)
    });
    let client = client(&liar.url());
    let checkpoint = client.checkpoint().unwrap();
    let error = client.verify_tree(&checkpoint).unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Tiles {
                error: TileVerifyError::Fetch { error, .. },
                ..
            } if error.failure == FetchFailure::TooLarge(4192)
        ),
        "{error}"
    );
}

/// The leaf bytes' timestamp year, e.g. `"2016-` becomes `"2015-`.
fn rewrite_first_timestamp(mut bundle: Vec<u8>) -> Vec<u8> {
    let at = bundle
        .windows(19)
        .position(|w| w == b"\"entry-timestamp\":\"")
        .unwrap()
        + 19
        + 3;
    bundle[at] = if bundle[at] == b'0' { b'1' } else { b'0' };
    bundle
}

#[test]
fn a_rewritten_entry_in_a_bundle_is_refused() {
    let server = server();
    let liar = Liar::start(server, |path, honest| {
        let honest = honest?;
        Some(if path == "log/tile/entries/001.p/131" {
            rewrite_first_timestamp(honest)
        } else {
            honest
        })
    });
    let client = client(&liar.url());
    let checkpoint = client.checkpoint().unwrap();
    let error = client.replay_bundles(&checkpoint).unwrap_err();
    let expected = TilePath::entries(1, 131).unwrap();
    assert!(
        matches!(error, Error::LeafHash { tile, number: 257 } if tile == expected),
        "{error}"
    );
}

#[test]
fn a_bundle_missing_an_entry_is_refused() {
    let server = server();
    let liar = Liar::start(server, |path, honest| {
        let honest = honest?;
        if path != "log/tile/entries/000" {
            return Some(honest);
        }
        // Drop the last entry: parse the lengths to find it.
        let mut at = 0;
        let mut starts = Vec::new();
        while at < honest.len() {
            starts.push(at);
            at += 2 + usize::from(u16::from_be_bytes([honest[at], honest[at + 1]]));
        }
        Some(honest[..*starts.last().unwrap()].to_vec())
    });
    let client = client(&liar.url());
    let checkpoint = client.checkpoint().unwrap();
    let error = client.replay_bundles(&checkpoint).unwrap_err();
    assert!(
        matches!(
            error,
            Error::BundleWidth {
                got: 255,
                expected: 256,
                ..
            }
        ),
        "{error}"
    );
}

/// Serves, for every item, another item: a stale value of the record.
fn stale_items(path: &str, honest: Option<Vec<u8>>) -> Option<Vec<u8>> {
    let honest = honest?;
    if !path.starts_with("items/") {
        return Some(honest);
    }
    let text = String::from_utf8(honest).unwrap();
    Some(text.replacen("\":\"", "\":\"stale ", 1).into_bytes())
}

#[test]
fn a_stale_item_is_refused_by_get_and_by_replay() {
    let server = server();
    let liar = Liar::start(server, stale_items);
    let client = client(&liar.url());
    let checkpoint = client.checkpoint().unwrap();
    let (key, _, item_hash) = &server.loaded.records[5];
    let error = client.record(key, &checkpoint).unwrap_err();
    assert!(
        matches!(error, Error::ItemHash { expected, found } if expected == ItemHash(*item_hash) && found != expected),
        "{error}"
    );
    let error = client.replay_bundles(&checkpoint).unwrap_err();
    assert!(matches!(error, Error::ItemHash { .. }), "{error}");
}

#[test]
fn a_proof_of_another_record_is_refused() {
    let server = server();
    let (asked, _, _) = server.loaded.records[1].clone();
    let (other, _, _) = server.loaded.records[2].clone();
    let wanted = format!("records/{asked}/proof.tlog-proof");
    let upstream = format!("{}/records/{other}/proof.tlog-proof", server.url());
    let liar = Liar::start(server, move |path, honest| {
        if path == wanted {
            let mut response = ureq::get(&upstream).call().unwrap();
            return Some(response.body_mut().read_to_vec().unwrap());
        }
        honest
    });
    let client = client(&liar.url());
    let checkpoint = client.checkpoint().unwrap();
    let error = client.record(&asked, &checkpoint).unwrap_err();
    assert!(
        matches!(&error, Error::WrongKey { asked: a, found } if *a == asked && *found == other),
        "{error}"
    );
}

#[test]
fn a_proof_with_a_rewritten_leaf_is_refused() {
    let server = server();
    let liar = Liar::start(server, |path, honest| {
        let honest = honest?;
        if !path.ends_with("/proof.tlog-proof") {
            return Some(honest);
        }
        // The extra line is base64 of the leaf: change one of its letters.
        let mut text = String::from_utf8(honest).unwrap();
        let at = text.find("extra ").unwrap() + 10;
        let replacement = if &text[at..=at] == "A" { "B" } else { "A" };
        text.replace_range(at..=at, replacement);
        Some(text.into_bytes())
    });
    let client = client(&liar.url());
    let checkpoint = client.checkpoint().unwrap();
    let (key, _, _) = &server.loaded.records[0];
    let error = client.record(key, &checkpoint).unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Proof {
                error: regis_note::TlogProofVerifyError::Inclusion { .. },
                ..
            }
        ),
        "{error}"
    );
}

/// Serves a whole other log under the register's real key: a forked log,
/// as a compromised server could show to some clients.
#[test]
fn a_forked_log_is_inconsistent_with_the_real_one() {
    let server = server();
    let signer = server.signer();
    let origin = server.loaded.key.name().as_str().to_owned();
    let size = 400;
    let forked =
        MemoryHashes::from_leaf_hashes((0..size).map(|i: u64| leaf_hash(&i.to_be_bytes())));
    let root = Edge::from_reader(&forked, size).unwrap().root();
    let checkpoint = SignedCheckpoint::sign(Checkpoint::new(&origin, size, root).unwrap(), &signer);
    let text = checkpoint.to_string();
    let liar = Liar::start(server, move |path, _| {
        if path == "log/checkpoint" {
            return Some(text.clone().into_bytes());
        }
        let tile = TilePath::parse(path.strip_prefix("log/")?).ok()?;
        read_tile(&forked, &tile).ok()
    });
    let honest = client(&server.url());
    let real = honest.checkpoint().unwrap();
    let forked_client = client(&liar.url());
    let fork = forked_client.checkpoint().unwrap();
    // The fork is a tree in its own right: its tiles match its checkpoint.
    forked_client.verify_tree(&fork).unwrap();
    let error = forked_client.consistency(&real, &fork).unwrap_err();
    assert!(
        matches!(error, Error::Inconsistent { old: 387, new: 400 }),
        "{error}"
    );
    // And an older real checkpoint too.
    let old = honest
        .verify_checkpoint(server.loaded.checkpoints[0].as_bytes(), "saved")
        .unwrap();
    assert!(matches!(
        forked_client.consistency(&old, &fork),
        Err(Error::Inconsistent { .. })
    ));
}

#[test]
fn a_server_that_is_not_there_is_a_fetch_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let error = client(&format!("http://{addr}/registers/{NAME}"))
        .checkpoint()
        .unwrap_err();
    assert!(
        matches!(&error, Error::Fetch(fetch) if matches!(fetch.failure, FetchFailure::Transport(_))),
        "{error}"
    );
    let error = client(&server().url().replace(NAME, "nothing"))
        .checkpoint()
        .unwrap_err();
    assert!(
        matches!(&error, Error::Fetch(fetch) if fetch.failure == FetchFailure::Status(404)),
        "{error}"
    );
}

/// The leaf bytes of the honest log, from its entry bundles.
fn honest_leaves(server: &Server) -> Vec<Vec<u8>> {
    ["000", "001.p/131"]
        .iter()
        .flat_map(|bundle| {
            let url = format!("{}/log/tile/entries/{bundle}", server.url());
            let bytes = ureq::get(&url)
                .call()
                .unwrap()
                .body_mut()
                .read_to_vec()
                .unwrap();
            parse_bundle(&bytes)
                .unwrap()
                .into_iter()
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A record proved, under the real key, against a fork that holds the
/// record's real leaf but rewrites an earlier entry: the proof verifies,
/// but the fork is not consistent with the checkpoint the client trusts.
#[test]
fn a_record_proved_against_a_forked_log_is_refused() {
    let server = server();
    let signer = server.signer();
    let origin = server.loaded.key.name().as_str().to_owned();
    let (key, number, _) = server
        .loaded
        .records
        .iter()
        .find(|(_, number, _)| *number > 1)
        .unwrap()
        .clone();
    let mut leaves = honest_leaves(server);
    assert_eq!(leaves.len(), 387);
    leaves[0] = rewrite_first_timestamp(leaves[0].clone());
    leaves.extend((0..3u8).map(|i| vec![i]));
    let forked = MemoryHashes::from_leaf_hashes(leaves.iter().map(|leaf| leaf_hash(leaf)));
    let size = leaves.len() as u64;
    let edge = Edge::from_reader(&forked, size).unwrap();
    let index = number - 1;
    let proof = TlogProof::new(
        Some(leaves[index as usize].clone()),
        index,
        inclusion_proof(&forked, &edge, index).unwrap(),
        SignedCheckpoint::sign(
            Checkpoint::new(&origin, size, edge.root()).unwrap(),
            &signer,
        ),
    )
    .to_string();
    let proof_path = format!("records/{key}/proof.tlog-proof");
    let liar = Liar::start(server, move |path, honest| {
        if path == proof_path {
            return Some(proof.clone().into_bytes());
        }
        match path.strip_prefix("log/tile/") {
            Some(tile) if !tile.starts_with("entries/") => {
                read_tile(&forked, &TilePath::parse(&format!("tile/{tile}")).ok()?).ok()
            }
            _ => honest,
        }
    });
    let real = client(&server.url()).checkpoint().unwrap();
    let error = client(&liar.url()).record(&key, &real).unwrap_err();
    assert!(
        matches!(error, Error::Inconsistent { old: 387, new: 390 }),
        "{error}"
    );
}

#[test]
fn the_rsf_replay_equals_the_bundle_replay() {
    let server = server();
    let client = client(&server.url());
    let checkpoint = client.checkpoint().unwrap();
    let [from_rsf, from_bundles] = [
        client.replay(&checkpoint),
        client.replay_bundles(&checkpoint),
    ]
    .map(|replay| {
        let replay = replay.unwrap();
        let records: Vec<ReplayedRecord> =
            replay.records.iter().unwrap().map(Result::unwrap).collect();
        (replay.entries, replay.items, records)
    });
    assert_eq!(from_rsf, from_bundles);
    assert!(!from_rsf.2.is_empty());
}

/// Both sources of checked entries, the RSF delta and the entry bundles,
/// yield the same entries with the same numbers and leaf hashes from any
/// tree a reader holds: empty, inside a bundle, at a bundle's edge, at the
/// checkpoint (nothing). A held tree that is not this log's prefix is
/// caught by the assertion at its size (256: the tail's delta is read as
/// the static chunks 0/256, 256/387, whose path it shares) and by the
/// bundles' final fold; one beyond the checkpoint is refused before
/// anything is read.
#[test]
fn both_sources_check_the_same_entries_from_any_held_tree() {
    let server = server();
    let client = client(&server.url());
    let checkpoint = client.checkpoint().unwrap();
    let tiles = client.tiles(&checkpoint);
    let leaves = honest_leaves(server);
    let read = |entries: CheckedEntries| entries.map(Result::unwrap).collect::<Vec<_>>();
    for from in [0, 1, 255, 256, 257, 386, 387] {
        let held = Frontier::from_reader(&tiles, from).unwrap();
        let range = || LogRange::new(&tiles, held.clone());
        let from_delta = read(client.delta_entries(range(), None).unwrap());
        let from_bundles = read(client.bundle_entries(range()).unwrap());
        let numbers: Vec<u64> = from_delta.iter().map(|checked| checked.number).collect();
        assert_eq!(numbers, (from + 1..=387).collect::<Vec<_>>(), "from {from}");
        assert_eq!(from_bundles.len(), from_delta.len(), "from {from}");
        for (delta, bundle) in from_delta.iter().zip(&from_bundles) {
            let leaf = &leaves[usize::try_from(delta.number - 1).unwrap()];
            assert_eq!(delta.leaf_hash, leaf_hash(leaf));
            assert_eq!(
                (delta.log, delta.number, &delta.entry, delta.leaf_hash),
                (bundle.log, bundle.number, &bundle.entry, bundle.leaf_hash)
            );
            let (hash, item) = delta.item.as_ref().unwrap();
            assert_eq!(
                (item.hash(), [*hash]),
                (*hash, [delta.entry.item_hashes[0]])
            );
            assert_eq!(bundle.item, None);
        }
    }

    let forked = MemoryHashes::from_leaf_hashes((0..400u64).map(|i| leaf_hash(&i.to_be_bytes())));
    let other = Frontier::from_reader(&forked, 256).unwrap();
    let first_error = |mut entries: CheckedEntries| entries.find_map(Result::err).unwrap();
    let error = first_error(
        client
            .delta_entries(LogRange::new(&tiles, other.clone()), None)
            .unwrap(),
    );
    assert!(
        matches!(&error, Error::Delta { url, reason, .. } if url.ends_with("/download-rsf/0/256") && reason == "assert-root-hash is not the root of the user log at size 256"),
        "{error}"
    );
    let error = first_error(client.bundle_entries(LogRange::new(&tiles, other)).unwrap());
    assert!(matches!(error, Error::ReplayRoot { size: 387 }), "{error}");

    let beyond = Frontier::from_reader(&forked, 388).unwrap();
    for entries in [
        client.delta_entries(LogRange::new(&tiles, beyond.clone()), None),
        client.bundle_entries(LogRange::new(&tiles, beyond.clone())),
    ] {
        let error = entries.unwrap_err();
        assert!(
            matches!(error, Error::Shrunk { old: 388, new: 387 }),
            "{error}"
        );
    }
}

/// GOV.UK's Ruby client's fixture pair (base, then update: 9 user and 13
/// system entries, the last system entry after the last user entry).
fn api_client_pair() -> Server {
    Server::start(
        "country",
        vec![
            rsf_commands("api-client/country_register.rsf"),
            rsf_commands("api-client/country_register_update.rsf"),
        ],
    )
}

/// A system entry, appended at the current user size.
fn custodian(name: &str) -> Vec<(u64, Command)> {
    let item = Item::parse(&format!("{{\"custodian\":\"{name}\"}}")).unwrap();
    let time = Timestamp::parse("2021-03-01T00:00:00Z").unwrap();
    let entry = Entry::new(Log::System, "custodian", time, item.hash());
    vec![
        (1, Command::AddItem(item)),
        (2, Command::AppendEntry(entry)),
    ]
}

/// Where the delta's path is a static copy's tail (`0/9`), whose host
/// ignores the query, the replay reads it as that chunk: every system
/// entry in it is passed over, as are those appended after the system
/// checkpoint. Elsewhere it asks for user entries only, and a delta that
/// places system entries among them is refused.
#[test]
fn the_rsf_replay_asks_for_user_entries_only() {
    let server = api_client_pair();
    let system_checkpoint = |server: &Server| {
        let url = format!("{}/system-log/checkpoint", server.url());
        ureq::get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    };
    let read = system_checkpoint(&server);
    // Appended at user size 9 after the replay read the system checkpoint:
    // a proxy that still serves the one it read.
    server.append(custodian("Read too late"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let proxy = Liar::start(&server, move |path, honest| {
        log.lock().unwrap().push(path.to_owned());
        match path {
            "system-log/checkpoint" => Some(read.clone().into_bytes()),
            _ => honest,
        }
    });
    let client = Client::new(&proxy.url(), server.loaded.key.clone()).unwrap();
    let checkpoint = client.checkpoint().unwrap();
    let replay = client.replay(&checkpoint).unwrap();
    assert_eq!(replay.entries, 9);
    let paths = seen.lock().unwrap().clone();
    assert!(paths.contains(&"download-rsf/0/9".to_owned()), "{paths:?}");

    // A delta that places system entries among the user entries although
    // the replay holds them all is refused.
    let full = self::server();
    let checkpoint = self::client(&full.url()).checkpoint().unwrap();
    let every_system_entry = {
        let url = format!("{}/download-rsf/0/387?system-size=0", full.url());
        ureq::get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    };
    let liar = Liar::start(full, move |path, honest| {
        if path.starts_with("download-rsf/") {
            Some(every_system_entry.clone().into_bytes())
        } else {
            honest
        }
    });
    let client = Client::new(&liar.url(), full.loaded.key.clone()).unwrap();
    let error = client.replay(&checkpoint).unwrap_err();
    assert!(
        matches!(&error, Error::Delta { reason, .. } if reason.contains("before user entry 1")),
        "{error}"
    );
}

/// A liar that rewrites the RSF delta's text with `change`.
fn rewriting_delta(change: fn(String) -> String) -> Liar {
    Liar::start(server(), move |path, honest| {
        let honest = honest?;
        Some(if path.starts_with("download-rsf/") {
            change(String::from_utf8(honest).unwrap()).into_bytes()
        } else {
            honest
        })
    })
}

#[test]
fn a_rewritten_entry_in_the_rsf_delta_is_refused() {
    let liar = rewriting_delta(|text| {
        // The 300th user entry's timestamp, a year earlier.
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let at = lines
            .iter()
            .enumerate()
            .filter(|(_, line)| line.starts_with("append-entry\tuser\t"))
            .nth(299)
            .unwrap()
            .0;
        lines[at] = lines[at].replacen("\t20", "\t19", 1);
        lines.join("\n") + "\n"
    });
    let client = client(&liar.url());
    let checkpoint = client.checkpoint().unwrap();
    let error = client.replay(&checkpoint).unwrap_err();
    assert!(
        matches!(error, Error::DeltaLeafHash { number: 300, .. }),
        "{error}"
    );
}

#[test]
fn a_stale_item_in_the_rsf_delta_is_refused() {
    let liar = rewriting_delta(|text| {
        let at = text.rfind("add-item\t").unwrap();
        let quote = at + text[at..].find("\":\"").unwrap() + 3;
        let mut text = text;
        text.insert_str(quote, "stale ");
        text
    });
    let client = client(&liar.url());
    let checkpoint = client.checkpoint().unwrap();
    let error = client.replay(&checkpoint).unwrap_err();
    assert!(
        matches!(error, Error::ItemHash { expected, found } if expected != found),
        "{error}"
    );
}

#[test]
fn a_truncated_rsf_delta_is_refused() {
    let liar = rewriting_delta(|text| {
        // Drop the last entry, its item and the final assertion.
        let mut lines: Vec<&str> = text.lines().collect();
        while !lines.last().unwrap().starts_with("append-entry") {
            lines.pop();
        }
        lines.pop();
        lines.join("\n") + "\n"
    });
    let client = client(&liar.url());
    let checkpoint = client.checkpoint().unwrap();
    let error = client.replay(&checkpoint).unwrap_err();
    assert!(matches!(error, Error::Delta { .. }), "{error}");
}

#[test]
fn an_rsf_delta_padded_with_true_assertions_is_cut_off() {
    let liar = rewriting_delta(|text| {
        // The opening assertion (the empty tree's root) is true each time.
        let first = text.lines().next().unwrap().to_owned() + "\n";
        first.repeat(5000) + &text
    });
    let client = client(&liar.url());
    let checkpoint = client.checkpoint().unwrap();
    let error = client.replay(&checkpoint).unwrap_err();
    assert!(
        matches!(&error, Error::Delta { line, reason, .. } if *line == 4 * 387 + 17 && reason.starts_with("more than")),
        "{error}"
    );
}

/// A proxy that serves the honest register until `fork` is set, then a
/// fork signed with the register's real key.
fn switching(server: &Server, size: u64) -> (Liar, Arc<AtomicBool>) {
    let signer = server.signer();
    let origin = server.loaded.key.name().as_str().to_owned();
    let forked =
        MemoryHashes::from_leaf_hashes((0..size).map(|i: u64| leaf_hash(&i.to_be_bytes())));
    let root = Edge::from_reader(&forked, size).unwrap().root();
    let text =
        SignedCheckpoint::sign(Checkpoint::new(&origin, size, root).unwrap(), &signer).to_string();
    let fork = Arc::new(AtomicBool::new(false));
    let switch = Arc::clone(&fork);
    let liar = Liar::start(server, move |path, honest| {
        if !switch.load(Ordering::SeqCst) {
            return honest;
        }
        if path == "log/checkpoint" {
            return Some(text.clone().into_bytes());
        }
        match path.strip_prefix("log/") {
            Some(tile) if tile.starts_with("tile/") => {
                read_tile(&forked, &TilePath::parse(tile).ok()?).ok()
            }
            _ => honest,
        }
    });
    (liar, fork)
}

#[test]
fn an_audit_of_a_forked_log_fails_with_evidence_that_verifies() {
    let server = server();
    for (size, kind) in [
        (400, ForkKind::Inconsistent),
        (387, ForkKind::SameSizeDifferentRoot),
        (300, ForkKind::Smaller),
    ] {
        let (liar, fork) = switching(server, size);
        let auditor = Auditor::new(&liar.url(), server.loaded.key.clone()).unwrap();
        let state = auditor.audit(None).unwrap().state;
        assert_eq!(state.user.size(), 387);
        fork.store(true, Ordering::SeqCst);
        let error = auditor.audit(Some(state.clone())).unwrap_err();
        let AuditError::Fork(evidence) = error else {
            panic!("{error}");
        };
        assert_eq!(evidence.kind, kind);
        assert_eq!(evidence.log, Log::User);
        assert_eq!(evidence.old, state.user);
        assert_eq!(evidence.new.size(), size);
        assert_eq!(evidence.tiles.is_empty(), kind != ForkKind::Inconsistent);

        // The file re-verifies from its contents and the key alone.
        let text = evidence.encode();
        let checked = Evidence::verify(text.as_bytes(), &server.loaded.key).unwrap();
        assert_eq!(checked, *evidence);
        // Not with another key.
        let other = impostor(&server.loaded.key).verifier();
        assert!(Evidence::verify(text.as_bytes(), &other).is_err());
        if kind == ForkKind::Inconsistent {
            // A tile changed in the file: it no longer holds.
            let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
            let tiles = json["tiles"].as_object_mut().unwrap();
            let (path, hex) = tiles
                .iter()
                .next()
                .map(|(p, h)| (p.clone(), h.clone()))
                .unwrap();
            let mut hex = hex.as_str().unwrap().to_owned();
            let flipped = if hex.starts_with('0') { "1" } else { "0" };
            hex.replace_range(0..1, flipped);
            tiles.insert(path, hex.into());
            assert!(Evidence::verify(json.to_string().as_bytes(), &server.loaded.key).is_err());
            // Claiming the old checkpoint is the new one's prefix fails too:
            // evidence of an honest pair does not hold.
            let honest = Evidence {
                new: state.user.clone(),
                ..(*evidence).clone()
            };
            assert!(Evidence::verify(honest.encode().as_bytes(), &server.loaded.key).is_err());
        }
    }
}

/// A client asking for `records_page` records per `B/records` page.
fn paging_client(url: &str, records_page: u64) -> Client {
    let limits = regis_client::Limits {
        records_page,
        ..regis_client::Limits::default()
    };
    Client::with_limits(url, server().loaded.key.clone(), limits).unwrap()
}

#[test]
fn the_servers_records_are_checked_against_the_replay() {
    let server = server();
    // One page, several (by key, each after the last key of the one
    // before), and pages that end exactly at the last record.
    for records_page in [1000, 50, 1, 387] {
        let client = paging_client(&server.url(), records_page);
        let checkpoint = client.checkpoint().unwrap();
        let replay = client.replay(&checkpoint).unwrap();
        let check = client.check_records(&replay, &checkpoint).unwrap();
        assert_eq!(check.matching, replay.records.len(), "{records_page}");
        assert!(check.matching > 300);
        assert_eq!(check.newer, 0);
    }
}

/// A liar that rewrites `B/records` pages with `change`.
fn rewriting_records(
    change: fn(
        serde_json::Map<String, serde_json::Value>,
    ) -> serde_json::Map<String, serde_json::Value>,
) -> Liar {
    Liar::start(server(), move |path, honest| {
        let honest = honest?;
        Some(if path.starts_with("records.json") {
            let page = serde_json::from_slice(&honest).unwrap();
            serde_json::to_vec(&change(page)).unwrap()
        } else {
            honest
        })
    })
}

#[test]
fn records_the_server_lists_wrongly_are_caught() {
    let cases: [(&str, fn(_) -> _); 4] = [
        ("an altered item", |mut page: serde_json::Map<_, _>| {
            let (_, record) = page.iter_mut().nth(3).unwrap();
            record["item"][0]["name"] = "Elsewhere".into();
            page
        }),
        ("a stale entry number", |mut page: serde_json::Map<_, _>| {
            let (_, record) = page.iter_mut().nth(3).unwrap();
            let number: u64 = record["entry-number"].as_str().unwrap().parse().unwrap();
            record["entry-number"] = (number - 1).to_string().into();
            page
        }),
        ("a record left out", |mut page: serde_json::Map<_, _>| {
            let key = page.keys().nth(3).unwrap().clone();
            page.remove(&key);
            page
        }),
        ("a record made up", |mut page: serde_json::Map<_, _>| {
            let (_, record) = page.iter().next().unwrap();
            let mut made_up = record.clone();
            made_up["key"] = "ZZ-MADE-UP".into();
            page.insert("ZZ-MADE-UP".into(), made_up);
            page
        }),
    ];
    for (what, change) in cases {
        let liar = rewriting_records(change);
        // On one page, and on every page of 50.
        for records_page in [1000, 50] {
            let client = paging_client(&liar.url(), records_page);
            let checkpoint = client.checkpoint().unwrap();
            let replay = client.replay(&checkpoint).unwrap();
            let error = client.check_records(&replay, &checkpoint).unwrap_err();
            assert!(
                matches!(error, Error::Records { .. }),
                "{what}, pages of {records_page}: {error}"
            );
        }
    }
}
