//! The integration tests of this crate, one binary: each module was a test
//! file of its own (they share `common`, built once, linked once).

mod common;
mod conformance;
mod crash;
mod mirror;
mod registry;
mod rot;
mod sequencer;
