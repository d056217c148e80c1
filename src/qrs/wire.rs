//! Qlik's JSON, as QRS sends it, and its translation into the domain model.
//!
//! Only the fields the product reads are declared; QRS sends many more and unknown fields are ignored. The
//! declared ones are checked as QRS defines them: ids are GUIDs, dates are dates, lists are lists. A value of
//! the wrong type makes the whole answer nonsense (the run fails before any DELETE); a field a decision
//! depends on that is missing or null makes that one allocation (or user record) "unknown", which is kept.

use jiff::Timestamp;
use serde::Deserialize;

use crate::model::{AccessType, Allocation, LastUse, SeatCounts, UserDetails, UserIdentity};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AllocationJson {
    pub id: String,
    #[serde(default)]
    pub created_date: Option<String>,
    #[serde(default)]
    pub last_used: Option<String>,
    #[serde(default)]
    pub quarantined: Option<bool>,
    #[serde(default)]
    pub quarantine_end: Option<String>,
    #[serde(default)]
    pub user: Option<AllocationUserJson>,
    #[serde(default)]
    pub deleted_user_id: Option<String>,
    #[serde(default)]
    pub deleted_user_directory: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AllocationUserJson {
    pub id: String,
    pub user_id: String,
    pub user_directory: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// Whether `id` is a GUID as QRS writes them: 36 characters, hex digits in 8-4-4-4-12 groups. Ids go into
/// DELETE paths and filters exactly as listed, so anything else is refused rather than "cleaned" into another.
pub(crate) fn is_guid(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The longest `userId` and `userDirectory` Qlik's repository stores (`maxLength` in the Repository API
/// definition a site serves at /qrs/about/openapi/main).
pub(crate) const USER_ID_CHARS: usize = 255;
/// The longest user `name` (display name) Qlik's repository stores.
pub(crate) const USER_NAME_CHARS: usize = 511;

/// `Err` naming the field and Qlik's limit when `value` is longer than the repository can store: such an answer
/// did not come from a repository as Qlik defines it, and its text would be kept for every seat of the run.
/// Display names are refused like ids rather than cut: the limit is Qlik's own, so a longer name says the answer
/// is wrong (as an id that is not a GUID does), and the run then fails before any DELETE instead of acting on it.
fn within(allocation: &str, field: &str, value: &str, limit: usize) -> Result<(), String> {
    // Characters as Qlik counts them; bytes bound the count first, so a huge value is not walked.
    if value.len() > limit && value.chars().count() > limit {
        return Err(format!(
            "allocation {allocation} names a user whose {field} is longer than {limit} characters, the most \
             Qlik's repository stores"
        ));
    }
    Ok(())
}

/// `what` as it may be repeated in a message: short, printable.
fn quoted(what: &str) -> String {
    let shown: String = what
        .chars()
        .take(40)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if what.chars().count() > 40 {
        format!("{shown:?}…")
    } else {
        format!("{shown:?}")
    }
}

/// The year below which Qlik's DateTime values mean "never": the repository writes 1753-01-01 (SQL Server's
/// minimum) and older releases 0001-01-01.
const SENTINEL_YEAR_BELOW: i16 = 1900;

/// Parse a QRS DateTime. `Ok(None)` is a sentinel (never); `Err` is text that is not a date, the empty text
/// included (QRS always writes a date).
pub(crate) fn parse_qrs_date(raw: &str) -> Result<Option<Timestamp>, ()> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(());
    }
    // QRS writes UTC with a Z; a timestamp without an offset is read as UTC as QRS means it.
    let ts = raw
        .parse::<Timestamp>()
        .or_else(|_| {
            raw.parse::<jiff::civil::DateTime>()
                .map_err(|_| ())
                .and_then(|dt| {
                    dt.to_zoned(jiff::tz::TimeZone::UTC)
                        .map(|z| z.timestamp())
                        .map_err(|_| ())
                })
        })
        .map_err(|_| ())?;
    if ts.to_zoned(jiff::tz::TimeZone::UTC).year() < SENTINEL_YEAR_BELOW {
        return Ok(None);
    }
    Ok(Some(ts))
}

/// The format QRS filters and answers use: ISO 8601, milliseconds, UTC.
pub(crate) fn format_qrs_date(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl AllocationJson {
    /// Into the domain type. `Err` says what makes the answer nonsense.
    pub(crate) fn into_allocation(self, access_type: AccessType) -> Result<Allocation, String> {
        if !is_guid(&self.id) {
            return Err(format!(
                "an allocation id {} is not a GUID",
                quoted(&self.id)
            ));
        }
        let quarantine_end = self
            .quarantine_end
            .as_deref()
            .and_then(|raw| parse_qrs_date(raw).ok().flatten());
        let user = match (self.user, self.deleted_user_directory, self.deleted_user_id) {
            (Some(user), _, _) => user,
            // A deleted user's seat stays visible while Qlik's quarantine runs out; it is nobody's to reclaim.
            (None, Some(directory), Some(user_id)) => {
                return deleted_users_seat(
                    self.id,
                    access_type,
                    directory,
                    user_id,
                    quarantine_end,
                );
            }
            (None, _, _) => return Err(format!("allocation {} has no user", self.id)),
        };
        user.check(&self.id)?;
        let mut incomplete = None;
        let last_used = match self.last_used.as_deref() {
            None => {
                incomplete = Some("lastUsed");
                LastUse::Unknown("missing".into())
            }
            Some(raw) => match parse_qrs_date(raw) {
                Ok(Some(ts)) => LastUse::At(ts),
                Ok(None) => LastUse::Never,
                Err(()) => LastUse::Unknown(raw.to_string()),
            },
        };
        let created = match self.created_date.as_deref().map(parse_qrs_date) {
            Some(Ok(created)) => created,
            None | Some(Err(())) => {
                incomplete = incomplete.or(Some("createdDate"));
                None
            }
        };
        let quarantined = self.quarantined.unwrap_or_else(|| {
            incomplete = incomplete.or(Some("quarantined"));
            false
        });
        Ok(Allocation {
            id: self.id,
            access_type,
            user_id: user.id,
            user: UserIdentity::new(user.user_directory, user.user_id),
            user_name: user.name.unwrap_or_default(),
            last_used,
            created,
            quarantined,
            quarantine_end,
            incomplete,
            user_also_professional: false,
        })
    }
}

/// The seat of a user Qlik deleted: quarantined, so nobody's to reclaim. Its names are bounded as a live user's
/// are, since they too are kept for every seat of the run.
fn deleted_users_seat(
    id: String,
    access_type: AccessType,
    directory: String,
    user_id: String,
    quarantine_end: Option<Timestamp>,
) -> Result<Allocation, String> {
    within(&id, "deletedUserDirectory", &directory, USER_ID_CHARS)?;
    within(&id, "deletedUserId", &user_id, USER_ID_CHARS)?;
    Ok(Allocation {
        id,
        access_type,
        user_id: String::new(),
        user: UserIdentity::new(directory, user_id),
        user_name: "(deleted user)".into(),
        last_used: LastUse::Never,
        created: None,
        quarantined: true,
        quarantine_end,
        incomplete: None,
        user_also_professional: false,
    })
}

impl AllocationUserJson {
    /// `Err` when the user `allocation` names could not come from Qlik's repository: a seat is reclaimed
    /// from the user it names, so a user that is not one Qlik stores makes the whole answer nonsense.
    fn check(&self, allocation: &str) -> Result<(), String> {
        if !is_guid(&self.id) {
            return Err(format!(
                "allocation {allocation} names a user whose id {} is not a GUID",
                quoted(&self.id)
            ));
        }
        within(allocation, "userId", &self.user_id, USER_ID_CHARS)?;
        within(
            allocation,
            "userDirectory",
            &self.user_directory,
            USER_ID_CHARS,
        )?;
        if let Some(name) = &self.name {
            within(allocation, "name", name, USER_NAME_CHARS)?;
        }
        if self.user_id.is_empty() || self.user_directory.is_empty() {
            return Err(format!(
                "allocation {allocation} has a user without a directory or id"
            ));
        }
        Ok(())
    }
}

/// A page of QRS's table view with the columns `id` and `user.id`.
#[derive(Debug, Deserialize)]
pub(crate) struct TableJson {
    pub rows: Vec<Vec<serde_json::Value>>,
}

/// One allocation as the table view shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    pub allocation: uuid::Uuid,
    pub user: uuid::Uuid,
    pub access: SeatAccess,
}

/// Whether a seat gives its user access, as far as the table view tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatAccess {
    /// Neither quarantined nor excess.
    Gives,
    /// Quarantined (deallocated; the user has lost access) or excess (beyond the licence; the proxy denies the
    /// user).
    Denied,
    /// QRS sent no usable value for this flag (and neither flag says the seat is denied): unknown, read neither as
    /// access nor as none.
    Unknown(&'static str),
}

/// A seat as `/full` lists it, read only for whom it gives access.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HeldSeatJson {
    pub id: String,
    #[serde(default)]
    pub user: Option<HeldSeatUserJson>,
    #[serde(default)]
    pub quarantined: serde_json::Value,
    #[serde(default)]
    pub excess: serde_json::Value,
}

