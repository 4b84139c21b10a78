//! The I/O loop of an established session: one task, one `select!` over
//! the client socket, the upstream socket, pending writes both ways and the
//! session's control channel (a CancelRequest aimed at it). Frames go to
//! the [`Pipeline`]; only `pg/` reads their bytes.
//!
//! Writes are polled alongside reads, with a bound on what is buffered
//! each way, so a client that pipelines a lot while the server answers a
//! lot cannot deadlock the session.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::hold::Held;
use super::pipeline::{Pipeline, Relay, Step};
use super::startup::Ready;
use super::{Control, SessionError, Shared};
use crate::approvals::{ApprovalsClient, HoldOutcome};
use crate::pg::{peek_frame, split_frame, CodecError, ErrorFields, Frame, Severity};

/// Largest message accepted from the database (Postgres' own limit).
const MAX_BACKEND_MESSAGE: usize = (1 << 30) + 1024;
/// Stop reading a side while this much is waiting to be written to the
/// other.
const HIGH_WATER: usize = 256 * 1024;

/// Why the loop ended.
enum End {
    /// Client sent Terminate or closed.
    Client,
    /// The server ended the session (its FATAL relayed) or closed.
    Server,
    /// The gateway is shutting down.
    Shutdown,
    /// A protocol or I/O error; the client may get a FATAL.
    Error(&'static str, SessionError),
}

/// Runs a session until either side ends it.
pub async fn run(ready: Ready, shared: Arc<Shared>) {
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
        pipeline,
        session_id,
        control,
        ..
    } = ready;
    let mut control = control;
    let mut pipeline = pipeline;
    let max = shared.config.gateway.max_message_bytes;
    let (mut crd, mut cwr) = tokio::io::split(client);
    let (mut urd, mut uwr) = tokio::io::split(upstream.stream);
    let mut cbuf = BytesMut::with_capacity(16 * 1024);
    let mut ubuf = upstream.leftover;
    let mut to_up = BytesMut::with_capacity(16 * 1024);
    let mut to_client = BytesMut::with_capacity(16 * 1024);
    let mut waiting: Option<Frame> = None;
    let mut terminated = false;
    let mut held: Option<Held> = None;
    let mut durable: Option<Durable> = None;
    let approvals = shared.approvals.clone();
    macro_rules! sink {
        () => {
            Sink {
                up: &mut to_up,
                down: &mut to_client,
                waiting: &mut waiting,
                terminated: &mut terminated,
                held: &mut held,
                approvals: approvals.as_ref(),
            }
        };
    }

