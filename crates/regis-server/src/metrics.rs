//! Prometheus metrics: requests by route template and status class,
//! latency histograms by route, each register's log sizes, and the write
//! path (requests by outcome, entries appended, batch sizes, time queued,
//! to signed and to durable). Counters are atomics in fixed tables (one row
//! per route), so recording takes no lock and the label set cannot grow
//! with client input.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use regis_store::Timing;

use crate::routes::ROUTES;

/// Upper bounds of the latency buckets, in seconds.
const SECONDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Upper bounds of the batch-size buckets, in entries.
const ENTRIES: [f64; 9] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0,
];

/// The label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// A Prometheus histogram over fixed bounds: a count per bucket (made
/// cumulative when rendered) and a sum, kept in millionths.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    /// One per bound, plus one for +Inf.
    buckets: Vec<AtomicU64>,
    sum_millionths: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_millionths: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|&bound| value <= bound)
            .unwrap_or(self.bounds.len());
        if let Some(count) = self.buckets.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        // Saturating float-to-int conversion: a huge value cannot wrap.
        let millionths = (value * 1e6) as u64;
        self.sum_millionths.fetch_add(millionths, Ordering::Relaxed);
    }

    fn seconds(&self, elapsed: Duration) {
        self.observe(elapsed.as_secs_f64());
    }

    /// Writes `name`'s series with `labels` (`key="value",…` or empty);
    /// nothing if nothing was observed.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let total: u64 = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum();
        if total == 0 {
            return;
        }
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.buckets) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {total}");
        let sum = self.sum_millionths.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = |labels: &str| {
            if labels.is_empty() {
                String::new()
            } else {
                format!("{{{labels}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {total}", braces(labels));
    }
}

#[derive(Debug)]
struct RouteCounters {
    /// By status class: 1xx..5xx.
    status: [AtomicU64; 5],
    latency: Histogram,
}

/// Request metrics.
#[derive(Debug)]
pub struct Metrics {
    /// One per route of [`ROUTES`], then one for unmatched requests.
    routes: Vec<RouteCounters>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Zeroed counters.
    pub fn new() -> Metrics {
        Metrics {
            routes: (0..=ROUTES.len())
                .map(|_| RouteCounters {
                    status: Default::default(),
                    latency: Histogram::new(&SECONDS),
                })
                .collect(),
        }
    }

    /// Records one request to `template` (or [`UNMATCHED`]).
    pub fn record(&self, template: &str, status: u16, elapsed: Duration) {
        let index = ROUTES
            .iter()
            .position(|spec| spec.template == template)
            .unwrap_or(ROUTES.len());
        let Some(counters) = self.routes.get(index) else {
            return;
        };
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        counters.status[class].fetch_add(1, Ordering::Relaxed);
        counters.latency.seconds(elapsed);
    }

    /// The request metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let label = |index: usize| {
            ROUTES
                .get(index)
                .map(|spec| spec.template)
                .unwrap_or(UNMATCHED)
        };
        out.push_str("# HELP regis_http_requests_total HTTP requests by route and status class.\n");
        out.push_str("# TYPE regis_http_requests_total counter\n");
        for (index, counters) in self.routes.iter().enumerate() {
            for (class, count) in counters.status.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "regis_http_requests_total{{route=\"{}\",status=\"{}xx\"}} {count}",
                        label(index),
                        class + 1
                    );
                }
            }
        }
        out.push_str(
            "# HELP regis_http_request_duration_seconds Time to the response's headers, by route.\n",
        );
        out.push_str("# TYPE regis_http_request_duration_seconds histogram\n");
        for (index, counters) in self.routes.iter().enumerate() {
            counters.latency.render(
                out,
                "regis_http_request_duration_seconds",
                &format!("route=\"{}\"", label(index)),
            );
        }
    }
}

/// What a write request came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed, signed and acknowledged.
    Done,
    /// Refused for what it held (4xx): nothing written.
    Rejected,
    /// Refused for load (503 busy, stopping): nothing written; retry.
    Refused,
    /// The server failed (5xx).
    Failed,
}

