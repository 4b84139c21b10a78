//! Prepared statements and portals of one session: what runs upstream is
//! exactly what was decided. A statement carries the decision of the text
//! it was prepared from; a portal carries its statement; redefining a name
//! re-decides it, Close forgets it.

use std::collections::HashMap;
use std::sync::Arc;

use super::decide::Verdict;
use crate::sql::{StatementFacts, TxEffect};

/// A decided statement (from a Query or a Parse).
#[derive(Debug)]
pub struct Statement {
    /// The text as the server's lexer reads it (UTF-8).
    pub text: Box<str>,
    /// Facts and decision.
    pub verdict: Arc<Verdict>,
    /// What running it may change that later decisions depend on.
    pub effect: Effect,
    /// Approvers approved this run of it.
    pub approved: bool,
    /// Generation of the catalog it was decided with: the server re-plans
    /// a prepared statement when the catalog changes, so a Bind after a
    /// change decides it again.
    pub catalog: u64,
    /// Parser settings its text was read with (the server keeps the
    /// parse tree; re-planning does not read the text again).
    pub settings: crate::sql::ParseSettings,
}

#[cfg(test)]
impl Statement {
    /// `text` as the policy allowed it, with its facts against the offline
    /// catalog (tests of what sessions do with statements).
    pub(crate) fn allowed(text: &str) -> Self {
        Self {
            text: text.into(),
            verdict: Arc::new(Verdict {
                decision: crate::policy::Decision::allow(),
                statements: crate::sql::analyze(text, Default::default()),
                policy_hash: String::new(),
            }),
            effect: Effect::default(),
            approved: false,
            catalog: 0,
            settings: Default::default(),
        }
    }
}

/// What running a statement may change that later decisions read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Effect {
    /// The transaction block state after it, if it changes it.
    pub tx: Option<bool>,
    /// It may change parser settings (`standard_conforming_strings`,
    /// `client_encoding`).
    pub settings: bool,
}

impl Effect {
    /// Everything may change (a statement the gateway knows nothing of).
    pub const UNKNOWN: Effect = Effect {
        tx: None,
        settings: true,
    };

    /// The effect of running statements with these facts, in order.
    pub fn of(statements: &[StatementFacts]) -> Self {
        let mut e = Effect::default();
        for f in statements {
            match f.tx_effect {
                TxEffect::Begin => e.tx = Some(true),
                TxEffect::End => e.tx = Some(false),
                TxEffect::None => {}
            }
            // Settings can change only through a statement that is not
            // provably read-only, or a transaction end (COMMIT undoes SET
            // LOCAL, ROLLBACK every SET of the block). Inside a block any
            // statement may fail and so undo SETs: the pipeline treats work
            // in flight there as a change on its own.
            let quiet = f.read_only
                && f.tx_effect == TxEffect::None
                && matches!(f.kind.as_str(), "select" | "show" | "explain" | "empty");
            e.settings |= !quiet;
        }
        e
    }

    /// Both effects, in order.
    pub fn then(self, next: Effect) -> Effect {
        Effect {
            tx: next.tx.or(self.tx),
            settings: self.settings || next.settings,
        }
    }
}

/// How to put a name back as it was, for a message the server did not
/// carry out (it failed, or the server skipped it after an error).
#[derive(Debug)]
pub enum Undo {
    /// A statement name and what it meant before.
    Statement(Box<[u8]>, Option<Arc<Statement>>),
    /// A portal name and what it meant before.
    Portal(Box<[u8]>, Option<Arc<Statement>>),
}

/// Named (and unnamed) prepared statements and portals. Changes are made
/// when a message is forwarded (so pipelined messages resolve names as the
/// server will) and undone if the server does not carry the message out.
#[derive(Default)]
pub struct Registry {
    statements: HashMap<Box<[u8]>, Arc<Statement>>,
    portals: HashMap<Box<[u8]>, Arc<Statement>>,
}

impl Registry {
    /// A Parse was forwarded: `name` now means `stmt`.
    pub fn prepare(&mut self, name: &[u8], stmt: Arc<Statement>) -> Undo {
        let before = self.statements.insert(name.into(), stmt);
        Undo::Statement(name.into(), before)
    }

    /// The statement name means nothing now (the unnamed statement after a
    /// failed Parse: the server drops it before parsing).
    pub fn forget_statement(&mut self, name: &[u8]) {
        self.statements.remove(name);
    }

    /// Puts a name back as it was before a message the server skipped.
    pub fn undo(&mut self, u: Undo) {
        let (map, name, before) = match u {
            Undo::Statement(n, b) => (&mut self.statements, n, b),
            Undo::Portal(n, b) => (&mut self.portals, n, b),
        };
        match before {
            Some(s) => {
                map.insert(name, s);
            }
            None => {
                map.remove(&name);
            }
        }
    }

    /// A message the server ran failed: a named statement or portal, and
    /// the unnamed portal, keep what they meant before (the server
    /// replaces the unnamed portal only once the Bind has passed its
    /// checks, and a portal created by a failed Bind goes with the failed
    /// transaction); the unnamed statement is gone (the server drops it
    /// before parsing).
    pub fn failed(&mut self, u: Undo) {
        match &u {
            Undo::Statement(n, _) if n.is_empty() => self.forget_statement(b""),
            _ => self.undo(u),
        }
    }

    /// The statement a name means.
    pub fn statement(&self, name: &[u8]) -> Option<Arc<Statement>> {
        self.statements.get(name).cloned()
    }

    /// A Bind was forwarded.
    pub fn bind(&mut self, portal: &[u8], statement: &[u8]) -> Undo {
        let before = match self.statements.get(statement) {
            Some(s) => self.portals.insert(portal.into(), s.clone()),
            None => self.portals.remove(portal),
        };
        Undo::Portal(portal.into(), before)
    }

    /// Whether a prepared statement or portal satisfies `f`.
    pub fn any(&self, f: impl Fn(&Statement) -> bool) -> bool {
        self.statements
            .values()
            .chain(self.portals.values())
            .any(|s| f(s))
    }

    /// The statement behind a portal.
    pub fn portal(&self, name: &[u8]) -> Option<Arc<Statement>> {
        self.portals.get(name).cloned()
    }

    /// A Close was forwarded.
    pub fn close(&mut self, kind: u8, name: &[u8]) -> Undo {
        if kind == b'S' {
            Undo::Statement(name.into(), self.statements.remove(name))
        } else {
            Undo::Portal(name.into(), self.portals.remove(name))
        }
    }

    /// The transaction block ended: portals are gone, except those bound
    /// by messages forwarded after it (`keep`), which the server has not
    /// run yet.
    pub fn end_transaction(&mut self, keep: &[&[u8]]) {
        if !self.portals.is_empty() {
            self.portals.retain(|name, _| keep.contains(&&name[..]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Bind of the unnamed portal that the server fails (unknown
    /// statement, wrong parameter count) leaves the earlier unnamed portal
    /// as it was: executing it still runs the earlier statement.
    #[test]
    fn a_failed_unnamed_bind_keeps_the_earlier_portal() {
        let mut r = Registry::default();
        r.prepare(
            b"",
            Arc::new(Statement::allowed("select email from people")),
        );
        r.bind(b"", b"");
        let undo = r.bind(b"", b"no_such_statement");
        assert!(r.portal(b"").is_none());
        r.failed(undo);
        assert_eq!(
            r.portal(b"").map(|s| s.text.to_string()).as_deref(),
            Some("select email from people")
        );
    }
}
