//! The hold phase: a statement the policy sends for approval (mode
//! `hold`) waits while the approvals service asks approvers; the client
//! sees a notice with the approval link at once and, later, the
//! statement's result (approved) or an error with the approver's comment
//! (rejected, expired, cancelled, service unavailable).
//!
//! The pipeline decides *what* to hold ([`Holds::start`]) and what the
//! outcome means ([`Holds::finish`]); the session loop awaits the
//! service's answer alongside its sockets.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::registry::Statement;
use crate::approvals::protocol::{statement_hash, NewRequest, Requester};
use crate::approvals::{ApprovalsClient, HoldOutcome};
use crate::pg::{ErrorFields, Frame, Severity};
use crate::policy::Action;
use crate::sql::{redact_secrets, single_text, was_redacted};

/// What the session knows about itself for approval requests.
pub struct HoldContext {
    /// The service.
    pub client: Arc<ApprovalsClient>,
    /// Who runs the session.
    pub requester: Requester,
    /// Client address.
    pub client_addr: String,
    /// Connection name.
    pub connection: String,
    /// Database upstream.
    pub database: String,
}

/// A statement to hold: the request to post and the notice to send.
#[derive(Debug, PartialEq, Eq)]
pub struct Hold {
    /// Request id.
    pub id: String,
    /// The request.
    pub request: NewRequest,
    /// What the decision must be bound to.
    pub hash: String,
    /// NoticeResponse with the approval link (mode hold; mode retry
    /// answers at once).
    pub notice: Option<Frame>,
    /// Mode retry.
    pub retry: bool,
}

/// A hold in progress in the session loop.
pub struct Held {
    /// Request id (to withdraw it).
    pub id: String,
    /// The service's answer.
    pub outcome: Pin<Box<dyn Future<Output = HoldOutcome> + Send>>,
}

impl Hold {
    /// Starts waiting for the service.
    pub fn begin(self, client: &Arc<ApprovalsClient>) -> Held {
        let c = client.clone();
        let (request, hash, retry) = (self.request, self.hash, self.retry);
        Held {
            id: self.id,
            outcome: Box::pin(async move {
                if retry {
                    c.retry(request, hash).await
                } else {
                    c.hold(request, hash).await
                }
            }),
        }
    }
}

/// The pipeline's approval state.
#[derive(Default)]
pub struct Holds {
    /// Set when a service is configured.
    pub context: Option<HoldContext>,
    /// The hash of the statement being held, with its request id.
    holding: Option<(String, String)>,
    /// An approved statement hash, used by the next run of that text.
    grant: Option<String>,
    /// The answer for the held message when it was not approved.
    refusal: Option<ErrorFields>,
    /// An extended-protocol batch being collected up to its Sync.
    collect: Option<Collect>,
    /// The held batch's messages, replayed when the hold ends.
    parked: Vec<Frame>,
    /// Messages to replay now.
    replay: std::collections::VecDeque<Frame>,
    /// One Bind of an approved prepared statement may pass.
    bind_grant: bool,
    /// The last approval (request id, approvers), for the record of the
    /// run it allows.
    approval: Option<(String, Vec<String>)>,
}

/// An extended-protocol batch that starts with a Parse needing approval,
/// collected up to its Sync so the approver sees the bound parameters.
pub struct Collect {
    /// The statement.
    pub stmt: Arc<Statement>,
    /// Its name.
    pub name: Vec<u8>,
    /// The batch's messages, Parse first.
    pub frames: Vec<Frame>,
    /// Text form of the first Bind's parameters.
    pub params: Option<Vec<Option<String>>>,
    /// Binds of the statement in the batch.
    pub binds: usize,
    /// Another Parse came in the same batch.
    pub other_parse: bool,
}

/// What approval does to a decided statement.
#[derive(Debug)]
pub enum Approval {
    /// Nothing to do: the stages decide (allow, deny, or an approval the
    /// gateway cannot hold, which the policy stage refuses).
    None,
    /// Hold it.
    Hold(Box<Hold>),
}

impl Holds {
    /// Whether the held message is to be refused.
    pub fn has_refusal(&self) -> bool {
        self.refusal.is_some()
    }

    /// The refusal to answer the held message with, if it was not approved.
    pub fn take_refusal(&mut self) -> Option<ErrorFields> {
        self.refusal.take()
    }

    /// Whether `stmt` is to be held (an approve decision in mode hold with
    /// approver groups, and a service configured).
    pub fn holdable(&self, stmt: &Statement) -> bool {
        let d = &stmt.verdict.decision;
        d.action == Action::Approve
            && self.context.is_some()
            && d.approval.as_ref().is_some_and(|s| {
                matches!(s.mode.as_str(), "hold" | "retry") && !s.groups.is_empty()
            })
    }

