//! Prometheus metrics: requests by route template and status class,
//! latency histograms by route, and each register's log sizes. Counters are
//! atomics in a fixed table (one row per route), so recording takes no lock
//! and the label set cannot grow with client input.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::routes::ROUTES;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

#[derive(Debug, Default)]
struct RouteCounters {
    /// By status class: 1xx..5xx.
    status: [AtomicU64; 5],
    /// Cumulative counts are computed when rendering; these are per bucket,
    /// plus one for +Inf.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
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
                .map(|_| RouteCounters::default())
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
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(BUCKETS.len());
        counters.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        counters.sum_micros.fetch_add(micros, Ordering::Relaxed);
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
            let total: u64 = counters
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .sum();
            if total == 0 {
                continue;
            }
            let route = label(index);
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(&counters.buckets) {
                cumulative += count.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "regis_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "regis_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {total}"
            );
            let sum = counters.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "regis_http_request_duration_seconds_sum{{route=\"{route}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "regis_http_request_duration_seconds_count{{route=\"{route}\"}} {total}"
            );
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
