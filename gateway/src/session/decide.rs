//! Per-statement decisions for one session: parse → facts → policy input →
//! Rego decision, with a per-session cache where that is sound, metrics and
//! one decision log line per evaluation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::Shared;
use crate::catalog::{Catalog, CatalogCache};
use crate::identity::Identity;
use crate::policy::input::{statement_value, InputBuilder, SessionInfo};
use crate::policy::{Action, Bundle, CacheMode, Decision};
use crate::sql::{normalize, FactsCache, ParseSettings, StatementFacts};

/// Entries kept per session before the cache is cleared.
const CACHE_LIMIT: usize = 1024;

/// The outcome for one message's SQL text.
#[derive(Debug)]
pub struct Verdict {
    /// Combined (strictest) decision.
    pub decision: Decision,
    /// Facts of each statement.
    pub statements: Vec<StatementFacts>,
    /// Policy bundle hash that decided.
    pub policy_hash: String,
}

/// Decides statements for one session.
pub struct Decider {
    shared: Arc<Shared>,
    /// The bundle last seen and its store generation.
    bundle: (u64, Arc<Bundle>),
    /// Builds the policy input; session-constant parts converted once.
    input: InputBuilder,
    user: String,
    connection: String,
    session_id: String,
    /// Exact-text cache, keyed by everything the policy input depends on
    /// that varies within a session: the text, the transaction state and
    /// the parser settings.
    /// Indexed `[in_transaction][standard_strings_off]`.
    exact: [[HashMap<Box<str>, Arc<Verdict>>; 2]; 2],
    /// Literal-template cache (standard-conforming strings only), keyed by
    /// template and transaction state.
    /// Indexed `[in_transaction]`.
    templates: [HashMap<Box<str>, Arc<Verdict>>; 2],
    /// Facts of literal-only variants of earlier statements.
    facts: FactsCache,
    /// The connection's catalog.
    catalog: Arc<CatalogCache>,
    /// Generation of the catalog the caches above were filled with
    /// (`u64::MAX`: the stale catalog).
    catalog_generation: u64,
    /// This session ran something that may have changed the catalog; until
    /// a reload that started after the session was idle outside a
    /// transaction block has finished, the stale catalog is used.
    stale: bool,
    /// The reload ticket that clears `stale`.
    stale_ticket: Option<u64>,
    /// The catalog of `catalog_generation`.
    cat: Arc<Catalog>,
}

impl Decider {
    /// A decider for a session of `identity` on `connection`.
    pub fn new(
        shared: Arc<Shared>,
        catalog: Arc<CatalogCache>,
        identity: &Identity,
        connection: &crate::config::ConnectionConfig,
        client_addr: &str,
        application_name: &str,
        session_id: &str,
    ) -> Self {
        let builder = InputBuilder::new(&SessionInfo {
            user: serde_json::to_value(identity).unwrap_or(serde_json::Value::Null),
            client_addr,
            application_name,
            connection: (
                &connection.name,
                connection.kind.as_str(),
                connection.database(),
            ),
            session_id,
        });
        let bundle = (shared.policy.generation(), shared.policy.current());
        Self {
            shared,
            input: builder,
            bundle,
            user: identity.display().to_string(),
            connection: connection.name.clone(),
            session_id: session_id.to_string(),
            exact: Default::default(),
            templates: Default::default(),
            facts: FactsCache::default(),
            catalog,
            catalog_generation: 0,
            stale: false,
            stale_ticket: None,
            cat: Catalog::unavailable(),
        }
    }

    /// The session is idle outside a transaction block with nothing in
    /// flight: if it may have changed the catalog, ask for the reload now.
    pub fn quiescent(&mut self) {
        if self.stale && self.stale_ticket.is_none() {
            self.stale_ticket = Some(self.catalog.request_refresh());
        }
    }

    /// Picks up a changed catalog (one atomic load when nothing changed).
    fn refresh_catalog(&mut self, quiescent: bool) {
        if self.stale {
            if quiescent {
                self.quiescent();
            }
            if self.stale_ticket.is_some_and(|t| self.catalog.covers(t)) {
                self.stale = false;
                self.stale_ticket = None;
            }
        }
        let generation = if self.stale {
            u64::MAX
        } else {
            self.catalog.generation()
        };
        if generation != self.catalog_generation {
            // The catalog may have moved on again since the load above:
            // then the next decision picks it up too.
            self.cat = if self.stale {
                Catalog::stale()
            } else {
                self.catalog.current().1
            };
            self.catalog_generation = generation;
            self.exact.iter_mut().flatten().for_each(HashMap::clear);
            self.templates.iter_mut().for_each(HashMap::clear);
            self.facts.clear();
        }
    }

    /// The hash of the policy bundle in force.
    pub fn policy_hash(&mut self) -> &str {
        &self.bundle().hash
    }

    /// The catalog decisions use now.
    pub fn catalog_now(&mut self) -> Arc<Catalog> {
        self.refresh_catalog(false);
        self.cat.clone()
    }

    /// The gateway's masking state (the hash key).
    pub fn masker(&self) -> &crate::mask::Masker {
        &self.shared.masker
    }

    /// The generation of the catalog decisions use now.
    pub fn catalog_generation(&mut self, quiescent: bool) -> u64 {
        self.refresh_catalog(quiescent);
        self.catalog_generation
    }

    /// The first parameter type of a Parse whose input or checks run user
    /// code the gateway cannot show to be read-only (Bind runs them). With
    /// no catalog, any non-built-in type counts.
    pub fn untrusted_param_type(&mut self, types: &[u32]) -> Option<u32> {
        if types.iter().all(|t| *t == 0) {
            return None;
        }
        self.refresh_catalog(false);
        let cat = &self.cat;
        types.iter().copied().find(|t| match cat.mode {
            crate::catalog::Mode::Loaded => cat.untrusted_type_oids.contains(t),
            crate::catalog::Mode::Offline => false,
            crate::catalog::Mode::Unavailable(_) => *t >= 16384,
        })
    }

