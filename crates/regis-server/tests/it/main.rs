//! The integration tests of this crate, one binary: each module was a test
//! file of its own (they share `common`, built once, linked once).

mod api;
mod bad_input;
mod browser;
mod common;
mod demo;
mod events;
mod fuzz;
mod govuk;
mod html;
mod links;
mod openapi;
mod proofs;
mod rot;
mod rsf_and_ops;
mod slow_clients;
mod tiles;
mod witnessing;
mod writes;
