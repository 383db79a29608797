//! A rotten item is never served: a byte changed inside a record's item
//! on disk makes the record's read a 500 `corrupt` that names the item
//! (and no path), and marks the register unhealthy.

use crate::common::{TestServer, load, rsf_commands};
use regis_server::Limits;
use regis_store::{Log, RedbBackend};

#[test]
fn a_flipped_byte_in_an_item_is_a_500_naming_it() {
    let server = TestServer::start_prepared(
        |registry| {
            load(
                registry,
                "country",
                rsf_commands("registry-data/country.rsf"),
            );
            let name = regis_model::RegisterName::new("country").unwrap();
            // Small commits log their appends in the database, and opening
            // writes them back over the files: a commit that syncs the
            // files first, so that the change below is what is read.
            let mut register = registry.open::<RedbBackend>(&name).unwrap();
            register.writer.log_appends_up_to(0);
            register
                .writer
                .transact(|_| Ok::<_, regis_store::StoreError>(()))
                .unwrap();
            drop(register);
            let dir = registry.dir(&name);
            let path = dir.join(regis_store::DATA_FILE);
            let mut bytes = std::fs::read(&path).unwrap();
            let at = bytes
                .windows(14)
                .position(|window| window == b"United Kingdom")
                .unwrap();
            bytes[at + 13] ^= 0x02; // "United Kingdom" -> "United Kingdoo"
            std::fs::write(&path, &bytes).unwrap();
        },
        Limits::default(),
    );
    assert_eq!(server.get("/registers/country/records/FR.json").status, 200);
    let response = server.get("/registers/country/records/GB.json");
    let body = String::from_utf8(response.body).unwrap();
    assert_eq!(response.status, 500, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["code"], "corrupt", "{body}");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("item sha-256:6b18693874513ba13da54d61aafa7cad0c8f5573f3431d6f1c04b07ddb27d6bb: its bytes hash to sha-256:"),
        "{message}"
    );
    let dir = server.dir.path().to_str().unwrap();
    assert!(
        !message.contains(dir) && !message.contains('/'),
        "{message}"
    );
    assert!(!body.contains("Kingdoo"), "{body}");
    let register = server.app().register("country").unwrap();
    let health = register.store.health().corrupt();
    assert_eq!(
        health.as_deref(),
        Some(message),
        "the register is marked unhealthy"
    );
    assert_eq!(
        register.store.snapshot().unwrap().size(Log::User),
        210,
        "other reads go on"
    );
}
