//! Qlik's JSON, as QRS sends it, and its translation into the domain model.
//!
//! Only the fields the product reads are declared; QRS sends many more and unknown fields are ignored.

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
    pub quarantined: bool,
    #[serde(default)]
    pub quarantine_end: Option<String>,
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

/// The year below which Qlik's DateTime values mean "never": the repository writes 1753-01-01 (SQL Server's
/// minimum) and older releases 0001-01-01.
const SENTINEL_YEAR_BELOW: i16 = 1900;

/// Parse a QRS DateTime. `Ok(None)` is a sentinel or empty value (never); `Err` is text that is not a date.
pub(crate) fn parse_qrs_date(raw: &str) -> Result<Option<Timestamp>, ()> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
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
    /// Into the domain type. `Err` says what makes no sense.
    pub fn into_allocation(self, access_type: AccessType) -> Result<Allocation, String> {
        if self.id.trim().is_empty() {
            return Err("an allocation has an empty id".into());
        }
        let user = match (self.user, self.deleted_user_directory, self.deleted_user_id) {
            (Some(user), _, _) => user,
            // A deleted user's seat stays visible while Qlik's quarantine runs out; it is nobody's to reclaim.
            (None, Some(directory), Some(user_id)) => {
                return Ok(Allocation {
                    id: self.id,
                    access_type,
                    user_id: String::new(),
                    user: UserIdentity::new(directory, user_id),
                    user_name: "(deleted user)".into(),
                    last_used: LastUse::Never,
                    created: None,
                    quarantined: true,
                    quarantine_end: self
                        .quarantine_end
                        .as_deref()
                        .and_then(|raw| parse_qrs_date(raw).ok().flatten()),
                });
            }
            (None, _, _) => return Err(format!("allocation {} has no user", self.id)),
        };
        if user.user_id.is_empty() || user.user_directory.is_empty() {
            return Err(format!(
                "allocation {} has a user without a directory or id",
                self.id
            ));
        }
        let last_used = match self.last_used.as_deref() {
            None => LastUse::Never,
            Some(raw) => match parse_qrs_date(raw) {
                Ok(Some(ts)) => LastUse::At(ts),
                Ok(None) => LastUse::Never,
                Err(()) => LastUse::Unknown(raw.to_string()),
            },
        };
        let created = self
            .created_date
            .as_deref()
            .and_then(|raw| parse_qrs_date(raw).ok().flatten());
        let quarantine_end = self
            .quarantine_end
            .as_deref()
            .and_then(|raw| parse_qrs_date(raw).ok().flatten());
        Ok(Allocation {
            id: self.id,
            access_type,
            user_id: user.id,
            user: UserIdentity::new(user.user_directory, user.user_id),
            user_name: user.name.unwrap_or_default(),
            last_used,
            created,
            quarantined: self.quarantined,
            quarantine_end,
        })
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
    pub inactive: bool,
    #[serde(default)]
    pub removed_externally: bool,
    #[serde(default)]
    pub blacklisted: bool,
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

impl From<UserJson> for UserDetails {
    fn from(u: UserJson) -> Self {
        UserDetails {
            id: u.id,
            tags: u
                .tags
                .unwrap_or_default()
                .into_iter()
                .map(|t| t.name)
                .collect(),
            custom_properties: u
                .custom_properties
                .unwrap_or_default()
                .into_iter()
                .map(|cp| (cp.definition.name, cp.value.unwrap_or_default()))
                .collect(),
            roles: u.roles.unwrap_or_default(),
            inactive: u.inactive,
            removed_externally: u.removed_externally,
            blacklisted: u.blacklisted,
        }
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinels_and_blanks_mean_never() {
        assert_eq!(parse_qrs_date("1753-01-01T00:00:00.000Z"), Ok(None));
        assert_eq!(parse_qrs_date("0001-01-01T00:00:00.000Z"), Ok(None));
        assert_eq!(parse_qrs_date(""), Ok(None));
        assert_eq!(parse_qrs_date("garbage"), Err(()));
        let ts = parse_qrs_date("2024-01-31T19:44:28.951Z").unwrap().unwrap();
        assert_eq!(format_qrs_date(ts), "2024-01-31T19:44:28.951Z");
        let naive = parse_qrs_date("2024-01-31T19:44:28").unwrap().unwrap();
        assert_eq!(format_qrs_date(naive), "2024-01-31T19:44:28.000Z");
    }

    #[test]
    fn allocation_without_user_makes_no_sense_unless_the_user_was_deleted() {
        let json = r#"{"id":"a1","lastUsed":"2024-01-31T19:44:28.951Z","user":null}"#;
        let alloc: AllocationJson = serde_json::from_str(json).unwrap();
        let err = alloc.into_allocation(AccessType::Professional).unwrap_err();
        assert!(err.contains("has no user"), "{err}");

        let json = r#"{"id":"a1","lastUsed":"2024-01-31T19:44:28.951Z","user":null,"quarantined":true,
            "deletedUserId":"jdoe","deletedUserDirectory":"CORP"}"#;
        let alloc: AllocationJson = serde_json::from_str(json).unwrap();
        let alloc = alloc.into_allocation(AccessType::Professional).unwrap();
        assert!(alloc.quarantined, "kept as quarantined, never reclaimed");
        assert_eq!(alloc.user.to_string(), "CORP\\jdoe");
    }

    #[test]
    fn unreadable_last_use_is_kept_as_unknown() {
        let json = r#"{"id":"a1","createdDate":"2024-01-01T00:00:00.000Z","lastUsed":"31/01/2024","quarantined":false,
            "user":{"id":"u1","userId":"jdoe","userDirectory":"CORP","name":"J Doe"}}"#;
        let alloc: AllocationJson = serde_json::from_str(json).unwrap();
        let alloc = alloc.into_allocation(AccessType::Analyzer).unwrap();
        assert_eq!(alloc.last_used, LastUse::Unknown("31/01/2024".into()));
        assert_eq!(alloc.user, UserIdentity::new("corp", "JDOE"));
    }
}
