//! The session's protocol logic, without I/O: typed client messages are
//! decided and forwarded (or replaced by a side-effect-free stand-in), and
//! every backend message is attributed to the statement that produced it
//! through the in-flight queue. The I/O loop ([`super::relay`]) feeds it
//! frames and writes what it produces.
//!
//! Which state a decision sees: the transaction state and parser settings
//! that apply to that message in the pipeline. When work still in flight
//! may change them, the message waits for the server's ReadyForQuery
//! (`Step::Wait`) — only when the decision depends on them: the policy
//! reads `session.in_transaction`, or the text has a backslash or a
//! non-ASCII byte (the only texts whose reading depends on
//! `standard_conforming_strings` or `client_encoding`).

use std::sync::Arc;

use bytes::BytesMut;

use super::decide::{Decider, Verdict};
mod approval;
mod mask;

use super::hold::{Collect, Hold, HoldContext, Holds};
use super::inflight::{Expect, InFlight};
use super::registry::{Effect, Registry, Statement};
use super::stage::{Counts, PolicyStage, RecordStage, Stage};
use super::SessionError;
use crate::approvals::HoldOutcome;
use crate::audit::recorder::{Front, Recorder};
use crate::pg::backend::{error_summary, BackendMessage};
use crate::pg::encoding::TextDecoder;
use crate::pg::frontend::FrontendMessage;
use crate::pg::parse::Parse;
use crate::pg::ready::TxStatus;
use crate::pg::{param_status, query, ErrorFields, Frame, Severity};
use crate::policy::Decision;
use crate::sql::ParseSettings;

/// SQL text of the stand-in: a syntax error, so it runs nothing.
const STAND_IN: &str = "portcullis_denied";
/// SQLSTATEs a stand-in produces (syntax error; a Parse stand-in of a name
/// that exists: duplicate prepared statement; the FunctionCall stand-in:
/// undefined function).
const STAND_IN_CODES: [&[u8; 5]; 3] = [b"42601", b"42P05", b"42883"];

/// What the I/O loop does after a client message.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Read on.
    Continue,
    /// Keep this message and stop reading the client until the server
    /// catches up (call [`Pipeline::client`] with it again later).
    Wait,
    /// The client said Terminate.
    Terminate,
    /// Keep this message and hold it for approval: send the notice, post
    /// the request, and call [`Pipeline::hold_finished`] with the outcome,
    /// then [`Pipeline::client`] with the message again.
    Hold(Box<Hold>),
}

/// What the client gets for one backend message.
#[derive(Debug, PartialEq, Eq)]
pub enum Relay {
    /// The message as the server sent it (relayed in bulk with its
    /// neighbours).
    Forward,
    /// This message instead (a refusal in place of its stand-in's error, or
    /// the client's own application_name).
    Replace(Frame),
    /// Nothing (an answer to the gateway's own message).
    Drop,
}

/// Server-reported state, as of the last message processed.
struct Settled {
    tx: TxStatus,
    std_strings_off: bool,
    client_encoding: String,
    server_encoding: String,
    decoder: TextDecoder,
}

/// One session's protocol state.
pub struct Pipeline {
    decider: Decider,
    stages: Vec<Box<dyn Stage>>,
    record: RecordStage,
    registry: Registry,
    inflight: InFlight,
    settled: Settled,
    /// Dropping client messages until Sync after a refused Parse, as the
    /// server skips after an error.
    discarding: bool,
    /// application_name as sent upstream → as the client set it (the
    /// latest few, newest last).
    app_names: Vec<(String, String)>,
    /// The user shown in `application_name` upstream.
    user: String,
    /// The client changed application_name: restore the user suffix at
    /// the next idle point.
    app_dirty: bool,
    /// Messages the gateway sends upstream on its own account.
    inject: BytesMut,
    /// The server sent FATAL: relay it and close.
    closing: bool,
    /// Approval holds.
    holds: Holds,
    /// Replaying a held batch (no nested replay).
    replaying: bool,
    /// The mask stage's state for the result being relayed.
    masking: mask::Masking,
}

