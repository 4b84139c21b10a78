//! The relay loop of an established session.
//!
//! Frontend (client → database): every message type is handled explicitly;
//! Query and Parse are decided before anything is forwarded. A refused
//! statement is replaced by a *poison* message (a Query or Describe naming
//! a per-session marker) that fails upstream without side effects, so the
//! database itself produces the error at exactly the right place in the
//! pipeline, rolls back or aborts as Postgres would, and discards the rest
//! of an extended-protocol batch until Sync. The backend half swaps that
//! error for the gateway's 42501 ErrorResponse.
//!
//! Backend (database → client): frames are relayed in bulk, looking only
//! at ReadyForQuery (transaction state), ParameterStatus
//! (`standard_conforming_strings`, which changes how SQL is parsed) and,
//! when a refusal is pending, ErrorResponse.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use super::decide::Decider;
use super::startup::Ready;
use super::stream::BoxStream;
use super::{SessionError, Shared};
use crate::pg::parse::Parse;
use crate::pg::{
    describe, param_status, peek_frame, query, split_frame, CodecError, ErrorFields, Frame,
    Severity,
};
use crate::policy::Action;
use crate::sql::ParseSettings;

/// Largest message accepted from the database (Postgres' own limit).
const MAX_BACKEND_MESSAGE: usize = (1 << 30) + 1024;

/// State both halves of a session share.
struct SessionState {
    /// Refusals waiting for their poison's error: (batch, error).
    refusals: Mutex<VecDeque<(u64, ErrorFields)>>,
    pending: AtomicU64,
    /// Last ReadyForQuery status byte.
    tx: AtomicU8,
    /// `standard_conforming_strings` is off in the session.
    std_strings_off: AtomicBool,
    /// Marker naming the poison messages of this session.
    marker: String,
}

type ClientWriter = Arc<tokio::sync::Mutex<WriteHalf<BoxStream>>>;

/// Runs a session until either side ends it.
pub async fn run(ready: Ready, shared: Arc<Shared>) {
    let session_id = uuid::Uuid::now_v7().to_string();
    shared
        .metrics
        .connections_active
        .fetch_add(1, Ordering::Relaxed);
    let Ready {
        client,
        identity,
        conn,
        upstream,
        key,
        peer,
        application_name,
    } = ready;
    let decider = Decider::new(
        shared.clone(),
        &identity,
        &conn,
        &peer.ip().to_string(),
        &application_name,
        &session_id,
    );
    let state = Arc::new(SessionState {
        refusals: Mutex::new(VecDeque::new()),
        pending: AtomicU64::new(0),
        tx: AtomicU8::new(b'I'),
        std_strings_off: AtomicBool::new(false),
        marker: format!("portcullis_denied_{:016x}", rand::random::<u64>()),
    });
    let (client_rd, client_wr) = tokio::io::split(client);
    let client_wr: ClientWriter = Arc::new(tokio::sync::Mutex::new(client_wr));
    let (up_rd, up_wr) = tokio::io::split(upstream.stream);
    let max = shared.config.gateway.max_message_bytes;

    let front = frontend(client_rd, up_wr, decider, state.clone(), max);
    let back = backend(up_rd, client_wr.clone(), state, upstream.leftover);
    let outcome = tokio::select! {
        r = front => r.map_err(|e| ("client", e)),
        r = back => r.map_err(|e| ("database", e)),
    };
    if let Err((side, err)) = &outcome {
        if let Some(fields) = err.to_error() {
            let mut w = client_wr.lock().await;
            let _ = w.write_all(&fields.to_frame().to_bytes()).await;
            let _ = w.flush().await;
        }
        tracing::info!(session = %session_id, side, error = %err, "session ended with an error");
    }
    let _ = client_wr.lock().await.shutdown().await;
    shared.cancels.remove(key);
    shared
        .metrics
        .connections_active
        .fetch_sub(1, Ordering::Relaxed);
    tracing::info!(session = %session_id, user = %identity.display(), connection = %conn.name, "session ended");
}

