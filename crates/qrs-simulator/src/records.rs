//! The site's records as the simulator stores them: users, allocations, login access groups and their usage, and
//! the licence's seat totals. Behaviour lives in [`crate::site`]; how QRS renders them in [`crate::views`].

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use uuid::Uuid;

/// How long a deallocated seat that was used recently stays quarantined, counted from its last use.
pub(crate) const QUARANTINE: SignedDuration = SignedDuration::from_hours(7 * 24);

/// The access types QRS exposes under `/qrs/license/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SimAccessType {
    /// `professionalaccesstype`: a per-user Professional seat.
    Professional,
    /// `analyzeraccesstype`: a per-user Analyzer seat.
    Analyzer,
    /// `useraccesstype`: a per-user pass paid with tokens.
    User,
    /// `loginaccesstype`: a login access *group*, not a per-user allocation.
    Login,
}

impl SimAccessType {
    /// The types that are allocated to one user each.
    pub const PER_USER: [SimAccessType; 3] = [
        SimAccessType::Professional,
        SimAccessType::Analyzer,
        SimAccessType::User,
    ];

    /// The path segment under `/qrs/license/`.
    pub fn path_segment(self) -> &'static str {
        match self {
            SimAccessType::Professional => "professionalaccesstype",
            SimAccessType::Analyzer => "analyzeraccesstype",
            SimAccessType::User => "useraccesstype",
            SimAccessType::Login => "loginaccesstype",
        }
    }

    pub fn schema_path(self) -> &'static str {
        match self {
            SimAccessType::Professional => "License.ProfessionalAccessType",
            SimAccessType::Analyzer => "License.AnalyzerAccessType",
            SimAccessType::User => "License.UserAccessType",
            SimAccessType::Login => "License.LoginAccessType",
        }
    }

    /// Parses a path segment, case-insensitively.
    pub fn from_path_segment(segment: &str) -> Option<SimAccessType> {
        [
            SimAccessType::Professional,
            SimAccessType::Analyzer,
            SimAccessType::User,
            SimAccessType::Login,
        ]
        .into_iter()
        .find(|t| t.path_segment().eq_ignore_ascii_case(segment))
    }

    pub(crate) fn index(self) -> usize {
        match self {
            SimAccessType::Professional => 0,
            SimAccessType::Analyzer => 1,
            SimAccessType::User => 2,
            SimAccessType::Login => 3,
        }
    }
}

impl fmt::Display for SimAccessType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SimAccessType::Professional => "professional",
            SimAccessType::Analyzer => "analyzer",
            SimAccessType::User => "user",
            SimAccessType::Login => "login",
        })
    }
}

/// Why a change to the site was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiteError {
    #[error("no user with id {0}")]
    UnknownUser(Uuid),
    #[error("no allocation with id {0}")]
    UnknownAllocation(Uuid),
    #[error("no login access group with id {0}")]
    UnknownLoginGroup(Uuid),
    #[error("a user {0}\\{1} already exists")]
    DuplicateUser(String, String),
    #[error("login access is allocated to groups, not to one user")]
    NotPerUser,
    #[error("no app with id {0}")]
    UnknownApp(Uuid),
}

/// An app, with the owner and the dates right-sizing reads.
#[derive(Debug, Clone)]
pub(crate) struct AppRec {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) owner: Uuid,
    pub(crate) created: Timestamp,
    pub(crate) modified: Timestamp,
    pub(crate) published: bool,
}

/// An object of an app (a sheet, story, bookmark, master item, ...), with its owner and dates.
#[derive(Debug, Clone)]
pub(crate) struct AppObjectRec {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    /// As QRS writes it: `sheet`, `story`, `bookmark`, `snapshot`, `masterobject`, `dimension`, `measure`, ...
    pub(crate) object_type: String,
    pub(crate) owner: Uuid,
    pub(crate) app: Uuid,
    pub(crate) created: Timestamp,
    pub(crate) modified: Timestamp,
    pub(crate) published: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct UserRec {
    pub(crate) id: Uuid,
    pub(crate) user_id: String,
    pub(crate) user_directory: String,
    pub(crate) connector: String,
    pub(crate) name: String,
    pub(crate) roles: Vec<String>,
    pub(crate) tags: Vec<Uuid>,
    pub(crate) custom_properties: Vec<CustomPropertyValue>,
    pub(crate) attributes: Vec<AttributeRec>,
    pub(crate) inactive: bool,
    pub(crate) removed_externally: bool,
    pub(crate) blacklisted: bool,
    pub(crate) delete_prohibited: bool,
    pub(crate) created: Timestamp,
    pub(crate) modified: Timestamp,
    pub(crate) modified_by: String,
}

#[derive(Debug, Clone)]
pub(crate) struct CustomPropertyValue {
    pub(crate) id: Uuid,
    pub(crate) definition: Uuid,
    pub(crate) value: String,
}

#[derive(Debug, Clone)]
pub(crate) struct AttributeRec {
    pub(crate) id: Uuid,
    pub(crate) attribute_type: String,
    pub(crate) attribute_value: String,
    pub(crate) external_id: String,
}

#[derive(Debug, Clone)]
pub(crate) struct TagRec {
    pub(crate) id: Uuid,
    pub(crate) name: String,
}

#[derive(Debug, Clone)]
pub(crate) struct CustomPropertyDef {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) choice_values: Vec<String>,
}

