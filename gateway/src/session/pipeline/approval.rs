//! The pipeline's approval and re-decision steps: holding a statement
//! (simple Query, or an extended-protocol batch collected up to its Sync
//! so the approver sees the bound parameters), replaying a held batch when
//! the hold ends, letting one Bind of an approved statement through, and
//! deciding a prepared statement again when the catalog changed.

use std::sync::Arc;

use bytes::BytesMut;

use super::{Pipeline, Step};
use crate::pg::frontend::FrontendMessage;
use crate::pg::ready::TxStatus;
use crate::pg::{ErrorFields, Frame, Severity};
use crate::session::hold::{Approval, Hold};
use crate::session::registry::{Effect, Statement};
use crate::session::SessionError;

impl Pipeline {
    /// Applies approval to a decided simple-protocol statement: the
    /// statement to admit, or the hold to start.
    pub(super) fn approval(&mut self, stmt: Arc<Statement>) -> Result<Arc<Statement>, Box<Hold>> {
        if let Some(s) = self.holds.granted(&stmt, false) {
            return Ok(s);
        }
        match self.holds.start(&stmt, &[]) {
            Approval::None => Ok(stmt),
            Approval::Hold(h) => Err(h),
        }
    }

    /// Replays a held batch's messages (after its hold ended, or at once
    /// when it was refused), then goes on with `frame`'s handling.
    pub(super) fn replay(&mut self, up: &mut BytesMut) -> Result<Option<Step>, SessionError> {
        self.replaying = true;
        let mut out = None;
        while let Some(f) = self.holds.next_replay() {
            match self.client(&f, up) {
                Ok(Step::Wait) => {
                    self.holds.unshift_replay(f);
                    out = Some(Step::Wait);
                    break;
                }
                Ok(Step::Terminate) => {
                    out = Some(Step::Terminate);
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    self.replaying = false;
                    return Err(e);
                }
            }
        }
        self.replaying = false;
        Ok(out)
    }

    /// A message of an extended-protocol batch whose Parse needs approval:
    /// kept until Sync; at Sync the hold starts with the bound parameters
    /// (or the batch is refused when it is not one Bind and Execute of the
    /// statement).
    pub(super) fn collecting(
        &mut self,
        msg: &FrontendMessage<'_>,
        frame: &Frame,
        up: &mut BytesMut,
    ) -> Result<Option<Step>, SessionError> {
        let Some(c) = self.holds.collecting() else {
            return Ok(None);
        };
        match msg {
            FrontendMessage::Sync => {}
            FrontendMessage::Terminate => {
                self.holds.take_collect();
                frame.encode(up);
                return Ok(Some(Step::Terminate));
            }
            FrontendMessage::Parse(_) => {
                c.other_parse = true;
                c.frames.push(frame.clone());
                return Ok(Some(Step::Continue));
            }
            FrontendMessage::Bind(b) => {
                if b.statement == c.name.as_slice() {
                    c.binds += 1;
                    if c.params.is_none() {
                        c.params = Some(text_params(b));
                    }
                }
                c.frames.push(frame.clone());
                return Ok(Some(Step::Continue));
            }
            _ => {
                c.frames.push(frame.clone());
                return Ok(Some(Step::Continue));
            }
        }
        let Some(c) = self.holds.take_collect() else {
            return Ok(None);
        };
        if c.other_parse || c.binds != 1 {
            self.holds.refuse_batch(
                ErrorFields::new(
                    Severity::Error,
                    "42501",
                    "portcullis: a statement that needs approval must come alone in its batch, with one Bind and Execute before Sync (the approver approves that one execution)",
                ),
                c.frames,
            );
            return self.client(frame, up).map(Some);
        }
        let params = c.params.unwrap_or_default();
        match self.holds.start(&c.stmt, &params) {
            Approval::Hold(h) => {
                self.holds.park(c.frames);
                Ok(Some(Step::Hold(h)))
            }
            Approval::None => {
                // Not holdable after all: run the batch as the stages say.
                self.holds.refuse_batch(
                    ErrorFields::new(
                        Severity::Error,
                        "42501",
                        "portcullis: approval could not be requested",
                    ),
                    c.frames,
                );
                self.client(frame, up).map(Some)
            }
        }
    }

