//! Every proof endpoint against published and computed vectors
//! (`expected.json`), verified with regis-merkle; record proofs verified
//! offline as a department would, in JSON and as C2SP tlog-proof.

use crate::common::{TestServer, hashes, rsf_commands};
use regis_merkle::{leaf_hash, verify_consistency, verify_inclusion};
use regis_model::{format_hash, parse_hash};
use regis_note::{SignedCheckpoint, TlogProof, Verifier, Verifiers};
use serde_json::Value;

fn expected() -> Value {
    regis_fixtures::read_json("registers/expected.json")
}

fn published(what: &str) -> Value {
    expected()["published_vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["what"].as_str().unwrap().starts_with(what))
        .unwrap()["value"]
        .clone()
}

#[test]
fn published_country_proofs_and_roots() {
    let server = TestServer::start(vec![
        (
            "country",
            rsf_commands("openregister-java/country-data.rsf"),
        ),
        (
            "local-authority-eng",
            rsf_commands("registry-data/local-authority-eng.rsf"),
        ),
        ("allergen", rsf_commands("registry-data/allergen.rsf")),
        ("territory", rsf_commands("registry-data/territory.rsf")),
    ]);
    let register = server
        .get("/registers/country/proof/register/merkle:sha-256")
        .json();
    assert_eq!(register["proof-identifier"], "merkle:sha-256");
    assert_eq!(register["total-entries"], 208);
    assert_eq!(
        register["root-hash"],
        published("root hash of country register at 208")
    );
    let entry = server
        .get("/registers/country/proof/entries/10/200/merkle:sha-256")
        .json();
    assert_eq!(entry["entry-number"], "10");
    assert_eq!(entry["merkle-audit-path"], published("entry proof"));
    let consistency = server
        .get("/registers/country/proof/consistency/197/200/merkle:sha-256")
        .json();
    assert_eq!(
        consistency["merkle-consistency-nodes"],
        published("consistency proof 197 -> 200")
    );

    // Every loaded register's root is the one expected.json computed.
    for (name, file) in [
        ("country", "openregister-java/country-data.rsf"),
        (
            "local-authority-eng",
            "registry-data/local-authority-eng.rsf",
        ),
        ("allergen", "registry-data/allergen.rsf"),
        ("territory", "registry-data/territory.rsf"),
    ] {
        let root = expected()["rsf_roots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["file"] == file)
            .unwrap()
            .clone();
        let proof = server
            .get(&format!("/registers/{name}/proof/register/merkle:sha-256"))
            .json();
        assert_eq!(proof["root-hash"], root["v1_root_hash"], "{name}");
        assert_eq!(proof["total-entries"], root["user_entries"], "{name}");
        let metadata = server.get(&format!("/registers/{name}/register")).json();
        assert_eq!(
            metadata["total-system-entries"], root["system_entries"],
            "{name}"
        );
    }
}

#[test]
fn computed_vectors_of_the_first_seven_countries() {
    // The vectors are of the first seven entries of the published country
    // register (its first leaf is `example_leaf`).
    let server = TestServer::start(vec![(
        "country",
        rsf_commands("openregister-java/country-data.rsf"),
    )]);
    let vectors = &expected()["computed_proofs"]["country_first_7"];
    let b = "/registers/country";
    for (pair, path) in vectors["inclusion"].as_object().unwrap() {
        let (n, size) = pair.split_once('/').unwrap();
        let got = server
            .get(&format!("{b}/proof/entries/{n}/{size}/merkle:sha-256"))
            .json();
        assert_eq!(&got["merkle-audit-path"], path, "inclusion {pair}");
    }
    for (pair, path) in vectors["consistency"].as_object().unwrap() {
        let (m, n) = pair.split_once('/').unwrap();
        let got = server
            .get(&format!("{b}/proof/consistency/{m}/{n}/merkle:sha-256"))
            .json();
        assert_eq!(&got["merkle-consistency-nodes"], path, "consistency {pair}");
    }
    let leaves: Vec<[u8; 32]> = (1..=7)
        .map(|n| {
            let body = server.get(&format!("{b}/entries/{n}")).text();
            leaf_hash(&body.as_bytes()[1..body.len() - 1])
        })
        .collect();
    let example = &expected()["example_leaf"];
    let first = server.get(&format!("{b}/entries/1")).text();
    assert_eq!(
        first[1..first.len() - 1],
        *example["leaf_input_utf8"].as_str().unwrap()
    );
    for (size, root) in vectors["roots"].as_object().unwrap() {
        let size: usize = size.parse().unwrap();
        let computed = regis_merkle::root_of(&leaves[..size]);
        assert_eq!(
            format_hash(&computed),
            root.as_str().unwrap(),
            "root {size}"
        );
    }
}

#[test]
fn every_proof_verifies() {
    let server = TestServer::start(vec![(
        "country",
        rsf_commands("openregister-java/country-data.rsf"),
    )]);
    let b = "/registers/country";
    let root_208 = parse_hash(
        server
            .get(&format!("{b}/proof/register/merkle:sha-256"))
            .json()["root-hash"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    // An entry's JSON is exactly its leaf bytes: `[leaf]` for one entry.
    let raw_leaves: Vec<[u8; 32]> = (1..=208)
        .map(|n| {
            let body = server.get(&format!("{b}/entries/{n}")).text();
            leaf_hash(&body.as_bytes()[1..body.len() - 1])
        })
        .collect();
    assert_eq!(regis_merkle::root_of(&raw_leaves), root_208);
    for size in [1u64, 2, 3, 7, 8, 9, 100, 128, 200, 207, 208] {
        let root = regis_merkle::root_of(&raw_leaves[..size as usize]);
        for n in [1, size / 2 + 1, size] {
            let got = server
                .get(&format!("{b}/proof/entries/{n}/{size}/merkle:sha-256"))
                .json();
            let path = hashes(&got["merkle-audit-path"]);
            verify_inclusion(&raw_leaves[n as usize - 1], n - 1, size, &path, &root).unwrap();
            // A mutant fails.
            if let Some(first) = path.first() {
                let mut bad = path.clone();
                bad[0] = [first[0] ^ 1; 32];
                assert!(
                    verify_inclusion(&raw_leaves[n as usize - 1], n - 1, size, &bad, &root)
                        .is_err()
                );
            }
        }
        for old in [0, 1, size / 2, size] {
            let got = server
                .get(&format!(
                    "{b}/proof/consistency/{old}/{size}/merkle:sha-256"
                ))
                .json();
            let path = hashes(&got["merkle-consistency-nodes"]);
            let old_root = regis_merkle::root_of(&raw_leaves[..old as usize]);
            verify_consistency(old, size, &path, &old_root, &root).unwrap();
        }
    }
}

#[test]
fn record_proofs_verify_offline() {
    let server = TestServer::start(vec![(
        "country",
        rsf_commands("openregister-java/country-data.rsf"),
    )]);
    let b = "/registers/country";
    let metadata = server.get(&format!("{b}/register")).json();
    let origin = metadata["log-origin"].as_str().unwrap();
    let verifier = Verifier::parse(metadata["log-public-key"].as_str().unwrap()).unwrap();
    let no_witnesses = Verifiers::new([]).unwrap();

    for key in ["GB", "DE", "SU", "CZ"] {
        // JSON bundle.
        let proof = server.get(&format!("{b}/records/{key}/proof")).json();
        let checkpoint =
            SignedCheckpoint::parse(proof["checkpoint"].as_str().unwrap().as_bytes()).unwrap();
        checkpoint.verify(origin, &verifier, &no_witnesses).unwrap();
        let tree = checkpoint.checkpoint();
        assert_eq!(proof["tree-size"], tree.size());
        assert_eq!(proof["root-hash"], format_hash(tree.root_hash()));
        let leaf = proof["leaf"].as_str().unwrap();
        let leaf_json: Value = serde_json::from_str(leaf).unwrap();
        assert_eq!(leaf_json["key"], key);
        assert_eq!(
            proof["record"][key]["entry-number"],
            leaf_json["entry-number"]
        );
        // The items hash to the leaf's item hashes.
        for (item, hash) in proof["items"]
            .as_array()
            .unwrap()
            .iter()
            .zip(leaf_json["item-hash"].as_array().unwrap())
        {
            let item = regis_model::Item::from_canonical(item.as_str().unwrap()).unwrap();
            assert_eq!(item.hash().to_string(), hash.as_str().unwrap());
        }
        let index = proof["leaf-index"].as_u64().unwrap();
        let path = hashes(&proof["merkle-audit-path"]);
        verify_inclusion(
            &leaf_hash(leaf.as_bytes()),
            index,
            tree.size(),
            &path,
            tree.root_hash(),
        )
        .unwrap();
        assert_eq!(proof["leaf-hash"], format_hash(&leaf_hash(leaf.as_bytes())));

        // C2SP tlog-proof, by suffix and by Accept: the same bytes.
        let text = server.get(&format!("{b}/records/{key}/proof.tlog-proof"));
        assert_eq!(text.status, 200);
        assert_eq!(
            server
                .get_with(
                    &format!("{b}/records/{key}/proof"),
                    &[("Accept", "application/x-tlog-proof")]
                )
                .body,
            text.body
        );
        let tlog = TlogProof::parse(&text.body).unwrap();
        assert_eq!(tlog.to_string().as_bytes(), &text.body[..]);
        let extra = tlog.extra().unwrap();
        assert_eq!(extra, leaf.as_bytes());
        tlog.verify(&leaf_hash(extra), origin, &verifier, &no_witnesses)
            .unwrap();
        // Another leaf does not verify.
        assert!(
            tlog.verify(&leaf_hash(b"{}"), origin, &verifier, &no_witnesses)
                .is_err()
        );
    }
    assert_eq!(
        server.get(&format!("{b}/records/XX/proof")).error(404),
        "no-record"
    );
    assert_eq!(
        server.get(&format!("{b}/records/GB/proof.csv")).error(406),
        "not-acceptable"
    );
}