impl Pipeline {
    /// A pipeline for a session whose upstream reported `params` at login.
    pub fn new(
        decider: Decider,
        params: &[(String, String)],
        client_app: String,
        upstream_app: String,
        user: &str,
    ) -> Self {
        let get = |n: &str| {
            params
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let client_encoding = get("client_encoding");
        let server_encoding = get("server_encoding");
        let decoder = TextDecoder::new(&client_encoding, &server_encoding);
        Self {
            decider,
            stages: vec![Box::new(PolicyStage { approvals: false })],
            record: RecordStage::default(),
            registry: Registry::default(),
            inflight: InFlight::default(),
            settled: Settled {
                tx: TxStatus::Idle,
                std_strings_off: get("standard_conforming_strings") == "off",
                client_encoding,
                server_encoding,
                decoder,
            },
            discarding: false,
            app_names: vec![(upstream_app, client_app)],
            user: user.to_string(),
            app_dirty: false,
            inject: BytesMut::new(),
            closing: false,
            holds: Holds::default(),
            replaying: false,
            masking: mask::Masking::Off,
        }
    }

    /// Enables holding statements for approval.
    pub fn set_approvals(&mut self, context: HoldContext) {
        self.holds.context = Some(context);
        self.stages[0] = Box::new(PolicyStage { approvals: true });
    }

    /// The held message's outcome (`None`: the client cancelled it).
    pub fn hold_finished(&mut self, outcome: Option<HoldOutcome>) {
        self.holds.finish(outcome);
    }

    /// What the record hook counted.
    pub fn counts(&self) -> Counts {
        self.record.counts
    }

    /// Records this session (start record now).
    pub fn set_recorder(&mut self, mut recorder: Recorder) {
        recorder.session_start();
        self.record.recorder = Some(recorder);
    }

    /// The session ended: its end record.
    pub fn record_end(&mut self, how: &str) {
        if let Some(r) = self.record.recorder.as_mut() {
            r.session_end(how);
        }
    }

    /// Records the I/O loop must see committed before the client gets
    /// ReadyForQuery (strict durability).
    pub fn take_acks(&mut self) -> Vec<crate::audit::Ack> {
        self.record
            .recorder
            .as_mut()
            .map(|r| r.take_acks())
            .unwrap_or_default()
    }

    /// The server ended the session (FATAL relayed).
    pub fn closing(&self) -> bool {
        self.closing
    }

    /// Rewrites a login ParameterStatus for the client (its own
    /// application_name).
    pub fn client_param<'a>(&'a self, name: &str, value: &'a str) -> &'a str {
        match self.known_app_name(name, value) {
            Some(i) => &self.app_names[i].1,
            None => value,
        }
    }

    /// Where `value` is in the map of names the gateway set upstream, when
    /// `name` is application_name.
    fn known_app_name(&self, name: &str, value: &str) -> Option<usize> {
        if name != "application_name" {
            return None;
        }
        self.app_names.iter().rposition(|(u, _)| u == value)
    }

    /// Decides a statement text. `Err(None)`: wait; `Err(Some(e))`: refuse
    /// without deciding.
    fn decide(&mut self, raw: &[u8]) -> Result<Arc<Statement>, Option<ErrorFields>> {
        let sensitive = !raw.is_ascii() || raw.contains(&b'\\');
        if self.decider.policy_reads_tx() && self.inflight.tx_unsettled() {
            return Err(None);
        }
        // Inside a transaction block anything that runs may undo settings
        // (COMMIT undoes SET LOCAL, an error or ROLLBACK undoes every SET
        // of the block), so work in flight there counts as a change.
        let in_block =
            self.settled.tx != TxStatus::Idle || self.inflight.predicted_tx() == Some(true);
        let open_risk =
            self.inflight.settings_open() || (in_block && self.inflight.has_open_work());
        let pending_risk =
            self.inflight.settings_unsettled() || (in_block && !self.inflight.is_empty());
        if sensitive && pending_risk && !open_risk {
            return Err(None);
        }
        if sensitive && open_risk {
            return Err(Some(ErrorFields::new(
                Severity::Error,
                "42501",
                "portcullis: statement refused: an earlier statement in this batch may have changed \
                 client_encoding or standard_conforming_strings, so this text cannot be read as the \
                 server will read it",
            )
            .with_hint("send Sync before this statement")));
        }
        let in_tx = self
            .inflight
            .predicted_tx()
            .unwrap_or(self.settled.tx != TxStatus::Idle);
        let settings = ParseSettings {
            standard_strings_off: self.settled.std_strings_off,
        };
        let quiescent = self.settled.tx == TxStatus::Idle && self.inflight.is_empty();
        let (text, verdict): (Box<str>, Arc<Verdict>) = match self.settled.decoder.decode(raw) {
            Ok(text) => {
                let v = self.decider.decide(&text, in_tx, settings, quiescent);
                (text.into(), v)
            }
            Err(e) => (
                String::from_utf8_lossy(raw).into(),
                self.decider.refuse(Decision::deny(format!(
                    "{e} (client_encoding {})",
                    self.settled.client_encoding
                ))),
            ),
        };
        let effect = Effect::of(&verdict.statements);
        let stmt = Statement {
            text,
            verdict,
            effect,
            approved: false,
            catalog: self.decider.catalog_generation(quiescent),
            settings,
        };
        // Masking that cannot be proven refuses the statement before an
        // approver is asked.
        match self.prove_masking(&stmt) {
            Some(e) => Err(Some(e)),
            None => Ok(Arc::new(stmt)),
        }
    }

    /// Runs the stages' admission; the refusal error if one refuses.
    fn admit(&mut self, stmt: &Statement) -> Option<ErrorFields> {
        let refusal = self
            .stages
            .iter_mut()
            .find_map(|s| s.admit(stmt).err())
            .or_else(|| self.record.admit(stmt).err());
        match refusal {
            Some(e) => {
                for s in self.stages.iter_mut() {
                    s.refused(stmt, &e);
                }
                self.record.refused(stmt, &e);
                Some(e)
            }
            None => {
                if stmt.approved {
                    if let (Some(rec), Some((id, by))) =
                        (self.record.recorder.as_mut(), self.holds.take_approval())
                    {
                        rec.approved(id, by);
                    }
                }
                None
            }
        }
    }

    /// Records a refusal of a statement that was not admitted through the
    /// stages (approval rejected or expired, undecidable text).
    fn record_refusal(&mut self, text: &[u8], e: &ErrorFields) {
        if let Some(rec) = self.record.recorder.as_mut() {
            rec.refused(None, &String::from_utf8_lossy(text), e);
        }
    }

    /// A stand-in Parse of `name` whose text fails to parse, answered with
    /// `error`; the server (and the gateway) skip to Sync.
    fn refuse_parse(&mut self, name: &[u8], error: ErrorFields, up: &mut BytesMut) {
        let stand_in = Parse {
            name,
            sql: STAND_IN.as_bytes(),
            param_types: Vec::new(),
        };
        stand_in.to_frame().encode(up);
        self.inflight.push(
            Expect::Refused {
                error,
                simple: false,
                unnamed: name.is_empty(),
            },
            Effect::UNKNOWN,
        );
        self.discarding = true;
    }

    /// A stand-in Query for a refused simple-protocol message.
    fn refuse_simple(&mut self, error: ErrorFields, up: &mut BytesMut) {
        self.refuse_with(query::to_frame(STAND_IN), error, up);
    }

    /// Sends `stand_in` (a message that ends at ReadyForQuery and fails
    /// without side effects) in place of a refused one.
    fn refuse_with(&mut self, stand_in: Frame, error: ErrorFields, up: &mut BytesMut) {
        stand_in.encode(up);
        // Its error aborts an open transaction block, which undoes SETs.
        self.inflight.push(
            Expect::Refused {
                error,
                simple: true,
                unnamed: false,
            },
            Effect::UNKNOWN,
        );
    }

    /// Handles one client message, appending what goes upstream to `up`.
    pub fn client(&mut self, frame: &Frame, up: &mut BytesMut) -> Result<Step, SessionError> {
        let msg = FrontendMessage::decode(frame)?;
        if !self.replaying && self.holds.has_replay() {
            if let Some(step) = self.replay(up)? {
                return Ok(step);
            }
        }
        if let Some(step) = self.collecting(&msg, frame, up)? {
            return Ok(step);
        }
        if self.discarding && !matches!(msg, FrontendMessage::Sync | FrontendMessage::Terminate) {
            return Ok(Step::Continue);
        }
        match msg {
            FrontendMessage::Query(sql) if self.holds.has_refusal() => {
                if let Some(e) = self.holds.take_refusal() {
                    self.record_refusal(sql, &e);
                    self.refuse_simple(e, up);
                }
            }
            FrontendMessage::Query(sql) => match self.decide(sql) {
                Err(None) => return Ok(Step::Wait),
                Err(Some(e)) => {
                    self.record_refusal(sql, &e);
                    self.refuse_simple(e, up)
                }
                Ok(stmt) => match self.approval(stmt) {
                    Err(hold) => return Ok(Step::Hold(hold)),
                    Ok(stmt) => match self.admit(&stmt) {
                        Some(e) => self.refuse_simple(e, up),
                        None => {
                            frame.encode(up);
                            let effect = stmt.effect;
                            self.inflight.push(Expect::Query(stmt), effect);
                        }
                    },
                },
            },
            FrontendMessage::Parse(p) => {
                let decided = match self.holds.take_refusal() {
                    Some(e) => Err(Some(e)),
                    None => self.decide(p.sql),
                };
                if let Err(Some(e)) = &decided {
                    self.record_refusal(p.sql, e);
                }
                let refusal = match decided {
                    Err(None) => return Ok(Step::Wait),
                    Err(Some(e)) => Some(e),
                    Ok(stmt) if self.holds.holdable(&stmt) => {
                        match self.holds.granted(&stmt, true) {
                            Some(approved) => self.admit(&approved).or_else(|| {
                                frame.encode(up);
                                let undo = self.registry.prepare(p.name, approved);
                                self.inflight.push(Expect::Parse(undo), Effect::default());
                                None
                            }),
                            None => {
                                self.holds.collect(Collect {
                                    stmt,
                                    name: p.name.to_vec(),
                                    frames: vec![frame.clone()],
                                    params: None,
                                    binds: 0,
                                    other_parse: false,
                                });
                                return Ok(Step::Continue);
                            }
                        }
                    }
                    Ok(_) if self.decider.untrusted_param_type(&p.param_types).is_some() => {
                        Some(ErrorFields::new(
                            Severity::Error,
                            "42501",
                            "portcullis: statement refused: a parameter type's input or checks run user code the gateway cannot show to be read-only",
                        ))
                    }
                    Ok(stmt) => match self.admit(&stmt) {
                        Some(e) => Some(e),
                        None => {
                            frame.encode(up);
                            let undo = self.registry.prepare(p.name, stmt);
                            self.inflight.push(Expect::Parse(undo), Effect::default());
                            None
                        }
                    },
                };
                if let Some(error) = refusal {
                    // Same name, a text that fails to parse: the server
                    // errors, drops an unnamed statement as it would for
                    // the real one, and skips to Sync.
                    self.refuse_parse(p.name, error, up);
                }
            }
            FrontendMessage::Bind(b) => match self.bind_checks(b.statement) {
                Err(None) => return Ok(Step::Wait),
                Err(Some(error)) => {
                    // A Parse of a name the client never uses, whose text
                    // fails to parse: an error in the Bind's place, and the
                    // server skips to Sync.
                    self.refuse_parse(STAND_IN.as_bytes(), error, up);
                }
                Ok(()) => {
                    if self.record.recording() {
                        let params = approval::text_params(&b);
                        self.record.bound(b.portal, params);
                    }
                    let undo = self.registry.bind(b.portal, b.statement);
                    frame.encode(up);
                    self.inflight.push(Expect::Bind(undo), Effect::default());
                }
            },
            FrontendMessage::Describe { .. } => {
                frame.encode(up);
                self.inflight.push(Expect::Describe, Effect::default());
            }
            FrontendMessage::Execute { portal, .. } => {
                let stmt = self.registry.portal(portal);
                let effect = stmt.as_ref().map_or(Effect::UNKNOWN, |s| s.effect);
                self.describe_for_masking(stmt.as_ref(), portal, up);
                frame.encode(up);
                let params = self.record.params_of(portal);
                self.inflight.push(Expect::Execute(stmt, params), effect);
            }
            FrontendMessage::Close { kind, name } => {
                let undo = self.registry.close(kind, name);
                frame.encode(up);
                self.inflight.push(Expect::Close(undo), Effect::default());
            }
            FrontendMessage::Sync => {
                self.discarding = false;
                frame.encode(up);
                self.inflight.push(Expect::Sync, Effect::default());
            }
            // Flush only asks for pending output; COPY sub-protocol
            // messages carry data for a COPY that was decided.
            FrontendMessage::Flush
            | FrontendMessage::CopyData
            | FrontendMessage::CopyDone
            | FrontendMessage::CopyFail => frame.encode(up),
            FrontendMessage::FunctionCall => {
                // Stand-in: a call of function OID 0, which does not
                // exist (same message type, so an open extended batch and
                // its unnamed portal are left as they are).
                let error = ErrorFields::new(
                    Severity::Error,
                    "42501",
                    "portcullis: statement denied: fast-path function calls are not allowed through the gateway",
                );
                self.refuse_with(Frame::new(b'F', &b"\0\0\0\0\0\0\0\0\0\0"[..]), error, up);
            }
            FrontendMessage::Terminate => {
                frame.encode(up);
                return Ok(Step::Terminate);
            }
            FrontendMessage::Unknown(tag) => {
                return Err(SessionError::Refused {
                    code: "08P01",
                    message: format!("invalid frontend message type {tag}"),
                    hint: None,
                })
            }
        }
        Ok(Step::Continue)
    }

    /// Handles one backend message (`raw`: the whole frame) and says what
    /// the client gets instead of it, if anything else.
    pub fn server(&mut self, raw: &[u8]) -> Result<Relay, SessionError> {
        let msg = BackendMessage::decode(raw[0], &raw[5..])?;
        if matches!(
            self.inflight.front().map(|e| &e.expect),
            Some(Expect::Internal)
        ) {
            match msg {
                BackendMessage::ErrorResponse(body) if error_summary(body).0 => {
                    self.closing = true;
                    return Ok(Relay::Forward);
                }
                BackendMessage::ReadyForQuery(status) => {
                    self.settled.tx = status;
                    self.inflight.ready();
                }
                BackendMessage::ErrorResponse(body) => {
                    let e = crate::pg::backend::error_fields(body).ok();
                    tracing::warn!(error = ?e.map(|e| e.message), "could not restore the user in application_name");
                }
                // Its ParameterStatus is the name the gateway set.
                _ => {}
            }
            return Ok(Relay::Drop);
        }
        // The mask stage first: what follows sees rows as the client does.
        let masked = match self.inflight.front().map(|e| &e.expect) {
            Some(Expect::Query(s) | Expect::Execute(Some(s), _)) if mask::masks(s) => {
                let s = s.clone();
                self.mask(&s, false, &msg)?
            }
            Some(Expect::MaskDescribe(s)) => {
                let s = s.clone();
                self.mask(&s, true, &msg)?
            }
            Some(Expect::Execute(None, _)) if self.registry.any(mask::masks) => {
                self.mask_unattributed(&msg)
            }
            _ => mask::Masked::Same,
        };
        let rewritten;
        let shown = match &masked {
            mask::Masked::Same => Some(&msg),
            mask::Masked::Replace(f) => {
                rewritten = BackendMessage::decode(f.tag, &f.body)?;
                Some(&rewritten)
            }
            mask::Masked::Drop => None,
        };
        let front = self.inflight.front().map(|e| &e.expect);
        let stmt = match front {
            Some(Expect::Query(s)) => Some(s.as_ref()),
            Some(Expect::Execute(s, _)) => s.as_deref(),
            _ => None,
        };
        if let Some(shown) = shown {
            self.record.result(stmt, shown);
        }
        if let Some(rec) = self.record.recorder.as_mut() {
            let sent = self
                .inflight
                .front()
                .map_or_else(std::time::Instant::now, |e| e.sent);
            match (front, shown) {
                (Some(Expect::Describe | Expect::MaskDescribe(_)), _) => {
                    if let BackendMessage::RowDescription(body) = msg {
                        rec.described(body);
                    }
                }
                (Some(Expect::Query(s)), Some(shown)) => rec.observe(Front::Query(s), sent, shown),
                (Some(Expect::Execute(s, p)), Some(shown)) => {
                    rec.observe(Front::Execute(s.as_deref(), p.as_deref()), sent, shown)
                }
                _ => {}
            }
        }
        if let Some(shown) = shown {
            for s in self.stages.iter_mut() {
                s.result(stmt, shown);
            }
        }
        match msg {
            BackendMessage::ErrorResponse(body) => {
                let (fatal, code) = error_summary(body);
                if fatal {
                    self.closing = true;

                    return Ok(Relay::Forward);
                }
                let mut relay = Relay::Forward;
                // A stand-in's own error becomes the refusal; an error the
                // server gives for its own reason (e.g. an aborted
                // transaction) reaches the client as it would directly.
                if let Some(Expect::Refused { error, .. }) =
                    self.inflight.front().map(|e| &e.expect)
                {
                    if STAND_IN_CODES.contains(&&code) {
                        relay = Relay::Replace(error.to_frame());
                    }
                }
                if self.inflight.front().is_some_and(|e| e.expect.extended()) {
                    if let Some(e) = self.inflight.pop() {
                        self.failed(e.expect);
                    }
                    // The server skips the rest up to Sync: undo what those
                    // messages did to the registry, latest first. With no
                    // Sync queued it also skips what the client sends next
                    // up to its Sync: so does the gateway.
                    let (has_sync, skipped) = self.inflight.skip_to_sync();
                    for e in skipped.into_iter().rev() {
                        self.not_run(e);
                    }
                    if !has_sync {
                        self.discarding = true;
                    }
                }
                return Ok(relay);
            }
            BackendMessage::ReadyForQuery(status) => {
                self.settled.tx = status;
                if status == TxStatus::Idle {
                    let keep = self.inflight.later_binds();
                    self.registry.end_transaction(&keep);
                }
                self.inflight.ready();
                if status == TxStatus::Idle && self.inflight.is_empty() {
                    self.decider.quiescent();
                    if self.app_dirty {
                        self.restore_user_in_app_name();
                    }
                }
            }
            BackendMessage::ParameterStatus { name, value } => match name {
                "standard_conforming_strings" => self.settled.std_strings_off = value == "off",
                "client_encoding" | "server_encoding" => {
                    if name == "client_encoding" {
                        self.settled.client_encoding = value.to_string();
                    } else {
                        self.settled.server_encoding = value.to_string();
                    }
                    self.settled.decoder = TextDecoder::new(
                        &self.settled.client_encoding,
                        &self.settled.server_encoding,
                    );
                }
                "application_name" => {
                    if let Some(i) = self.known_app_name(name, value) {
                        // A name the gateway set is in force again (e.g. a
                        // ROLLBACK undid the client's rename): nothing to
                        // restore, and it is the current one.
                        let pair = self.app_names.remove(i);
                        let frame = param_status::to_frame(name, &pair.1);
                        self.app_names.push(pair);
                        self.app_dirty = false;
                        return Ok(Relay::Replace(frame));
                    }
                    // The client set its own name: it sees it as it is;
                    // upstream gets the user suffix back when idle.
                    let upstream = super::upstream_application_name(value, &self.user);
                    if self.app_names.len() >= 8 {
                        self.app_names.remove(0);
                    }
                    self.app_names.push((upstream, value.to_string()));
                    self.app_dirty = true;
                }
                _ => {}
            },
            BackendMessage::ParseComplete
            | BackendMessage::BindComplete
            | BackendMessage::CloseComplete
            | BackendMessage::NoData
            | BackendMessage::EmptyQueryResponse
            | BackendMessage::PortalSuspended => self.pop_unless_query(),
            BackendMessage::RowDescription(_) => {
                if matches!(front, Some(Expect::Describe | Expect::MaskDescribe(_))) {
                    self.inflight.pop();
                }
            }
            BackendMessage::CopyInResponse => self.inflight.copy_in_started(),
            BackendMessage::CommandComplete(_) => {
                if matches!(front, Some(Expect::Execute(..))) {
                    self.inflight.pop();
                }
            }
            _ => {}
        }

        Ok(mask::relay(masked).unwrap_or(Relay::Forward))
    }

    /// Sends `SET application_name` with the user suffix upstream (the
    /// pipeline is idle: nothing else is in flight, no transaction block).
    fn restore_user_in_app_name(&mut self) {
        self.app_dirty = false;
        let Some((upstream, _)) = self.app_names.last() else {
            return;
        };
        let sql = format!("SET application_name TO '{}'", upstream.replace('\'', "''"));
        query::to_frame(&sql).encode(&mut self.inject);
        self.inflight.push(Expect::Internal, Effect::default());
    }

    /// What the gateway sends upstream on its own account, if anything.
    pub fn take_injected(&mut self) -> Option<BytesMut> {
        (!self.inject.is_empty()).then(|| self.inject.split())
    }

    /// An extended-protocol message the server ran failed.
    fn failed(&mut self, e: Expect) {
        match e {
            Expect::Parse(u) | Expect::Bind(u) => self.registry.failed(u),
            Expect::Refused { unnamed: true, .. } => self.registry.forget_statement(b""),
            _ => {}
        }
    }

    /// A message the server skipped.
    fn not_run(&mut self, e: Expect) {
        if let Expect::Parse(u) | Expect::Bind(u) | Expect::Close(u) = e {
            self.registry.undo(u);
        }
    }

    /// A response that completes an extended-protocol entry (a simple
    /// Query's results end only at ReadyForQuery).
    fn pop_unless_query(&mut self) {
        if self
            .inflight
            .front()
            .is_some_and(|e| !e.expect.ends_at_ready())
        {
            self.inflight.pop();
        }
    }

    /// The statement a name means now (for tests).
    pub fn statement(&self, name: &[u8]) -> Option<Arc<Statement>> {
        self.registry.statement(name)
    }

    /// The statement a portal runs now (for tests).
    pub fn portal(&self, name: &[u8]) -> Option<Arc<Statement>> {
        self.registry.portal(name)
    }

    /// Entries in flight.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }
}
