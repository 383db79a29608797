//! Peak memory while streaming a large RSF document: writes the synthetic
//! 1,000,000-entry register to a temporary file (streaming), then loads it
//! from the file through the streaming reader and loader, and reports the
//! throughput and the process's peak resident set (VmHWM, Linux).
//!
//! `cargo run --release -p regis-model --example rsf_rss [ENTRIES]`

#[path = "../benches/synthetic/mod.rs"]
mod synthetic;

use std::fs::File;
use std::io::BufReader;
use std::time::Instant;

use regis_model::format_hash;
use regis_model::rsf::{Loader, Policy, RsfReader};
use synthetic::{Discard, write_synthetic};

/// The `VmHWM` line of /proc/self/status (peak resident set).
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .map(|line| {
                    line.split_whitespace()
                        .skip(1)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
        })
        .unwrap_or_else(|| "unknown (no /proc/self/status)".into())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let entries: u64 = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let path = std::env::temp_dir().join(format!("regis-rsf-rss-{}.rsf", std::process::id()));
    println!("peak RSS at start: {}", peak_rss());

    let start = Instant::now();
    let written_root = write_synthetic(File::create(&path)?, entries)?;
    let size = std::fs::metadata(&path)?.len();
    println!(
        "wrote {entries} entries, {size} bytes, in {:.2} s; peak RSS: {}",
        start.elapsed().as_secs_f64(),
        peak_rss()
    );

    let start = Instant::now();
    let mut target = Discard;
    let reader = RsfReader::new(BufReader::with_capacity(1 << 16, File::open(&path)?));
    let summary = Loader::new(&mut target, Policy::IMPORT).load(reader)?;
    let elapsed = start.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    assert_eq!(summary.logs.user.root(), written_root);
    println!(
        "loaded {} entries ({} assertions checked, root {}) in {elapsed:.2} s: {:.0} MB/s",
        summary.appended.user,
        summary.assertions,
        format_hash(&summary.logs.user.root()),
        size as f64 / elapsed / 1e6
    );
    println!("peak RSS after streaming: {}", peak_rss());
    Ok(())
}
