//! CancelRequest routing. Each client is told the real upstream backend's
//! process id with a secret of the gateway's own; a CancelRequest with a
//! known key goes to that session's control channel, and the session
//! forwards it upstream with the real key (later: withdraws a held
//! approval instead).

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::mpsc;

use super::Control;
use crate::pg::backend_key::BackendKey;

/// Client-facing keys → session control channels.
#[derive(Default)]
pub struct CancelRegistry {
    map: Mutex<HashMap<BackendKey, mpsc::Sender<Control>>>,
}

impl CancelRegistry {
    /// Issues a key for a session whose upstream backend has process id
    /// `pid`: the same process id, a fresh secret.
    pub fn register(&self, pid: i32, control: mpsc::Sender<Control>) -> BackendKey {
        let mut map = match self.map.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        loop {
            let key = BackendKey {
                pid,
                key: rand::random(),
            };
            if let std::collections::hash_map::Entry::Vacant(e) = map.entry(key) {
                e.insert(control);
                return key;
            }
        }
    }

    /// Forgets a key when its session ends.
    pub fn remove(&self, key: BackendKey) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(&key);
        }
    }

    /// Tells every session the gateway is shutting down; returns how many
    /// were told.
    pub fn shutdown_all(&self) -> usize {
        self.tell_all(Control::Shutdown)
    }

    /// Sends `c` to every session; returns how many got it.
    pub fn tell_all(&self, c: Control) -> usize {
        let senders: Vec<mpsc::Sender<Control>> = match self.map.lock() {
            Ok(m) => m.values().cloned().collect(),
            Err(p) => p.into_inner().values().cloned().collect(),
        };
        senders.iter().filter(|tx| tx.try_send(c).is_ok()).count()
    }

    /// Delivers a cancel to the session holding `key`; false if none does.
    pub fn cancel(&self, key: BackendKey) -> bool {
        let tx = self.map.lock().ok().and_then(|m| m.get(&key).cloned());
        match tx {
            Some(tx) => tx.try_send(Control::Cancel).is_ok(),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_full_key() {
        let r = CancelRegistry::default();
        let (tx, mut rx) = mpsc::channel(4);
        let k = r.register(4242, tx);
        assert_eq!(k.pid, 4242);
        assert!(!r.cancel(BackendKey {
            pid: 4242,
            key: k.key.wrapping_add(1)
        }));
        assert!(r.cancel(k));
        assert_eq!(rx.try_recv().ok(), Some(Control::Cancel));
        r.remove(k);
        assert!(!r.cancel(k));
    }
}
