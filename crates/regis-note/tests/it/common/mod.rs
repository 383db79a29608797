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

/// A witness's cosigner, named `witness.example/<policy name>`, from a seed.
pub fn cosigner(policy_name: &str, seed: u8) -> regis_note::Cosigner {
    regis_note::Cosigner::from_seed(name(&format!("witness.example/{policy_name}")), &[seed; 32])
}

/// The origin the example policies' log signs.
pub const EXAMPLE_ORIGIN: &str = "example.com/registers/country";

/// The log key of the example policies.
pub fn example_log() -> regis_note::NoteSigner {
    regis_note::NoteSigner::from_seed(name(EXAMPLE_ORIGIN), &[1; 32])
}

/// The witnesses of the tlog-policy spec's example, in file order.
pub const EXAMPLE_WITNESSES: [&str; 6] = ["X1", "X2", "X3", "Y1", "Y2", "Y3"];

/// The tlog-policy spec's example policy with real keys: the log's, and
/// witness `EXAMPLE_WITNESSES[i]`'s from seed `10 + i`.
pub fn example_policy() -> (String, Vec<regis_note::Cosigner>) {
    let cosigners: Vec<_> = EXAMPLE_WITNESSES
        .iter()
        .zip(10..)
        .map(|(name, seed)| cosigner(name, seed))
        .collect();
    let vkey = |index: usize| cosigners[index].verifier().to_string();
    let text = format!(
        "log {log}

witness X1 {x1}
witness X2 {x2}
witness X3 {x3}
group X-witnesses 2 X1 X2 X3

witness Y1 {y1}
witness Y2 {y2}
witness Y3 {y3}
group Y-witnesses any Y1 Y2 Y3

group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
",
        log = example_log().verifier(),
        x1 = vkey(0),
        x2 = vkey(1),
        x3 = vkey(2),
        y1 = vkey(3),
        y2 = vkey(4),
        y3 = vkey(5),
    );
    (text, cosigners)
}
