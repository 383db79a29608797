//! Publications to a local directory (`file://`): several sizes, each copy
//! verified; superseded partial tiles and tails deleted; the state file and
//! the target's checkpoints as resume points; the `Publisher` following a
//! register as it grows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use regis_model::{Log, PerLog};
use regis_publish::plan::tail_start;
use regis_publish::{ObjectStoreTarget, Publisher, Served, Target, state};

use crate::common::{Fixture, NAME, quick, verify_copy};

pub fn file_target(dir: &std::path::Path) -> Arc<dyn Target> {
    let url = format!("file://{}", dir.display());
    Arc::new(ObjectStoreTarget::new(&url, &[]).unwrap())
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every file below `dir`, relative.
pub fn files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn copies_at_several_sizes_verify_and_keep_no_superseded_object() {
    let mut fixture = Fixture::new();
    let bucket = tempfile::tempdir().unwrap();
    let target = file_target(bucket.path());
    let publication = fixture.publication(Arc::clone(&target), quick());
    let runtime = runtime();
    for (grow, custodian) in [
        (0, false),
        (1, false),
        (254, true),
        (1, false),
        (300, false),
        (1, false),
        (512, true),
        (3, false),
    ] {
        fixture.append(grow);
        if custodian {
            fixture.new_custodian("Someone else");
        }
        let pair = fixture.pair();
        assert!(runtime.block_on(publication.catch_up(&pair)).unwrap());
        let sizes = runtime.block_on(verify_copy(&*target, &fixture.store, &fixture.keys));
        assert_eq!(sizes, PerLog::from_fn(|log| pair[log].size));
        assert_eq!(
            state::read(&fixture.register_dir(), target.url()).unwrap(),
            Some(sizes)
        );
        // Nothing more to do at the same sizes.
        assert!(!runtime.block_on(publication.catch_up(&pair)).unwrap());
        // No partial tile of a full one, no tail of a full chunk.
        for file in files(bucket.path()) {
            if let Some((tile, _)) = file.split_once(".p/") {
                assert!(
                    !std::path::Path::new(bucket.path()).join(tile).exists(),
                    "{file}"
                );
            }
            if let Some(rest) = file.strip_prefix(&format!("registers/{NAME}/download-rsf/")) {
                let (start, end) = rest.split_once('/').unwrap();
                let (start, end): (u64, u64) = (start.parse().unwrap(), end.parse().unwrap());
                // Tails of the current chunk stay until it is full.
                assert!(
                    end == start + 256 || start == tail_start(sizes.user),
                    "{file} at {sizes:?}"
                );
            }
        }
    }
    let status = publication.status.lock().unwrap().clone();
    assert_eq!(status.publications, 8);
    assert!(status.requests[0][0] > 0 && status.requests[0][1] == 0);
}

#[test]
fn an_emptied_target_is_published_again_from_nothing_and_the_state_from_the_target() {
    let mut fixture = Fixture::new();
    fixture.append(600);
    let bucket = tempfile::tempdir().unwrap();
    let target = file_target(bucket.path());
    let publication = fixture.publication(Arc::clone(&target), quick());
    let runtime = runtime();
    assert!(
        runtime
            .block_on(publication.catch_up(&fixture.pair()))
            .unwrap()
    );
    // The bucket emptied: the state says 600, the bucket nothing; resumed
    // from nothing.
    std::fs::remove_dir_all(bucket.path().join("registers")).unwrap();
    let resume = runtime.block_on(publication.resume()).unwrap();
    assert_eq!(resume.from, PerLog { user: 0, system: 0 });
    fixture.append(1);
    assert!(
        runtime
            .block_on(publication.catch_up(&fixture.pair()))
            .unwrap()
    );
    runtime.block_on(verify_copy(&*target, &fixture.store, &fixture.keys));
    // The state lost: resumed from nothing too, the floor the bucket's.
    std::fs::remove_file(state::path(&fixture.register_dir(), target.url())).unwrap();
    let resume = runtime.block_on(publication.resume()).unwrap();
    assert_eq!(resume.from, PerLog { user: 0, system: 0 });
    assert_eq!(
        resume.floor,
        PerLog::from_fn(|log| fixture.pair()[log].size)
    );
}

#[test]
fn the_publisher_follows_the_register_and_publishes_each_new_size() {
    let mut fixture = Fixture::new();
    fixture.append(10);
    let bucket = tempfile::tempdir().unwrap();
    let target = file_target(bucket.path());
    let publisher = Publisher::start(Arc::clone(&target), quick()).unwrap();
    publisher.add(fixture.source(None), Served::Signed(fixture.checkpoints()));
    let runtime = runtime();
    for grow in [0, 300, 1, 7] {
        fixture.append(grow);
        let want = PerLog::from_fn(|log| fixture.pair()[log].size);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = publisher.status();
            if status[0].status.published == want {
                break;
            }
            assert!(Instant::now() < deadline, "not published: {status:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            runtime.block_on(verify_copy(&*target, &fixture.store, &fixture.keys)),
            want
        );
    }
    let status = &publisher.status()[0];
    assert_eq!(status.name, NAME);
    assert_eq!(status.status.last_error, None);
    assert_eq!(status.status.served[Log::User], 318);
    publisher.stop();
}
