//! Admin routes: liveness, readiness and Prometheus metrics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::metrics::Metrics;
use crate::policy::PolicyStore;

/// What the admin routes read.
#[derive(Clone)]
pub struct AdminState {
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Policy in force (its hash is reported by `/readyz`).
    pub policy: PolicyStore,
    /// False once shutdown has begun.
    pub accepting: Arc<AtomicBool>,
    /// Audit writer counters, when recording is on.
    pub audit: Option<Arc<crate::audit::writer::AuditStats>>,
    /// The audit viewer, when configured.
    pub viewer: Option<Arc<super::viewer::Viewer>>,
}

/// The admin router.
pub fn app(state: AdminState) -> Router {
    let viewer = state.viewer.clone();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state);
    match viewer {
        Some(v) => app.merge(super::viewer::routes(v)),
        None => app,
    }
}

async fn readyz(State(s): State<AdminState>) -> Response {
    if s.accepting.load(Ordering::Acquire) {
        (
            StatusCode::OK,
            format!("ready policy={}\n", s.policy.current().hash),
        )
            .into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    }
}

async fn metrics(State(s): State<AdminState>) -> Response {
    let mut body = s.metrics.render();
    if let Some(a) = &s.audit {
        body.push_str(&audit_metrics(a));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The audit writer's counters in Prometheus text format.
fn audit_metrics(a: &crate::audit::writer::AuditStats) -> String {
    let commits = a.commits.load(Ordering::Relaxed);
    let us = a.commit_us.load(Ordering::Relaxed);
    format!(
        "# HELP portcullis_audit_queue_depth Records submitted, not yet committed.\n\
         # TYPE portcullis_audit_queue_depth gauge\n\
         portcullis_audit_queue_depth {}\n\
         # HELP portcullis_audit_records_written_total Records committed to the audit store.\n\
         # TYPE portcullis_audit_records_written_total counter\n\
         portcullis_audit_records_written_total {}\n\
         # HELP portcullis_audit_records_dropped_total Records lost (must stay 0).\n\
         # TYPE portcullis_audit_records_dropped_total counter\n\
         portcullis_audit_records_dropped_total {}\n\
         # HELP portcullis_audit_commits_total Commits (batches) to the audit store.\n\
         # TYPE portcullis_audit_commits_total counter\n\
         portcullis_audit_commits_total {commits}\n\
         # HELP portcullis_audit_commit_seconds_sum Time spent committing.\n\
         # TYPE portcullis_audit_commit_seconds_sum counter\n\
         portcullis_audit_commit_seconds_sum {:.6}\n\
         # HELP portcullis_audit_store_failing 1 while the audit store cannot be written.\n\
         # TYPE portcullis_audit_store_failing gauge\n\
         portcullis_audit_store_failing {}\n",
        a.queued.load(Ordering::Relaxed),
        a.written.load(Ordering::Relaxed),
        a.dropped.load(Ordering::Relaxed),
        us as f64 / 1e6,
        u8::from(a.failing.load(Ordering::Relaxed)),
    )
}
