//! The state file: its bytes, strict parsing, and its name per target.

use regis_model::PerLog;
use regis_publish::state;

#[test]
fn the_state_file_round_trips_and_is_parsed_strictly() {
    let url = "s3://bucket/prefix";
    let sizes = PerLog {
        user: 1234,
        system: 9,
    };
    let bytes = state::encode(url, sizes);
    assert_eq!(
        bytes,
        b"regis-published/1\nurl s3://bucket/prefix\nlog 1234\nsystem-log 9\n"
    );
    assert_eq!(state::decode(&bytes, url), Ok(sizes));
    let text = String::from_utf8(bytes).unwrap();
    for (bad, why) in [
        (text.replace("/1\n", "/2\n"), "line 1"),
        (text.replace("prefix", "other"), "another target"),
        (text.replace("1234", "01234"), "line 3"),
        (
            text.replace("log 1234\nsystem-log 9", "system-log 9\nlog 1234"),
            "line 3",
        ),
        (text.trim_end().to_owned(), "newline"),
        (format!("{text}extra\n"), "5 lines"),
    ] {
        let error = state::decode(bad.as_bytes(), url).unwrap_err();
        assert!(error.contains(why), "{bad:?}: {error}");
    }
}

#[test]
fn each_target_has_its_own_durable_state() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = ("file:///srv/a", "s3://bucket/b");
    assert_ne!(state::file_name(a), state::file_name(b));
    assert_eq!(state::file_name(a).len(), 16);
    assert_eq!(state::read(dir.path(), a).unwrap(), None);
    state::write(dir.path(), a, PerLog { user: 3, system: 2 }).unwrap();
    state::write(dir.path(), a, PerLog { user: 7, system: 2 }).unwrap();
    assert_eq!(
        state::read(dir.path(), a).unwrap(),
        Some(PerLog { user: 7, system: 2 })
    );
    assert_eq!(state::read(dir.path(), b).unwrap(), None);
    // A file for another target under this one's name is refused.
    std::fs::write(
        state::path(dir.path(), b),
        state::encode(a, PerLog::default()),
    )
    .unwrap();
    let error = state::read(dir.path(), b).unwrap_err().to_string();
    assert!(error.contains("another target"), "{error}");
}
