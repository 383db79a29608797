//! Publications to a real S3 implementation: s3s-fs (the S3 protocol over
//! a directory, SigV4 authentication on) on a loopback port, reached
//! through `object_store`'s S3 client; the copy verifies at several sizes,
//! superseded objects are listed and deleted, and a server that went away
//! and came back is caught up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use regis_model::PerLog;
use regis_publish::{ObjectStoreTarget, Target};

use crate::common::{Fixture, quick, verify_copy};
use crate::publish::runtime;

const ACCESS_KEY: &str = "regis-test";
const SECRET_KEY: &str = "regis-test-secret";

/// An S3 server over `root` on `addr` (port 0: any), on a runtime of its
/// own; stops when dropped.
struct S3Server {
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl S3Server {
    fn start(root: &std::path::Path, addr: SocketAddr) -> S3Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let fs = s3s_fs::FileSystem::new(root).unwrap();
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        S3Server {
            addr,
            runtime: Some(runtime),
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn s3_options(addr: SocketAddr) -> [(String, String); 6] {
    [
        ("aws_endpoint", format!("http://{addr}")),
        ("aws_allow_http", "true".to_owned()),
        ("aws_access_key_id", ACCESS_KEY.to_owned()),
        ("aws_secret_access_key", SECRET_KEY.to_owned()),
        ("aws_region", "us-east-1".to_owned()),
        ("aws_virtual_hosted_style_request", "false".to_owned()),
    ]
    .map(|(key, value)| (key.to_owned(), value))
}

fn s3_target(addr: SocketAddr) -> Arc<dyn Target> {
    Arc::new(ObjectStoreTarget::new("s3://static/copy", &s3_options(addr)).unwrap())
}

/// The `Cache-Control` and `Content-Type` S3 keeps for `path` (read with
/// `object_store` directly).
async fn headers(addr: SocketAddr, path: &str) -> (String, String) {
    use object_store::{Attribute, ObjectStoreExt as _};
    let url = url::Url::parse("s3://static/copy").unwrap();
    let (store, prefix) = object_store::parse_url_opts(&url, s3_options(addr)).unwrap();
    let location = path.split('/').fold(prefix, |full, part| full.join(part));
    let result = store.get(&location).await.unwrap();
    let attribute = |name| {
        result
            .attributes
            .get(&name)
            .map(|v| v.to_string())
            .unwrap_or_default()
    };
    (
        attribute(Attribute::CacheControl),
        attribute(Attribute::ContentType),
    )
}

#[test]
fn a_copy_in_s3_verifies_at_several_sizes_and_survives_the_server_going_away() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("static")).unwrap();
    let server = S3Server::start(root.path(), SocketAddr::from(([127, 0, 0, 1], 0)));
    let addr = server.addr;
    let target = s3_target(addr);
    let mut fixture = Fixture::new();
    let mut settings = quick();
    settings.request_timeout = Duration::from_secs(3);
    let publication = fixture.publication(Arc::clone(&target), settings);
    let runtime = runtime();
    for grow in [1, 255, 1, 300] {
        fixture.append(grow);
        assert!(
            runtime
                .block_on(publication.catch_up(&fixture.pair()))
                .unwrap()
        );
        let sizes = runtime.block_on(verify_copy(&*target, &fixture.store, &fixture.keys));
        assert_eq!(sizes, PerLog::from_fn(|log| fixture.pair()[log].size));
    }
    // S3 keeps each object's headers, as the server sends them.
    assert_eq!(
        runtime.block_on(headers(addr, "registers/demo/log/tile/0/000")),
        (
            "public, max-age=604800, immutable".to_owned(),
            "application/octet-stream".to_owned()
        )
    );
    assert_eq!(
        runtime.block_on(headers(addr, "registers/demo/log/checkpoint")),
        (
            "no-cache".to_owned(),
            "text/plain; charset=utf-8".to_owned()
        )
    );
    // Superseded partials were deleted through S3's list and delete.
    let partials = runtime
        .block_on(target.list("registers/demo/log/tile/0/000.p/"))
        .unwrap();
    assert_eq!(partials, Vec::<String>::new());
    let listed = runtime
        .block_on(target.list("registers/demo/log/tile/0/"))
        .unwrap();
    assert!(
        listed.contains(&"registers/demo/log/tile/0/000".to_owned()),
        "{listed:?}"
    );
    // The server goes away: publications fail, writes go on.
    drop(server);
    fixture.append(10);
    let error = runtime
        .block_on(publication.catch_up(&fixture.pair()))
        .unwrap_err();
    assert!(!error.is_refusal(), "{error}");
    // Back on the same port, over the same directory: caught up.
    let _server = S3Server::start(root.path(), addr);
    assert!(
        runtime
            .block_on(publication.catch_up(&fixture.pair()))
            .unwrap()
    );
    let sizes = runtime.block_on(verify_copy(&*target, &fixture.store, &fixture.keys));
    assert_eq!(sizes.user, 567);
}
