//! The domain: access types, user identities, allocations and the user data that exclusions read.
//!
//! These types know nothing of HTTP or Kubernetes. The QRS client turns Qlik's JSON into them and the
//! decision engine reads them.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The rule that took a seat.
#[derive(
    schemars::JsonSchema,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
)]
#[serde(rename_all = "camelCase")]
pub enum Rule {
    /// Unused longer than its access type's threshold (or never used past the grace).
    Idle,
    /// Its user is a leaver (spec.leavers).
    Leaver,
    /// Its user holds a better seat (spec.redundant).
    Redundant,
    /// Its user only consumes: the Professional seat moves to Analyzer (spec.rightSize).
    RightSize,
}

impl Rule {
    /// The rules that take a seat from its user, in the order a run takes seats by them: leavers, then redundant
    /// seats, then idle ones. (Right-sizing comes between the last two, and gives the user a smaller seat.)
    pub const RECLAIMING: [Rule; 3] = [Rule::Leaver, Rule::Redundant, Rule::Idle];

    /// The rule as the record, the metrics' `reason` label and the templates write it.
    pub fn key(self) -> &'static str {
        match self {
            Rule::Idle => "idle",
            Rule::Leaver => "leaver",
            Rule::Redundant => "redundant",
            Rule::RightSize => "right-size",
        }
    }
}

/// A Qlik Sense access type (a kind of licence allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AccessType {
    /// Professional access (capacity/user-based licence).
    Professional,
    /// Analyzer access (capacity/user-based licence).
    Analyzer,
    /// Token-model user access pass.
    User,
    /// Token-model login access pass group. Never deleted: a group, not a per-user seat.
    Login,
}

impl AccessType {
    /// Every access type, in report order.
    pub const ALL: [AccessType; 4] = [
        AccessType::Professional,
        AccessType::Analyzer,
        AccessType::User,
        AccessType::Login,
    ];

    /// The QRS entity name under `/qrs/license/`.
    pub fn qrs_entity(self) -> &'static str {
        match self {
            AccessType::Professional => "professionalaccesstype",
            AccessType::Analyzer => "analyzeraccesstype",
            AccessType::User => "useraccesstype",
            AccessType::Login => "loginaccesstype",
        }
    }

    /// The key used in the policy (`spec.accessTypes.<key>`), status, metrics labels and reports.
    pub fn key(self) -> &'static str {
        match self {
            AccessType::Professional => "professional",
            AccessType::Analyzer => "analyzer",
            AccessType::User => "user",
            AccessType::Login => "login",
        }
    }

    /// The access type a key names (the reverse of [`AccessType::key`]).
    pub fn from_key(key: &str) -> Option<Self> {
        AccessType::ALL.into_iter().find(|t| t.key() == key)
    }

    /// Whether a single allocation of this type belongs to one user and can be deallocated.
    /// Login access passes are groups: deleting one removes the whole group.
    pub fn is_per_user_seat(self) -> bool {
        !matches!(self, AccessType::Login)
    }
}

impl fmt::Display for AccessType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A Qlik user identity, `DIRECTORY\userId`. Qlik compares both parts case-insensitively, so equality,
/// ordering and hashing here do too; the original spelling is kept for display.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserIdentity {
    pub directory: String,
    pub user_id: String,
}

impl UserIdentity {
    pub fn new(directory: impl Into<String>, user_id: impl Into<String>) -> Self {
        Self {
            directory: directory.into(),
            user_id: user_id.into(),
        }
    }

    /// `DIRECTORY\\userId` as reports write it; `None` without a backslash or with an empty part.
    pub fn parse(text: &str) -> Option<Self> {
        let (directory, user_id) = text.split_once('\\')?;
        (!directory.is_empty() && !user_id.is_empty()).then(|| Self::new(directory, user_id))
    }

    fn folded(&self) -> (String, String) {
        (self.directory.to_lowercase(), self.user_id.to_lowercase())
    }
}

impl PartialEq for UserIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.folded() == other.folded()
    }
}
impl Eq for UserIdentity {}

impl Hash for UserIdentity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.folded().hash(state);
    }
}

impl PartialOrd for UserIdentity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for UserIdentity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.folded().cmp(&other.folded())
    }
}

impl fmt::Display for UserIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\\{}", self.directory, self.user_id)
    }
}

/// When an allocation was last used, as far as QRS tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastUse {
    /// Used at this instant.
    At(Timestamp),
    /// Never used: QRS wrote its sentinel date (any year before 1900).
    Never,
    /// QRS sent something that is not a date. Such an allocation is kept and reported.
    Unknown(String),
}

