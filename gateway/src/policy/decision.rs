//! The decision schema (`data.portcullis.decision`) and how several
//! decisions combine (the strictest wins).

use serde::{Deserialize, Serialize};

/// What happens to a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Run it.
    Allow,
    /// Hold it for approval.
    Approve,
    /// Refuse it.
    Deny,
}

impl Action {
    /// The name policies use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Approve => "approve",
            Self::Deny => "deny",
        }
    }
}

/// A column to mask in results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskRule {
    /// `schema.table`.
    pub table: String,
    /// Column name.
    pub column: String,
    /// `redact`, `hash`, `partial` or `null`.
    pub method: String,
}

/// Who must approve, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalSpec {
    /// Groups whose members may approve.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Approvals needed.
    #[serde(default = "one")]
    pub quorum: u32,
    /// `hold` or `retry`.
    #[serde(default = "hold")]
    pub mode: String,
    /// How long to wait, e.g. `5m`.
    #[serde(default)]
    pub timeout: Option<String>,
}

fn one() -> u32 {
    1
}
fn hold() -> String {
    "hold".into()
}

/// A policy decision. Unknown fields make the decision malformed (a deny):
/// a field the gateway does not implement is never silently ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The action.
    pub action: Action,
    /// Human-readable reasons.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Columns to mask.
    #[serde(default)]
    pub mask: Vec<MaskRule>,
    /// Approval requirements when `action` is approve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalSpec>,
}

impl Decision {
    /// A deny with one reason.
    pub fn deny(reason: impl Into<String>) -> Self {
        Self {
            action: Action::Deny,
            reasons: vec![reason.into()],
            mask: Vec::new(),
            approval: None,
        }
    }

    /// An allow with no reasons.
    pub fn allow() -> Self {
        Self {
            action: Action::Allow,
            reasons: Vec::new(),
            mask: Vec::new(),
            approval: None,
        }
    }

    /// Reads a decision from the policy's result; undefined or malformed
    /// results are denies that say why.
    pub fn from_value(v: &regorus::Value) -> Self {
        if *v == regorus::Value::Undefined {
            return Self::deny("policy returned no decision (rule undefined)");
        }
        let json = match serde_json::to_value(v) {
            Ok(j) => j,
            Err(e) => return Self::deny(format!("policy decision is not JSON: {e}")),
        };
        match serde_json::from_value::<Self>(json) {
            Ok(mut d) => {
                if d.action == Action::Deny && d.reasons.is_empty() {
                    d.reasons.push("denied by policy".into());
                }
                d
            }
            Err(e) => Self::deny(format!("policy decision is malformed: {e}")),
        }
    }

    /// Refuses what the gateway cannot honour: a mask rule with an unknown
    /// method, or without a table or column, makes the decision a deny (so
    /// no unmasked row can leave). Whether masking can be proven for the
    /// statement is the mask stage's question.
    pub fn fail_closed(self) -> Self {
        if self.action != Action::Deny {
            if let Err(why) = crate::mask::check_rules(&self.mask) {
                return Self::deny(format!("the policy's mask rules cannot be applied: {why}"));
            }
        }
        self
    }

    /// A decision from an evaluation result; an error is a deny.
    pub fn from_value_or_error(v: Result<regorus::Value, String>) -> Self {
        match v {
            Ok(v) => Self::from_value(&v),
            Err(e) => Self::deny(format!("policy evaluation failed: {e}")),
        }
    }

    /// Combines decisions for a multi-statement message: the strictest
    /// action applies; reasons and masks are merged.
    pub fn strictest(decisions: impl IntoIterator<Item = Decision>) -> Decision {
        let mut out = Decision::allow();
        for d in decisions {
            if d.action > out.action {
                out.action = d.action;
                if d.approval.is_some() {
                    out.approval = d.approval.clone();
                }
            }
            for r in d.reasons {
                if !out.reasons.contains(&r) {
                    out.reasons.push(r);
                }
            }
            for m in d.mask {
                if !out.mask.contains(&m) {
                    out.mask.push(m);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undefined_and_malformed_deny() {
        assert_eq!(
            Decision::from_value(&regorus::Value::Undefined).action,
            Action::Deny
        );
        let bad = regorus::Value::from(serde_json::json!({"action": "maybe"}));
        let d = Decision::from_value(&bad);
        assert_eq!(d.action, Action::Deny);
        assert!(d.reasons[0].contains("malformed"), "{:?}", d.reasons);
        let bad = regorus::Value::from(serde_json::json!("allow"));
        assert_eq!(Decision::from_value(&bad).action, Action::Deny);
    }

    #[test]
    fn masks_and_unknown_fields_fail_closed() {
        let v = regorus::Value::from(serde_json::json!({"action": "allow", "mask": [
            {"table": "public.users", "column": "email", "method": "redact"}]}));
        let d = Decision::from_value(&v).fail_closed();
        assert_eq!(
            d.action,
            Action::Allow,
            "masking is the mask stage's to prove"
        );
        let v = regorus::Value::from(serde_json::json!({"action": "approve", "mask": [
            {"table": "public.users", "column": "email", "method": "scramble"}]}));
        let d = Decision::from_value(&v).fail_closed();
        assert_eq!(d.action, Action::Deny);
        assert!(
            d.reasons[0].contains("unknown masking method \"scramble\""),
            "{d:?}"
        );
        let v = regorus::Value::from(serde_json::json!({"action": "allow", "rewrite": "x"}));
        let d = Decision::from_value(&v).fail_closed();
        assert_eq!(d.action, Action::Deny);
        assert!(d.reasons[0].contains("unknown field `rewrite`"), "{d:?}");
        let v = regorus::Value::from(serde_json::json!({"action": "allow", "mask": []}));
        assert_eq!(Decision::from_value(&v).fail_closed().action, Action::Allow);
    }

    #[test]
    fn strictest_wins() {
        let d = Decision::strictest([
            Decision::allow(),
            Decision::deny("b"),
            Decision {
                action: Action::Approve,
                ..Decision::allow()
            },
        ]);
        assert_eq!(d.action, Action::Deny);
        assert_eq!(d.reasons, vec!["b".to_string()]);
    }
}
