//! Helpers shared by the vector tests: JSON field access and a tally that
//! makes every vector in a file be either checked or explicitly out of scope.

#![allow(dead_code)] // Each test crate uses a different subset.

use regis_note::{KeyName, Verifier, Verifiers};
use serde_json::Value;

pub fn field<'a>(vector: &'a Value, key: &str) -> &'a str {
    vector[key]
        .as_str()
        .unwrap_or_else(|| panic!("vector has no string {key:?}: {vector}"))
}

pub fn strings<'a>(vector: &'a Value, key: &str) -> Vec<&'a str> {
    vector[key]
        .as_array()
        .unwrap_or_else(|| panic!("vector has no array {key:?}: {vector}"))
        .iter()
        .map(|item| item.as_str().expect("array of strings"))
        .collect()
}

pub fn has(vector: &Value, key: &str) -> bool {
    vector.get(key).is_some()
}

pub fn name(name: &str) -> KeyName {
    KeyName::new(name).unwrap()
}

pub fn verifiers<'a>(vkeys: impl IntoIterator<Item = &'a str>) -> Verifiers {
    Verifiers::new(vkeys.into_iter().map(|vkey| Verifier::parse(vkey).unwrap())).unwrap()
}

pub fn hex32(hex: &str) -> [u8; 32] {
    hex::decode(hex).unwrap().try_into().unwrap()
}

/// The vectors of one JSON file.
pub fn vectors(file: &str) -> Vec<Value> {
    regis_fixtures::read_json(file)["vectors"]
        .as_array()
        .expect("a vectors array")
        .clone()
}

/// Counts what a vector file's test did, and prints it for the report.
#[derive(Default)]
pub struct Tally {
    pub vectors: usize,
    pub cases: usize,
    pub out_of_scope: Vec<String>,
}

impl Tally {
    /// One vector checked, made of `cases` individual assertions on inputs.
    pub fn checked(&mut self, cases: usize) {
        self.vectors += 1;
        self.cases += cases;
    }

    /// One vector that belongs to another crate or format, with why.
    pub fn out_of_scope(&mut self, vector: &Value, why: &str) {
        self.vectors += 1;
        self.out_of_scope.push(format!(
            "{} ({why})",
            vector["desc"].as_str().unwrap_or("?")
        ));
    }

    /// Asserts every vector was seen and prints the counts.
    pub fn finish(self, file: &str, total: usize) {
        assert_eq!(
            self.vectors, total,
            "{file}: every vector must be checked or declared out of scope"
        );
        println!(
            "{file}: {total} vectors, {} checked ({} cases), {} out of scope",
            total - self.out_of_scope.len(),
            self.cases,
            self.out_of_scope.len()
        );
        for why in &self.out_of_scope {
            println!("  out of scope: {why}");
        }
    }
}
