//! One catalog per configured connection, shared by its sessions: loaded
//! when the first session logs in, re-read every `catalog_refresh` and at
//! once when a session asks (after it ran something that may change the
//! catalog). A failed load keeps the last catalog (or, before the first
//! one, the unavailable catalog that counts every possible call as
//! unknown) and is retried.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use super::{load, Catalog};
use crate::config::ConnectionConfig;

/// Wait before retrying a failed load.
const RETRY: Duration = Duration::from_secs(1);

/// The shared catalog of one connection.
pub struct CatalogCache {
    conn: Arc<ConnectionConfig>,
    current: RwLock<(u64, Arc<Catalog>)>,
    /// The generation of `current`, readable without the lock (sessions
    /// check it on every decision).
    generation: AtomicU64,
    /// Refresh requests issued (tickets).
    requested: AtomicU64,
    /// Highest ticket issued before the start of the last successful load.
    covered: AtomicU64,
    wake: Notify,
    loaded: watch::Sender<u64>,
    started: AtomicBool,
}

impl CatalogCache {
    /// A cache for `conn`; nothing is loaded until [`CatalogCache::ready`]
    /// or [`CatalogCache::request_refresh`].
    pub fn new(conn: Arc<ConnectionConfig>) -> Arc<Self> {
        Arc::new(Self {
            conn,
            current: RwLock::new((0, Catalog::unavailable())),
            generation: AtomicU64::new(0),
            requested: AtomicU64::new(0),
            covered: AtomicU64::new(0),
            wake: Notify::new(),
            loaded: watch::channel(0).0,
            started: AtomicBool::new(false),
        })
    }

    /// A cache that never loads and always answers `cat` (unit tests of
    /// pure logic).
    pub fn fixed(conn: Arc<ConnectionConfig>, cat: Arc<Catalog>) -> Arc<Self> {
        let cache = Self::new(conn);
        cache.started.store(true, Ordering::SeqCst);
        cache.store(cat);
        cache.covered.store(u64::MAX, Ordering::SeqCst);
        cache
    }

    /// The generation of the catalog in force (one atomic load).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The catalog in force and its generation (bumped on every change).
    pub fn current(&self) -> (u64, Arc<Catalog>) {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Asks for a re-read; the returned ticket is covered once a load that
    /// started after this call has finished.
    pub fn request_refresh(self: &Arc<Self>) -> u64 {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        self.start();
        self.wake.notify_one();
        ticket
    }

    /// Whether a load that started after `ticket` was issued has finished.
    pub fn covers(&self, ticket: u64) -> bool {
        self.covered.load(Ordering::SeqCst) >= ticket
    }

    /// Waits (at most `timeout`) until a first load has finished or failed.
    pub async fn ready(self: &Arc<Self>, timeout: Duration) {
        self.start();
        let mut rx = self.loaded.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|g| *g > 0)).await;
    }

    fn start(self: &Arc<Self>) {
        if !self.started.swap(true, Ordering::SeqCst) {
            tokio::spawn(run(self.clone()));
        }
    }

    fn store(&self, cat: Arc<Catalog>) {
        let mut g = match self.current.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if *g.1 != *cat || g.0 == 0 {
            *g = (g.0 + 1, cat);
        }
        let generation = g.0;
        self.generation.store(generation, Ordering::Release);
        drop(g);
        self.loaded.send_replace(generation);
    }
}

/// Loads, then waits for a request or the refresh interval, forever.
async fn run(cache: Arc<CatalogCache>) {
    loop {
        let ticket = cache.requested.load(Ordering::SeqCst);
        let t0 = std::time::Instant::now();
        let wait = match load(&cache.conn).await {
            Ok(cat) => {
                cache.store(Arc::new(cat));
                cache.covered.fetch_max(ticket, Ordering::SeqCst);
                tracing::debug!(
                    connection = %cache.conn.name,
                    elapsed_ms = t0.elapsed().as_millis() as u64,
                    "catalog loaded"
                );
                cache.conn.catalog_refresh
            }
            Err(e) => {
                tracing::warn!(
                    connection = %cache.conn.name,
                    error = %e,
                    "cannot read the database catalog; statements that may call functions count as unknown until it loads"
                );
                if cache.current().0 == 0 {
                    cache.store(Catalog::unavailable());
                }
                RETRY
            }
        };
        tokio::select! {
            _ = cache.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
