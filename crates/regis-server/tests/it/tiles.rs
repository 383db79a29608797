//! Both logs as C2SP tlog-tiles over a live server: checkpoints, full and
//! partial hash tiles, entry bundles (gzip), caching headers, ETags and
//! 304s, strict paths. (Go's own tlog code checks every register's tiles
//! in regis's `tests/it/interop.rs`.)

use crate::common;

use std::io::Read as _;

use crate::common::{TestServer, rsf_commands};
use regis_merkle::tile::parse_bundle;
use regis_merkle::{leaf_hash, node_hash};
use regis_note::{SignedCheckpoint, Verifier, Verifiers};

const IMMUTABLE: &str = "public, max-age=604800, immutable";

fn server() -> TestServer {
    // 387 user entries: one full level-0 tile and a partial one.
    TestServer::start(vec![(
        "local-authority-eng",
        rsf_commands("registry-data/local-authority-eng.rsf"),
    )])
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn tiles_bundles_and_checkpoints() {
    let server = server();
    let b = "/registers/local-authority-eng";
    let metadata = server.get(&format!("{b}/register")).json();

    for (prefix, log_key, origin_key) in [
        ("log", "log-public-key", "log-origin"),
        ("system-log", "system-log-public-key", "system-log-origin"),
    ] {
        let checkpoint = server.get(&format!("{b}/{prefix}/checkpoint"));
        assert_eq!(checkpoint.status, 200);
        assert_eq!(
            checkpoint.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(checkpoint.header("cache-control"), Some("no-store"));
        let signed = SignedCheckpoint::parse(&checkpoint.body).unwrap();
        let verifier = Verifier::parse(metadata[log_key].as_str().unwrap()).unwrap();
        signed
            .verify(
                metadata[origin_key].as_str().unwrap(),
                &verifier,
                &Verifiers::new([]).unwrap(),
            )
            .unwrap();
    }
    let checkpoint =
        SignedCheckpoint::parse(&server.get(&format!("{b}/log/checkpoint")).body).unwrap();
    assert_eq!(checkpoint.checkpoint().size(), 387);

    // Level 0: a full tile equals the leaf hashes of the full bundle.
    let tile = server.get(&format!("{b}/log/tile/0/000"));
    assert_eq!(tile.status, 200);
    assert_eq!(
        tile.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(tile.header("cache-control"), Some(IMMUTABLE));
    assert_eq!(tile.body.len(), 256 * 32);
    let bundle = server.get(&format!("{b}/log/tile/entries/000"));
    assert_eq!(bundle.header("cache-control"), Some(IMMUTABLE));
    assert_eq!(bundle.header("content-encoding"), None);
    let entries = parse_bundle(&bundle.body).unwrap();
    assert_eq!(entries.len(), 256);
    let leaves: Vec<[u8; 32]> = entries.iter().map(|e| leaf_hash(e)).collect();
    assert_eq!(tile.body, leaves.concat());
    // Entry 1's bundle bytes are its API JSON.
    let first = server.get(&format!("{b}/entries/1")).text();
    assert_eq!(entries[0], &first.as_bytes()[1..first.len() - 1]);

    // gzip when accepted, with its own strong ETag.
    let gzipped = server.get_with(
        &format!("{b}/log/tile/entries/000"),
        &[("Accept-Encoding", "gzip")],
    );
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    assert_eq!(gzip_vary(&gzipped), Some("Accept-Encoding"));
    assert_eq!(gunzip(&gzipped.body), bundle.body);
    assert_ne!(gzipped.header("etag"), bundle.header("etag"));

    // The partial tiles, and a partial tile's prefixes.
    let partial = server.get(&format!("{b}/log/tile/0/001.p/131"));
    assert_eq!(partial.status, 200);
    assert_eq!(partial.header("cache-control"), Some(IMMUTABLE));
    assert_eq!(partial.body.len(), 131 * 32);
    let partial_bundle = server.get(&format!("{b}/log/tile/entries/001.p/131"));
    let partial_entries = parse_bundle(&partial_bundle.body).unwrap();
    assert_eq!(partial_entries.len(), 131);
    let partial_leaves: Vec<[u8; 32]> = partial_entries.iter().map(|e| leaf_hash(e)).collect();
    assert_eq!(partial.body, partial_leaves.concat());
    let prefix = server.get(&format!("{b}/log/tile/0/001.p/5"));
    assert_eq!(prefix.body, partial.body[..5 * 32]);
    // Level 1 holds the root of the full level-0 tile.
    let level1 = server.get(&format!("{b}/log/tile/1/000.p/1"));
    let mut hashes: Vec<[u8; 32]> = leaves.clone();
    while hashes.len() > 1 {
        hashes = hashes.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
    }
    assert_eq!(level1.body, hashes[0]);

    // Never a partial tile at a full tile's path; nothing beyond the tree.
    for path in [
        "log/tile/0/001",
        "log/tile/entries/001",
        "log/tile/0/001.p/132",
        "log/tile/0/002.p/1",
        "log/tile/1/000",
        "log/tile/2/000.p/1",
        "log/tile/0/x001/000",
        "system-log/tile/0/000",
    ] {
        assert_eq!(
            server.get(&format!("{b}/{path}")).error(404),
            "no-tile",
            "{path}"
        );
    }

    // ETags and 304s.
    let tag = tile.header("etag").unwrap().to_owned();
    assert!(tag.starts_with('"') && tag.ends_with('"'));
    let again = server.get_with(&format!("{b}/log/tile/0/000"), &[("If-None-Match", &tag)]);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(tag.as_str()));
    let other = server.get_with(
        &format!("{b}/log/tile/0/000"),
        &[("If-None-Match", "\"something-else\"")],
    );
    assert_eq!(other.status, 200);
    // Served again, now from the server's cache of full tiles: the same.
    assert_eq!(other.body, tile.body);
    assert_eq!(other.header("etag"), Some(tag.as_str()));

    // The system log's partial tile and bundle.
    let system_size = metadata["total-system-entries"].as_u64().unwrap();
    let system_tile = server.get(&format!("{b}/system-log/tile/0/000.p/{system_size}"));
    assert_eq!(system_tile.status, 200);
    let system_bundle = server.get(&format!("{b}/system-log/tile/entries/000.p/{system_size}"));
    let system_leaves: Vec<[u8; 32]> = parse_bundle(&system_bundle.body)
        .unwrap()
        .iter()
        .map(|e| leaf_hash(e))
        .collect();
    assert_eq!(system_tile.body, system_leaves.concat());
}

fn gzip_vary(response: &common::Resp) -> Option<&str> {
    response
        .header("vary")
        .filter(|v| v.contains("Accept-Encoding"))
        .map(|_| "Accept-Encoding")
}
