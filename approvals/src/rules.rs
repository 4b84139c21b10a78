//! The approval rules, without I/O: who may vote, and what a vote does.
//! An approver must be in one of the required groups and is never the
//! requester; one rejection rejects; `quorum` distinct approvals approve;
//! nothing counts after expiry; voting again the same way changes nothing.

use portcullis::approvals::protocol::{Requester, State};

/// A vote already cast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    /// Approver id (email, else sub).
    pub approver: String,
    /// Approve (`true`) or reject.
    pub approve: bool,
}

/// Who is voting.
#[derive(Debug, Clone)]
pub struct Approver {
    /// `sub`.
    pub sub: String,
    /// `email`, or empty.
    pub email: String,
    /// Groups.
    pub groups: Vec<String>,
}

impl Approver {
    /// The id recorded for this approver.
    pub fn id(&self) -> String {
        if self.email.is_empty() {
            self.sub.clone()
        } else {
            self.email.clone()
        }
    }
}

/// The part of a request the rules read.
#[derive(Debug, Clone)]
pub struct Ballot<'a> {
    /// Who asked.
    pub requester: &'a Requester,
    /// Groups whose members may vote.
    pub groups: &'a [String],
    /// Distinct approvals needed.
    pub quorum: u32,
    /// Current state.
    pub state: State,
    /// Expiry (unix ms).
    pub expires_at: i64,
    /// Votes so far.
    pub votes: &'a [Vote],
}

/// Why a vote is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoteError {
    /// The requester tried to approve their own request.
    #[error("you cannot approve or reject your own request")]
    SelfApproval,
    /// Not in any required group.
    #[error("you are not in a group that may approve this request ({0})")]
    NotInGroup(String),
    /// Already decided, withdrawn or expired.
    #[error("this request is already {}", .0.as_str())]
    Closed(State),
    /// Voted the other way before.
    #[error("you already voted on this request")]
    Changed,
}

/// What a vote does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Recorded; the request stays pending.
    Recorded,
    /// Recorded, and it decides the request.
    Decides(State),
    /// The same vote again (a double click): nothing changes.
    Repeat,
}

/// Applies the rules to `approver` voting `approve` at `now` (unix ms).
pub fn vote(
    b: &Ballot<'_>,
    approver: &Approver,
    approve: bool,
    now: i64,
) -> Result<Effect, VoteError> {
    let id = approver.id();
    if let Some(prior) = b.votes.iter().find(|v| v.approver == id) {
        return if prior.approve == approve {
            Ok(Effect::Repeat)
        } else {
            Err(VoteError::Changed)
        };
    }
    if b.state != State::Pending {
        return Err(VoteError::Closed(b.state));
    }
    if now >= b.expires_at {
        return Err(VoteError::Closed(State::Expired));
    }
    let same_email =
        !approver.email.is_empty() && approver.email.eq_ignore_ascii_case(&b.requester.email);
    if approver.sub == b.requester.sub || same_email {
        return Err(VoteError::SelfApproval);
    }
    if !b.groups.iter().any(|g| approver.groups.contains(g)) {
        return Err(VoteError::NotInGroup(b.groups.join(", ")));
    }
    if !approve {
        return Ok(Effect::Decides(State::Rejected));
    }
    let approvals = b.votes.iter().filter(|v| v.approve).count() + 1;
    if approvals >= b.quorum.max(1) as usize {
        Ok(Effect::Decides(State::Approved))
    } else {
        Ok(Effect::Recorded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requester() -> Requester {
        Requester {
            sub: "alice".into(),
            email: "alice@example.com".into(),
            name: String::new(),
            groups: vec!["dba".into()],
        }
    }

    fn approver(sub: &str, groups: &[&str]) -> Approver {
        Approver {
            sub: sub.into(),
            email: format!("{sub}@example.com"),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn rules() {
        let r = requester();
        let groups = vec!["dba".to_string()];
        let mut votes = Vec::new();
        fn ballot<'a>(
            r: &'a Requester,
            groups: &'a [String],
            votes: &'a [Vote],
            quorum: u32,
            state: State,
        ) -> Ballot<'a> {
            Ballot {
                requester: r,
                groups,
                quorum,
                state,
                expires_at: 1000,
                votes,
            }
        }
        let bob = approver("bob", &["dba"]);
        let carol = approver("carol", &["dba"]);
        let dave = approver("dave", &["dev"]);
        let b = ballot(&r, &groups, &votes, 2, State::Pending);
        assert_eq!(
            vote(&b, &approver("alice", &["dba"]), true, 0),
            Err(VoteError::SelfApproval)
        );
        let mut same_mail = approver("alice2", &["dba"]);
        same_mail.email = "ALICE@example.com".into();
        assert_eq!(vote(&b, &same_mail, true, 0), Err(VoteError::SelfApproval));
        assert!(matches!(
            vote(&b, &dave, true, 0),
            Err(VoteError::NotInGroup(_))
        ));
        assert_eq!(vote(&b, &bob, true, 0), Ok(Effect::Recorded));
        votes.push(Vote {
            approver: bob.id(),
            approve: true,
        });
        let b = ballot(&r, &groups, &votes, 2, State::Pending);
        assert_eq!(vote(&b, &bob, true, 0), Ok(Effect::Repeat));
        assert_eq!(vote(&b, &bob, false, 0), Err(VoteError::Changed));
        assert_eq!(
            vote(&b, &carol, true, 0),
            Ok(Effect::Decides(State::Approved))
        );
        assert_eq!(
            vote(&b, &carol, true, 1000),
            Err(VoteError::Closed(State::Expired))
        );
        assert_eq!(
            vote(&b, &carol, false, 0),
            Ok(Effect::Decides(State::Rejected))
        );
        let closed = ballot(&r, &groups, &votes, 2, State::Withdrawn);
        assert_eq!(
            vote(&closed, &carol, true, 0),
            Err(VoteError::Closed(State::Withdrawn))
        );
    }
}
