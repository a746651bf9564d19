//! The ticket workflow: `open -> in_progress -> resolved -> closed`, and reopen
//! (`resolved | closed -> open`).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A ticket's status.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// New or reopened.
    Open,
    /// Being worked on.
    InProgress,
    /// Done, awaiting closure.
    Resolved,
    /// Finished.
    Closed,
}

impl TicketStatus {
    /// Every status.
    pub const ALL: [TicketStatus; 4] = [
        TicketStatus::Open,
        TicketStatus::InProgress,
        TicketStatus::Resolved,
        TicketStatus::Closed,
    ];

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Open => "open",
            TicketStatus::InProgress => "in_progress",
            TicketStatus::Resolved => "resolved",
            TicketStatus::Closed => "closed",
        }
    }

    /// Whether the workflow allows moving from `self` to `to`.
    pub const fn can_move_to(self, to: TicketStatus) -> bool {
        use TicketStatus::*;
        matches!(
            (self, to),
            (Open, InProgress)
                | (InProgress, Resolved)
                | (Resolved, Closed)
                | (Resolved, Open)
                | (Closed, Open)
        )
    }
}

impl FromStr for TicketStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown status {:?}",
                    s.chars().take(32).collect::<String>()
                )
            })
    }
}

impl fmt::Display for TicketStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::TicketStatus::*;

    #[test]
    fn workflow() {
        assert!(Open.can_move_to(InProgress));
        assert!(Closed.can_move_to(Open));
        assert!(Resolved.can_move_to(Open));
        assert!(!Open.can_move_to(Closed));
        assert!(!Open.can_move_to(Open));
        assert!(!InProgress.can_move_to(Open));
    }
}
