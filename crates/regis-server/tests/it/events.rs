//! `B/events`: the current checkpoints on connecting, then each new one as
//! the sequencer publishes it; streams end when the server stops.

use crate::common::{TestServer, read_until, rsf_commands};
use regis_model::{Item, Value};
use regis_note::{SignedCheckpoint, Verifier, Verifiers};
use regis_store::Request;

#[test]
fn new_checkpoints_are_pushed_to_event_streams() {
    let server = TestServer::start(vec![(
        "country",
        rsf_commands("openregister-java/country-data.rsf"),
    )]);
    let b = "/registers/country";
    let metadata = server.get(&format!("{b}/register")).json();
    let (status, head, mut stream, mut seen) = server.stream(&format!("{b}/events"));
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("cache-control: no-store"), "{head}");
    read_until(&mut stream, &mut seen, "\"log\":\"system\"");
    let text = String::from_utf8_lossy(&seen).to_string();
    assert!(text.contains("retry: 2000\n"), "{text}");
    assert!(text.contains("event: checkpoint\nid: 208."), "{text}");
    assert!(text.contains("\"size\":208"), "{text}");

    // An append through the register's sequencer is pushed.
    let item = Item::from_fields(vec![
        ("country", Value::one("ZZ")),
        ("name", Value::one("Zedland")),
    ])
    .unwrap();
    let register = server.app().register("country").unwrap();
    register
        .sequencer()
        .unwrap()
        .run(Request::append(vec![("ZZ".to_owned(), item)]))
        .unwrap();
    // The server stops its sequencers once every handle is gone.
    drop(register);
    read_until(&mut stream, &mut seen, "\"size\":209");
    let text = String::from_utf8_lossy(&seen).to_string();
    let event = text
        .split("\n\n")
        .find(|e| e.contains("\"size\":209"))
        .unwrap();
    let data: serde_json::Value =
        serde_json::from_str(event.split("data: ").nth(1).unwrap()).unwrap();
    assert_eq!(data["log"], "user");
    let checkpoint =
        SignedCheckpoint::parse(data["checkpoint"].as_str().unwrap().as_bytes()).unwrap();
    let verifier = Verifier::parse(metadata["log-public-key"].as_str().unwrap()).unwrap();
    checkpoint
        .verify(
            metadata["log-origin"].as_str().unwrap(),
            &verifier,
            &Verifiers::new([]).unwrap(),
        )
        .unwrap();
    assert_eq!(checkpoint.checkpoint().size(), 209);
    assert_eq!(server.get(&format!("{b}/records/ZZ")).status, 200);

    // Stopping the server ends the stream (well within the drain time).
    let started = std::time::Instant::now();
    drop(server);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut rest);
}

#[test]
fn a_client_resuming_with_last_event_id_gets_only_what_grew() {
    let server = TestServer::start(vec![(
        "country",
        rsf_commands("openregister-java/country-data.rsf"),
    )]);
    let b = "/registers/country";
    let (_, _, mut stream, mut seen) = server.stream(&format!("{b}/events"));
    read_until(&mut stream, &mut seen, "\"log\":\"system\"");
    let text = String::from_utf8_lossy(&seen).to_string();
    let last_id = text
        .lines()
        .filter_map(|line| line.strip_prefix("id: "))
        .next_back()
        .unwrap()
        .to_owned();
    let (user, system) = last_id.split_once('.').unwrap();
    assert_eq!(user, "208");
    drop(stream);

    // Reconnecting with the last id: nothing is resent until the user log
    // grows, and then only the user log's checkpoint.
    let mut resumed = std::net::TcpStream::connect(server.addr).unwrap();
    resumed
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    std::io::Write::write_all(
        &mut resumed,
        format!("GET {b}/events HTTP/1.1\r\nHost: regis.test\r\nLast-Event-ID: {last_id}\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut seen = Vec::new();
    read_until(&mut resumed, &mut seen, "retry: 2000");
    let item = Item::from_fields(vec![
        ("country", Value::one("ZZ")),
        ("name", Value::one("Zedland")),
    ])
    .unwrap();
    let register = server.app().register("country").unwrap();
    register
        .sequencer()
        .unwrap()
        .run(Request::append(vec![("ZZ".to_owned(), item)]))
        .unwrap();
    drop(register);
    read_until(&mut resumed, &mut seen, "\"size\":209");
    let text = String::from_utf8_lossy(&seen).to_string();
    assert_eq!(text.matches("event: checkpoint").count(), 1, "{text}");
    assert!(text.contains(&format!("id: 209.{system}\n")), "{text}");
    assert!(!text.contains("\"log\":\"system\""), "{text}");

    // An id this stream never sent is refused.
    let response = server.get_with(&format!("{b}/events"), &[("Last-Event-ID", "soon")]);
    assert_eq!(response.error(400), "bad-last-event-id");
}
