//! regis-publish's tests: the plan, the state file, publications to a
//! local directory and to a real S3 server (s3s-fs), and faults injected
//! through the `Target` trait.

mod common;
mod faults;
mod plan;
mod publish;
mod s3;
mod state;
