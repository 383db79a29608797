//! `regis audit` as a user runs it, against `regis serve`: trust on first
//! use, then consistent runs; then the same URL served by a fork (a copy
//! of the register, same key and origin, grown differently): the audit
//! fails with one line, keeps its state, and writes evidence that
//! re-verifies with nothing but the key.

use crate::common::{
    copy_dir, countries_rsf, country_key, free_port, load_country, ok, regis, serve, text,
};

use regis_client::audit::{Evidence, ForkKind};
use regis_note::Verifier;
use regis_store::Log;

const BASE: &str = "registers/api-client/country_register.rsf";
const UPDATE: &str = "registers/api-client/country_register_update.rsf";

#[test]
fn audit_trusts_on_first_use_then_catches_a_fork_with_evidence() {
    let work = tempfile::tempdir().unwrap();
    let real = work.path().join("real");
    let fork = work.path().join("fork");
    let base = regis_fixtures::path(BASE);
    let update = regis_fixtures::path(UPDATE);
    load_country(&real, &base);
    // The fork: a copy of the register, key and all, taken now.
    copy_dir(&real, &fork);
    load_country(&real, &update);
    // Twelve new countries: the fork grows further than the real update.
    load_country(&fork, &countries_rsf(work.path(), "Forked", 12));
    let key = country_key(&real);

    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/registers/country");
    let state = work.path().join("audit.json");
    let state_s = state.to_str().unwrap();
    let audit = || regis(&["audit", &url, "--key", &key, "--state", state_s]);

    let server = serve(&real, &format!("127.0.0.1:{port}"));
    let first = ok(audit());
    assert!(
        first.starts_with("no saved state: trusting these checkpoints on first use"),
        "{first}"
    );
    let saved = std::fs::read(&state).unwrap();
    let second = ok(audit());
    assert!(
        second.contains("user log: checkpoint ")
            && second.contains("is consistent with the saved checkpoint"),
        "{second}"
    );
    assert_eq!(std::fs::read(&state).unwrap(), saved);
    drop(server);

    // The same URL now serves the fork.
    let server = serve(&fork, &format!("127.0.0.1:{port}"));
    let output = audit();
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("regis: the user log's checkpoint"),
        "{stderr}"
    );
    assert!(
        stderr.contains("(inconsistent): evidence written to"),
        "{stderr}"
    );
    let path = text(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("evidence: "))
        .unwrap()
        .to_owned();
    assert!(path.starts_with(&format!("{state_s}.evidence-")), "{path}");
    // The state is kept: the fork is not trusted.
    assert_eq!(std::fs::read(&state).unwrap(), saved);
    drop(server);

    // The evidence re-verifies from the file and the key alone.
    let pinned = Verifier::parse(&key).unwrap();
    let evidence = Evidence::verify(&std::fs::read(&path).unwrap(), &pinned).unwrap();
    assert_eq!(evidence.kind, ForkKind::Inconsistent);
    assert_eq!(evidence.log, Log::User);
    assert!(evidence.old.size() < evidence.new.size());
    assert!(!evidence.tiles.is_empty());
    // So does the command line, for anyone holding the file and the key;
    // a file changed in one byte of a tile does not hold.
    let held = ok(regis(&["audit", "--key", &key, "--evidence", &path]));
    assert!(
        held.contains("the evidence holds: the user log's checkpoints"),
        "{held}"
    );
    assert!(held.contains("inconsistent"), "{held}");
    let mut text = std::fs::read_to_string(&path).unwrap();
    // The first hex digit of the first tile's bytes (after `"tiles":{"<path>":"`).
    let tiles = text.find("\"tiles\":{\"").unwrap();
    let digit = text[tiles + 10..].find("\":\"").unwrap() + tiles + 10 + 3;
    let flipped = if &text[digit..=digit] == "0" {
        "1"
    } else {
        "0"
    };
    text.replace_range(digit..=digit, flipped);
    let tampered = format!("{path}.tampered");
    std::fs::write(&tampered, text).unwrap();
    let refused = regis(&["audit", "--key", &key, "--evidence", &tampered]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("the evidence does not hold"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
