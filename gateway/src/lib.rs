//! Portcullis: an identity-aware database gateway.
//!
//! Layers, bottom up: [`pg`] (wire codec), [`catalog`] (what exists
//! upstream), [`sql`] (statement facts),
//! [`policy`] (Rego decisions), [`identity`] (OIDC tokens), [`session`]
//! (one client connection), [`server`] (listeners), [`http`] (admin API).
#![forbid(unsafe_code)]

pub mod approvals;
pub mod audit;
pub mod catalog;
pub mod config;
pub mod dev;
pub mod http;
pub mod identity;
pub mod login;
pub mod logwriter;
pub mod mask;
pub mod metrics;
pub mod pg;
pub mod policy;
pub mod secrets;
pub mod server;
pub mod session;
pub mod sql;
