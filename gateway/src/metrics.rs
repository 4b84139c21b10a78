//! Prometheus metrics: connection and statement counters, parse and
//! decision latency histograms, policy reloads.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::policy::Action;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05,
    0.25,
];

/// A fixed-bucket latency histogram.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; 12],
    inf: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        match BUCKETS.iter().position(|b| secs <= *b) {
            Some(i) => self.counts[i].fetch_add(1, Ordering::Relaxed),
            None => self.inf.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cum = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cum += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cum}");
        }
        cum += self.inf.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cum}");
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cum}");
    }
}

/// All gateway metrics.
#[derive(Default)]
pub struct Metrics {
    /// Connections accepted.
    pub connections_total: AtomicU64,
    /// Connections open now.
    pub connections_active: AtomicU64,
    /// Authentication failures.
    pub auth_failures: AtomicU64,
    statements: [AtomicU64; 3],
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    /// Decision cache hits.
    pub cache_hits: AtomicU64,
    /// Statement parse latency.
    pub parse_latency: Histogram,
    /// Policy decision latency.
    pub decision_latency: Histogram,
}

impl Metrics {
    /// Counts one decided statement.
    pub fn statement(&self, action: Action) {
        let i = match action {
            Action::Allow => 0,
            Action::Approve => 1,
            Action::Deny => 2,
        };
        self.statements[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a policy reload.
    pub fn policy_reload(&self, ok: bool) {
        if ok {
            self.reloads_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.reloads_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP portcullis_connections_total Client connections accepted.\n# TYPE portcullis_connections_total counter\nportcullis_connections_total {}", g(&self.connections_total));
        let _ = writeln!(out, "# HELP portcullis_connections_active Client connections open.\n# TYPE portcullis_connections_active gauge\nportcullis_connections_active {}", g(&self.connections_active));
        let _ = writeln!(out, "# HELP portcullis_auth_failures_total Failed client authentications.\n# TYPE portcullis_auth_failures_total counter\nportcullis_auth_failures_total {}", g(&self.auth_failures));
        let _ = writeln!(out, "# HELP portcullis_statements_total Statements decided, by action.\n# TYPE portcullis_statements_total counter");
        for (i, a) in ["allow", "approve", "deny"].iter().enumerate() {
            let _ = writeln!(
                out,
                "portcullis_statements_total{{action=\"{a}\"}} {}",
                g(&self.statements[i])
            );
        }
        let _ = writeln!(out, "# HELP portcullis_decision_cache_hits_total Decisions served from the session cache.\n# TYPE portcullis_decision_cache_hits_total counter\nportcullis_decision_cache_hits_total {}", g(&self.cache_hits));
        let _ = writeln!(out, "# HELP portcullis_policy_reloads_total Policy reloads, by result.\n# TYPE portcullis_policy_reloads_total counter\nportcullis_policy_reloads_total{{result=\"ok\"}} {}\nportcullis_policy_reloads_total{{result=\"error\"}} {}", g(&self.reloads_ok), g(&self.reloads_failed));
        self.parse_latency.render(
            "portcullis_parse_seconds",
            "Statement parse latency.",
            &mut out,
        );
        self.decision_latency.render(
            "portcullis_decision_seconds",
            "Policy decision latency.",
            &mut out,
        );
        out
    }
}
