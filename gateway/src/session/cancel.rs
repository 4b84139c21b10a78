//! CancelRequest routing: the gateway hands each client its own
//! BackendKeyData and remembers which upstream backend it stands for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::ConnectionConfig;
use crate::pg::backend_key::BackendKey;

/// Where a gateway-issued key points.
#[derive(Clone)]
pub struct CancelTarget {
    /// Upstream connection settings.
    pub conn: Arc<ConnectionConfig>,
    /// The upstream backend's key.
    pub upstream: BackendKey,
}

/// Gateway-issued keys → upstream backends.
#[derive(Default)]
pub struct CancelRegistry {
    next_pid: AtomicI32,
    map: Mutex<HashMap<BackendKey, CancelTarget>>,
}

impl CancelRegistry {
    /// Issues a fresh key for `target`.
    pub fn register(&self, target: CancelTarget) -> BackendKey {
        let pid = self
            .next_pid
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
            & 0x3fff_ffff;
        let key = BackendKey {
            pid: pid.max(1),
            key: rand::random(),
        };
        if let Ok(mut m) = self.map.lock() {
            m.insert(key, target);
        }
        key
    }

    /// Forgets a key when its session ends.
    pub fn remove(&self, key: BackendKey) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(&key);
        }
    }

    /// Looks a key up.
    pub fn lookup(&self, key: BackendKey) -> Option<CancelTarget> {
        self.map.lock().ok().and_then(|m| m.get(&key).cloned())
    }
}
