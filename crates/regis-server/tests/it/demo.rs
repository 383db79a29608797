//! `regis serve --demo`'s register: the 118 elements, defined with typed
//! fields and a custodian, loaded once, served with verifying proofs.

use crate::common::TestServer;
use regis_merkle::leaf_hash;
use regis_note::{TlogProof, Verifier, Verifiers};
use regis_server::{Limits, demo};
use regis_store::RedbBackend;

#[test]
fn the_demo_register_serves_the_elements_with_proofs() {
    let server = TestServer::start_prepared(
        |registry| {
            assert!(demo::prepare::<RedbBackend>(registry).unwrap());
            // Idempotent: a second start keeps the register as it is.
            assert!(!demo::prepare::<RedbBackend>(registry).unwrap());
        },
        Limits::default(),
    );
    let b = "/registers/element";
    let metadata = server.get(&format!("{b}/register")).json();
    assert_eq!(metadata["total-records"], 118);
    assert_eq!(metadata["total-entries"], 118);
    assert_eq!(metadata["custodian"], demo::CUSTODIAN);
    let fields = metadata["fields"].as_array().unwrap();
    let names: Vec<&str> = fields
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["element", "name", "atomic-number"]);
    assert_eq!(fields[2]["datatype"], "integer");

    let iron = server
        .get(&format!("{b}/records/{}", demo::EXAMPLE_KEY))
        .json();
    assert_eq!(iron["Fe"]["item"][0]["name"], "Iron");
    assert_eq!(iron["Fe"]["item"][0]["atomic-number"], "26");
    let by_number = server.get(&format!("{b}/records/atomic-number/118")).json();
    assert_eq!(by_number["Og"]["item"][0]["name"], "Oganesson");

    let proof = server.get(&format!(
        "{b}/records/{}/proof.tlog-proof",
        demo::EXAMPLE_KEY
    ));
    let proof = TlogProof::parse(&proof.body).unwrap();
    let verifier = Verifier::parse(metadata["log-public-key"].as_str().unwrap()).unwrap();
    proof
        .verify(
            &leaf_hash(proof.extra().unwrap()),
            metadata["log-origin"].as_str().unwrap(),
            &verifier,
            &Verifiers::new([]).unwrap(),
        )
        .unwrap();
}
