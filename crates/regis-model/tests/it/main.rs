//! The integration tests of this crate, one binary: each module was a test
//! file of its own (they share `common`, built once, linked once).

mod fixtures;
mod formats;
mod fuzz;
mod properties;
mod rules;
