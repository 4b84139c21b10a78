//! Approvals: the protocol shared with the approvals service
//! (`portcullis-approvals`), and the gateway's client of it.

pub mod client;
pub mod protocol;

pub use client::{ApprovalsClient, ApprovalsError, HoldOutcome};
