//! The pipeline's mask stage: before a statement whose decision masks
//! columns is forwarded, masking must be proven ([`crate::mask::prove`]);
//! its results are then rewritten row by row from a [`Plan`] made from
//! each RowDescription. An Execute of such a statement is preceded
//! upstream by the gateway's own Describe of the portal (its answer is not
//! relayed), so the plan knows the portal's columns and formats.
//!
//! A result whose columns cannot be placed is stopped: its rows are not
//! relayed, and its completion becomes the refusal.

use std::sync::Arc;

use bytes::BytesMut;

use super::{Pipeline, Relay};
use crate::mask::Plan;
use crate::pg::backend::BackendMessage;
use crate::pg::row::decode_description;
use crate::pg::{ErrorFields, Frame, Severity};
use crate::policy::Action;
use crate::session::inflight::Expect;
use crate::session::registry::{Effect, Statement};
use crate::session::SessionError;

/// The mask stage's state for the result being relayed.
#[derive(Debug, Default)]
pub(super) enum Masking {
    /// Nothing to mask.
    #[default]
    Off,
    /// Rows are rewritten.
    Plan(Plan),
    /// The result is stopped; its completion becomes this error.
    Stop(ErrorFields),
}

/// What the mask stage does with one backend message.
pub(super) enum Masked {
    /// Relay it (and show it to the recorder) as it is.
    Same,
    /// This instead, to the client and the recorder.
    Replace(Frame),
    /// Nothing (a row of a stopped result, the answer to the gateway's
    /// own Describe).
    Drop,
}

fn refusal(why: impl std::fmt::Display) -> ErrorFields {
    ErrorFields::new(
        Severity::Error,
        "42501",
        format!("portcullis: statement refused: masking cannot be proven: {why}"),
    )
}

/// The statement's mask rules apply (it masks, and is not denied).
pub(super) fn masks(stmt: &Statement) -> bool {
    let d = &stmt.verdict.decision;
    !d.mask.is_empty() && d.action != Action::Deny
}

impl Pipeline {
    /// When `stmt` is decided (before it is held or forwarded): `Some`
    /// refuses it.
    pub(super) fn prove_masking(&mut self, stmt: &Statement) -> Option<ErrorFields> {
        if !masks(stmt) {
            // SQL EXECUTE and FETCH of a masked statement or portal would
            // run it with the rules of their own text (none).
            let code = |f: &crate::sql::StatementFacts| {
                f.flags.iter().any(|g| {
                    matches!(
                        g.as_str(),
                        "unknown_function" | "dynamic_sql" | "volatile_function"
                    )
                })
            };
            if self.registry.any(masks)
                && (stmt.verdict.statements.iter().any(code)
                    || crate::mask::names_prepared(&stmt.text, stmt.settings))
            {
                return Some(refusal(
                    "EXECUTE, FETCH, DO, CALL or a function that may read a portal, while a prepared statement or portal of this session has masked results",
                ));
            }
            return None;
        }
        let rules = &stmt.verdict.decision.mask;
        if let Err(why) = crate::mask::check_rules(rules) {
            return Some(refusal(why));
        }
        if rules.iter().any(|r| r.method == "hash") {
            if let Err(e) = self.decider.masker().key() {
                tracing::error!(error = %e, "cannot read the masking hash key");
                return Some(refusal("the hash key cannot be read"));
            }
        }
        let cat = self.decider.catalog_now();
        crate::mask::prove(
            &stmt.text,
            stmt.settings,
            &stmt.verdict.statements,
            rules,
            &cat,
        )
        .err()
        .map(refusal)
    }

    /// Before an Execute of `stmt` on `portal` goes upstream: the
    /// gateway's Describe of the portal, when its results are masked.
    pub(super) fn describe_for_masking(
        &mut self,
        stmt: Option<&Arc<Statement>>,
        portal: &[u8],
        up: &mut BytesMut,
    ) {
        if let Some(s) = stmt.filter(|s| masks(s)) {
            crate::pg::describe::to_frame_bytes(b'P', portal).encode(up);
            self.inflight
                .push(Expect::MaskDescribe(s.clone()), Effect::default());
        }
    }

    /// The mask stage for one backend message of `stmt` (`describing`:
    /// the answer to the gateway's own Describe).
    pub(super) fn mask(
        &mut self,
        stmt: &Statement,
        describing: bool,
        msg: &BackendMessage<'_>,
    ) -> Result<Masked, SessionError> {
        Ok(match msg {
            BackendMessage::RowDescription(body) => {
                let fields = decode_description(body)?;
                let cat = self.decider.catalog_now();
                self.masking = match Plan::new(&fields, &stmt.verdict.decision.mask, &cat) {
                    Ok(p) => Masking::Plan(p),
                    Err(why) => {
                        tracing::warn!(reason = %why, "a masked result is stopped");
                        Masking::Stop(refusal(why))
                    }
                };
                if describing {
                    Masked::Drop
                } else {
                    Masked::Same
                }
            }
            BackendMessage::NoData if describing => {
                self.masking = Masking::Off;
                Masked::Drop
            }
            BackendMessage::DataRow(body) => match &self.masking {
                Masking::Plan(p) if !p.masks() => Masked::Same,
                Masking::Plan(p) => {
                    let utf8 = self.settled.client_encoding.eq_ignore_ascii_case("UTF8");
                    match self.decider.masker().key() {
                        Ok(key) => Masked::Replace(p.apply(body, utf8, key)?),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot read the masking hash key");
                            self.masking = Masking::Stop(refusal("the hash key cannot be read"));
                            Masked::Drop
                        }
                    }
                }
                Masking::Stop(_) => Masked::Drop,
                // Rows with no description: nothing shows where they
                // come from.
                Masking::Off => {
                    self.masking = Masking::Stop(refusal("rows arrived without a description"));
                    Masked::Drop
                }
            },
            _ => self.end_of_result(msg),
        })
    }
}

impl Pipeline {
    /// The end of a result: a stopped one's completion becomes its
    /// refusal; any end clears the state.
    fn end_of_result(&mut self, msg: &BackendMessage<'_>) -> Masked {
        match msg {
            BackendMessage::CommandComplete(_) | BackendMessage::PortalSuspended => {
                match std::mem::take(&mut self.masking) {
                    Masking::Stop(e) => Masked::Replace(e.to_frame()),
                    _ => Masked::Same,
                }
            }
            BackendMessage::EmptyQueryResponse
            | BackendMessage::ErrorResponse(_)
            | BackendMessage::ReadyForQuery(_) => {
                self.masking = Masking::Off;
                Masked::Same
            }
            _ => Masked::Same,
        }
    }

    /// Rows of a portal the gateway cannot attribute to a statement while
    /// the session holds masked ones: they are not relayed.
    pub(super) fn mask_unattributed(&mut self, msg: &BackendMessage<'_>) -> Masked {
        match msg {
            BackendMessage::DataRow(_) => {
                if !matches!(self.masking, Masking::Stop(_)) {
                    self.masking = Masking::Stop(refusal(
                        "rows of a portal the gateway cannot attribute to a statement, while this session holds masked ones",
                    ));
                }
                Masked::Drop
            }
            _ => self.end_of_result(msg),
        }
    }
}

/// The relay for a message the mask stage replaced or dropped.
pub(super) fn relay(m: Masked) -> Option<Relay> {
    match m {
        Masked::Same => None,
        Masked::Replace(f) => Some(Relay::Replace(f)),
        Masked::Drop => Some(Relay::Drop),
    }
}