    /// The approved run of `stmt`, when its text was just approved (the
    /// grant is used up). `bind`: a Bind of it may follow (extended
    /// protocol).
    pub fn granted(&mut self, stmt: &Statement, bind: bool) -> Option<Arc<Statement>> {
        if self.grant.is_none() || !self.holdable(stmt) {
            return None;
        }
        let hash = statement_hash(&stmt.text, &[]);
        if self.grant.as_deref() != Some(hash.as_str()) {
            return None;
        }
        self.grant = None;
        self.bind_grant = bind;
        Some(Arc::new(Statement {
            text: stmt.text.clone(),
            verdict: stmt.verdict.clone(),
            effect: stmt.effect,
            approved: true,
            catalog: stmt.catalog,
            settings: stmt.settings,
        }))
    }

    /// The approval (request id, approvers) of the statement just granted,
    /// for its record.
    pub fn take_approval(&mut self) -> Option<(String, Vec<String>)> {
        self.approval.take()
    }

    /// Whether a Bind of an approved statement may pass (once).
    pub fn take_bind_grant(&mut self) -> bool {
        std::mem::take(&mut self.bind_grant)
    }

    /// Starts collecting an extended-protocol batch.
    pub fn collect(&mut self, c: Collect) {
        self.collect = Some(c);
    }

    /// The batch being collected.
    pub fn collecting(&mut self) -> Option<&mut Collect> {
        self.collect.as_mut()
    }

    /// Ends collecting.
    pub fn take_collect(&mut self) -> Option<Collect> {
        self.collect.take()
    }

    /// Keeps a held batch's messages until the hold ends.
    pub fn park(&mut self, frames: Vec<Frame>) {
        self.parked = frames;
    }

    /// Refuses a collected batch at once: its messages are replayed with
    /// the refusal answering its Parse.
    pub fn refuse_batch(&mut self, error: ErrorFields, frames: Vec<Frame>) {
        self.refusal = Some(error);
        self.replay = frames.into();
    }

    /// The next message to replay.
    pub fn next_replay(&mut self) -> Option<Frame> {
        self.replay.pop_front()
    }

    /// Puts a message back at the front of the replay.
    pub fn unshift_replay(&mut self, f: Frame) {
        self.replay.push_front(f);
    }

    /// Whether messages wait to be replayed.
    pub fn has_replay(&self) -> bool {
        !self.replay.is_empty()
    }

    /// What to do with `stmt`, run with `params` (empty for a simple
    /// Query): hold it (or nothing, when it is not to be held).
    pub fn start(&mut self, stmt: &Arc<Statement>, params: &[Option<String>]) -> Approval {
        if !self.holdable(stmt) {
            return Approval::None;
        }
        let d = &stmt.verdict.decision;
        let (Some(ctx), Some(spec)) = (&self.context, d.approval.as_ref()) else {
            return Approval::None;
        };
        // Approvers see (and the decision binds) the text with its
        // secrets redacted.
        let shown = redact_secrets(&stmt.text, stmt.settings, Some(&stmt.verdict.statements));
        // A text shown redacted stands for every text redacted the same
        // way: a retry-mode grant (consumed by the hash of what approvers
        // saw) would cover them all, so such a statement is always held;
        // its grant stays bound to its own text.
        let secret = was_redacted(&shown, &stmt.text);
        let retry = spec.mode == "retry" && !secret;
        let hash = statement_hash(&shown, params);
        let id = uuid::Uuid::now_v7().to_string();
        let timeout = spec
            .timeout
            .as_deref()
            .and_then(|t| humantime::parse_duration(t).ok())
            .unwrap_or(ctx.client.timeout);
        let link = ctx.client.link(&id);
        let reasons = d.reasons.join("; ");
        let notice = ErrorFields::new(
            Severity::Notice,
            "00000",
            format!("portcullis: waiting for approval: {link}"),
        )
        .with_detail(if reasons.is_empty() {
            "the policy requires approval".to_string()
        } else {
            reasons
        })
        .with_hint(format!(
            "approvers: {} (quorum {}); cancel (Ctrl-C) withdraws the request",
            spec.groups.join(", "),
            spec.quorum
        ))
        .to_frame();
        let request = NewRequest {
            id: id.clone(),
            gateway: ctx.client.gateway_id.clone(),
            requester: ctx.requester.clone(),
            client_addr: ctx.client_addr.clone(),
            connection: ctx.connection.clone(),
            database: ctx.database.clone(),
            statement: shown.into_owned(),
            params: params.to_vec(),
            facts: shown_facts(stmt),
            reasons: d.reasons.clone(),
            groups: spec.groups.clone(),
            quorum: spec.quorum.max(1),
            expires_in: timeout.as_secs().max(1),
            mode: if retry { "retry" } else { "hold" }.to_string(),
        };
        self.holding = Some((id.clone(), statement_hash(&stmt.text, &[])));
        Approval::Hold(Box::new(Hold {
            id,
            request,
            hash,
            notice: (!retry).then_some(notice),
            retry,
        }))
    }

