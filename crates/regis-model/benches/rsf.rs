//! RSF throughput: reading (parse and canonical check) and loading (parse,
//! item and leaf hashing, the tree, every validity rule) a synthetic
//! 1,000,000-entry document of ~200-byte items, and the largest real dump;
//! with `sha256sum` and in-process SHA-256 of the same bytes for scale.
//!
//! `cargo bench -p regis-model --bench rsf` (set `RSF_BENCH_ENTRIES` for
//! another size). Peak memory while streaming: `cargo run --release -p
//! regis-model --example rsf_rss`.

mod synthetic;

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use regis_model::Register;
use regis_model::rsf::{Loader, Policy, RsfReader};
use sha2::{Digest, Sha256};
use synthetic::{Discard, write_synthetic};

fn entries() -> u64 {
    std::env::var("RSF_BENCH_ENTRIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000)
}

/// Reads every command of `bytes`, which must be valid RSF.
fn read_all(bytes: &[u8]) -> usize {
    let mut commands = 0;
    for command in RsfReader::new(bytes) {
        black_box(command.expect("valid"));
        commands += 1;
    }
    commands
}

fn megabytes_per_second(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / seconds / 1e6
}

/// `sha256sum` over the same bytes, once, for scale.
fn sha256sum_rate(bytes: &[u8]) {
    let path = std::env::temp_dir().join(format!("regis-rsf-bench-{}.rsf", std::process::id()));
    std::fs::write(&path, bytes).expect("write the synthetic file");
    let start = Instant::now();
    let status = std::process::Command::new("sha256sum")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .status();
    let elapsed = start.elapsed().as_secs_f64();
    match status {
        Ok(status) if status.success() => {
            println!(
                "sha256sum: {:.0} MB/s ({elapsed:.3} s, file in page cache)",
                megabytes_per_second(bytes.len(), elapsed)
            );
        }
        _ => println!("sha256sum: not available"),
    }
    let _ = std::fs::remove_file(&path);
    let start = Instant::now();
    black_box(Sha256::digest(bytes));
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "sha2 in process: {:.0} MB/s",
        megabytes_per_second(bytes.len(), elapsed)
    );
}

fn synthetic(c: &mut Criterion) {
    let entries = entries();
    let mut bytes = Vec::new();
    write_synthetic(&mut bytes, entries).expect("generate");
    let item_bytes: usize = bytes
        .split(|&b| b == b'\n')
        .filter_map(|line| line.strip_prefix(b"add-item\t"))
        .map(<[u8]>::len)
        .sum();
    println!(
        "synthetic RSF: {entries} entries, {} bytes, items of {} bytes on average",
        bytes.len(),
        item_bytes as u64 / entries.max(1)
    );
    sha256sum_rate(&bytes);

    let mut group = c.benchmark_group("rsf synthetic");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("read", |b| {
        b.iter(|| read_all(&bytes));
    });
    group.bench_function("load (parse+hash)", |b| {
        b.iter(|| {
            let mut target = Discard;
            let summary = Loader::new(&mut target, Policy::IMPORT)
                .load(RsfReader::new(&bytes[..]))
                .expect("valid");
            black_box(summary.logs.user.root())
        });
    });
    group.finish();
}

fn largest_real_dump(c: &mut Criterion) {
    let largest = regis_fixtures::files("registers", ".rsf")
        .into_iter()
        .max_by_key(|path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0))
        .expect("fixtures");
    let bytes = std::fs::read(&largest).expect("read");
    let name = largest
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let mut group = c.benchmark_group(format!("rsf {name}"));
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("read", |b| {
        b.iter(|| read_all(&bytes));
    });
    group.bench_function("load into a Register", |b| {
        b.iter(|| {
            let mut register = Register::new();
            register
                .load_rsf(&bytes[..], Policy::IMPORT)
                .expect("valid");
            black_box(register.item_count())
        });
    });
    group.finish();
}

criterion_group!(benches, synthetic, largest_real_dump);
criterion_main!(benches);
