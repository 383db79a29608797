//! Every path the server builds for a register, and the query strings of
//! its links: the layout `routes.rs` matches, in one place, with record
//! keys, field names and query values percent-encoded
//! ([`regis_model::api::path_segment`]).

use std::fmt;

use regis_model::api::path_segment;
use regis_store::Log;

/// The registers this server hosts.
pub const CATALOGUE: &str = "/registers";

/// A path on this server, with a query string once a parameter is added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Href(String);

impl Href {
    /// `path` as it is (already encoded: a path built here, or a request's
    /// own).
    pub fn new(path: impl Into<String>) -> Href {
        Href(path.into())
    }

    /// Adds `name=value` to the query, the value percent-encoded.
    pub fn param(mut self, name: &str, value: impl fmt::Display) -> Href {
        let separator = if self.0.contains('?') { '&' } else { '?' };
        self.0.push(separator);
        self.0.push_str(name);
        self.0.push('=');
        self.0.push_str(&path_segment(&value.to_string()));
        self
    }

    /// Names `log` by `?type=system` if it is the system log (the user log
    /// is what a path names without it).
    pub fn log(self, log: Log) -> Href {
        match log {
            Log::User => self,
            Log::System => self.param("type", "system"),
        }
    }

    /// The same resource in the representation `suffix` names (`json`,
    /// `csv`, `tlog-proof`): `.{suffix}` ends the path, before any query.
    pub fn suffixed(mut self, suffix: &str) -> Href {
        let end = self.0.find('?').unwrap_or(self.0.len());
        self.0.insert_str(end, &format!(".{suffix}"));
        self
    }

    /// The path one segment below, `segment` as it is (a fixed name, or
    /// text already encoded). Only before a query is added.
    fn join(mut self, segment: &str) -> Href {
        self.0.push('/');
        self.0.push_str(segment);
        self
    }

    /// As text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Href {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `B`: register `name`'s home (a register name needs no encoding: it is
/// only a-z, 0-9 and '-').
pub fn register(name: &str) -> Href {
    Href::new(CATALOGUE).join(name)
}

/// `B/register`: its metadata.
pub fn metadata(name: &str) -> Href {
    register(name).join("register")
}

/// `B/records`.
pub fn records(name: &str) -> Href {
    register(name).join("records")
}

/// `B/records/{key}`.
pub fn record(name: &str, key: &str) -> Href {
    records(name).join(&path_segment(key))
}

/// `B/records/{key}/entries`: the key's history.
pub fn record_entries(name: &str, key: &str) -> Href {
    record(name, key).join("entries")
}

/// `B/records/{key}/proof`.
pub fn record_proof(name: &str, key: &str) -> Href {
    record(name, key).join("proof")
}

/// `B/records/{field}/{value}`.
pub fn records_by_field(name: &str, field: &str, value: &str) -> Href {
    records(name)
        .join(&path_segment(field))
        .join(&path_segment(value))
}

/// `B/entries` (of the user log; [`Href::log`] names the other).
pub fn entries(name: &str) -> Href {
    register(name).join("entries")
}

/// `B/entries/{number}[?type=system]`.
pub fn entry(name: &str, log: Log, number: u64) -> Href {
    entries(name).join(&number.to_string()).log(log)
}

/// `B/items/{hash}`, `hash` as `sha-256:{hex}` (no character of it needs
/// encoding).
pub fn item(name: &str, hash: &str) -> Href {
    register(name).join("items").join(hash)
}

/// `B/download-rsf`: the whole register as RSF.
pub fn download_rsf(name: &str) -> Href {
    register(name).join("download-rsf")
}

/// `B/links`: its links, counted.
pub fn links(name: &str) -> Href {
    register(name).join("links")
}

/// `B/events`: its new checkpoints as they are signed.
pub fn events(name: &str) -> Href {
    register(name).join("events")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{Route, match_path};

    /// Each builder's exact text, and the route the server answers it as
    /// (with the parameters it reads back: encoding round-trips).
    #[test]
    fn every_path_built_is_the_route_it_names() {
        let hash = "sha-256:00ff";
        let cases: Vec<(Href, &str, Route, Vec<&str>)> = vec![
            (
                register("c"),
                "/registers/c",
                Route::RegisterHome,
                vec!["c"],
            ),
            (
                metadata("c").suffixed("json"),
                "/registers/c/register.json",
                Route::Register,
                vec!["c"],
            ),
            (
                records("c"),
                "/registers/c/records",
                Route::Records,
                vec!["c"],
            ),
            (
                record("c", "a/b.c d"),
                "/registers/c/records/a%2Fb%2Ec%20d",
                Route::Record,
                vec!["c", "a/b.c d"],
            ),
            (
                record("c", "200010.11").suffixed("csv"),
                "/registers/c/records/200010%2E11.csv",
                Route::Record,
                vec!["c", "200010.11"],
            ),
            (
                record_entries("c", "GB").suffixed("json"),
                "/registers/c/records/GB/entries.json",
                Route::RecordEntries,
                vec!["c", "GB"],
            ),
            (
                record_proof("c", "GB").suffixed("tlog-proof"),
                "/registers/c/records/GB/proof.tlog-proof",
                Route::RecordProof,
                vec!["c", "GB"],
            ),
            (
                records_by_field("c", "name", "United Kingdom"),
                "/registers/c/records/name/United%20Kingdom",
                Route::RecordsByField,
                vec!["c", "name", "United Kingdom"],
            ),
            (
                entries("c"),
                "/registers/c/entries",
                Route::Entries,
                vec!["c"],
            ),
            (
                entries("c").log(Log::System),
                "/registers/c/entries?type=system",
                Route::Entries,
                vec!["c"],
            ),
            (
                entry("c", Log::User, 7),
                "/registers/c/entries/7",
                Route::Entry,
                vec!["c", "7"],
            ),
            (
                entry("c", Log::System, 7).suffixed("json"),
                "/registers/c/entries/7.json?type=system",
                Route::Entry,
                vec!["c", "7"],
            ),
            (
                item("c", hash),
                "/registers/c/items/sha-256:00ff",
                Route::Item,
                vec!["c", hash],
            ),
            (
                download_rsf("c"),
                "/registers/c/download-rsf",
                Route::DownloadRsf,
                vec!["c"],
            ),
            (events("c"), "/registers/c/events", Route::Events, vec!["c"]),
        ];
        for (href, text, route, params) in cases {
            assert_eq!(href.as_str(), text);
            let path = text.split('?').next().unwrap();
            let matched = match_path(path).unwrap().unwrap();
            assert_eq!(matched.route, route, "{text}");
            assert_eq!(matched.params, params, "{text}");
        }
    }

    #[test]
    fn query_values_are_encoded_and_the_log_named_where_it_is_added() {
        assert_eq!(
            records("c")
                .param("after", "a&b=c")
                .param("page-size", 10)
                .as_str(),
            "/registers/c/records?after=a%26b%3Dc&page-size=10"
        );
        assert_eq!(
            entries("c")
                .param("start", 1)
                .param("limit", 5)
                .log(Log::System)
                .suffixed("csv")
                .as_str(),
            "/registers/c/entries.csv?start=1&limit=5&type=system"
        );
        assert_eq!(
            Href::new("/raw%41/path").log(Log::User).as_str(),
            "/raw%41/path"
        );
    }
}