/// One allocation of an access type to a user, as read from `/qrs/license/<type>/full`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// QRS allocation id (GUID), used for the DELETE.
    pub id: String,
    pub access_type: AccessType,
    /// QRS user id (GUID), used to fetch tags, custom properties and roles.
    pub user_id: String,
    pub user: UserIdentity,
    pub user_name: String,
    pub last_used: LastUse,
    /// `createdDate`; `None` when QRS sent none or an unparsable one.
    pub created: Option<Timestamp>,
    pub quarantined: bool,
    pub quarantine_end: Option<Timestamp>,
    /// A field a decision depends on (`lastUsed`, `createdDate`, `quarantined`) that QRS sent as missing, null
    /// or unreadable. Such an allocation is kept and reported: no value is never read as "never used".
    pub incomplete: Option<&'static str>,
    /// An Analyzer seat whose user holds a Professional seat too (learnt from the site's other allocations, not
    /// from this one; `spec.redundant`).
    pub user_also_professional: bool,
}

/// The parts of a QRS user record that scope and exclusion rules read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserDetails {
    pub id: String,
    /// `None` when QRS sent no list: unknown, never "has none", so an exclusion that reads it keeps the seat.
    pub tags: Option<Vec<String>>,
    /// `(definition name, value)` pairs; `None` as for `tags`.
    pub custom_properties: Option<Vec<(String, String)>>,
    /// `None` as for `tags`.
    pub roles: Option<Vec<String>>,
    /// QMC "Inactive"; `None` when QRS sent no value (unknown, never "not inactive").
    pub inactive: Option<bool>,
    /// Removed from the user directory (QMC "Removed externally"); `None` as for `inactive`.
    pub removed_externally: Option<bool>,
    /// Blocked in the QMC (QRS `blacklisted`); `None` as for `inactive`.
    pub blocked: Option<bool>,
    /// The user attribute `email` the user directory provides, when it does (notices go there, never to a guess).
    pub email: Option<String>,
}

impl UserDetails {
    /// Bytes of text this record keeps (its tags, custom properties, roles and e-mail address).
    pub fn kept_bytes(&self) -> usize {
        let list = |l: &Option<Vec<String>>| l.iter().flatten().map(String::len).sum::<usize>();
        list(&self.tags)
            + list(&self.roles)
            + self
                .custom_properties
                .iter()
                .flatten()
                .map(|(name, value)| name.len() + value.len())
                .sum::<usize>()
            + self.email.as_ref().map_or(0, String::len)
            + self.id.len()
    }

    /// Whether the user is in `state`; `None` when QRS did not say.
    pub fn in_state(&self, state: UserState) -> Option<bool> {
        match state {
            UserState::RemovedExternally => self.removed_externally,
            UserState::Blocked => self.blocked,
            UserState::Inactive => self.inactive,
        }
    }
}

/// A state Qlik records on a user that says they are gone or barred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UserState {
    /// Removed from the user directory: the directory connector's sync no longer finds the user.
    RemovedExternally,
    /// Blocked in the QMC (QRS `blacklisted`).
    Blocked,
    /// Marked inactive in the QMC.
    Inactive,
}

impl UserState {
    pub const ALL: [UserState; 3] = [
        UserState::RemovedExternally,
        UserState::Blocked,
        UserState::Inactive,
    ];

    /// The name in policies (`spec.leavers`, `spec.exclude.userStates`).
    pub fn key(self) -> &'static str {
        match self {
            UserState::RemovedExternally => "removedExternally",
            UserState::Blocked => "blocked",
            UserState::Inactive => "inactive",
        }
    }

    /// The field of QRS's user record, as the filter language names it.
    pub fn qrs_field(self) -> &'static str {
        match self {
            UserState::RemovedExternally => "removedExternally",
            UserState::Blocked => "blacklisted",
            UserState::Inactive => "inactive",
        }
    }

    /// What the state means, for decisions' reasons.
    pub fn describe(self) -> &'static str {
        match self {
            UserState::RemovedExternally => "removed from the user directory",
            UserState::Blocked => "blocked in the QMC",
            UserState::Inactive => "inactive in the QMC",
        }
    }
}

/// Seat counters of one access type, from `/qrs/license/accesstypeoverview`.
// One type for what the site reports, the run's report and the resources' status: the doc comments above and on
// the fields are the CRD's descriptions.
#[derive(
    schemars::JsonSchema, Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize,
)]
pub struct SeatCounts {
    /// Seats the licence grants.
    pub total: u64,
    /// Seats allocated to users.
    pub allocated: u64,
    /// Seats free to allocate.
    pub available: u64,
    /// Seats deallocated but in Qlik's 7-day quarantine.
    pub quarantined: u64,
    /// Seats allocated beyond what the licence grants (a licence that shrank): those users are denied access until
    /// seats are freed.
    #[serde(default)]
    pub excess: u64,
}