/// `lastUsed` as stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LastUsed {
    /// Never used: rendered as the sentinel.
    Never,
    At(Timestamp),
    /// A value that is not a date, to test how clients cope with one.
    Raw(String),
}

#[derive(Debug, Clone)]
pub(crate) struct AllocRec {
    pub(crate) id: Uuid,
    pub(crate) kind: SimAccessType,
    /// None once the user was deleted while the seat sat in quarantine.
    pub(crate) user: Option<Uuid>,
    pub(crate) deleted_user: Option<(String, String)>,
    pub(crate) created: Timestamp,
    pub(crate) modified: Timestamp,
    pub(crate) modified_by: String,
    pub(crate) last_used: LastUsed,
    pub(crate) excess: bool,
    /// The seat's `excess` is sent as nothing (left out of the full view, null in the table view).
    pub(crate) excess_unsent: bool,
    pub(crate) quarantined: bool,
    pub(crate) quarantine_end: Option<Timestamp>,
}

impl AllocRec {
    /// A seat of `kind` held by `user`, created at `created` by `by`: never used, not quarantined.
    pub(crate) fn new(
        id: Uuid,
        kind: SimAccessType,
        user: Uuid,
        created: Timestamp,
        by: &str,
    ) -> AllocRec {
        AllocRec {
            id,
            kind,
            user: Some(user),
            deleted_user: None,
            created,
            modified: created,
            modified_by: by.to_string(),
            last_used: LastUsed::Never,
            excess: false,
            excess_unsent: false,
            quarantined: false,
            quarantine_end: None,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct LoginGroupRec {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) assigned_tokens: u32,
    pub(crate) created: Timestamp,
    pub(crate) modified: Timestamp,
}

#[derive(Debug, Clone)]
pub(crate) struct LoginUsageRec {
    pub(crate) id: Uuid,
    pub(crate) group: Uuid,
    pub(crate) user: Uuid,
    pub(crate) use_start: Timestamp,
    pub(crate) latest_activity: Timestamp,
}

/// Seats and tokens the licence provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeatTotals {
    pub professional: u32,
    pub analyzer: u32,
    /// Tokens for user passes and login access groups (the token model).
    pub tokens: u32,
}

/// A user to create with [`SiteHandle::add_user`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewUser {
    pub directory: String,
    pub user_id: String,
    /// Display name; the user id when absent.
    pub name: Option<String>,
    /// Connector name; derived from the directory when absent.
    pub connector: Option<String>,
    pub tags: Vec<String>,
    /// `(definition name, value)` pairs, for example `("LicenseCleanup", "Exempt")`.
    pub custom_properties: Vec<(String, String)>,
    pub roles: Vec<String>,
    /// `(attributeType, attributeValue)` pairs, for example `("email", "a@example.com")`.
    pub attributes: Vec<(String, String)>,
    pub inactive: bool,
    /// Also makes the user inactive, as QRS does.
    pub removed_externally: bool,
    pub blacklisted: bool,
    pub delete_prohibited: bool,
}

impl NewUser {
    pub fn new(directory: impl Into<String>, user_id: impl Into<String>) -> NewUser {
        NewUser {
            directory: directory.into(),
            user_id: user_id.into(),
            ..NewUser::default()
        }
    }

    pub fn name(mut self, name: impl Into<String>) -> NewUser {
        self.name = Some(name.into());
        self
    }

    pub fn tag(mut self, tag: impl Into<String>) -> NewUser {
        self.tags.push(tag.into());
        self
    }

    pub fn custom_property(mut self, name: impl Into<String>, value: impl Into<String>) -> NewUser {
        self.custom_properties.push((name.into(), value.into()));
        self
    }

    pub fn role(mut self, role: impl Into<String>) -> NewUser {
        self.roles.push(role.into());
        self
    }

    pub fn attribute(
        mut self,
        attribute_type: impl Into<String>,
        value: impl Into<String>,
    ) -> NewUser {
        self.attributes.push((attribute_type.into(), value.into()));
        self
    }

    pub fn inactive(mut self, inactive: bool) -> NewUser {
        self.inactive = inactive;
        self
    }

    pub fn removed_externally(mut self, removed: bool) -> NewUser {
        self.removed_externally = removed;
        self
    }

    pub fn blacklisted(mut self, blacklisted: bool) -> NewUser {
        self.blacklisted = blacklisted;
        self
    }
}