    /// Notes a verdict that lets a statement run which may change the
    /// catalog.
    fn note_catalog_change(&mut self, v: &Verdict) {
        if v.decision.action != Action::Deny
            && v.statements.iter().any(StatementFacts::may_change_catalog)
        {
            self.stale = true;
            self.stale_ticket = None;
        }
    }

    /// The bundle in force, refreshed only when the store's generation
    /// moved (one atomic load per statement otherwise).
    fn bundle(&mut self) -> &Arc<Bundle> {
        let g = self.shared.policy.generation();
        if g != self.bundle.0 {
            // Read the generation first: a reload racing with this picks
            // up the newer bundle next time.
            self.bundle = (g, self.shared.policy.current());
        }
        &self.bundle.1
    }

    /// Whether the policy in force reads `session.in_transaction`.
    pub fn policy_reads_tx(&mut self) -> bool {
        self.bundle().reads_tx
    }

    /// A verdict the gateway reached without the policy (text it cannot
    /// read): logged and counted like any decision.
    pub fn refuse(&mut self, decision: Decision) -> Arc<Verdict> {
        let bundle = self.bundle().clone();
        self.shared.metrics.statement(decision.action);
        let v = Arc::new(Verdict {
            decision,
            statements: Vec::new(),
            policy_hash: bundle.hash.clone(),
        });
        self.log(&v, false);
        v
    }

    /// Decides a message's SQL text (one or more statements).
    /// `quiescent`: the session is idle outside a transaction block with
    /// nothing in flight.
    pub fn decide(
        &mut self,
        sql: &str,
        in_transaction: bool,
        settings: ParseSettings,
        quiescent: bool,
    ) -> Arc<Verdict> {
        self.refresh_catalog(quiescent);
        let bundle = self.bundle().clone();
        let mode = if self.shared.config.policy.decision_cache {
            bundle.cache_mode.0
        } else {
            CacheMode::Off
        };
        let std_off = settings.standard_strings_off;
        // Template mode: variants of one literal template share a decision
        // (the policy reads nothing that differs between them).
        let template = match mode {
            CacheMode::Template if !std_off => normalize(sql),
            _ => None,
        };
        let hit = match (&template, mode) {
            (Some(t), _) => self.templates[usize::from(in_transaction)].get(t.as_str()),
            (None, CacheMode::Off) => None,
            (None, _) => self.exact[usize::from(in_transaction)][usize::from(std_off)].get(sql),
        };
        if let Some(v) = hit.filter(|v| v.policy_hash == bundle.hash).cloned() {
            self.shared
                .metrics
                .cache_hits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.shared.metrics.statement(v.decision.action);
            self.log(&v, true);
            self.note_catalog_change(&v);
            return v;
        }
        let t0 = Instant::now();
        let cat = self.cat.clone();
        let (statements, template_key) = self.facts.analyze_keyed(sql, settings, &cat);
        self.shared.metrics.parse_latency.observe(t0.elapsed());

        let t1 = Instant::now();
        let now = rfc3339_now();
        let decisions: Vec<Decision> = statements
            .iter()
            .map(|facts| {
                let input = self
                    .input
                    .build(statement_value(facts), in_transaction, &now);
                bundle.decide(input)
            })
            .collect();
        let decision = Decision::strictest(decisions).fail_closed();
        self.shared.metrics.decision_latency.observe(t1.elapsed());
        self.shared.metrics.statement(decision.action);

        let verdict = Arc::new(Verdict {
            decision,
            statements,
            policy_hash: bundle.hash.clone(),
        });
        self.log(&verdict, false);
        self.note_catalog_change(&verdict);
        match (mode, template_key) {
            (CacheMode::Off, _) => {}
            (CacheMode::Template, Some(key)) => {
                let map = &mut self.templates[usize::from(in_transaction)];
                if map.len() >= CACHE_LIMIT {
                    map.clear();
                }
                map.insert(key.into(), verdict.clone());
            }
            _ => {
                let map = &mut self.exact[usize::from(in_transaction)][usize::from(std_off)];
                if map.len() >= CACHE_LIMIT {
                    map.clear();
                }
                map.insert(sql.into(), verdict.clone());
            }
        }
        verdict
    }
}

impl Decider {
    /// One decision log line (also for decisions served from the cache).
    fn log(&self, v: &Verdict, cached: bool) {
        let action = match v.decision.action {
            Action::Allow => "allow",
            Action::Approve => "approve",
            Action::Deny => "deny",
        };
        tracing::info!(
            target: "portcullis::decision",
            user = %self.user,
            connection = %self.connection,
            session = %self.session_id,
            fingerprint = %Joined(&v.statements, ",", |s| s.fingerprint.as_str()),
            kind = %Joined(&v.statements, ",", |s| s.kind.as_str()),
            action,
            reasons = %Joined(&v.decision.reasons, "; ", String::as_str),
            policy_hash = %v.policy_hash,
            cached,
            "decision"
        );
    }
}

/// Items written with a separator, without building a string first.
struct Joined<'a, T>(&'a [T], &'static str, fn(&T) -> &str);

impl<T> std::fmt::Display for Joined<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(self.1)?;
            }
            f.write_str((self.2)(item))?;
        }
        Ok(())
    }
}

/// Current UTC time as RFC 3339 (`2026-11-23T10:00:00Z`).
pub fn rfc3339_now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_time() {
        let t = super::rfc3339_now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
    }
}