    // Anything the server sent right after login.
    let mut end = server_frames(&mut ubuf, &mut pipeline, &mut to_client).err();
    while end.is_none() {
        if ubuf.capacity() - ubuf.len() < 4096 {
            ubuf.reserve(32 * 1024);
        }
        if cbuf.capacity() - cbuf.len() < 4096 {
            cbuf.reserve(16 * 1024);
        }
        // While a statement is held the client is still read (buffered,
        // not processed) so a disconnect is noticed and withdraws it.
        let read_client = (waiting.is_none() || (held.is_some() && cbuf.len() < HIGH_WATER))
            && !terminated
            && to_up.len() < HIGH_WATER;
        let read_server = to_client.len() < HIGH_WATER;
        tokio::select! {
            biased;
            r = uwr.write(&to_up), if !to_up.is_empty() => match r {
                Ok(n) => {
                    to_up.advance(n);
                    if to_up.is_empty() {
                        if let Err(e) = uwr.flush().await {
                            end = Some(End::Error("database", CodecError::from(e).into()));
                        } else if terminated {
                            end = Some(End::Client);
                        }
                    }
                }
                Err(e) => end = Some(End::Error("database", CodecError::from(e).into())),
            },
            _ = wait_durable(&mut durable), if durable.is_some() => {
                durable = None;
            },
            r = cwr.write(&to_client), if !to_client.is_empty() && durable.is_none() => match r {
                Ok(n) => {
                    to_client.advance(n);
                    if to_client.is_empty() {
                        if let Err(e) = cwr.flush().await {
                            end = Some(End::Error("client", CodecError::from(e).into()));
                        } else if pipeline.closing() {
                            end = Some(End::Server);
                        }
                    }
                }
                Err(e) => end = Some(End::Error("client", CodecError::from(e).into())),
            },
            r = urd.read_buf(&mut ubuf), if read_server => match r {
                Ok(0) => end = Some(End::Server),
                Ok(_) => {
                    end = server_frames(&mut ubuf, &mut pipeline, &mut to_client).err();
                    // Strict audit: what the client gets now (its
                    // ReadyForQuery too) waits until the records are
                    // committed.
                    let acks = pipeline.take_acks();
                    if !acks.is_empty() {
                        let before = durable.take();
                        durable = Some(Box::pin(async move {
                            if let Some(b) = before {
                                b.await;
                            }
                            for a in acks {
                                let _ = a.await;
                            }
                        }));
                    }
                    if let Some(own) = pipeline.take_injected() {
                        to_up.extend_from_slice(&own);
                    }
                    if end.is_none() && held.is_none() {
                        if let Some(f) = waiting.take() {
                            end = client_frames(Some(f), &mut cbuf, max, &mut pipeline, sink!()).err();
                        }
                    }
                }
                Err(e) => end = Some(End::Error("database", CodecError::from(e).into())),
            },
            r = crd.read_buf(&mut cbuf), if read_client => match r {
                Ok(0) => {
                    end = Some(if cbuf.is_empty() {
                        End::Client
                    } else {
                        End::Error("client", CodecError::Truncated.into())
                    })
                }
                Ok(_) if held.is_some() => {}
                Ok(_) => {
                    end = client_frames(None, &mut cbuf, max, &mut pipeline, sink!()).err();
                }
                Err(e) => end = Some(End::Error("client", CodecError::from(e).into())),
            },
            outcome = hold_outcome(&mut held), if held.is_some() => {
                held = None;
                pipeline.hold_finished(Some(outcome));
                if let Some(f) = waiting.take() {
                    end = client_frames(Some(f), &mut cbuf, max, &mut pipeline, sink!()).err();
                }
            },
            Some(c) = control.recv() => match c {
                Control::Cancel if held.is_some() => {
                    // The client's own cancel key: withdraw the request and
                    // answer as Postgres answers a cancelled statement.
                    if let (Some(h), Some(a)) = (held.take(), &approvals) {
                        a.withdraw(h.id);
                    }
                    pipeline.hold_finished(None);
                    if let Some(f) = waiting.take() {
                        end = client_frames(Some(f), &mut cbuf, max, &mut pipeline, sink!()).err();
                    }
                }
                Control::Cancel => {
                    let (conn, key) = (conn.clone(), upstream.key);
                    tokio::spawn(async move {
                        if let Err(e) = super::upstream::cancel(&conn, key).await {
                            tracing::warn!(error = %e, "cancel request could not be forwarded");
                        }
                    });
                }
                Control::Shutdown => end = Some(End::Shutdown),
                Control::Draining => {
                    if let (Some(h), Some(a)) = (held.take(), &approvals) {
                        a.withdraw(h.id);
                        pipeline.hold_finished(Some(HoldOutcome::Failed(
                            "the gateway is shutting down; run the statement again later".into(),
                        )));
                        if let Some(f) = waiting.take() {
                            end = client_frames(Some(f), &mut cbuf, max, &mut pipeline, sink!()).err();
                        }
                    }
                }
            },
        }
        if terminated && to_up.is_empty() && end.is_none() {
            end = Some(End::Client);
        }
    }
    if let (Some(h), Some(a)) = (held.take(), &approvals) {
        tracing::info!(session = %session_id, request = %h.id, "withdrawing the approval request of a session that ended");
        a.withdraw(h.id);
    }
    pipeline.record_end(&match &end {
        Some(End::Client) | None => "client closed the session".to_string(),
        Some(End::Server) => "the server closed the session".to_string(),
        Some(End::Shutdown) => "gateway shutdown".to_string(),
        Some(End::Error(side, err)) => format!("{side} error: {err}"),
    });
    match end {
        Some(End::Server) => {
            // Exactly what the server sent (its FATAL, if any), then close.
            let _ = cwr.write_all(&to_client).await;
            let _ = cwr.flush().await;
        }
        Some(End::Shutdown) => {
            // As Postgres does on a fast shutdown: FATAL 57P01 to the
            // client, Terminate to the database.
            let fatal = ErrorFields::new(
                Severity::Fatal,
                "57P01",
                "terminating connection because the gateway is shutting down",
            );
            let _ = cwr.write_all(&to_client).await;
            let _ = cwr.write_all(&fatal.to_frame().to_bytes()).await;
            let _ = cwr.flush().await;
            if pipeline.in_flight() > 0 {
                // Stop what runs, so the backend reads the Terminate.
                let _ = super::upstream::cancel(&conn, upstream.key).await;
            }
            let _ = uwr.write_all(&to_up).await;
            let _ = uwr
                .write_all(&Frame::new(b'X', bytes::Bytes::new()).to_bytes())
                .await;
            let _ = uwr.flush().await;
            tracing::info!(session = %session_id, "session closed by gateway shutdown");
        }
        Some(End::Error(side, err)) => {
            if let Some(fields) = err.to_error() {
                let _ = cwr.write_all(&to_client).await;
                let _ = cwr.write_all(&fields.to_frame().to_bytes()).await;
                let _ = cwr.flush().await;
            }
            tracing::info!(session = %session_id, side, error = %err, "session ended with an error");
        }
        _ => {
            let _ = uwr.write_all(&to_up).await;
            let _ = uwr.flush().await;
        }
    }
    let _ = cwr.shutdown().await;
    shared.cancels.remove(key);
    shared
        .metrics
        .connections_active
        .fetch_sub(1, Ordering::Relaxed);
    let c = pipeline.counts();
    tracing::info!(
        session = %session_id,
        user = %identity.display(),
        connection = %conn.name,
        admitted = c.admitted,
        refused = c.refused,
        completed = c.completed,
        rows = c.rows,
        "session ended"
    );
}

