//! Opening a register and serving its first proof: `Registry::open` (which
//! checks the stored tree against the last signed checkpoint), a snapshot,
//! and an inclusion proof through `Edge`/`LogHashes`, at 10,000 and
//! 1,000,000 entries (redb). Each register is built first by a streamed
//! load of regis-model's synthetic RSF, the path `regis load` takes.
//!
//! `cargo bench -p regis-store --bench store` (set `STORE_BENCH_SIZES`, a
//! comma-separated list, for other sizes). End-to-end loads, peak memory
//! and sizes on disk: `examples/bulk_load.rs`.

#[allow(dead_code)]
#[path = "../../regis-model/benches/synthetic/mod.rs"]
mod synthetic;

use std::hint::black_box;
use std::io::BufReader;
use std::path::Path;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use regis_merkle::{Edge, inclusion_proof};
use regis_model::RegisterName;
use regis_model::rsf::{Policy, RsfReader};
use regis_store::{
    Commands, Log, RedbBackend, Registry, Request, Sequencer, SequencerConfig, system_clock,
};

fn sizes() -> Vec<u64> {
    std::env::var("STORE_BENCH_SIZES")
        .ok()
        .map(|list| list.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 1_000_000])
}

/// A register of `entries` synthetic entries in `data`, loaded as `regis
/// load` does.
fn build(data: &Path, entries: u64) {
    let rsf = data.join("synthetic.rsf");
    synthetic::write_synthetic(std::fs::File::create(&rsf).expect("create"), entries)
        .expect("write the synthetic RSF");
    let registry = Registry::new(data, "localhost");
    let name = RegisterName::new("synthetic").expect("name");
    let register = registry.create::<RedbBackend>(&name).expect("create");
    let sequencer = Sequencer::spawn(
        "synthetic",
        register.store,
        register.writer,
        register.signers,
        SequencerConfig::default(),
        system_clock(),
    )
    .expect("spawn");
    let input = BufReader::new(std::fs::File::open(&rsf).expect("open"));
    let start = Instant::now();
    sequencer
        .handle()
        .run(Request::Stream {
            commands: Commands::new(RsfReader::new(input)),
            policy: Policy::IMPORT,
        })
        .expect("load");
    println!(
        "built {entries} entries in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    sequencer.join();
    std::fs::remove_file(rsf).expect("remove the RSF");
}

fn open_and_prove(c: &mut Criterion) {
    let mut group = c.benchmark_group("open");
    group.sample_size(20);
    let name = RegisterName::new("synthetic").expect("name");
    for entries in sizes() {
        let data = tempfile::tempdir().expect("tempdir");
        build(data.path(), entries);
        let registry = Registry::new(data.path(), "localhost");
        let mut index = 0x2545_f491_4f6c_dd1d_u64;
        group.bench_function(BenchmarkId::new("open + snapshot + proof", entries), |b| {
            b.iter(|| {
                let opened = registry.open::<RedbBackend>(&name).expect("open");
                let snapshot = opened.store.snapshot().expect("snapshot");
                let size = snapshot.size(Log::User);
                let hashes = snapshot.hashes(Log::User);
                let edge = Edge::from_reader(&hashes, size).expect("edge");
                index ^= index << 13;
                index ^= index >> 7;
                index ^= index << 17;
                black_box(inclusion_proof(&hashes, &edge, index % size).expect("proof"))
            })
        });
        group.bench_function(BenchmarkId::new("open", entries), |b| {
            b.iter(|| black_box(registry.open::<RedbBackend>(&name).expect("open")))
        });
    }
    group.finish();
}

criterion_group!(benches, open_and_prove);
criterion_main!(benches);
