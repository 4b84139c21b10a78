//! Stages a statement passes through after it is decided: each may refuse
//! it before it is forwarded and sees the backend messages attributed to
//! it. The pipeline today runs [`PolicyStage`] (acts on the decision:
//! deny, approval not yet available, fields not yet honoured) and
//! [`RecordStage`] (counts, and the audit [`Recorder`] when recording is
//! on). Approvals (hold) and masking add stages; they do not change the
//! session loop.

use std::collections::HashMap;
use std::sync::Arc;

use super::registry::Statement;
use crate::audit::recorder::Recorder;
use crate::pg::backend::BackendMessage;
use crate::pg::{ErrorFields, Severity};
use crate::policy::Action;

/// One stage of the pipeline.
pub trait Stage: Send {
    /// Before `stmt` is forwarded: `Err` refuses it with that error.
    fn admit(&mut self, _stmt: &Statement) -> Result<(), ErrorFields> {
        Ok(())
    }

    /// A backend message attributed to `stmt` (`None`: not attributable,
    /// e.g. a notice between statements).
    fn result(&mut self, _stmt: Option<&Statement>, _msg: &BackendMessage<'_>) {}

    /// `stmt` was refused (by this or another stage).
    fn refused(&mut self, _stmt: &Statement, _error: &ErrorFields) {}
}

/// Turns the policy's decision into admit / refuse.
pub struct PolicyStage {
    /// An approvals service is configured (holds are possible).
    pub approvals: bool,
}

impl Stage for PolicyStage {
    fn admit(&mut self, stmt: &Statement) -> Result<(), ErrorFields> {
        let v = &stmt.verdict;
        let d = &v.decision;
        let reasons = if d.reasons.is_empty() {
            "no reason given".to_string()
        } else {
            d.reasons.join("; ")
        };
        match d.action {
            Action::Allow => Ok(()),
            Action::Deny => Err(ErrorFields::new(
                Severity::Error,
                "42501",
                format!("portcullis: statement denied: {reasons}"),
            )
            .with_hint(format!("policy {}", v.policy_hash))),
            Action::Approve if stmt.approved => Ok(()),
            Action::Approve => {
                let spec = d.approval.as_ref();
                let why = if !self.approvals {
                    "approval required: approvals service not configured"
                } else if spec.is_none_or(|s| s.groups.is_empty()) {
                    "approval required, but the policy names no approver groups (decision.approval.groups)"
                } else if spec.is_some_and(|s| !matches!(s.mode.as_str(), "hold" | "retry")) {
                    "approval required in an unknown mode (decision.approval.mode must be hold or retry)"
                } else {
                    "approval required: this statement could not be held for approval"
                };
                Err(ErrorFields::new(Severity::Error, "42501", why).with_detail(reasons))
            }
        }
    }
}

/// What [`RecordStage`] counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Statements admitted.
    pub admitted: u64,
    /// Statements refused.
    pub refused: u64,
    /// Result rows relayed.
    pub rows: u64,
    /// Statements completed (CommandComplete).
    pub completed: u64,
    /// Errors from the database attributed to a statement.
    pub errors: u64,
}

/// Named portals whose parameters are remembered for recording, at most.
const MAX_PORTALS: usize = 1024;

/// The record hook: counts, and records through the audit recorder.
#[derive(Default)]
pub struct RecordStage {
    /// Counters so far.
    pub counts: Counts,
    /// The audit recorder, when recording is on.
    pub recorder: Option<Recorder>,
    /// Bound parameters (text form) of each portal, for its Executes.
    portal_params: HashMap<Box<[u8]>, Arc<[Option<String>]>>,
}

impl RecordStage {
    /// Whether statements are being recorded.
    pub fn recording(&self) -> bool {
        self.recorder.is_some()
    }

    /// A Bind of `portal` with these parameters was forwarded.
    pub fn bound(&mut self, portal: &[u8], params: Vec<Option<String>>) {
        if self.portal_params.len() >= MAX_PORTALS {
            self.portal_params.clear();
        }
        self.portal_params.insert(portal.into(), params.into());
    }

    /// The parameters `portal` was bound with.
    pub fn params_of(&self, portal: &[u8]) -> Option<Arc<[Option<String>]>> {
        self.portal_params.get(portal).cloned()
    }
}

impl Stage for RecordStage {
    fn admit(&mut self, _stmt: &Statement) -> Result<(), ErrorFields> {
        if let Some(why) = self.recorder.as_ref().and_then(|r| r.refusal()) {
            return Err(ErrorFields::new(Severity::Error, "42501", why));
        }
        self.counts.admitted += 1;
        Ok(())
    }

    fn result(&mut self, stmt: Option<&Statement>, msg: &BackendMessage<'_>) {
        if stmt.is_none() {
            return;
        }
        match msg {
            BackendMessage::DataRow(_) => self.counts.rows += 1,
            BackendMessage::CommandComplete(_) => self.counts.completed += 1,
            BackendMessage::ErrorResponse(_) => self.counts.errors += 1,
            _ => {}
        }
    }

    fn refused(&mut self, stmt: &Statement, error: &ErrorFields) {
        self.counts.refused += 1;
        if let Some(r) = self.recorder.as_mut() {
            r.refused(Some(stmt), "", error);
        }
    }
}