/// What the frontend does with one refused message.
enum Poison {
    /// Simple protocol: a Query that fails to parse.
    Query,
    /// Extended protocol: a Describe of a statement that does not exist.
    Describe,
}

struct Frontend {
    decider: Decider,
    state: Arc<SessionState>,
    /// Messages that produce one ReadyForQuery each (Query, Sync) sent.
    batches: u64,
    /// Dropping extended-protocol messages until Sync after a refusal.
    discarding: bool,
}

impl Frontend {
    fn refuse(&mut self, fields: ErrorFields, poison: Poison, out: &mut BytesMut) {
        if let Ok(mut q) = self.state.refusals.lock() {
            q.push_back((self.batches, fields));
        }
        self.state.pending.fetch_add(1, Ordering::AcqRel);
        match poison {
            Poison::Query => {
                query::to_frame(&self.state.marker).encode(out);
                self.batches += 1;
            }
            Poison::Describe => {
                describe::to_frame(b'S', &self.state.marker).encode(out);
                self.discarding = true;
            }
        }
    }

    fn decide(&mut self, sql: &str) -> Option<ErrorFields> {
        let in_tx = self.state.tx.load(Ordering::Acquire) != b'I';
        let settings = ParseSettings {
            standard_strings_off: self.state.std_strings_off.load(Ordering::Acquire),
        };
        let v = self.decider.decide(sql, in_tx, settings);
        let d = &v.decision;
        let reasons = if d.reasons.is_empty() {
            "no reason given".to_string()
        } else {
            d.reasons.join("; ")
        };
        match d.action {
            Action::Allow => None,
            Action::Deny => Some(
                ErrorFields::new(
                    Severity::Error,
                    "42501",
                    format!("portcullis: statement denied: {reasons}"),
                )
                .with_hint(format!("policy {}", v.policy_hash)),
            ),
            Action::Approve => Some(
                ErrorFields::new(
                    Severity::Error,
                    "42501",
                    "approval required: approvals service not configured",
                )
                .with_detail(reasons),
            ),
        }
    }

    /// Handles one client message, appending what goes upstream to `out`.
    /// Returns false after Terminate.
    fn handle(&mut self, frame: Frame, out: &mut BytesMut) -> Result<bool, SessionError> {
        match frame.tag {
            b'Q' => {
                let sql = query::decode(&frame.body)?;
                match self.decide(sql) {
                    None => {
                        frame.encode(out);
                        self.batches += 1;
                    }
                    Some(err) => self.refuse(err, Poison::Query, out),
                }
            }
            b'P' if !self.discarding => {
                let parse = Parse::decode(&frame.body)?;
                match self.decide(parse.sql) {
                    None => frame.encode(out),
                    Some(err) => self.refuse(err, Poison::Describe, out),
                }
            }
            // Flush is harmless and keeps a client that waits for the
            // refusal (Parse/Flush without Sync) from hanging.
            b'H' => frame.encode(out),
            b'S' => {
                self.discarding = false;
                frame.encode(out);
                self.batches += 1;
            }
            // Bind, Execute, Describe, Close, Flush only act on statements
            // that were decided when they were parsed; COPY sub-protocol
            // messages only carry data for a COPY that was decided.
            b'B' | b'E' | b'D' | b'C' | b'd' | b'c' | b'f' | b'P' => {
                if !self.discarding {
                    frame.encode(out);
                }
            }
            b'X' => {
                frame.encode(out);
                return Ok(false);
            }
            b'F' => {
                let err = ErrorFields::new(Severity::Error, "42501", "portcullis: statement denied: fast-path function calls are not allowed through the gateway");
                self.refuse(err, Poison::Query, out);
            }
            _ => {
                return Err(SessionError::Refused {
                    code: "08P01",
                    message: format!("invalid frontend message type {}", frame.tag),
                    hint: None,
                })
            }
        }
        Ok(true)
    }
}

