//! The in-flight queue: for every message forwarded upstream, what it
//! expects back. Each backend message is attributed to the entry at the
//! front; entries leave the queue as their responses complete, exactly as
//! the server processes the pipeline (including skipping to Sync after an
//! error in the extended protocol).

use std::collections::VecDeque;
use std::sync::Arc;

use super::registry::{Effect, Statement, Undo};
use crate::pg::ErrorFields;

/// What one forwarded message expects back.
#[derive(Debug)]
pub enum Expect {
    /// Simple Query: results, then ReadyForQuery.
    Query(Arc<Statement>),
    /// The side-effect-free stand-in for a refused message: its
    /// ErrorResponse is replaced by `error`. `simple`: a Query stand-in
    /// (ends at ReadyForQuery); else a Parse stand-in (extended protocol).
    Refused {
        /// What the client gets instead of the stand-in's error.
        error: ErrorFields,
        /// Query stand-in (true) or Parse stand-in (false).
        simple: bool,
        /// A Parse stand-in for the unnamed statement (which the server
        /// drops when the stand-in fails).
        unnamed: bool,
    },
    /// ParseComplete (with how to undo the registry change).
    Parse(Undo),
    /// BindComplete (with how to undo the registry change).
    Bind(Undo),
    /// [ParameterDescription] RowDescription | NoData.
    Describe,
    /// RowDescription | NoData of the gateway's own Describe of a portal
    /// whose results are masked (not relayed; see the mask stage).
    MaskDescribe(Arc<Statement>),
    /// Rows, then CommandComplete | EmptyQueryResponse | PortalSuspended;
    /// with the portal's bound parameters (text form) when recording.
    Execute(Option<Arc<Statement>>, Option<Arc<[Option<String>]>>),
    /// CloseComplete (with how to undo the registry change).
    Close(Undo),
    /// ReadyForQuery.
    Sync,
    /// A Query the gateway sent on its own account (keeping the user in
    /// `application_name`): its answers, up to ReadyForQuery, are dropped.
    Internal,
}

impl Expect {
    /// Whether this entry ends with ReadyForQuery.
    pub fn ends_at_ready(&self) -> bool {
        matches!(
            self,
            Self::Query(_) | Self::Sync | Self::Internal | Self::Refused { simple: true, .. }
        )
    }

    /// Whether the server skips to Sync after an error in this entry.
    pub fn extended(&self) -> bool {
        matches!(
            self,
            Self::Parse(_)
                | Self::Bind(_)
                | Self::Describe
                | Self::MaskDescribe(_)
                | Self::Execute(..)
                | Self::Close(_)
                | Self::Refused { simple: false, .. }
        )
    }
}

/// One queue entry: the expectation and, for entries that end at
/// ReadyForQuery, the effect of the work since the previous one.
#[derive(Debug)]
pub struct Entry {
    /// What is expected.
    pub expect: Expect,
    /// Effect settled by this entry's ReadyForQuery.
    pub effect: Effect,
    /// When its message went upstream (the record's duration starts here).
    pub sent: std::time::Instant,
}

/// The queue, with the effects still unsettled.
#[derive(Default, Debug)]
pub struct InFlight {
    queue: VecDeque<Entry>,
    /// Effect of extended-protocol work forwarded since the last Sync.
    open: Effect,
    /// Entries in the queue whose ReadyForQuery settles a transaction
    /// change / a settings change.
    pending_tx: usize,
    pending_settings: usize,
}

impl InFlight {
    /// Adds an entry for a forwarded message. `effect` is what running it
    /// may change.
    pub fn push(&mut self, expect: Expect, effect: Effect) {
        let effect = if expect.ends_at_ready() {
            let e = std::mem::take(&mut self.open).then(effect);
            self.pending_tx += usize::from(e.tx.is_some());
            self.pending_settings += usize::from(e.settings);
            e
        } else {
            self.open = self.open.then(effect);
            Effect::default()
        };
        self.queue.push_back(Entry {
            expect,
            effect,
            sent: std::time::Instant::now(),
        });
    }

    /// The entry responses are attributed to.
    pub fn front(&self) -> Option<&Entry> {
        self.queue.front()
    }

    /// Removes the front entry.
    pub fn pop(&mut self) -> Option<Entry> {
        let e = self.queue.pop_front()?;
        self.pending_tx -= usize::from(e.effect.tx.is_some());
        self.pending_settings -= usize::from(e.effect.settings);
        Some(e)
    }