/// Records the client's next output waits for (strict audit).
type Durable = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

async fn wait_durable(d: &mut Option<Durable>) {
    if let Some(f) = d.as_mut() {
        f.await;
    }
}

/// Feeds every complete backend frame in `buf` to the pipeline; frames
/// relayed unchanged are copied to `out` in runs, not one by one.
fn server_frames(
    buf: &mut BytesMut,
    pipeline: &mut Pipeline,
    out: &mut BytesMut,
) -> Result<(), End> {
    let mut pos = 0;
    let mut run = 0;
    while let Some((_, total)) = peek_frame(&buf[pos..], MAX_BACKEND_MESSAGE)
        .map_err(|e| End::Error("database", e.into()))?
    {
        let end = pos + total;
        if buf.len() < end {
            buf.reserve((end - buf.len()).min(crate::pg::READ_CHUNK));
            break;
        }
        match pipeline
            .server(&buf[pos..end])
            .map_err(|e| End::Error("database", e))?
        {
            Relay::Forward => {}
            Relay::Replace(frame) => {
                out.extend_from_slice(&buf[run..pos]);
                frame.encode(out);
                run = end;
            }
            Relay::Drop => {
                out.extend_from_slice(&buf[run..pos]);
                run = end;
            }
        }
        pos = end;
        if pipeline.closing() {
            break;
        }
    }
    out.extend_from_slice(&buf[run..pos]);
    buf.advance(pos);
    Ok(())
}

/// Where client frames go: upstream, and what the loop keeps.
struct Sink<'a> {
    up: &'a mut BytesMut,
    down: &'a mut BytesMut,
    waiting: &'a mut Option<Frame>,
    terminated: &'a mut bool,
    held: &'a mut Option<Held>,
    approvals: Option<&'a Arc<ApprovalsClient>>,
}

/// Feeds client frames (first `first`, then those in `buf`) to the
/// pipeline until one must wait or be held, or the client terminates.
fn client_frames(
    first: Option<Frame>,
    buf: &mut BytesMut,
    max: usize,
    pipeline: &mut Pipeline,
    sink: Sink<'_>,
) -> Result<(), End> {
    let Sink {
        up,
        down,
        waiting,
        terminated,
        held,
        approvals,
    } = sink;
    let mut next = first;
    loop {
        let frame = match next.take() {
            Some(f) => f,
            None => match split_frame(buf, max).map_err(|e| End::Error("client", e.into()))? {
                Some(f) => f,
                None => return Ok(()),
            },
        };
        match pipeline
            .client(&frame, up)
            .map_err(|e| End::Error("client", e))?
        {
            Step::Continue => {}
            Step::Wait => {
                *waiting = Some(frame);
                return Ok(());
            }
            Step::Terminate => {
                *terminated = true;
                return Ok(());
            }
            Step::Hold(hold) => {
                // The notice goes out now; the message waits for the
                // service's answer.
                if let Some(n) = &hold.notice {
                    n.encode(down);
                }
                let Some(client) = approvals else {
                    pipeline
                        .hold_finished(Some(HoldOutcome::Failed("no approvals service".into())));
                    next = Some(frame);
                    continue;
                };
                *held = Some(hold.begin(client));
                *waiting = Some(frame);
                return Ok(());
            }
        }
    }
}

/// The held statement's outcome (never ready when nothing is held).
async fn hold_outcome(held: &mut Option<Held>) -> HoldOutcome {
    match held {
        Some(h) => h.outcome.as_mut().await,
        None => std::future::pending().await,
    }
}
