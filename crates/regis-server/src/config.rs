//! The server's configuration: a TOML file (`regis serve --config FILE`),
//! every field optional.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! data = "./regis-data"
//! host = "registers.example.gov.uk"   # origins of new registers' logs
//! witness-policy = "./witnesses.policy"  # none by default
//! witness-interval-ms = 1000
//! witness-timeout-seconds = 10
//!
//! [limits]
//! default-page-size = 100
//! max-page-size = 5000
//! request-timeout-seconds = 30
//! concurrency = 256
//! max-body-bytes = 1048576
//! header-read-timeout-seconds = 10
//! max-connections = 1024
//! max-connections-per-address = 128
//! write-timeout-seconds = 30
//! max-rsf-streams = 64
//! drain-seconds = 30
//! max-event-streams = 256
//! max-rsf-bytes = 268435456
//! reserve-free-percent = 2
//! max-register-percent = 50
//! body-timeout-seconds = 60
//! max-writes-in-flight = 1024
//! max-batch-entries = 16384
//! max-batch-delay-ms = 0
//! ```
//!
//! Memory per connection is bounded, so clients that read slowly or not at
//! all, or trickle their headers, cannot grow the server. Hyper buffers at
//! most 64 KiB of a request head and 64 KiB plus one body chunk of a
//! response per connection (`server::CONNECTION_BUFFER`); a streamed RSF
//! download, produced only as fast as its socket drains, adds at most five
//! chunks (`rsf::BUFFERED`, 320 KiB), a chunk being 64 KiB plus at most one
//! RSF line. So, beside the responses built whole (a page, a tile, a proof,
//! each held until written), the buffers take at most `max-connections` ×
//! 128 KiB + `max-rsf-streams` × 384 KiB: with the defaults, 128 MiB +
//! 24 MiB. A connection whose writes make no progress for
//! `write-timeout-seconds` is closed and its buffers freed, and one client
//! address holds at most `max-connections-per-address` of the connections.
//!
//! `[publish]` (none by default) keeps a static copy of every register in
//! object storage: `url = "s3://bucket/prefix"` or `"file:///srv/…"`,
//! `interval-ms`, `request-timeout-seconds`, and any other key passed to
//! `object_store` ([`crate::publishing`], `spec/static.md`).
//!
//! `witness-policy` is a C2SP tlog-policy file (`witness NAME VKEY URL`,
//! `group NAME all|any|K MEMBER…`, `quorum NAME`; no `log` line is needed,
//! the log being the register's own) for every register without a policy of
//! its own, `DATA/registers/NAME/witness-policy`. A file that does not parse
//! stops the server at start, naming the file and line. A register with a
//! policy sends each new checkpoint of its logs to the policy's witnesses
//! (those with a URL) in rounds at least `witness-interval-ms` apart, each
//! request bounded by `witness-timeout-seconds`, and serves only checkpoints
//! whose cosignatures meet the quorum ([`crate::witnessing`],
//! `spec/witness.md`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::error::ServerError;
use crate::publishing::PublishConfig;
use crate::witnessing::{PolicyFile, WitnessSettings};

/// Where to listen, what to serve, and the bounds on every request.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The data directory (registers in `DATA/registers/<name>/`).
    pub data: PathBuf,
    /// The host in the origins of registers created by this server.
    pub host: String,
    /// The witness policy of every register without its own; none: such
    /// registers are not witnessed.
    pub witness_policy: Option<PathBuf>,
    /// The least time between the starts of two witnessing rounds of one
    /// register: the commits of that time are sent to witnesses as one
    /// checkpoint.
    pub witness_interval_ms: u64,
    /// The longest one request to a witness may take, whole; a write with
    /// `?wait=witnessed` waits three times this at most.
    pub witness_timeout_seconds: u64,
    /// Bounds on requests.
    pub limits: Limits,
    /// Where to publish a static copy of every register, if anywhere
    /// (`[publish]`, [`crate::publishing`]).
    pub publish: Option<PublishConfig>,
}