#[derive(Debug, Deserialize)]
pub(crate) struct HeldSeatUserJson {
    pub id: String,
}

impl HeldSeatJson {
    /// The seat and its holder, with whether it gives access; an error for ids that are not GUIDs or a seat
    /// without a holder (a deleted user's seat is not listed by a filter on `user.id`).
    pub(crate) fn into_holder(self) -> Result<Holder, String> {
        let parse = |id: &str| uuid::Uuid::try_parse(id).ok().filter(|_| is_guid(id));
        let allocation =
            parse(&self.id).ok_or_else(|| "an allocation id is not a GUID".to_string())?;
        let user = self
            .user
            .as_ref()
            .and_then(|u| parse(&u.id))
            .ok_or_else(|| format!("allocation {allocation} names no user GUID"))?;
        Ok(Holder {
            allocation,
            user,
            access: seat_access(&self.quarantined, &self.excess),
        })
    }
}

/// One row of the table: `[allocation id, user id, quarantined, excess]`.
pub(crate) trait HolderRow {
    /// The row; `None` for a seat whose user was deleted (the seat waits out a quarantine). `Err` says what makes
    /// the answer nonsense.
    fn into_holder(self) -> Result<Option<Holder>, String>;
}

impl HolderRow for Vec<serde_json::Value> {
    fn into_holder(self) -> Result<Option<Holder>, String> {
        let guid = |value: &serde_json::Value| -> Result<Option<uuid::Uuid>, String> {
            match value {
                serde_json::Value::Null => Ok(None),
                serde_json::Value::String(text) if is_guid(text) => uuid::Uuid::try_parse(text)
                    .map(Some)
                    .map_err(|_| format!("{} is not a GUID", quoted(text))),
                other => Err(format!(
                    "a table cell {} is not a GUID",
                    quoted(&other.to_string())
                )),
            }
        };
        match self.as_slice() {
            [id, user, quarantined, excess] => match (guid(id)?, guid(user)?) {
                (Some(allocation), Some(user)) => Ok(Some(Holder {
                    allocation,
                    user,
                    access: seat_access(quarantined, excess),
                })),
                (None, _) => Err("a table row has no allocation id".into()),
                (Some(_), None) => Ok(None),
            },
            _ => Err(format!("a table row has {} cells, not 4", self.len())),
        }
    }
}

