//! The org switcher's data: the signed-in user and their organizations (with their role),
//! kept per user for a short while so that a page of one org does not pay a read across
//! orgs on every view.
//!
//! It is navigation only: every page verifies the org of its URL with `verify_member`,
//! so a stale entry (an org the user was removed from by someone else in the last
//! [`TTL`]) leads to the refusal page, never into the org. An entry is reloaded when it is
//! older than [`TTL`], when the current org is missing from it or its permissions differ
//! from the verified scope's, and it is dropped when the user changes a membership through
//! the console ([`Switcher::forget`]).

use orgwall_core::{OrgId, PermissionSet, Result, UserId};
use orgwall_store::access::{self, MyOrg};
use orgwall_store::repo::users::{self, User};
use orgwall_store::Db;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a user's list is served without reading it again.
pub const TTL: Duration = Duration::from_secs(30);
/// Entries kept at most (the map is emptied when it would grow past this).
const MAX_ENTRIES: usize = 10_000;

/// The user and their organizations.
#[derive(Debug)]
pub struct Me {
    /// The user.
    pub user: User,
    /// Their organizations, by slug.
    pub orgs: Vec<MyOrg>,
}

/// Per-user lists.
#[derive(Default)]
pub struct Switcher {
    map: Mutex<HashMap<UserId, (Instant, Arc<Me>)>>,
}

impl Switcher {
    /// The user's list; `current` is the verified org of the page and its permissions.
    pub async fn get(
        &self,
        db: &Db,
        user: UserId,
        current: Option<(OrgId, PermissionSet)>,
    ) -> Result<Arc<Me>> {
        let cached = self
            .map
            .lock()
            .ok()
            .and_then(|m| m.get(&user).cloned())
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, me)| me)
            .filter(|me| {
                current.is_none_or(|(org, perms)| {
                    me.orgs
                        .iter()
                        .any(|o| o.org_id == org && o.permissions == perms)
                })
            });
        if let Some(me) = cached {
            return Ok(me);
        }
        let (u, orgs) =
            futures::future::try_join(users::get(db, user), access::my_orgs(db, user)).await?;
        let me = Arc::new(Me { user: u, orgs });
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= MAX_ENTRIES {
                m.clear();
            }
            m.insert(user, (Instant::now(), me.clone()));
        }
        Ok(me)
    }

    /// Drops the user's list (after they changed a membership).
    pub fn forget(&self, user: UserId) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(&user);
        }
    }
}
