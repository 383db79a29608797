//! A static copy of registers, as a publisher leaves one in a bucket
//! (issue 18; the layout of `spec/static.md`): the objects read from a real
//! `regis serve` over HTTP at a pair of checkpoints, held in memory and
//! served on a loopback port (axum, a runtime thread of its own) as a
//! bucket behind a CDN serves them: exactly those paths, the query
//! ignored (as S3 and file servers do), and 404 for anything else, or 403
//! as S3 answers a reader that may not list the bucket. Switches for the
//! clients' failure paths: publications that delete the partial objects
//! of older sizes, a publication made right after a request (between a
//! reader's checkpoint and its tiles), one left before its checkpoints,
//! and objects altered in place.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::Response;
use regis_merkle::tile::{TileKind, TilePath};

use super::http::get_answer;

/// One object: its bytes and the headers a publisher gives it.
#[derive(Clone, Debug)]
pub struct Object {
    pub bytes: Vec<u8>,
    content_type: &'static str,
    cache_control: &'static str,
}

/// The objects of one publication of one register.
#[derive(Clone, Debug)]
pub struct Publication {
    /// The published sizes: user, system.
    pub sizes: (u64, u64),
    objects: BTreeMap<String, Object>,
}

/// What a publication deletes of what it supersedes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Superseded {
    /// What the contract deletes: a partial tile or bundle once its full
    /// one is published, a tail once its chunk is full.
    Full,
    /// Every partial tile, bundle and tail of an older size.
    Older,
}

const IMMUTABLE: &str = "public, max-age=604800, immutable";
const NO_CACHE: &str = "no-cache";
const CHUNK: u64 = 256;

/// `GET path` from the origin at `addr`: the body of a 200.
fn fetch(addr: &str, path: &str) -> Vec<u8> {
    let answer = get_answer(addr, path).unwrap_or_else(|| panic!("{path}: no answer"));
    assert_eq!(answer.status, 200, "{path}: {}", answer.text());
    answer.body
}

