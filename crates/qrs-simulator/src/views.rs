//! How QRS filters and renders the site's entities as JSON: condensed and full allocation and user objects, with
//! QRS's field names, date format and sentinels.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde::ser::Serializer;
use uuid::Uuid;

use crate::filter::{Record, Val};
use crate::records::*;
use crate::site::{PASSES_PER_TOKEN, SiteState};
use crate::time::*;

// Views: how entities are filtered and rendered

pub(crate) enum DateOut<'a> {
    Ts(Ts),
    Text(&'a str),
}

impl Serialize for DateOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            DateOut::Ts(t) => t.serialize(s),
            DateOut::Text(t) => s.serialize_str(t),
        }
    }
}

fn uuid_str<'b>(id: &Uuid, buf: &'b mut [u8]) -> &'b str {
    id.hyphenated().encode_lower(buf)
}

/// An allocation together with its user, as QRS shows it.
#[derive(Clone, Copy)]
pub(crate) struct AllocView<'a> {
    pub(crate) a: &'a AllocRec,
    user: Option<&'a UserRec>,
    site: &'a SiteState,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AllocationOut<'a> {
    id: Uuid,
    created_date: Ts,
    modified_date: Ts,
    modified_by_user_name: &'a str,
    schema_path: &'static str,
    privileges: Option<[&'static str; 4]>,
    user: Option<UserCondensedOut<'a>>,
    last_used: DateOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    excess: Option<bool>,
    quarantined: bool,
    quarantine_end: DateOut<'a>,
    deleted_user_id: Option<&'a str>,
    deleted_user_directory: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserCondensedOut<'a> {
    id: Uuid,
    user_id: &'a str,
    user_directory: &'a str,
    user_directory_connector_name: &'a str,
    name: &'a str,
    privileges: Option<[&'static str; 4]>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IdCondensedOut {
    id: Uuid,
    privileges: Option<[&'static str; 4]>,
}

fn privs(on: bool) -> Option<[&'static str; 4]> {
    on.then_some(PRIVILEGES)
}

impl<'a> AllocView<'a> {
    pub(crate) fn full(self, privileges: bool) -> AllocationOut<'a> {
        let a = self.a;
        let site = self.site;
        AllocationOut {
            id: a.id,
            created_date: Ts(a.created),
            modified_date: Ts(a.modified),
            modified_by_user_name: &a.modified_by,
            schema_path: a.kind.schema_path(),
            privileges: privs(privileges),
            user: self.user.map(|u| condensed_user(u, privileges)),
            last_used: match &a.last_used {
                LastUsed::Never => DateOut::Text(&site.sentinel_text),
                LastUsed::At(t) => DateOut::Ts(Ts(*t)),
                LastUsed::Raw(s) => DateOut::Text(s),
            },
            excess: (a.kind != SimAccessType::User && !a.excess_unsent).then_some(a.excess),
            quarantined: a.quarantined,
            quarantine_end: site.date_text(if a.quarantined {
                a.quarantine_end
            } else {
                None
            }),
            deleted_user_id: a.deleted_user.as_ref().map(|(_, id)| id.as_str()),
            deleted_user_directory: a.deleted_user.as_ref().map(|(dir, _)| dir.as_str()),
        }
    }

    pub(crate) fn condensed(self, privileges: bool) -> IdCondensedOut {
        IdCondensedOut {
            id: self.a.id,
            privileges: privs(privileges),
        }
    }
}

fn condensed_user(u: &UserRec, privileges: bool) -> UserCondensedOut<'_> {
    UserCondensedOut {
        id: u.id,
        user_id: &u.user_id,
        user_directory: &u.user_directory,
        user_directory_connector_name: &u.connector,
        name: &u.name,
        privileges: privs(privileges),
    }
}

impl Record for AllocView<'_> {
    fn known_path(path: &[String]) -> bool {
        match path {
            [one] => matches!(
                one.as_str(),
                "id" | "createddate"
                    | "modifieddate"
                    | "modifiedbyusername"
                    | "schemapath"
                    | "privileges"
                    | "lastused"
                    | "excess"
                    | "quarantined"
                    | "quarantineend"
                    | "deleteduserid"
                    | "deleteduserdirectory"
                    | "user"
            ),
            [head, rest @ ..] if head == "user" => UserView::known_path(rest),
            _ => false,
        }
    }

    fn visit(&self, path: &[String], f: &mut dyn FnMut(Val<'_>) -> bool) -> bool {
        let a = self.a;
        let mut buf = uuid::Uuid::encode_buffer();
        match path {
            [one] => f(match one.as_str() {
                "id" => Val::Str(uuid_str(&a.id, &mut buf)),
                "createddate" => Val::Time(a.created),
                "modifieddate" => Val::Time(a.modified),
                "modifiedbyusername" => Val::Str(&a.modified_by),
                "schemapath" => Val::Str(a.kind.schema_path()),
                "lastused" => match &a.last_used {
                    LastUsed::Never => self.site.sentinel_val(),
                    LastUsed::At(t) => Val::Time(*t),
                    LastUsed::Raw(s) => Val::Str(s),
                },
                "excess" if a.kind != SimAccessType::User && !a.excess_unsent => {
                    Val::Bool(a.excess)
                }
                "quarantined" => Val::Bool(a.quarantined),
                "quarantineend" => match (a.quarantined, a.quarantine_end) {
                    (true, Some(t)) => Val::Time(t),
                    _ => self.site.sentinel_val(),
                },
                "deleteduserid" => a
                    .deleted_user
                    .as_ref()
                    .map_or(Val::Null, |(_, id)| Val::Str(id)),
                "deleteduserdirectory" => a
                    .deleted_user
                    .as_ref()
                    .map_or(Val::Null, |(dir, _)| Val::Str(dir)),
                "user" => match self.user {
                    Some(u) => Val::Str(uuid_str(&u.id, &mut buf)),
                    None => Val::Null,
                },
                _ => Val::Null,
            }),
            [head, rest @ ..] if head == "user" => match self.user {
                Some(u) => self.site.user_view(u).visit(rest, f),
                None => f(Val::Null),
            },
            _ => f(Val::Null),
        }
    }
}

/// A user as QRS shows it.
#[derive(Clone, Copy)]
pub(crate) struct UserView<'a> {
    pub(crate) u: &'a UserRec,
    site: &'a SiteState,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserOut<'a> {
    id: Uuid,
    created_date: Ts,
    modified_date: Ts,
    modified_by_user_name: &'a str,
    user_id: &'a str,
    user_directory: &'a str,
    user_directory_connector_name: &'a str,
    name: &'a str,
    roles: &'a [String],
    attributes: Vec<AttributeOut<'a>>,
    inactive: bool,
    removed_externally: bool,
    blacklisted: bool,
    delete_prohibited: bool,
    tags: Vec<TagOut<'a>>,
    custom_properties: Vec<CustomPropertyOut<'a>>,
    favorites: [(); 0],
    privileges: Option<[&'static str; 4]>,
    schema_path: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AttributeOut<'a> {
    id: Uuid,
    attribute_type: &'a str,
    attribute_value: &'a str,
    external_id: &'a str,
    schema_path: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TagOut<'a> {
    id: Uuid,
    name: &'a str,
    privileges: Option<[&'static str; 4]>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CustomPropertyOut<'a> {
    id: Uuid,
    value: &'a str,
    definition: CustomPropertyDefOut<'a>,
    schema_path: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CustomPropertyDefOut<'a> {
    id: Uuid,
    name: &'a str,
    value_type: &'static str,
    choice_values: &'a [String],
    privileges: Option<[&'static str; 4]>,
}

impl<'a> UserView<'a> {
    pub(crate) fn full(self, privileges: bool) -> UserOut<'a> {
        let u = self.u;
        let site = self.site;
        UserOut {
            id: u.id,
            created_date: Ts(u.created),
            modified_date: Ts(u.modified),
            modified_by_user_name: &u.modified_by,
            user_id: &u.user_id,
            user_directory: &u.user_directory,
            user_directory_connector_name: &u.connector,
            name: &u.name,
            roles: &u.roles,
            attributes: u
                .attributes
                .iter()
                .map(|a| AttributeOut {
                    id: a.id,
                    attribute_type: &a.attribute_type,
                    attribute_value: &a.attribute_value,
                    external_id: &a.external_id,
                    schema_path: "UserAttribute",
                })
                .collect(),
            inactive: u.inactive,
            removed_externally: u.removed_externally,
            blacklisted: u.blacklisted,
            delete_prohibited: u.delete_prohibited,
            tags: u
                .tags
                .iter()
                .filter_map(|t| site.tags.get(t))
                .map(|t| TagOut {
                    id: t.id,
                    name: &t.name,
                    privileges: privs(privileges),
                })
                .collect(),
            custom_properties: u
                .custom_properties
                .iter()
                .filter_map(|cp| site.cp_defs.get(&cp.definition).map(|def| (cp, def)))
                .map(|(cp, def)| CustomPropertyOut {
                    id: cp.id,
                    value: &cp.value,
                    definition: CustomPropertyDefOut {
                        id: def.id,
                        name: &def.name,
                        value_type: "Text",
                        choice_values: &def.choice_values,
                        privileges: privs(privileges),
                    },
                    schema_path: "CustomPropertyValue",
                })
                .collect(),
            favorites: [],
            privileges: privs(privileges),
            schema_path: "User",
        }
    }

    pub(crate) fn condensed(self, privileges: bool) -> UserCondensedOut<'a> {
        condensed_user(self.u, privileges)
    }
}

impl Record for UserView<'_> {
    fn known_path(path: &[String]) -> bool {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        matches!(
            p.as_slice(),
            ["id"]
                | ["createddate"]
                | ["modifieddate"]
                | ["modifiedbyusername"]
                | ["userid"]
                | ["userdirectory"]
                | ["userdirectoryconnectorname"]
                | ["name"]
                | ["roles"]
                | ["inactive"]
                | ["removedexternally"]
                | ["blacklisted"]
                | ["deleteprohibited"]
                | ["privileges"]
                | ["schemapath"]
                | ["tags", "id" | "name"]
                | ["customproperties", "id" | "value"]
                | [
                    "customproperties",
                    "definition",
                    "id" | "name" | "valuetype"
                ]
                | [
                    "attributes",
                    "id" | "attributetype" | "attributevalue" | "externalid"
                ]
        )
    }

    fn visit(&self, path: &[String], f: &mut dyn FnMut(Val<'_>) -> bool) -> bool {
        let u = self.u;
        let site = self.site;
        let mut buf = uuid::Uuid::encode_buffer();
        let p: [&str; 3] = [
            path.first().map_or("", String::as_str),
            path.get(1).map_or("", String::as_str),
            path.get(2).map_or("", String::as_str),
        ];
        match p {
            ["roles", "", ""] => u.roles.iter().any(|r| f(Val::Str(r))),
            ["tags", field, ""] => {
                u.tags
                    .iter()
                    .filter_map(|t| site.tags.get(t))
                    .any(|t| match field {
                        "id" => f(Val::Str(uuid_str(&t.id, &mut buf))),
                        "name" => f(Val::Str(&t.name)),
                        _ => f(Val::Null),
                    })
            }
            ["customproperties", field, sub] => {
                u.custom_properties.iter().any(|cp| match (field, sub) {
                    ("id", "") => f(Val::Str(uuid_str(&cp.id, &mut buf))),
                    ("value", "") => f(Val::Str(&cp.value)),
                    ("definition", "id") => f(Val::Str(uuid_str(&cp.definition, &mut buf))),
                    ("definition", "name") => match site.cp_defs.get(&cp.definition) {
                        Some(def) => f(Val::Str(&def.name)),
                        None => f(Val::Null),
                    },
                    ("definition", "valuetype") => f(Val::Str("Text")),
                    _ => f(Val::Null),
                })
            }
            ["attributes", field, ""] => u.attributes.iter().any(|a| match field {
                "id" => f(Val::Str(uuid_str(&a.id, &mut buf))),
                "attributetype" => f(Val::Str(&a.attribute_type)),
                "attributevalue" => f(Val::Str(&a.attribute_value)),
                "externalid" => f(Val::Str(&a.external_id)),
                _ => f(Val::Null),
            }),
            [one, "", ""] => f(match one {
                "id" => Val::Str(uuid_str(&u.id, &mut buf)),
                "createddate" => Val::Time(u.created),
                "modifieddate" => Val::Time(u.modified),
                "modifiedbyusername" => Val::Str(&u.modified_by),
                "userid" => Val::Str(&u.user_id),
                "userdirectory" => Val::Str(&u.user_directory),
                "userdirectoryconnectorname" => Val::Str(&u.connector),
                "name" => Val::Str(&u.name),
                "inactive" => Val::Bool(u.inactive),
                "removedexternally" => Val::Bool(u.removed_externally),
                "blacklisted" => Val::Bool(u.blacklisted),
                "deleteprohibited" => Val::Bool(u.delete_prohibited),
                "schemapath" => Val::Str("User"),
                _ => Val::Null,
            }),
            _ => f(Val::Null),
        }
    }
}

/// Rendering the site as QRS answers: dates, views of entities, and the licence overviews.
impl SiteState {
    fn date_text(&self, value: Option<Timestamp>) -> DateOut<'_> {
        match value {
            Some(t) => DateOut::Ts(Ts(t)),
            None => DateOut::Text(&self.sentinel_text),
        }
    }

    fn sentinel_val(&self) -> Val<'_> {
        match self.sentinel_ts {
            Some(t) => Val::Time(t),
            None => Val::Str(&self.sentinel_text),
        }
    }

    pub(crate) fn alloc_view<'a>(&'a self, a: &'a AllocRec) -> AllocView<'a> {
        AllocView {
            a,
            user: a.user.and_then(|u| self.user(u)),
            site: self,
        }
    }

    pub(crate) fn user_view<'a>(&'a self, u: &'a UserRec) -> UserView<'a> {
        UserView { u, site: self }
    }

    pub(crate) fn login_group_json(
        &self,
        g: &LoginGroupRec,
        privileges: bool,
    ) -> serde_json::Value {
        let assigned = g.assigned_tokens.saturating_mul(PASSES_PER_TOKEN);
        let used = self.used_passes(g.id);
        serde_json::json!({
            "id": g.id,
            "createdDate": format_ts(g.created),
            "modifiedDate": format_ts(g.modified),
            "modifiedByUserName": "INTERNAL\\sa_repository",
            "name": g.name,
            "assignedTokens": g.assigned_tokens,
            "assignedAccessTypes": assigned,
            "usedAccessTypes": used,
            "remainingAccessTypes": assigned.saturating_sub(used),
            "privileges": privileges_json(privileges),
            "schemaPath": SimAccessType::Login.schema_path(),
        })
    }

    pub(crate) fn login_usage_json(
        &self,
        u: &LoginUsageRec,
        privileges: bool,
    ) -> serde_json::Value {
        let user = self
            .user(u.user)
            .map(|user| condensed_user(user, privileges));
        let group = self
            .login_groups
            .values()
            .find(|g| g.id == u.group)
            .map(|g| serde_json::json!({"id": g.id, "name": g.name, "privileges": privileges_json(privileges)}));
        serde_json::json!({
            "id": u.id,
            "createdDate": format_ts(u.use_start),
            "modifiedDate": format_ts(u.latest_activity),
            "modifiedByUserName": "INTERNAL\\sa_repository",
            "useStartTime": format_ts(u.use_start),
            "latestActivity": format_ts(u.latest_activity),
            "useStopTime": self.sentinel_text,
            "user": user,
            "sessions": [],
            "loginAccessType": group,
            "privileges": privileges_json(privileges),
            "schemaPath": "License.LoginAccessUsage",
        })
    }

    /// `GET /qrs/license/accesstypeoverview`. `allocated` counts seats held (not quarantined), `used` those of them
    /// used at least once, `quarantined` the ones waiting out their quarantine,
    /// `available = total - allocated - quarantined`, and `excess` what is held beyond the total.
    pub(crate) fn overview(&self) -> serde_json::Value {
        let seat_block = |kind: SimAccessType, total: u32, schema: &str| {
            let s = self.type_counts(kind);
            let held = s.allocated + s.quarantined;
            serde_json::json!({
                "enabled": total > 0 || held > 0,
                "total": total,
                "allocated": s.allocated,
                "used": s.used,
                "quarantined": s.quarantined,
                "available": u64::from(total).saturating_sub(held),
                "excess": held.saturating_sub(u64::from(total)),
                "schemaPath": schema,
            })
        };
        let user = self.type_counts(SimAccessType::User);
        let (login_allocated, login_used) = self.login_tokens();
        let tokens = u64::from(self.seats.tokens);
        let spent = user.allocated + user.quarantined + login_allocated;
        serde_json::json!({
            "totalTokens": tokens,
            "availableTokens": tokens.saturating_sub(spent),
            "tokensEnabled": tokens > 0,
            "professionalAccess": seat_block(SimAccessType::Professional, self.seats.professional, "AccessTypeOverview.Details"),
            "analyzerAccess": seat_block(SimAccessType::Analyzer, self.seats.analyzer, "AccessTypeOverview.Details"),
            "userAccess": {
                "enabled": tokens > 0 || user.allocated > 0,
                "tokenCost": 1,
                "allocatedTokens": user.allocated,
                "usedTokens": user.used,
                "quarantinedTokens": user.quarantined,
                "schemaPath": "AccessTypeOverview.TokenDetails",
            },
            "loginAccess": {
                "enabled": tokens > 0 || login_allocated > 0,
                "tokenCost": 1,
                "allocatedTokens": login_allocated,
                "usedTokens": login_used,
                "unavailableTokens": login_used,
                "schemaPath": "AccessTypeOverview.LoginTokenDetails",
            },
            "analyzerTimeAccess": {
                "enabled": false,
                "allocatedMinutes": 0,
                "usedMinutes": 0,
                "unavailableMinutes": 0,
                "schemaPath": "AccessTypeOverview.AnalyzerTimeDetails",
            },
            "schemaPath": "AccessTypeOverview",
        })
    }

    /// Tokens assigned to login access groups, and tokens their passes in use cost (ten passes a token).
    fn login_tokens(&self) -> (u64, u64) {
        let groups = self.login_groups.values();
        let allocated: u64 = groups.clone().map(|g| u64::from(g.assigned_tokens)).sum();
        let used_passes: u64 = groups.map(|g| u64::from(self.used_passes(g.id))).sum();
        (allocated, used_passes.div_ceil(u64::from(PASSES_PER_TOKEN)))
    }

    /// `GET /qrs/license/accesstypeinfo` (deprecated in QRS, still served).
    pub(crate) fn access_type_info(&self) -> serde_json::Value {
        let user = self.type_counts(SimAccessType::User);
        let prof = self.type_counts(SimAccessType::Professional);
        let anal = self.type_counts(SimAccessType::Analyzer);
        let (login_allocated, login_used) = self.login_tokens();
        let tokens = u64::from(self.seats.tokens);
        serde_json::json!({
            "totalTokens": tokens,
            "availableTokens": tokens.saturating_sub(user.allocated + user.quarantined + login_allocated),
            "loginAccessType": {
                "tokenCost": 1,
                "allocatedTokens": login_allocated,
                "usedTokens": login_used,
                "unavailableTokens": login_used,
                "schemaPath": "AccessTypeInfo.AccessTypeInfoDetails",
            },
            "userAccessType": {
                "tokenCost": 1,
                "allocatedTokens": user.allocated,
                "usedTokens": user.used,
                "quarantinedTokens": user.quarantined,
                "schemaPath": "AccessTypeInfo.AccessTypeInfoDetails",
            },
            "professionalAccessType": {
                "total": self.seats.professional,
                "allocated": prof.allocated,
                "used": prof.used,
                "quarantined": prof.quarantined,
            },
            "analyzerAccessType": {
                "total": self.seats.analyzer,
                "allocated": anal.allocated,
                "used": anal.used,
                "quarantined": anal.quarantined,
            },
            "schemaPath": "AccessTypeInfo",
        })
    }

    /// Seats (or, for user passes, tokens) of `kind` the licence still has free: what QRS checks before it allocates.
    pub(crate) fn free_seats(&self, kind: SimAccessType) -> u64 {
        let held = |kind| {
            let c = self.type_counts(kind);
            c.allocated + c.quarantined
        };
        match kind {
            SimAccessType::Professional => {
                u64::from(self.seats.professional).saturating_sub(held(kind))
            }
            SimAccessType::Analyzer => u64::from(self.seats.analyzer).saturating_sub(held(kind)),
            SimAccessType::User | SimAccessType::Login => {
                let (login_allocated, _) = self.login_tokens();
                let spent = held(SimAccessType::User) + login_allocated;
                u64::from(self.seats.tokens).saturating_sub(spent)
            }
        }
    }

    fn type_counts(&self, kind: SimAccessType) -> Counts {
        let mut c = Counts::default();
        for a in self.allocations(kind) {
            if a.quarantined {
                c.quarantined += 1;
            } else {
                c.allocated += 1;
                if matches!(a.last_used, LastUsed::At(_)) {
                    c.used += 1;
                }
            }
        }
        c
    }

    pub(crate) fn license_json(&self, now: Timestamp) -> serde_json::Value {
        let valid_from = TimeZone::UTC
            .to_datetime(shift(self.started, SignedDuration::from_hours(-24 * 400)))
            .date();
        let valid_to = TimeZone::UTC
            .to_datetime(shift(self.started, SignedDuration::from_hours(24 * 365)))
            .date();
        let expiry = TimeZone::UTC
            .to_timestamp(valid_to.to_datetime(jiff::civil::Time::midnight()))
            .unwrap_or(self.started);
        serde_json::json!({
            "id": self.license_id,
            "createdDate": format_ts(shift(self.started, SignedDuration::from_hours(-24 * 400))),
            "modifiedDate": format_ts(self.started),
            "modifiedByUserName": "INTERNAL\\sa_repository",
            "name": "Simulated Site",
            "organization": "Example Corp",
            "serial": "9999000000012345",
            "key": "",
            "lef": "9999000000012345;Example Corp;;\nPRODUCTLEVEL;50;;\nPROFESSIONALACCESS;...;;",
            "keyDetails": format!(
                "Valid From: {valid_from}\nValid To: {valid_to}\nProfessional: {}\nAnalyzer: {}\nTokens: {}",
                self.seats.professional, self.seats.analyzer, self.seats.tokens
            ),
            "isExpired": now >= expiry,
            "expiredReason": "",
            "isBlacklisted": false,
            "isInvalid": false,
            "isSubscription": false,
            "isCloudServices": false,
            "isElastic": false,
            "product": 0,
            "numberOfCores": -1,
            "privileges": null,
            "schemaPath": "License",
        })
    }
}

#[derive(Default)]
struct Counts {
    allocated: u64,
    quarantined: u64,
    used: u64,
}

const PRIVILEGES: [&str; 4] = ["create", "read", "update", "delete"];

fn privileges_json(on: bool) -> serde_json::Value {
    if on {
        serde_json::json!(PRIVILEGES)
    } else {
        serde_json::Value::Null
    }
}
