//! The integration tests of this crate, one binary: each module was a test
//! file of its own (they share `common`, built once, linked once).

mod common;
// The synthetic register of regis-model's benchmarks, shared rather than
// copied; its `Discard` target is not needed here.
#[allow(dead_code)]
#[path = "../../../regis-model/benches/synthetic/mod.rs"]
mod synthetic;
// The witness of regis-server's tests (C2SP tlog-witness on loopback, with
// faults), shared rather than copied.
#[allow(dead_code)]
#[path = "../../../regis-server/tests/it/common/witness.rs"]
mod witness;

mod audit;
mod cli;
mod crash_process;
mod disk_full;
mod interop;
mod links;
mod litewitness;
mod mirror;
mod publish;
mod remote;
mod serve;
mod static_copy;
mod witness_cli;
mod witness_policy;
mod witnessing_crash;
mod write_crash;
