//! HTTP surfaces of the gateway. For now: the admin listener
//! (`/healthz`, `/readyz`, `/metrics`).

pub mod admin;
