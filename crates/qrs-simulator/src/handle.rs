//! The public handle tests and commands use to read and change a running simulator's site.

use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;
use uuid::Uuid;

use crate::records::*;
use crate::site::SiteState;
use crate::time::*;
use crate::{Shared, lock};

// Public handle

/// An allocation as it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocationSnapshot {
    pub id: Uuid,
    pub access_type: SimAccessType,
    /// None when the user was deleted (the row then shows `deletedUserId`/`deletedUserDirectory`).
    pub user: Option<Uuid>,
    pub user_directory: String,
    pub user_id: String,
    /// None when never used or when the stored value is not a date.
    pub last_used: Option<Timestamp>,
    /// `lastUsed` exactly as QRS sends it.
    pub last_used_text: String,
    pub created: Timestamp,
    pub quarantined: bool,
    pub quarantine_end: Option<Timestamp>,
    pub excess: bool,
}

/// A user as it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct UserSnapshot {
    pub id: Uuid,
    pub directory: String,
    pub user_id: String,
    pub name: String,
    pub roles: Vec<String>,
    pub tags: Vec<String>,
    pub custom_properties: Vec<(String, String)>,
    pub inactive: bool,
    pub removed_externally: bool,
    pub blacklisted: bool,
}

/// A login access group as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginGroupSnapshot {
    pub id: Uuid,
    pub name: String,
    pub assigned_tokens: u32,
    pub used_passes: u32,
}

/// Counts for one access type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TypeSummary {
    /// Rows not in quarantine.
    pub allocated: usize,
    pub quarantined: usize,
    pub never_used: usize,
}

/// What the site holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteSummary {
    pub users: usize,
    pub professional: TypeSummary,
    pub analyzer: TypeSummary,
    pub user: TypeSummary,
    pub login_groups: usize,
    pub seats: SeatTotals,
}

/// Reads and changes a running simulator's site. Cheap to clone.
#[derive(Clone)]
pub struct SiteHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for SiteHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SiteHandle").finish_non_exhaustive()
    }
}

