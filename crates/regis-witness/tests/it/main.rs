//! The integration tests of regis-witness, one binary: real keys, a real
//! data directory, the witness served over real sockets.

mod common;

mod add_checkpoint;
mod any_log;
mod concurrency;
mod data_dir;
mod evidence;
mod state;