    /// What a Bind of statement `name` must pass: approval (once per
    /// approved execution) and a fresh decision after a catalog change.
    pub(super) fn bind_checks(&mut self, name: &[u8]) -> Result<(), Option<ErrorFields>> {
        let stmt = self.registry.statement(name);
        self.approved_bind(stmt.as_ref())
            .and_then(|()| self.redecide(stmt.as_ref()))
    }

    /// A Bind of a prepared statement that needs approval passes only as
    /// the one approved execution of its batch.
    fn approved_bind(&mut self, stmt: Option<&Arc<Statement>>) -> Result<(), Option<ErrorFields>> {
        let needs =
            stmt.is_some_and(|s| s.verdict.decision.action == crate::policy::Action::Approve);
        if !needs || self.holds.take_bind_grant() {
            return Ok(());
        }
        Err(Some(ErrorFields::new(
            Severity::Error,
            "42501",
            "portcullis: this prepared statement needs approval for each execution; send Parse, Bind, Execute and Sync together",
        )))
    }

    /// A Bind of a prepared statement decided with an older catalog or
    /// policy: the server re-plans it with the catalog as it is now, and
    /// the policy in force decides, so it is decided again (`Err(None)`:
    /// wait; `Err(Some)`: refuse the Bind).
    fn redecide(&mut self, stmt: Option<&Arc<Statement>>) -> Result<(), Option<ErrorFields>> {
        let Some(stmt) = stmt else {
            return Ok(());
        };
        let quiescent = self.settled.tx == TxStatus::Idle && self.inflight.is_empty();
        if stmt.catalog == self.decider.catalog_generation(quiescent)
            && stmt.verdict.policy_hash == self.decider.policy_hash()
        {
            return Ok(());
        }
        if self.decider.policy_reads_tx() && self.inflight.tx_unsettled() {
            return Err(None);
        }
        let in_tx = self
            .inflight
            .predicted_tx()
            .unwrap_or(self.settled.tx != TxStatus::Idle);
        let verdict = self
            .decider
            .decide(&stmt.text, in_tx, stmt.settings, quiescent);
        let again = Statement {
            text: stmt.text.clone(),
            effect: Effect::of(&verdict.statements),
            verdict,
            approved: false,
            catalog: self.decider.catalog_generation(quiescent),
            settings: stmt.settings,
        };
        // The portal runs the statement as prepared: mask rules that have
        // changed since cannot be applied to it.
        if again.verdict.decision.mask != stmt.verdict.decision.mask
            && (super::mask::masks(&again) || super::mask::masks(stmt))
        {
            return Err(Some(ErrorFields::new(
                Severity::Error,
                "42501",
                "portcullis: statement refused: the policy's mask rules for this prepared statement changed since it was prepared; prepare it again",
            )));
        }
        match self.prove_masking(&again).or_else(|| self.admit(&again)) {
            Some(e) => Err(Some(e)),
            None => Ok(()),
        }
    }
}

/// A Bind's parameters in text form for the approver (binary values as
/// `\x` hex).
pub(super) fn text_params(b: &crate::pg::bind::Bind<'_>) -> Vec<Option<String>> {
    b.params
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let binary = match b.param_formats.as_slice() {
                [] => false,
                [one] => *one == 1,
                many => many.get(i) == Some(&1),
            };
            v.map(|bytes| {
                if binary {
                    format!("\\x{}", hex::encode(bytes))
                } else {
                    String::from_utf8_lossy(bytes).into_owned()
                }
            })
        })
        .collect()
}
