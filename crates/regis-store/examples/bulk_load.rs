//! End-to-end measurements of `regis load` (`benches/RESULTS.md`,
//! "regis-store"). Subcommands:
//!
//! - `synthetic FILE N`: writes regis-model's synthetic register of `N`
//!   user entries (~200-byte items, in authoring order) as RSF.
//! - `fsync-reference RSF OUT BATCH`: the physical floor: copies the RSF's
//!   bytes to a plain file with one `fsync` per `BATCH` entries (and one at
//!   the end), and reports the rate.
//! - `first-proof DATA NAME BACKEND`: in this fresh process, opens the
//!   register (`Registry::open`: the check against its signed checkpoint),
//!   takes a snapshot and serves an inclusion proof of its middle entry
//!   through `Edge`/`LogHashes`, verified; reports each step and VmHWM.
//! - `load REGIS DATA NAME BACKEND RSF`: runs `REGIS load` under
//!   `/usr/bin/time -v` and reports entries/s, peak RSS and the register's
//!   size on disk against the RSF's.
//!
//! Build the binary first: `cargo build --release -p regis --features sled`.

// The generator is regis-model's own, shared with its RSF benchmark rather
// than copied; its `Discard` target is not needed here.
#[allow(dead_code)]
#[path = "../../regis-model/benches/synthetic/mod.rs"]
mod synthetic;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use regis_merkle::{Edge, inclusion_proof, leaf_hash, verify_inclusion};
use regis_model::RegisterName;
use regis_store::{DirBackend, Log, RedbBackend, Registry};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["synthetic", file, entries] => {
            let start = Instant::now();
            let root = synthetic::write_synthetic(std::fs::File::create(file)?, entries.parse()?)?;
            println!(
                "wrote {file}: {} bytes, root sha-256:{}, {:.1} s",
                std::fs::metadata(file)?.len(),
                hex(&root),
                start.elapsed().as_secs_f64()
            );
        }
        ["fsync-reference", rsf, out, batch] => fsync_reference(rsf, out, batch.parse()?)?,
        ["first-proof", data, name, "redb"] => first_proof::<RedbBackend>(data, name)?,
        #[cfg(feature = "sled")]
        ["first-proof", data, name, "sled"] => first_proof::<regis_store::SledBackend>(data, name)?,
        ["load", regis, data, name, backend, rsf] => load(regis, data, name, backend, rsf)?,
        _ => return Err(format!("usage: see the doc comment of {}", file!()).into()),
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The process's peak resident set, from `/proc/self/status`.
fn vm_hwm() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .map(|line| line.trim_start_matches("VmHWM:").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn fsync_reference(rsf: &str, out: &str, batch: u64) -> Result<(), Error> {
    let input = BufReader::with_capacity(1 << 16, std::fs::File::open(rsf)?);
    let mut file = std::fs::File::create(out)?;
    let mut pending = Vec::with_capacity(1 << 20);
    let (mut entries, mut syncs) = (0u64, 0u64);
    let start = Instant::now();
    for line in input.split(b'\n') {
        let line = line?;
        let entry = line.starts_with(b"append-entry\t");
        pending.extend_from_slice(&line);
        pending.push(b'\n');
        if entry {
            entries += 1;
            if entries.is_multiple_of(batch) {
                file.write_all(&pending)?;
                pending.clear();
                file.sync_data()?;
                syncs += 1;
            }
        }
    }
    file.write_all(&pending)?;
    file.sync_data()?;
    syncs += 1;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "fsync reference, batch {batch}: {entries} entries, {syncs} fsyncs, {seconds:.3} s, {:.0} entries/s",
        entries as f64 / seconds
    );
    std::fs::remove_file(out)?;
    Ok(())
}

fn first_proof<B: DirBackend>(data: &str, name: &str) -> Result<(), Error> {
    let start = Instant::now();
    let registry = Registry::new(Path::new(data), "localhost");
    let opened = registry.open::<B>(&RegisterName::new(name)?)?;
    let open = start.elapsed();
    let snapshot = opened.store.snapshot()?;
    let size = snapshot.size(Log::User);
    let index = size / 2;
    let hashes = snapshot.hashes(Log::User);
    let edge = Edge::from_reader(&hashes, size)?;
    let proof = inclusion_proof(&hashes, &edge, index)?;
    let total = start.elapsed();
    let leaf = snapshot
        .entry(Log::User, index + 1)?
        .ok_or("the entry is missing")?;
    verify_inclusion(&leaf_hash(&leaf), index, size, &proof, &edge.root())?;
    println!(
        "first proof: {size} entries, open {:.2} ms, open + snapshot + proof {:.2} ms ({} hashes), VmHWM {}",
        open.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
        proof.len(),
        vm_hwm()
    );
    Ok(())
}

fn load(regis: &str, data: &str, name: &str, backend: &str, rsf: &str) -> Result<(), Error> {
    let output = Command::new("/usr/bin/time")
        .args(["-v", regis, "load", "--data", data, "--register", name])
        .args(["--backend", backend, rsf])
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("regis load failed: {stderr}").into());
    }
    let field = |label: &str| {
        stderr
            .lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .map(|value| value.trim().to_owned())
            .unwrap_or_default()
    };
    let wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss):");
    let seconds = wall
        .rsplit(':')
        .zip([1.0, 60.0, 3600.0])
        .map(|(part, scale)| part.parse::<f64>().unwrap_or(0.0) * scale)
        .sum::<f64>();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let entries = stdout
        .split(", ")
        .find_map(|part| part.strip_suffix(" user entries"))
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(0.0);
    let dir = Path::new(data).join("registers").join(name);
    let on_disk = du(&dir)?;
    let rsf_size = std::fs::metadata(rsf)?.len();
    println!(
        "{backend}: {entries} entries in {seconds:.2} s: {:.0} entries/s; user {} s, system {} s; peak RSS {} kB; on disk {on_disk} bytes = {:.2} x the RSF ({rsf_size} bytes)",
        entries / seconds,
        field("User time (seconds):"),
        field("System time (seconds):"),
        field("Maximum resident set size (kbytes):"),
        on_disk as f64 / rsf_size as f64,
    );
    Ok(())
}

/// Bytes a directory's files take on disk (allocated blocks, as `du`).
fn du(dir: &Path) -> Result<u64, Error> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            du(&entry.path())?
        } else {
            std::os::unix::fs::MetadataExt::blocks(&meta) * 512
        };
    }
    Ok(total)
}