/// Bounds on every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// Page size when a list request gives none.
    pub default_page_size: u64,
    /// The largest page a list request may ask for; larger is a 400.
    pub max_page_size: u64,
    /// A request not answered (headers sent) within this is a 503.
    pub request_timeout_seconds: u64,
    /// Requests handled at once; beyond, 503 with `Retry-After`.
    pub concurrency: usize,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// A connection must send a request's headers within this, or it is
    /// closed (no slow-loris).
    pub header_read_timeout_seconds: u64,
    /// Connections open at once; beyond, a new one is answered 503 and
    /// closed at once (it is not left waiting to be accepted).
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv6 client's
    /// /64); beyond, a new one is answered 503 and closed at once, so no
    /// one client can take every connection.
    pub max_connections_per_address: usize,
    /// A connection whose writes make no progress for this long (its
    /// client reads nothing) is closed and its response dropped.
    pub write_timeout_seconds: u64,
    /// Streamed RSF downloads at once; beyond, 503 with `Retry-After`. A
    /// download holds its slot (a blocking thread, a store snapshot and
    /// `rsf::BUFFERED` bytes) while it streams, not one of `concurrency`.
    pub max_rsf_streams: usize,
    /// On shutdown, connections still open after this are dropped.
    pub drain_seconds: u64,
    /// `B/events` streams open at once; beyond, 503.
    pub max_event_streams: usize,
    /// The largest RSF document `POST B/load-rsf` accepts (it is spooled
    /// to disk, not held in memory); larger is a 413.
    pub max_rsf_bytes: u64,
    /// Free space, in percent of the data directory's file system (plus
    /// 48 MiB for the store's merges), that writes never take: a write
    /// that would leave less (its body counted three times: spool, files,
    /// indexes) is refused with 507 before anything of it is written, so
    /// that a full disk does not fail a write half-way. 0 turns the check
    /// off.
    pub reserve_free_percent: u8,
    /// The share of the data directory's file system, in percent, that one
    /// register may take; a write to a register past it is refused with
    /// 507, so that one register's token cannot fill the disk for all.
    pub max_register_percent: u8,
    /// A request body must arrive within this, or the request is a 408
    /// (no slow bodies holding a write slot).
    pub body_timeout_seconds: u64,
    /// Writes to one register waiting for their commit at once; beyond,
    /// 503 with `Retry-After` (back-pressure, never an unbounded queue).
    pub max_writes_in_flight: usize,
    /// The most entries the sequencer commits in one batch. Larger batches
    /// write bulk requests faster (each commit rewrites the index pages it
    /// touches) at the cost of staging them in memory (about 1 KB an entry);
    /// up to 16,384 a batch's field-index rows of a register of three
    /// fields stay in the table rather than making a run (`spec/store.md`).
    pub max_batch_entries: usize,
    /// How long the sequencer keeps gathering a batch after its first
    /// request; 0 is group commit (what queued while the last batch
    /// committed).
    pub max_batch_delay_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data: PathBuf::from("./regis-data"),
            host: "localhost".to_owned(),
            witness_policy: None,
            witness_interval_ms: 1000,
            witness_timeout_seconds: 10,
            limits: Limits::default(),
            publish: None,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            default_page_size: 100,
            max_page_size: 5000,
            request_timeout_seconds: 30,
            concurrency: 256,
            max_body_bytes: 1 << 20,
            header_read_timeout_seconds: 10,
            max_connections: 1024,
            max_connections_per_address: 128,
            write_timeout_seconds: 30,
            max_rsf_streams: 64,
            drain_seconds: 30,
            max_event_streams: 256,
            max_rsf_bytes: 256 << 20,
            reserve_free_percent: 2,
            max_register_percent: 50,
            body_timeout_seconds: 60,
            max_writes_in_flight: 1024,
            max_batch_entries: 16384,
            max_batch_delay_ms: 0,
        }
    }
}

impl Limits {
    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds)
    }

    /// The header read timeout.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_seconds)
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_seconds)
    }

    /// How long shutdown waits for connections.
    pub fn drain(&self) -> Duration {
        Duration::from_secs(self.drain_seconds)
    }

    /// How long a request body may take to arrive.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_seconds)
    }

    /// How each register's sequencer batches.
    pub fn sequencer(&self) -> regis_store::SequencerConfig {
        regis_store::SequencerConfig {
            max_entries: self.max_batch_entries,
            max_delay: Duration::from_millis(self.max_batch_delay_ms),
            // Writes beyond the in-flight bound are refused before they
            // reach the queue, so the queue never refuses one.
            queue: self.max_writes_in_flight,
        }
    }
}

