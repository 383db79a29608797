//! The integration tests of this crate, one binary: each module was a test
//! file of its own (they share `common`, built once, linked once).

mod c2sp_vectors;
mod common;
mod formats_vectors;
mod fuzz;
mod go_x_mod_vectors;
mod policy;
mod properties;
mod sigsum_vectors;
mod tessera_log;
mod witness;