    /// The service answered (or the client cancelled: `None`).
    pub fn finish(&mut self, outcome: Option<HoldOutcome>) {
        let Some((id, hash)) = self.holding.take() else {
            return;
        };
        self.replay = std::mem::take(&mut self.parked).into();
        let refuse = |message: String| Some(ErrorFields::new(Severity::Error, "42501", message));
        self.refusal = match outcome {
            Some(HoldOutcome::Approved { approvers }) => {
                tracing::info!(request = %id, approvers = ?approvers, "statement approved");
                self.grant = Some(hash);
                self.approval = Some((id, approvers));
                None
            }
            Some(HoldOutcome::Rejected { approvers, comment }) => {
                tracing::info!(request = %id, approvers = ?approvers, "statement rejected");
                let by = approvers.join(", ");
                refuse(if comment.is_empty() {
                    format!("portcullis: statement rejected by {by}")
                } else {
                    format!("portcullis: statement rejected by {by}: {comment}")
                })
            }
            Some(HoldOutcome::Expired) => refuse(
                "portcullis: statement not approved in time (the approval request expired)".into(),
            ),
            Some(HoldOutcome::Requested { link }) => refuse(format!(
                "portcullis: approval required: {link} (run the statement again once it is approved)"
            )),
            Some(HoldOutcome::Failed(why)) => {
                refuse(format!("portcullis: approval could not be obtained: {why}"))
            }
            None => Some(ErrorFields::new(
                Severity::Error,
                "57014",
                "canceling statement due to user request",
            )),
        };
    }
}

/// What approvers see of a parse error in a text with secrets.
const PARSE_ERROR_WITHHELD: &str = "[withheld: the parser's message may quote a secret]";

/// The statement's facts as approvers see them: each statement's text
/// with its secrets redacted.
fn shown_facts(stmt: &Statement) -> serde_json::Value {
    let facts = &stmt.verdict.statements;
    // A verdict from the template cache is an earlier text's, with its
    // literals: a lone statement's text is taken from this one.
    let own = (facts.len() == 1).then(|| single_text(&stmt.text));
    let shown: Vec<_> = facts
        .iter()
        .map(|f| {
            let original = own.unwrap_or(&f.text);
            let text = redact_secrets(original, stmt.settings, Some(std::slice::from_ref(f)));
            let changed = was_redacted(&text, original);
            let mut f = f.clone();
            if changed && f.parse_error.is_some() {
                // The parser's message quotes the text near the error.
                f.parse_error = Some(PARSE_ERROR_WITHHELD.into());
            }
            f.text = text.into_owned();
            f
        })
        .collect();
    serde_json::to_value(shown).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmt(text: &str) -> Statement {
        Statement::allowed(text)
    }

    #[test]
    fn approvers_see_facts_without_secrets() {
        let facts = shown_facts(&stmt("SELECT 1; ALTER ROLE x PASSWORD 'pw-1'"));
        assert_eq!(facts[0]["text"], "SELECT 1");
        assert_eq!(facts[1]["text"], "ALTER ROLE x PASSWORD '[redacted]'");
        // The parser's message would quote the text near the error.
        let facts = shown_facts(&stmt(r#"ALTER ROLE x PASSWORD "pw-1""#));
        assert_eq!(facts[0]["parse_error"], PARSE_ERROR_WITHHELD);
        assert_eq!(facts[0]["text"], r#"ALTER ROLE x PASSWORD "[redacted]""#);
        assert!(!facts.to_string().contains("pw-1"), "{facts}");
        // Facts from the template cache: an earlier text's literals.
        let mut s = stmt("SELECT * FROM t WHERE id = 2;");
        s.verdict = Arc::new(crate::session::decide::Verdict {
            decision: crate::policy::Decision::allow(),
            statements: crate::sql::analyze("SELECT * FROM t WHERE id = 1", Default::default()),
            policy_hash: String::new(),
        });
        assert_eq!(shown_facts(&s)[0]["text"], "SELECT * FROM t WHERE id = 2");
        // Nothing to hide: the facts as they are.
        let facts = shown_facts(&stmt("SELEC 1"));
        assert!(facts[0]["parse_error"]
            .as_str()
            .is_some_and(|e| e.contains("SELEC")));
    }
}