/// A seat gives access only when QRS says it is neither quarantined nor excess. A flag QRS did not send (a missing
/// or null cell, or not a boolean) is unknown: it is never read as `false`, which would say the seat gives access.
fn seat_access(quarantined: &serde_json::Value, excess: &serde_json::Value) -> SeatAccess {
    match (quarantined.as_bool(), excess.as_bool()) {
        (Some(true), _) | (_, Some(true)) => SeatAccess::Denied,
        (Some(false), Some(false)) => SeatAccess::Gives,
        (None, _) => SeatAccess::Unknown("quarantined"),
        (_, None) => SeatAccess::Unknown("excess"),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserJson {
    pub id: String,
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    #[serde(default)]
    pub tags: Option<Vec<NamedJson>>,
    #[serde(default)]
    pub custom_properties: Option<Vec<CustomPropertyValueJson>>,
    #[serde(default)]
    pub inactive: Option<bool>,
    #[serde(default)]
    pub removed_externally: Option<bool>,
    #[serde(default)]
    pub blacklisted: Option<bool>,
    #[serde(default)]
    pub attributes: Option<Vec<AttributeJson>>,
}

/// A user attribute from the user directory, for example `{"attributeType": "email", "attributeValue": ...}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AttributeJson {
    #[serde(default)]
    pub attribute_type: Option<String>,
    #[serde(default)]
    pub attribute_value: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct NamedJson {
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CustomPropertyValueJson {
    #[serde(default)]
    pub value: Option<String>,
    pub definition: NamedJson,
}

impl UserJson {
    /// Into the domain type. `Err` says what makes the answer nonsense.
    pub(crate) fn into_details(self) -> Result<UserDetails, String> {
        if !is_guid(&self.id) {
            return Err(format!("a user id {} is not a GUID", quoted(&self.id)));
        }
        Ok(UserDetails {
            id: self.id,
            tags: self
                .tags
                .map(|tags| tags.into_iter().map(|t| t.name).collect()),
            custom_properties: self.custom_properties.map(|properties| {
                properties
                    .into_iter()
                    .map(|cp| (cp.definition.name, cp.value.unwrap_or_default()))
                    .collect()
            }),
            roles: self.roles,
            inactive: self.inactive,
            removed_externally: self.removed_externally,
            blocked: self.blacklisted,
            // The first non-empty `email` attribute (directories may send it more than once).
            email: self.attributes.into_iter().flatten().find_map(|a| {
                let is_email = a
                    .attribute_type
                    .is_some_and(|t| t.eq_ignore_ascii_case("email"));
                a.attribute_value
                    .map(|v| v.trim().to_string())
                    .filter(|v| is_email && !v.is_empty())
            }),
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct CountJson {
    pub value: u64,
}

/// `GET /qrs/license/accesstypeoverview`. Every part is optional: the endpoint is marked experimental and
/// older releases omit parts.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OverviewJson {
    #[serde(default)]
    pub professional_access: Option<SeatJson>,
    #[serde(default)]
    pub analyzer_access: Option<SeatJson>,
    #[serde(default)]
    pub user_access: Option<TokenSeatJson>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SeatJson {
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub allocated: u64,
    #[serde(default)]
    pub available: u64,
    #[serde(default)]
    pub quarantined: u64,
    /// Allocated beyond the licence's total (a licence that shrank): those users are denied access.
    #[serde(default)]
    pub excess: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenSeatJson {
    #[serde(default)]
    pub allocated_tokens: u64,
    #[serde(default)]
    pub used_tokens: u64,
    #[serde(default)]
    pub quarantined_tokens: u64,
}

impl From<SeatJson> for SeatCounts {
    fn from(s: SeatJson) -> Self {
        SeatCounts {
            total: s.total,
            allocated: s.allocated,
            available: s.available,
            quarantined: s.quarantined,
            excess: s.excess,
        }
    }
}

#[cfg(test)]
mod tests;