impl SiteHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> SiteHandle {
        SiteHandle { shared }
    }

    /// Runs `f` on the site after expiring ended quarantines.
    fn with<T>(&self, f: impl FnOnce(&mut SiteState, Timestamp) -> T) -> T {
        let now = self.shared.now();
        let mut site = lock(&self.shared.site);
        site.expire(now);
        f(&mut site, now)
    }

    /// Changes one allocation; an unknown id, or one whose quarantine has just ended, is
    /// [`SiteError::UnknownAllocation`].
    fn with_allocation(
        &self,
        allocation: Uuid,
        change: impl FnOnce(&mut AllocRec),
    ) -> Result<(), SiteError> {
        self.with(|s, _| {
            let a = s
                .allocation_mut(allocation)
                .ok_or(SiteError::UnknownAllocation(allocation))?;
            change(a);
            Ok(())
        })
    }

    /// The simulated time.
    pub fn now(&self) -> Timestamp {
        self.shared.now()
    }

    /// Creates a user, created now.
    pub fn add_user(&self, user: NewUser) -> Result<Uuid, SiteError> {
        self.with(|s, now| s.add_user(&user, now))
    }

    /// Adds an app owned by `owner`, created and last modified at the given instants.
    pub fn add_app(
        &self,
        owner: Uuid,
        name: &str,
        created: Timestamp,
        modified: Timestamp,
    ) -> Result<Uuid, SiteError> {
        self.with(|s, _| s.add_app(owner, name, (created, modified)))
    }

    /// Adds an object of `object_type` (`sheet`, `story`, `masterobject`, ...) to `app`, owned by `owner`.
    pub fn add_app_object(
        &self,
        app: Uuid,
        owner: Uuid,
        (object_type, name): (&str, &str),
        (created, modified): (Timestamp, Timestamp),
    ) -> Result<Uuid, SiteError> {
        self.with(|s, _| s.add_app_object(app, owner, (object_type, name), (created, modified)))
    }

    /// The user with this directory and id (case-insensitive).
    pub fn find_user(&self, directory: &str, user_id: &str) -> Option<Uuid> {
        self.with(|s, _| s.find_user(directory, user_id))
    }

    /// Allocates a seat. `last_used: None` means never used (the sentinel). A quarantined seat's quarantine ends 7
    /// days after its last use (after `created` when never used), or, when that moment has already passed, 7 days
    /// from now, so the row exists until the clock is advanced past it.
    pub fn allocate(
        &self,
        access_type: SimAccessType,
        user: Uuid,
        last_used: Option<Timestamp>,
        created: Timestamp,
        quarantined: bool,
    ) -> Result<Uuid, SiteError> {
        self.with(|s, now| {
            let id = s.new_id();
            let quarantine_end = quarantined.then(|| {
                let natural = shift(last_used.unwrap_or(created), QUARANTINE);
                if natural > now {
                    natural
                } else {
                    shift(now, QUARANTINE)
                }
            });
            s.insert_allocation(AllocRec {
                modified: last_used.map_or(created, |t| t.max(created)),
                last_used: last_used.map_or(LastUsed::Never, |t| LastUsed::At(millis(t))),
                quarantined,
                quarantine_end,
                ..AllocRec::new(id, access_type, user, created, "INTERNAL\\sa_repository")
            })
        })
    }

    /// Replaces an allocation's `lastUsed` with text that need not be a date (to test "unknown date" handling).
    pub fn set_raw_last_used(&self, allocation: Uuid, raw: &str) -> Result<(), SiteError> {
        self.with_allocation(allocation, |a| a.last_used = LastUsed::Raw(raw.to_string()))
    }

    /// Sets an allocation's `lastUsed` (None: never used), as a login would.
    pub fn set_last_used(
        &self,
        allocation: Uuid,
        last_used: Option<Timestamp>,
    ) -> Result<(), SiteError> {
        self.with_allocation(allocation, |a| {
            a.last_used = last_used.map_or(LastUsed::Never, |t| LastUsed::At(millis(t)));
        })
    }

    /// Marks an allocation as beyond the licence's seats.
    pub fn set_excess(&self, allocation: Uuid, excess: bool) -> Result<(), SiteError> {
        self.with_allocation(allocation, |a| a.excess = excess)
    }

    /// QRS sends nothing for this allocation's `excess` from now on: the full view leaves the field out, the table
    /// view's cell is null (a release or a table definition that cannot resolve it).
    pub fn omit_excess(&self, allocation: Uuid) -> Result<(), SiteError> {
        self.with_allocation(allocation, |a| a.excess_unsent = true)
    }

    /// A user logs in to the hub now with `access_type`: an allocation they hold is marked used; without one, an
    /// access rule allocates a new seat (the re-allocation a reclaimer must not fight). A quarantined seat is not
    /// usable and is left unchanged. Returns the allocation used, if any.
    pub fn login(&self, user: Uuid, access_type: SimAccessType) -> Result<Option<Uuid>, SiteError> {
        self.with(|s, now| {
            if access_type == SimAccessType::Login {
                return Err(SiteError::NotPerUser);
            }
            if s.user(user).is_none() {
                return Err(SiteError::UnknownUser(user));
            }
            let held = s
                .allocations(access_type)
                .find(|a| a.user == Some(user))
                .map(|a| (a.id, a.quarantined));
            match held {
                Some((_, true)) => Ok(None),
                Some((id, false)) => {
                    if let Some(a) = s.allocation_mut(id) {
                        a.last_used = LastUsed::At(millis(now));
                        a.modified = millis(now);
                    }
                    Ok(Some(id))
                }
                None => {
                    let id = s.new_id();
                    s.insert_allocation(AllocRec {
                        last_used: LastUsed::At(millis(now)),
                        ..AllocRec::new(id, access_type, user, now, "INTERNAL\\sa_repository")
                    })
                    .map(Some)
                }
            }
        })
    }

    /// Deletes a user; their seats are deallocated as QRS does (see [`SiteHandle::allocations`] for what stays).
    pub fn delete_user(&self, user: Uuid) -> Result<(), SiteError> {
        self.with(|s, now| s.delete_user(user, now, "INTERNAL\\sa_repository"))
    }

    /// Changes a user's status flags.
    pub fn set_user_flags(
        &self,
        user: Uuid,
        inactive: bool,
        removed_externally: bool,
        blacklisted: bool,
    ) -> Result<(), SiteError> {
        self.with(|s, now| {
            let u = s.user_mut(user).ok_or(SiteError::UnknownUser(user))?;
            u.inactive = inactive || removed_externally;
            u.removed_externally = removed_externally;
            u.blacklisted = blacklisted;
            u.modified = millis(now);
            Ok(())
        })
    }

    pub fn seat_totals(&self) -> SeatTotals {
        self.with(|s, _| s.seats)
    }

    pub fn set_seat_totals(&self, seats: SeatTotals) {
        self.with(|s, _| s.seats = seats);
    }

    /// Creates a login access group with `assigned_tokens` tokens (ten passes each).
    pub fn add_login_group(&self, name: &str, assigned_tokens: u32) -> Uuid {
        self.with(|s, now| s.add_login_group(name, assigned_tokens, now))
    }

    /// Records that `user` used a login pass of `group` from `start` to `latest`.
    pub fn add_login_usage(
        &self,
        group: Uuid,
        user: Uuid,
        start: Timestamp,
        latest: Timestamp,
    ) -> Result<Uuid, SiteError> {
        self.with(|s, _| s.add_login_usage(group, user, start, latest))
    }

    pub fn login_groups(&self) -> Vec<LoginGroupSnapshot> {
        let group = |s: &SiteState, g: &LoginGroupRec| LoginGroupSnapshot {
            id: g.id,
            name: g.name.clone(),
            assigned_tokens: g.assigned_tokens,
            used_passes: s.used_passes(g.id),
        };
        self.with(|s, _| s.login_groups().map(|g| group(s, g)).collect())
    }

    /// The allocations of one type, in the order QRS lists them.
    pub fn allocations(&self, access_type: SimAccessType) -> Vec<AllocationSnapshot> {
        self.with(|s, _| s.allocations(access_type).map(|a| snapshot(s, a)).collect())
    }

    pub fn allocation(&self, id: Uuid) -> Option<AllocationSnapshot> {
        self.with(|s, _| s.allocation(id).map(|a| snapshot(s, a)))
    }

    pub fn users(&self) -> Vec<UserSnapshot> {
        self.with(|s, _| s.users().map(|u| user_snapshot(s, u)).collect())
    }

    pub fn user_count(&self) -> usize {
        self.with(|s, _| s.user_count())
    }

    pub fn summary(&self) -> SiteSummary {
        self.with(|s, _| s.summary())
    }
}