async fn frontend(
    mut rd: ReadHalf<BoxStream>,
    mut up: WriteHalf<BoxStream>,
    decider: Decider,
    state: Arc<SessionState>,
    max: usize,
) -> Result<(), SessionError> {
    let mut fe = Frontend {
        decider,
        state,
        batches: 0,
        discarding: false,
    };
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    let mut out = BytesMut::with_capacity(16 * 1024);
    loop {
        let mut open = true;
        while open {
            match split_frame(&mut rbuf, max)? {
                Some(frame) => open = fe.handle(frame, &mut out)?,
                None => break,
            }
        }
        if !out.is_empty() {
            up.write_all(&out).await.map_err(CodecError::from)?;
            out.clear();
        }
        if !open {
            return Ok(());
        }
        if rbuf.capacity() - rbuf.len() < 4096 {
            rbuf.reserve(16 * 1024);
        }
        if rd.read_buf(&mut rbuf).await.map_err(CodecError::from)? == 0 {
            return if rbuf.is_empty() {
                Ok(())
            } else {
                Err(CodecError::Truncated.into())
            };
        }
    }
}

async fn backend<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut rd: R,
    client: Arc<tokio::sync::Mutex<W>>,
    state: Arc<SessionState>,
    mut buf: BytesMut,
) -> Result<(), SessionError> {
    let marker = state.marker.clone();
    let mut ready_seen: u64 = 0;
    loop {
        let mut pos = 0;
        let mut seg = 0;
        let mut rewritten: Option<BytesMut> = None;
        while let Some((tag, total)) = peek_frame(&buf[pos..], MAX_BACKEND_MESSAGE)? {
            let end = pos + total;
            if buf.len() < end {
                buf.reserve((end - buf.len()).min(crate::pg::READ_CHUNK));
                break;
            }
            let body = &buf[pos + 5..end];
            match tag {
                b'Z' => {
                    if let Some(&s) = body.first() {
                        state.tx.store(s, Ordering::Release);
                    }
                    ready_seen += 1;
                    if state.pending.load(Ordering::Acquire) > 0 {
                        drop_stale(&state, ready_seen);
                    }
                }
                b'S' => {
                    if let Some(off) = param_status::standard_strings_off(body) {
                        state.std_strings_off.store(off, Ordering::Release);
                    }
                }
                b'E' if state.pending.load(Ordering::Acquire) > 0
                    && contains(body, marker.as_bytes()) =>
                {
                    let replacement = state.refusals.lock().ok().and_then(|mut q| q.pop_front());
                    if let Some((_, fields)) = replacement {
                        state.pending.fetch_sub(1, Ordering::AcqRel);
                        let out = rewritten.get_or_insert_with(BytesMut::new);
                        out.extend_from_slice(&buf[seg..pos]);
                        fields.to_frame().encode(out);
                        seg = end;
                    }
                }
                _ => {}
            }
            pos = end;
        }
        if pos > 0 {
            let mut w = client.lock().await;
            match rewritten {
                Some(mut out) => {
                    out.extend_from_slice(&buf[seg..pos]);
                    w.write_all(&out).await.map_err(CodecError::from)?;
                }
                None => w.write_all(&buf[..pos]).await.map_err(CodecError::from)?,
            }
            w.flush().await.map_err(CodecError::from)?;
            drop(w);
            buf.advance(pos);
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(32 * 1024);
        }
        if rd.read_buf(&mut buf).await.map_err(CodecError::from)? == 0 {
            return Err(SessionError::Refused {
                code: "08006",
                message: "the database closed the connection".into(),
                hint: None,
            });
        }
    }
}

/// Drops refusals whose batch has ended without their poison's error (the
/// database was already discarding that batch, so it never ran the poison;
/// the client got the database's own error, as without the gateway).
fn drop_stale(state: &SessionState, ready_seen: u64) {
    if let Ok(mut q) = state.refusals.lock() {
        while q.front().is_some_and(|(batch, _)| *batch < ready_seen) {
            q.pop_front();
            state.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
