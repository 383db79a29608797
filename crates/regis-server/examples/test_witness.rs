//! The tests' witness (`tests/it/common/witness.rs`) as a program, for
//! `benches/witness-load.sh`: C2SP tlog-witness's `add-checkpoint` on a
//! loopback port, its state in memory.
//!
//!     test_witness NAME SEED ORIGIN=VKEY...
//!
//! cosigns as `witness-SEED.test` (a key from the seed byte SEED, as the
//! tests' witness SEED) the logs given, prints its policy line (`witness
//! NAME VKEY http://ADDR`), and serves until killed.

#[allow(dead_code)]
#[path = "../tests/it/common/witness.rs"]
mod witness;

use regis_note::{Cosigner, KeyName, Verifier};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: test_witness NAME SEED ORIGIN=VKEY...";
    let (Some(name), Some(seed)) = (args.first(), args.get(1)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let seed: u8 = seed.parse().unwrap_or_else(|_| {
        eprintln!("{usage}: SEED is 0 to 255");
        std::process::exit(2);
    });
    let key_name = KeyName::new(format!("witness-{seed}.test")).unwrap_or_else(|error| {
        eprintln!("{error}");
        std::process::exit(2);
    });
    let witness = witness::TestWitness::start(name, Cosigner::from_seed(key_name, &[seed; 32]));
    for log in &args[2..] {
        let trusted = log
            .split_once('=')
            .and_then(|(origin, vkey)| Some((origin, Verifier::parse(vkey).ok()?)));
        let Some((origin, key)) = trusted else {
            eprintln!("{usage}: not ORIGIN=VKEY: {log}");
            std::process::exit(2);
        };
        witness.trust(origin, key);
    }
    print!("{}", witness.policy_line());
    loop {
        std::thread::park();
    }
}