impl Outcome {
    const ALL: [Outcome; 4] = [
        Outcome::Done,
        Outcome::Rejected,
        Outcome::Refused,
        Outcome::Failed,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Rejected => "rejected",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }
}

/// The write path's metrics.
#[derive(Debug)]
pub struct WriteMetrics {
    /// Requests by outcome, in [`Outcome::ALL`] order.
    requests: [AtomicU64; 4],
    entries: AtomicU64,
    batch_entries: Histogram,
    queued: Histogram,
    signed: Histogram,
    durable: Histogram,
}

impl Default for WriteMetrics {
    fn default() -> Self {
        WriteMetrics {
            requests: Default::default(),
            entries: AtomicU64::new(0),
            batch_entries: Histogram::new(&ENTRIES),
            queued: Histogram::new(&SECONDS),
            signed: Histogram::new(&SECONDS),
            durable: Histogram::new(&SECONDS),
        }
    }
}

impl WriteMetrics {
    /// Records a write request's outcome.
    pub fn outcome(&self, outcome: Outcome) {
        let index = Outcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or_default();
        if let Some(count) = self.requests.get(index) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records a committed request of `entries` entries and its timing.
    pub fn committed(&self, entries: u64, timing: &Timing) {
        self.entries.fetch_add(entries, Ordering::Relaxed);
        self.batch_entries.observe(timing.batch_entries as f64);
        self.queued.seconds(timing.queued);
        self.signed.seconds(timing.signed);
        self.durable.seconds(timing.durable);
    }

    /// The write metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP regis_write_requests_total Write requests by outcome.\n");
        out.push_str("# TYPE regis_write_requests_total counter\n");
        for (outcome, count) in Outcome::ALL.iter().zip(&self.requests) {
            let _ = writeln!(
                out,
                "regis_write_requests_total{{outcome=\"{}\"}} {}",
                outcome.label(),
                count.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP regis_write_entries_total Entries appended by write requests.\n");
        out.push_str("# TYPE regis_write_entries_total counter\n");
        let _ = writeln!(
            out,
            "regis_write_entries_total {}",
            self.entries.load(Ordering::Relaxed)
        );
        let histograms = [
            (
                "regis_write_batch_entries",
                "Entries in the batch that committed each write.",
                &self.batch_entries,
            ),
            (
                "regis_write_queued_seconds",
                "From a write's arrival at the sequencer to the start of its batch.",
                &self.queued,
            ),
            (
                "regis_write_signed_seconds",
                "From a write's arrival at the sequencer to its checkpoints signed.",
                &self.signed,
            ),
            (
                "regis_write_durable_seconds",
                "From a write's arrival at the sequencer to its durable commit.",
                &self.durable,
            ),
        ];
        for (name, help, histogram) in histograms {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} histogram");
            histogram.render(out, name, "");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_buckets_are_cumulative() {
        let metrics = Metrics::new();
        metrics.record("/healthz", 200, Duration::from_micros(100));
        metrics.record("/healthz", 200, Duration::from_millis(30));
        metrics.record("/nowhere", 404, Duration::from_secs(10));
        let mut text = String::new();
        metrics.render(&mut text);
        assert!(text.contains("regis_http_requests_total{route=\"/healthz\",status=\"2xx\"} 2\n"));
        assert!(text.contains("regis_http_requests_total{route=\"unmatched\",status=\"4xx\"} 1\n"));
        assert!(text.contains(
            "regis_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.0005\"} 1\n"
        ));
        assert!(text.contains(
            "regis_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.05\"} 2\n"
        ));
        assert!(text.contains(
            "regis_http_request_duration_seconds_bucket{route=\"unmatched\",le=\"5\"} 0\n"
        ));
        assert!(text.contains(
            "regis_http_request_duration_seconds_bucket{route=\"unmatched\",le=\"+Inf\"} 1\n"
        ));
    }
}