fn snapshot(s: &SiteState, a: &AllocRec) -> AllocationSnapshot {
    let user = a.user.and_then(|u| s.user(u));
    let (user_directory, user_id) = match (user, &a.deleted_user) {
        (Some(u), _) => (u.user_directory.clone(), u.user_id.clone()),
        (None, Some((dir, id))) => (dir.clone(), id.clone()),
        (None, None) => (String::new(), String::new()),
    };
    AllocationSnapshot {
        id: a.id,
        access_type: a.kind,
        user: a.user,
        user_directory,
        user_id,
        last_used: match a.last_used {
            LastUsed::At(t) => Some(t),
            _ => None,
        },
        last_used_text: match &a.last_used {
            LastUsed::Never => s.sentinel_text.clone(),
            LastUsed::At(t) => format_ts(*t),
            LastUsed::Raw(r) => r.clone(),
        },
        created: a.created,
        quarantined: a.quarantined,
        quarantine_end: a.quarantine_end.filter(|_| a.quarantined),
        excess: a.excess,
    }
}

impl SiteState {
    pub(crate) fn summary(&self) -> SiteSummary {
        let per_type = |kind: SimAccessType| {
            let (mut allocated, mut quarantined, mut never_used) = (0usize, 0usize, 0usize);
            for a in self.allocations(kind) {
                if a.quarantined {
                    quarantined += 1;
                } else {
                    allocated += 1;
                }
                if a.last_used == LastUsed::Never {
                    never_used += 1;
                }
            }
            TypeSummary {
                allocated,
                quarantined,
                never_used,
            }
        };
        SiteSummary {
            users: self.users.len(),
            professional: per_type(SimAccessType::Professional),
            analyzer: per_type(SimAccessType::Analyzer),
            user: per_type(SimAccessType::User),
            login_groups: self.login_groups.len(),
            seats: self.seats,
        }
    }
}

fn user_snapshot(s: &SiteState, u: &UserRec) -> UserSnapshot {
    let tags = u
        .tags
        .iter()
        .filter_map(|t| s.tags.get(t))
        .map(|t| t.name.clone());
    let custom_properties = u.custom_properties.iter().filter_map(|cp| {
        let definition = s.cp_defs.get(&cp.definition)?;
        Some((definition.name.clone(), cp.value.clone()))
    });
    UserSnapshot {
        id: u.id,
        directory: u.user_directory.clone(),
        user_id: u.user_id.clone(),
        name: u.name.clone(),
        roles: u.roles.clone(),
        tags: tags.collect(),
        custom_properties: custom_properties.collect(),
        inactive: u.inactive,
        removed_externally: u.removed_externally,
        blacklisted: u.blacklisted,
    }
}
