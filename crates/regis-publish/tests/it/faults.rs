//! Faults injected through the `Target` trait: publications cut short at
//! every request in turn never show a checkpoint whose objects are missing
//! and converge once the target works; a target that is down costs the
//! register's writes nothing; a hanging one times out; a target holding
//! another log's checkpoint is refused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use regis_model::PerLog;
use regis_publish::{Headers, Publisher, Served, Target, TargetError};

use crate::common::{Fixture, quick, verify_copy};
use crate::publish::{file_target, runtime};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Working,
    /// Every request fails at once.
    Down,
    /// Uploads never answer.
    Hanging,
    /// Uploads after this many more fail.
    FailAfter(u64),
}

/// A target that fails as told.
#[derive(Debug)]
pub struct Faulty {
    inner: Arc<dyn Target>,
    mode: Mutex<Mode>,
    puts: AtomicU64,
}

impl Faulty {
    pub fn new(inner: Arc<dyn Target>, mode: Mode) -> Arc<Faulty> {
        Arc::new(Faulty {
            inner,
            mode: Mutex::new(mode),
            puts: AtomicU64::new(0),
        })
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
        self.puts.store(0, Ordering::SeqCst);
    }

    fn refuse(&self, operation: &'static str, path: &str) -> Option<TargetError> {
        let failed = TargetError {
            operation,
            path: path.to_owned(),
            message: "injected failure".to_owned(),
        };
        match *self.mode.lock().unwrap() {
            Mode::Working | Mode::Hanging => None,
            Mode::Down => Some(failed),
            Mode::FailAfter(n) if operation == "PUT" => {
                (self.puts.fetch_add(1, Ordering::SeqCst) >= n).then_some(failed)
            }
            Mode::FailAfter(_) => None,
        }
    }
}

impl Target for Faulty {
    fn url(&self) -> &str {
        self.inner.url()
    }

    fn put<'a>(
        &'a self,
        path: &'a str,
        bytes: Bytes,
        headers: Headers,
    ) -> BoxFuture<'a, Result<(), TargetError>> {
        if *self.mode.lock().unwrap() == Mode::Hanging {
            return Box::pin(futures_util::future::pending());
        }
        match self.refuse("PUT", path) {
            Some(error) => Box::pin(async move { Err(error) }),
            None => self.inner.put(path, bytes, headers),
        }
    }

    fn get<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, TargetError>> {
        match self.refuse("GET", path) {
            Some(error) => Box::pin(async move { Err(error) }),
            None => self.inner.get(path),
        }
    }

    fn list<'a>(&'a self, folder: &'a str) -> BoxFuture<'a, Result<Vec<String>, TargetError>> {
        match self.refuse("LIST", folder) {
            Some(error) => Box::pin(async move { Err(error) }),
            None => self.inner.list(folder),
        }
    }

    fn delete<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), TargetError>> {
        match self.refuse("DELETE", path) {
            Some(error) => Box::pin(async move { Err(error) }),
            None => self.inner.delete(path),
        }
    }
}

#[test]
fn publications_cut_short_at_each_upload_never_show_a_checkpoint_without_its_objects() {
    let mut fixture = Fixture::new();
    fixture.append(300);
    let bucket = tempfile::tempdir().unwrap();
    let faulty = Faulty::new(file_target(bucket.path()), Mode::Working);
    let publication = fixture.publication(faulty.clone(), quick());
    let runtime = runtime();
    assert!(
        runtime
            .block_on(publication.catch_up(&fixture.pair()))
            .unwrap()
    );
    let mut cut = 0;
    loop {
        fixture.append(200);
        let want = PerLog::from_fn(|log| fixture.pair()[log].size);
        faulty.set(Mode::FailAfter(cut));
        let result = runtime.block_on(publication.catch_up(&fixture.pair()));
        // Whatever the target shows verifies: the old pair or the new.
        let shown = runtime.block_on(verify_copy(&*faulty, &fixture.store, &fixture.keys));
        match result {
            Ok(published) => {
                assert!(published);
                assert_eq!(shown, want);
                break;
            }
            Err(error) => {
                assert!(error.to_string().contains("injected failure"), "{error}");
                assert!(!error.is_refusal());
            }
        }
        // Working again, it converges (redoing at most this publication).
        faulty.set(Mode::Working);
        assert!(
            runtime
                .block_on(publication.catch_up(&fixture.pair()))
                .unwrap()
        );
        assert_eq!(
            runtime.block_on(verify_copy(&*faulty, &fixture.store, &fixture.keys)),
            want
        );
        cut += 1;
    }
    assert!(cut > 5, "the publication had {cut} uploads");
}

#[test]
fn a_target_that_is_down_costs_the_writes_nothing_and_the_publisher_converges_when_back() {
    let mut fixture = Fixture::new();
    fixture.append(5);
    let bucket = tempfile::tempdir().unwrap();
    let faulty = Faulty::new(file_target(bucket.path()), Mode::Down);
    let publisher = Publisher::start(faulty.clone(), quick()).unwrap();
    publisher.add(fixture.source(None), Served::Signed(fixture.checkpoints()));
    // Writes go on while the target is down.
    for _ in 0..5 {
        fixture.append(100);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while publisher.status()[0].status.last_error.is_none() {
        assert!(Instant::now() < deadline, "no error reported");
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = publisher.status()[0].status.clone();
    assert_eq!(status.published, PerLog::default());
    assert!(status.requests[1][1] > 0, "failed GETs counted: {status:?}");
    faulty.set(Mode::Working);
    let want = PerLog::from_fn(|log| fixture.pair()[log].size);
    let deadline = Instant::now() + Duration::from_secs(30);
    while publisher.status()[0].status.published != want {
        assert!(Instant::now() < deadline, "{:?}", publisher.status());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(publisher.status()[0].status.last_error, None);
    let runtime = runtime();
    assert_eq!(
        runtime.block_on(verify_copy(&*faulty, &fixture.store, &fixture.keys)),
        want
    );
    publisher.stop();
}

#[test]
fn a_hanging_target_times_out() {
    let mut fixture = Fixture::new();
    fixture.append(3);
    let bucket = tempfile::tempdir().unwrap();
    let faulty = Faulty::new(file_target(bucket.path()), Mode::Hanging);
    let mut settings = quick();
    settings.request_timeout = Duration::from_millis(200);
    let publication = fixture.publication(faulty, settings);
    let error = runtime()
        .block_on(publication.catch_up(&fixture.pair()))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("no answer within the request timeout"),
        "{error}"
    );
}

#[test]
fn a_target_holding_another_logs_checkpoint_is_refused() {
    let mut ours = Fixture::new();
    let mut theirs = Fixture::new();
    ours.append(3);
    theirs.append(3);
    let bucket = tempfile::tempdir().unwrap();
    let target = file_target(bucket.path());
    let runtime = runtime();
    let publication = theirs.publication(Arc::clone(&target), quick());
    assert!(
        runtime
            .block_on(publication.catch_up(&theirs.pair()))
            .unwrap()
    );
    let publication = ours.publication(Arc::clone(&target), quick());
    let error = runtime
        .block_on(publication.catch_up(&ours.pair()))
        .unwrap_err();
    assert!(error.is_refusal());
    let message = error.to_string();
    assert!(
        message.contains("register demo is not published to file://")
            && message.contains("is not this log's"),
        "{message}"
    );
    // The publisher reports it and publishes nothing.
    let publisher = Publisher::start(Arc::clone(&target), quick()).unwrap();
    publisher.add(ours.source(None), Served::Signed(ours.checkpoints()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while publisher.status()[0].status.refused.is_none() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    publisher.stop();
}