    /// ReadyForQuery arrived: removes entries up to and including the
    /// first that ends at ReadyForQuery.
    /// Portal names bound by messages queued behind the first entry that
    /// ends at ReadyForQuery (forwarded after that Sync or Query: the
    /// transaction it ends does not take their portals).
    pub fn later_binds(&self) -> Vec<&[u8]> {
        self.queue
            .iter()
            .skip_while(|e| !e.expect.ends_at_ready())
            .skip(1)
            .filter_map(|e| match &e.expect {
                Expect::Bind(Undo::Portal(name, _)) => Some(&name[..]),
                _ => None,
            })
            .collect()
    }

    /// ReadyForQuery arrived: the entries up to the first that ends there go.
    pub fn ready(&mut self) {
        while let Some(e) = self.pop() {
            if e.expect.ends_at_ready() {
                break;
            }
        }
    }

    /// An error in an extended-protocol entry: the server skips every
    /// message until Sync, so their entries go. Returns false when no Sync
    /// is queued: the server then also skips what the client sends next,
    /// up to its next Sync.
    pub fn skip_to_sync(&mut self) -> (bool, Vec<Expect>) {
        let mut skipped = Vec::new();
        while self
            .queue
            .front()
            .is_some_and(|e| !matches!(e.expect, Expect::Sync))
        {
            if let Some(e) = self.pop() {
                skipped.push(e.expect);
            }
        }
        (!self.queue.is_empty(), skipped)
    }

    /// The server entered COPY IN for the front entry: it ignores Sync
    /// (and Flush) until the copy ends, so Sync entries queued right
    /// behind it will get no answer.
    pub fn copy_in_started(&mut self) {
        while self.queue.len() > 1 {
            if matches!(self.queue[1].expect, Expect::Sync) {
                if let Some(e) = self.queue.remove(1) {
                    self.pending_tx -= usize::from(e.effect.tx.is_some());
                    self.pending_settings -= usize::from(e.effect.settings);
                    self.open = self.open.then(e.effect);
                }
            } else {
                break;
            }
        }
    }

    /// Work was forwarded since the last message that ends at
    /// ReadyForQuery (no answer will settle it before the next message).
    pub fn has_open_work(&self) -> bool {
        self.queue.back().is_some_and(|e| !e.expect.ends_at_ready())
    }

    /// Transaction state predicted for the next message: `Some` when the
    /// work in flight changes it (the last change wins).
    pub fn predicted_tx(&self) -> Option<bool> {
        self.open
            .tx
            .or_else(|| self.queue.iter().rev().find_map(|e| e.effect.tx))
    }

    /// A transaction change is in flight whose ReadyForQuery has not come.
    pub fn tx_unsettled(&self) -> bool {
        self.pending_tx > 0
    }

    /// A settings change is in flight whose ReadyForQuery has not come.
    pub fn settings_unsettled(&self) -> bool {
        self.pending_settings > 0
    }

    /// A settings change was forwarded since the last Sync (no
    /// ReadyForQuery will report it before the next message runs).
    pub fn settings_open(&self) -> bool {
        self.open.settings
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Nothing in flight.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_skips_to_sync_and_ready_settles() {
        let mut q = InFlight::default();
        let begin = Effect {
            tx: Some(true),
            settings: false,
        };
        q.push(
            Expect::Parse(Undo::Statement(Box::default(), None)),
            Effect::default(),
        );
        q.push(
            Expect::Bind(Undo::Portal(Box::default(), None)),
            Effect::default(),
        );
        q.push(Expect::Execute(None, None), begin);
        assert_eq!(q.predicted_tx(), Some(true));
        assert!(!q.tx_unsettled(), "no Sync forwarded yet");
        q.push(Expect::Sync, Effect::default());
        assert!(q.tx_unsettled());
        q.push(
            Expect::Parse(Undo::Statement(Box::default(), None)),
            Effect::default(),
        );
        q.push(Expect::Sync, Effect::default());
        q.pop();
        assert_eq!(q.skip_to_sync().1.len(), 2);
        assert!(matches!(q.front().map(|e| &e.expect), Some(Expect::Sync)));
        q.ready();
        assert!(!q.tx_unsettled());
        assert_eq!(q.predicted_tx(), None);
        assert_eq!(q.len(), 2);
        q.pop();
        q.ready();
        assert!(q.is_empty());
    }
}
