//! The integration tests of this crate, one binary: each module was a test
//! file of its own (they share `common`, built once, linked once).

mod fuzz;
mod proofs;
mod tessera;
mod tile_reader;
mod vectors;