fn checkpoint_size(text: &[u8]) -> u64 {
    String::from_utf8_lossy(text)
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

impl Publication {
    /// Reads register `name` from the origin at `addr` (`host:port`) at
    /// its current checkpoints, as a publisher does: a system checkpoint
    /// unchanged around the user one, then every object of that pair.
    pub fn read(addr: &str, name: &str) -> Publication {
        let base = format!("/registers/{name}");
        let system = fetch(addr, &format!("{base}/system-log/checkpoint"));
        let user = fetch(addr, &format!("{base}/log/checkpoint"));
        let sizes = (checkpoint_size(&user), checkpoint_size(&system));
        let mut objects = BTreeMap::new();
        let mut put = |path: String, content_type, cache_control| {
            let bytes = fetch(addr, &path);
            objects.insert(
                path,
                Object {
                    bytes,
                    content_type,
                    cache_control,
                },
            );
        };
        for (log, size) in [("log", sizes.0), ("system-log", sizes.1)] {
            let kinds = (0..64u8)
                .map(|level| TileKind::Hashes { level })
                .chain([TileKind::Entries]);
            for kind in kinds {
                for tile in (0..).map_while(|index| TilePath::in_tree(kind, index, size)) {
                    put(
                        format!("{base}/{log}/{tile}"),
                        "application/octet-stream",
                        IMMUTABLE,
                    );
                }
            }
        }
        let size = sizes.0;
        let tail = size.saturating_sub(1) / CHUNK * CHUNK;
        for start in (0..tail).step_by(CHUNK as usize) {
            put(
                format!("{base}/download-rsf/{start}/{}", start + CHUNK),
                "application/uk-gov-rsf",
                IMMUTABLE,
            );
        }
        put(
            format!("{base}/download-rsf/{tail}/{size}"),
            "application/uk-gov-rsf",
            NO_CACHE,
        );
        put(format!("{base}/register"), "application/json", NO_CACHE);
        put(
            format!("{base}/witness-policy"),
            "text/plain; charset=utf-8",
            NO_CACHE,
        );
        // The pair must not have moved while it was read: nothing beyond
        // it is in the objects.
        assert_eq!(
            fetch(addr, &format!("{base}/system-log/checkpoint")),
            system
        );
        for (log, text) in [("system-log", system), ("log", user)] {
            objects.insert(
                format!("{base}/{log}/checkpoint"),
                Object {
                    bytes: text,
                    content_type: "text/plain; charset=utf-8",
                    cache_control: NO_CACHE,
                },
            );
        }
        Publication { sizes, objects }
    }

    /// Whether `path` is a checkpoint's.
    fn is_checkpoint(path: &str) -> bool {
        path.ends_with("/checkpoint")
    }
}

/// Whether `path` is a partial object: a partial tile or bundle, or a tail
/// (`download-rsf/{a}/{b}` with `b` not `a + 256`).
fn is_partial(path: &str) -> bool {
    if path.contains(".p/") {
        return true;
    }
    let Some((_, range)) = path.split_once("/download-rsf/") else {
        return false;
    };
    let (start, end) = range.split_once('/').unwrap();
    end.parse::<u64>().unwrap() != start.parse::<u64>().unwrap() + CHUNK
}

/// Whether `path`, partial, is superseded by the `objects` now published:
/// the full tile or bundle it is part of, or the full chunk of its tail.
fn is_covered(path: &str, objects: &BTreeMap<String, Object>) -> bool {
    if let Some((full, _)) = path.split_once(".p/") {
        return objects.contains_key(full);
    }
    let (prefix, range) = path.split_once("/download-rsf/").unwrap();
    let start: u64 = range.split_once('/').unwrap().0.parse().unwrap();
    objects.contains_key(&format!("{prefix}/download-rsf/{start}/{}", start + CHUNK))
}

/// A publication to apply once the `nth` request for a path ending with
/// `after` is answered.
struct Pending {
    after: String,
    nth: usize,
    publication: Publication,
    superseded: Superseded,
}

struct Bucket {
    objects: BTreeMap<String, Object>,
    /// The status of a path with no object: 404, or 403.
    missing: StatusCode,
    pending: Option<Pending>,
    /// Every path asked for, in order.
    requests: Vec<String>,
}

impl Bucket {
    /// Steps 1 to 3 of a publication: every object but the checkpoints.
    fn upload(&mut self, publication: &Publication) {
        for (path, object) in &publication.objects {
            if !Publication::is_checkpoint(path) {
                self.objects.insert(path.clone(), object.clone());
            }
        }
    }

    /// A whole publication: its objects, its checkpoints, then the
    /// deletion of what it supersedes.
    fn publish(&mut self, publication: &Publication, superseded: Superseded) {
        self.upload(publication);
        for (path, object) in &publication.objects {
            if Publication::is_checkpoint(path) {
                self.objects.insert(path.clone(), object.clone());
            }
        }
        let gone: Vec<String> = self
            .objects
            .keys()
            .filter(|path| is_partial(path) && !publication.objects.contains_key(*path))
            .filter(|path| superseded == Superseded::Older || is_covered(path, &self.objects))
            .cloned()
            .collect();
        for path in gone {
            self.objects.remove(&path);
        }
    }
}

/// A static copy on a loopback port, stopped and joined when dropped.
pub struct StaticCopy {
    addr: SocketAddr,
    bucket: Arc<Mutex<Bucket>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StaticCopy {
    /// An empty copy, serving.
    pub fn start() -> StaticCopy {
        let bucket = Arc::new(Mutex::new(Bucket {
            objects: BTreeMap::new(),
            missing: StatusCode::NOT_FOUND,
            pending: None,
            requests: Vec::new(),
        }));
        let router = Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&bucket));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        let _ = shutdown_rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        StaticCopy {
            addr: addr_rx.recv().unwrap(),
            bucket,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The base URL of register `name` in the copy.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/registers/{name}", self.addr)
    }

    fn bucket(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.bucket.lock().unwrap()
    }

    /// Publishes `publication` whole, deleting what it supersedes.
    pub fn publish(&self, publication: &Publication, superseded: Superseded) {
        self.bucket().publish(publication, superseded);
    }

    /// Uploads `publication`'s objects but not its checkpoints: a
    /// publication under way.
    pub fn upload(&self, publication: &Publication) {
        self.bucket().upload(publication);
    }

    /// Publishes `publication` right after the `nth` answer from now to a
    /// path ending with `after`, before any other request is answered.
    pub fn publish_after(
        &self,
        after: &str,
        nth: usize,
        publication: Publication,
        superseded: Superseded,
    ) {
        self.bucket().pending = Some(Pending {
            after: after.to_owned(),
            nth,
            publication,
            superseded,
        });
    }

    /// Answers 403 (or 404) for a path with no object.
    pub fn set_missing(&self, status: u16) {
        self.bucket().missing = StatusCode::from_u16(status).unwrap();
    }

    /// The paths of the objects published, under `prefix`.
    pub fn paths(&self, prefix: &str) -> Vec<String> {
        self.bucket()
            .objects
            .keys()
            .filter(|path| path.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Changes the object at `path` in place with `change`.
    pub fn alter(&self, path: &str, change: impl FnOnce(&mut Vec<u8>)) {
        change(&mut self.bucket().objects.get_mut(path).unwrap().bytes);
    }

    /// The object at `path`.
    pub fn object(&self, path: &str) -> Option<Object> {
        self.bucket().objects.get(path).cloned()
    }

    /// The paths asked for so far, and forgets them.
    pub fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut self.bucket().requests)
    }
}

impl Drop for StaticCopy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Any request: the object at the path (query ignored), or the missing
/// status with an S3-like body.
async fn answer(State(bucket): State<Arc<Mutex<Bucket>>>, uri: Uri) -> Response {
    let path = uri.path().to_owned();
    let mut bucket = bucket.lock().unwrap();
    bucket.requests.push(uri.to_string());
    let found = bucket.objects.get(&path).cloned();
    let missing = bucket.missing;
    if let Some(pending) = bucket.pending.as_mut()
        && path.ends_with(&pending.after)
    {
        pending.nth -= 1;
        if pending.nth == 0 {
            let pending = bucket.pending.take().unwrap();
            bucket.publish(&pending.publication, pending.superseded);
        }
    }
    drop(bucket);
    match found {
        Some(object) => Response::builder()
            .header(header::CONTENT_TYPE, object.content_type)
            .header(header::CACHE_CONTROL, object.cache_control)
            .body(Body::from(object.bytes))
            .unwrap(),
        None => Response::builder()
            .status(missing)
            .header(header::CONTENT_TYPE, "application/xml")
            .body(Body::from(format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Key>{path}</Key></Error>",
                if missing == StatusCode::FORBIDDEN {
                    "AccessDenied"
                } else {
                    "NoSuchKey"
                }
            )))
            .unwrap(),
    }
}
