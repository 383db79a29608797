//! The Tessera 15-entry test log: every published checkpoint verifies with the
//! published verifier key, and re-signing its text with the published Go
//! private key gives the file byte for byte (Ed25519 is deterministic).

use regis_note::{NoteSigner, SignedCheckpoint, Verifier, Verifiers};

const LOG: &str = "tlog/tessera-testdata/testdata/log";
const ORIGIN: &str = "example.com/log/testdata";

/// The backquoted token in the fixtures README that starts with `prefix`.
fn readme_token(prefix: &str) -> String {
    let readme = regis_fixtures::read_string("tlog/README.md");
    let start = readme
        .find(&format!("`{prefix}"))
        .unwrap_or_else(|| panic!("{prefix} in README"))
        + 1;
    let length = readme[start..].find('`').unwrap();
    readme[start..start + length].to_owned()
}

#[test]
fn every_checkpoint_is_reproduced_and_verifies() {
    let signer =
        NoteSigner::from_go_private_key(&readme_token(&format!("PRIVATE+KEY+{ORIGIN}+"))).unwrap();
    let verifier = Verifier::parse(&readme_token(&format!("{ORIGIN}+"))).unwrap();
    assert_eq!(signer.verifier(), verifier);
    let none = Verifiers::default();

    let files: Vec<_> = regis_fixtures::files(LOG, "")
        .into_iter()
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("checkpoint")
        })
        .collect();
    let mut largest = 0;
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let published = SignedCheckpoint::parse(&bytes).unwrap();
        assert_eq!(
            published.verify(ORIGIN, &verifier, &none).unwrap(),
            [],
            "{}",
            path.display()
        );
        let resigned = SignedCheckpoint::sign(published.checkpoint().clone(), &signer);
        assert_eq!(resigned.to_string().as_bytes(), bytes, "{}", path.display());

        let size = published.checkpoint().size();
        match path.extension() {
            Some(number) => assert_eq!(
                number.to_string_lossy(),
                size.to_string(),
                "{}",
                path.display()
            ),
            None => largest = size, // `checkpoint`: the latest
        }
    }
    assert_eq!(
        files.len(),
        17,
        "checkpoint, checkpoint.0 ..= checkpoint.15"
    );
    assert_eq!(largest, 15);
    println!(
        "{LOG}: {} checkpoints re-signed byte for byte and verified",
        files.len()
    );
}