impl Config {
    /// Parses a configuration and checks its bounds.
    pub fn from_toml(text: &str) -> Result<Config, ServerError> {
        let config: Config = toml::from_str(text).map_err(|e| ServerError::Config {
            path: PathBuf::from("<text>"),
            error: e.to_string(),
        })?;
        config.check()?;
        Ok(config)
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Config, ServerError> {
        let text = std::fs::read_to_string(path).map_err(|error| ServerError::ReadConfig {
            path: path.to_owned(),
            error,
        })?;
        Config::from_toml(&text).map_err(|error| match error {
            ServerError::Config { error, .. } => ServerError::Config {
                path: path.to_owned(),
                error,
            },
            other => other,
        })
    }

    /// How registers are witnessed: reads and parses `witness-policy` (an
    /// error names the file and, if it does not parse, the line).
    pub fn witness_settings(&self) -> Result<WitnessSettings, ServerError> {
        let policy = self
            .witness_policy
            .as_deref()
            .map(PolicyFile::load)
            .transpose()?
            .map(Arc::new);
        Ok(WitnessSettings {
            policy,
            interval: Duration::from_millis(self.witness_interval_ms),
            timeout: Duration::from_secs(self.witness_timeout_seconds),
            ..WitnessSettings::default()
        })
    }

    /// Refuses limits that would leave requests unbounded or impossible.
    pub fn check(&self) -> Result<(), ServerError> {
        let limits = &self.limits;
        let problem = if limits.max_page_size == 0 || limits.max_page_size > 100_000 {
            Some("limits.max-page-size must be from 1 to 100000")
        } else if limits.default_page_size == 0 || limits.default_page_size > limits.max_page_size {
            Some("limits.default-page-size must be from 1 to limits.max-page-size")
        } else if limits.request_timeout_seconds == 0 || limits.request_timeout_seconds > 3600 {
            Some("limits.request-timeout-seconds must be from 1 to 3600")
        } else if limits.concurrency == 0 || limits.concurrency > 65_536 {
            Some("limits.concurrency must be from 1 to 65536")
        } else if limits.max_body_bytes == 0 || limits.max_body_bytes > 1 << 30 {
            Some("limits.max-body-bytes must be from 1 to 1073741824")
        } else if limits.header_read_timeout_seconds == 0
            || limits.header_read_timeout_seconds > 600
        {
            Some("limits.header-read-timeout-seconds must be from 1 to 600")
        } else if limits.max_connections == 0 || limits.max_connections > 1_000_000 {
            Some("limits.max-connections must be from 1 to 1000000")
        } else if limits.max_connections_per_address == 0
            || limits.max_connections_per_address > 1_000_000
        {
            Some("limits.max-connections-per-address must be from 1 to 1000000")
        } else if limits.write_timeout_seconds == 0 || limits.write_timeout_seconds > 3600 {
            Some("limits.write-timeout-seconds must be from 1 to 3600")
        } else if limits.max_rsf_streams == 0 || limits.max_rsf_streams > 65_536 {
            Some("limits.max-rsf-streams must be from 1 to 65536")
        } else if limits.max_event_streams > 1_000_000 {
            Some("limits.max-event-streams must be at most 1000000")
        } else if limits.max_rsf_bytes == 0 {
            Some("limits.max-rsf-bytes must be at least 1")
        } else if limits.reserve_free_percent > 50 {
            Some("limits.reserve-free-percent must be from 0 to 50")
        } else if limits.max_register_percent == 0 || limits.max_register_percent > 100 {
            Some("limits.max-register-percent must be from 1 to 100")
        } else if limits.body_timeout_seconds == 0 || limits.body_timeout_seconds > 3600 {
            Some("limits.body-timeout-seconds must be from 1 to 3600")
        } else if limits.max_writes_in_flight == 0 || limits.max_writes_in_flight > 1_000_000 {
            Some("limits.max-writes-in-flight must be from 1 to 1000000")
        } else if limits.max_batch_entries == 0 || limits.max_batch_entries > 1_000_000 {
            Some("limits.max-batch-entries must be from 1 to 1000000")
        } else if limits.max_batch_delay_ms > 10_000 {
            Some("limits.max-batch-delay-ms must be at most 10000")
        } else if limits.drain_seconds > 3600 {
            Some("limits.drain-seconds must be at most 3600")
        } else if self.witness_interval_ms > 3_600_000 {
            Some("witness-interval-ms must be at most 3600000")
        } else if self.witness_timeout_seconds == 0 || self.witness_timeout_seconds > 600 {
            Some("witness-timeout-seconds must be from 1 to 600")
        } else if self.host.is_empty()
            || self
                .host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '+')
        {
            Some("host must be non-empty, without spaces, control characters or '+'")
        } else {
            self.publish.as_ref().and_then(PublishConfig::problem)
        };
        match problem {
            Some(problem) => Err(ServerError::Config {
                path: PathBuf::from("<text>"),
                error: problem.to_owned(),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_field_and_defaults_the_rest() {
        let config = Config::from_toml(
            "listen = \"0.0.0.0:9000\"\nhost = \"example.org\"\n[limits]\nmax-page-size = 10\ndefault-page-size = 5\n\
             max-connections-per-address = 8\nwrite-timeout-seconds = 5\nmax-rsf-streams = 2\n",
        )
        .unwrap();
        assert_eq!(config.listen, SocketAddr::from(([0, 0, 0, 0], 9000)));
        assert_eq!(config.host, "example.org");
        assert_eq!(config.limits.max_page_size, 10);
        assert_eq!(config.limits.default_page_size, 5);
        assert_eq!(config.limits.concurrency, 256);
        assert_eq!(config.limits.max_connections_per_address, 8);
        assert_eq!(config.limits.write_timeout_seconds, 5);
        assert_eq!(config.limits.max_rsf_streams, 2);
        assert_eq!(config.limits.max_connections, 1024);
        assert_eq!(config.data, PathBuf::from("./regis-data"));
    }

    #[test]
    fn refuses_unknown_fields_and_unbounded_limits() {
        assert!(Config::from_toml("lisen = \"0.0.0.0:1\"").is_err());
        assert!(Config::from_toml("[limits]\nmax-page-size = 0").is_err());
        assert!(Config::from_toml("[limits]\nmax-page-size = 1000000000").is_err());
        assert!(Config::from_toml("[limits]\ndefault-page-size = 6000").is_err());
        assert!(Config::from_toml("[limits]\nmax-connections-per-address = 0").is_err());
        assert!(Config::from_toml("[limits]\nwrite-timeout-seconds = 0").is_err());
        assert!(Config::from_toml("[limits]\nwrite-timeout-seconds = 3601").is_err());
        assert!(Config::from_toml("[limits]\nmax-rsf-streams = 0").is_err());
        assert!(Config::from_toml("host = \"a b\"").is_err());
        assert!(Config::from_toml("witness-timeout-seconds = 0").is_err());
        assert!(Config::from_toml("witness-timeout-seconds = 601").is_err());
        assert!(Config::from_toml("witness-interval-ms = 3600001").is_err());
        assert!(Config::from_toml("").is_ok());
    }

    #[test]
    fn reads_publish_with_object_store_options_and_bounds_it() {
        let config = Config::from_toml(
            "[publish]\nurl = \"s3://bucket/prefix\"\ninterval-ms = 250\n\
             aws_endpoint = \"http://127.0.0.1:9000\"\naws_allow_http = true\n",
        )
        .unwrap();
        let publish = config.publish.unwrap();
        assert_eq!(publish.url, "s3://bucket/prefix");
        assert_eq!(publish.interval_ms, 250);
        assert_eq!(publish.request_timeout_seconds, 30);
        assert_eq!(
            publish.options(),
            [
                ("aws_allow_http".to_owned(), "true".to_owned()),
                (
                    "aws_endpoint".to_owned(),
                    "http://127.0.0.1:9000".to_owned()
                ),
            ]
        );
        assert!(Config::from_toml("[publish]\ninterval-ms = 5").is_err());
        assert!(Config::from_toml("[publish]\nurl = \"\"").is_err());
        assert!(
            Config::from_toml("[publish]\nurl = \"file:///x\"\nrequest-timeout-seconds = 0")
                .is_err()
        );
        assert!(Config::default().publish.is_none());
    }

    #[test]
    fn reads_the_witness_settings_and_names_a_policy_file_it_cannot_read() {
        let config = Config::from_toml(
            "witness-interval-ms = 250\nwitness-timeout-seconds = 3\n\
             witness-policy = \"/nonexistent/witnesses.policy\"\n",
        )
        .unwrap();
        assert_eq!(config.witness_interval_ms, 250);
        assert_eq!(config.witness_timeout_seconds, 3);
        let error = config.witness_settings().unwrap_err().to_string();
        assert!(error.contains("/nonexistent/witnesses.policy"), "{error}");
        let settings = Config::default().witness_settings().unwrap();
        assert!(settings.policy.is_none());
        assert_eq!(settings.interval, Duration::from_secs(1));
        assert_eq!(settings.timeout, Duration::from_secs(10));
        assert_eq!(settings.wait_limit(), Duration::from_secs(30));
    }
}
