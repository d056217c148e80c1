//! The simulated site's data: users, allocations, login access groups and their usage, seat totals; how QRS renders
//! them as JSON; and the handle tests and commands use to read and change them.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use serde::ser::Serializer;
use uuid::Uuid;

use super::filter::{Record, Val};
use super::{DeletionOutcome, Shared, lock};

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

    fn index(self) -> usize {
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
}

// ---------------------------------------------------------------------------------------------------------------
// Time helpers

/// `ts + d`, clamped to jiff's range.
pub(crate) fn shift(ts: Timestamp, d: SignedDuration) -> Timestamp {
    ts.checked_add(d).unwrap_or(if d.is_negative() {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// QRS's date format: `YYYY-MM-DDTHH:MM:SS.sssZ`.
pub(crate) fn format_ts(ts: Timestamp) -> String {
    TsText(ts).to_string()
}

struct TsText(Timestamp);

impl fmt::Display for TsText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dt = TimeZone::UTC.to_datetime(self.0);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.subsec_nanosecond() / 1_000_000
        )
    }
}

/// A timestamp serialized in QRS's format.
#[derive(Debug, Clone, Copy)]
struct Ts(Timestamp);

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&TsText(self.0))
    }
}

/// Truncates to whole milliseconds, the precision QRS stores.
pub(crate) fn millis(ts: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(ts.as_millisecond()).unwrap_or(ts)
}

// ---------------------------------------------------------------------------------------------------------------
// Records

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
    pub(crate) quarantined: bool,
    pub(crate) quarantine_end: Option<Timestamp>,
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

/// A login pass costs a tenth of a token: one token buys ten passes (help.qlik.com "Removing access passes").
const PASSES_PER_TOKEN: u32 = 10;

/// The whole site.
pub(crate) struct SiteState {
    pub(crate) sentinel_text: String,
    sentinel_ts: Option<Timestamp>,
    /// Ids come from a seeded generator, so a seed and a sequence of operations give the same ids.
    ids: StdRng,
    next_seq: u64,
    users: BTreeMap<u64, UserRec>,
    user_seq: HashMap<Uuid, u64>,
    user_names: HashMap<(String, String), Uuid>,
    allocations: [BTreeMap<u64, AllocRec>; 3],
    alloc_seq: HashMap<Uuid, (SimAccessType, u64)>,
    login_groups: BTreeMap<u64, LoginGroupRec>,
    login_usage: BTreeMap<u64, LoginUsageRec>,
    pub(crate) tags: HashMap<Uuid, TagRec>,
    tag_names: HashMap<String, Uuid>,
    pub(crate) cp_defs: HashMap<Uuid, CustomPropertyDef>,
    cp_names: HashMap<String, Uuid>,
    pub(crate) seats: SeatTotals,
    /// When the soonest quarantine ends; nothing to expire before it.
    next_expiry: Option<Timestamp>,
    pub(crate) started: Timestamp,
    pub(crate) license_id: Uuid,
}

fn key(directory: &str, user_id: &str) -> (String, String) {
    (directory.to_lowercase(), user_id.to_lowercase())
}

impl SiteState {
    pub(crate) fn new(seed: u64, sentinel: &str, started: Timestamp) -> SiteState {
        let mut ids = StdRng::seed_from_u64(seed ^ 0x5157_5253_4944_5321);
        let license_id = random_uuid(&mut ids);
        SiteState {
            sentinel_text: sentinel.to_string(),
            sentinel_ts: super::filter::parse_date(sentinel),
            ids,
            next_seq: 0,
            users: BTreeMap::new(),
            user_seq: HashMap::new(),
            user_names: HashMap::new(),
            allocations: [BTreeMap::new(), BTreeMap::new(), BTreeMap::new()],
            alloc_seq: HashMap::new(),
            login_groups: BTreeMap::new(),
            login_usage: BTreeMap::new(),
            tags: HashMap::new(),
            tag_names: HashMap::new(),
            cp_defs: HashMap::new(),
            cp_names: HashMap::new(),
            seats: SeatTotals::default(),
            next_expiry: None,
            started: millis(started),
            license_id,
        }
    }

    pub(crate) fn new_id(&mut self) -> Uuid {
        random_uuid(&mut self.ids)
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    // --- users ---------------------------------------------------------------------------------------------

    pub(crate) fn tag_id(&mut self, name: &str) -> Uuid {
        if let Some(id) = self.tag_names.get(&name.to_lowercase()) {
            return *id;
        }
        let id = self.new_id();
        self.tags.insert(
            id,
            TagRec {
                id,
                name: name.to_string(),
            },
        );
        self.tag_names.insert(name.to_lowercase(), id);
        id
    }

    pub(crate) fn custom_property_def(&mut self, name: &str, value: &str) -> Uuid {
        let id = match self.cp_names.get(&name.to_lowercase()) {
            Some(id) => *id,
            None => {
                let id = self.new_id();
                self.cp_defs.insert(
                    id,
                    CustomPropertyDef {
                        id,
                        name: name.to_string(),
                        choice_values: Vec::new(),
                    },
                );
                self.cp_names.insert(name.to_lowercase(), id);
                id
            }
        };
        if let Some(def) = self.cp_defs.get_mut(&id)
            && !def.choice_values.iter().any(|v| v == value)
        {
            def.choice_values.push(value.to_string());
        }
        id
    }

    pub(crate) fn add_user(
        &mut self,
        spec: &NewUser,
        created: Timestamp,
    ) -> Result<Uuid, SiteError> {
        let k = key(&spec.directory, &spec.user_id);
        if self.user_names.contains_key(&k) {
            return Err(SiteError::DuplicateUser(
                spec.directory.clone(),
                spec.user_id.clone(),
            ));
        }
        let id = self.new_id();
        let tags = spec.tags.iter().map(|t| self.tag_id(t)).collect();
        let custom_properties = spec
            .custom_properties
            .iter()
            .map(|(name, value)| {
                let definition = self.custom_property_def(name, value);
                CustomPropertyValue {
                    id: self.new_id(),
                    definition,
                    value: value.clone(),
                }
            })
            .collect();
        let attributes = spec
            .attributes
            .iter()
            .map(|(t, v)| AttributeRec {
                id: self.new_id(),
                attribute_type: t.clone(),
                attribute_value: v.clone(),
                external_id: String::new(),
            })
            .collect();
        let created = millis(created);
        let user = UserRec {
            id,
            user_id: spec.user_id.clone(),
            user_directory: spec.directory.clone(),
            connector: spec
                .connector
                .clone()
                .unwrap_or_else(|| connector_for(&spec.directory)),
            name: spec.name.clone().unwrap_or_else(|| spec.user_id.clone()),
            roles: spec.roles.clone(),
            tags,
            custom_properties,
            attributes,
            inactive: spec.inactive || spec.removed_externally,
            removed_externally: spec.removed_externally,
            blacklisted: spec.blacklisted,
            delete_prohibited: spec.delete_prohibited,
            created,
            modified: created,
            modified_by: "INTERNAL\\sa_repository".to_string(),
        };
        let seq = self.seq();
        self.users.insert(seq, user);
        self.user_seq.insert(id, seq);
        self.user_names.insert(k, id);
        Ok(id)
    }

    pub(crate) fn user(&self, id: Uuid) -> Option<&UserRec> {
        self.user_seq.get(&id).and_then(|seq| self.users.get(seq))
    }

    fn user_mut(&mut self, id: Uuid) -> Option<&mut UserRec> {
        let seq = *self.user_seq.get(&id)?;
        self.users.get_mut(&seq)
    }

    pub(crate) fn find_user(&self, directory: &str, user_id: &str) -> Option<Uuid> {
        self.user_names.get(&key(directory, user_id)).copied()
    }

    pub(crate) fn users(&self) -> impl Iterator<Item = &UserRec> {
        self.users.values()
    }

    pub(crate) fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Deletes a user the way QRS does: the user's seats are deallocated (quarantined when used within 7 days,
    /// then shown as a deleted user), login usage goes.
    pub(crate) fn delete_user(
        &mut self,
        id: Uuid,
        now: Timestamp,
        by: &str,
    ) -> Result<(), SiteError> {
        let seq = self
            .user_seq
            .remove(&id)
            .ok_or(SiteError::UnknownUser(id))?;
        let Some(user) = self.users.remove(&seq) else {
            return Err(SiteError::UnknownUser(id));
        };
        self.user_names
            .remove(&key(&user.user_directory, &user.user_id));
        let held: Vec<(SimAccessType, Uuid)> = self
            .allocations
            .iter()
            .flat_map(|m| m.values())
            .filter(|a| a.user == Some(id))
            .map(|a| (a.kind, a.id))
            .collect();
        for (kind, alloc) in held {
            let _ = self.deallocate(kind, alloc, now, by);
            if let Some(a) = self.allocation_mut(alloc) {
                a.user = None;
                a.deleted_user = Some((user.user_directory.clone(), user.user_id.clone()));
            }
        }
        self.login_usage.retain(|_, u| u.user != id);
        Ok(())
    }

    // --- allocations ---------------------------------------------------------------------------------------

    pub(crate) fn insert_allocation(&mut self, mut rec: AllocRec) -> Result<Uuid, SiteError> {
        if rec.kind == SimAccessType::Login {
            return Err(SiteError::NotPerUser);
        }
        if let Some(user) = rec.user
            && self.user(user).is_none()
        {
            return Err(SiteError::UnknownUser(user));
        }
        rec.created = millis(rec.created);
        rec.modified = millis(rec.modified);
        if rec.quarantined {
            let end = rec.quarantine_end.unwrap_or_else(|| match rec.last_used {
                LastUsed::At(t) => shift(t, QUARANTINE),
                _ => shift(rec.created, QUARANTINE),
            });
            rec.quarantine_end = Some(millis(end));
            self.note_expiry(end);
        }
        let seq = self.seq();
        let id = rec.id;
        self.alloc_seq.insert(id, (rec.kind, seq));
        self.allocations[rec.kind.index()].insert(seq, rec);
        Ok(id)
    }

    fn note_expiry(&mut self, end: Timestamp) {
        self.next_expiry = Some(self.next_expiry.map_or(end, |e| e.min(end)));
    }

    pub(crate) fn allocation(&self, id: Uuid) -> Option<&AllocRec> {
        let (kind, seq) = self.alloc_seq.get(&id)?;
        self.allocations[kind.index()].get(seq)
    }

    pub(crate) fn allocation_mut(&mut self, id: Uuid) -> Option<&mut AllocRec> {
        let (kind, seq) = self.alloc_seq.get(&id)?;
        self.allocations[kind.index()].get_mut(seq)
    }

    pub(crate) fn allocations(&self, kind: SimAccessType) -> impl Iterator<Item = &AllocRec> {
        self.allocations
            .get(kind.index())
            .into_iter()
            .flat_map(|m| m.values())
    }

    /// QRS's DELETE on a per-user allocation.
    pub(crate) fn deallocate(
        &mut self,
        kind: SimAccessType,
        id: Uuid,
        now: Timestamp,
        by: &str,
    ) -> Option<(DeletionOutcome, AllocRec)> {
        let &(found_kind, seq) = self.alloc_seq.get(&id)?;
        if found_kind != kind {
            return None;
        }
        let rec = self.allocations[kind.index()].get_mut(&seq)?;
        if rec.quarantined {
            return Some((DeletionOutcome::AlreadyQuarantined, rec.clone()));
        }
        let recent = match rec.last_used {
            LastUsed::At(t) => t >= shift(now, -QUARANTINE),
            LastUsed::Never | LastUsed::Raw(_) => false,
        };
        if let (true, LastUsed::At(t)) = (recent, &rec.last_used) {
            let end = millis(shift(*t, QUARANTINE));
            rec.quarantined = true;
            rec.quarantine_end = Some(end);
            rec.modified = millis(now);
            rec.modified_by = by.to_string();
            let snapshot = rec.clone();
            self.note_expiry(end);
            return Some((DeletionOutcome::Quarantined, snapshot));
        }
        let rec = self.allocations[kind.index()].remove(&seq)?;
        self.alloc_seq.remove(&id);
        Some((DeletionOutcome::Removed, rec))
    }

    /// Drops quarantined rows whose quarantine has ended.
    pub(crate) fn expire(&mut self, now: Timestamp) {
        match self.next_expiry {
            Some(next) if next <= now => {}
            _ => return,
        }
        let mut next = None::<Timestamp>;
        for map in &mut self.allocations {
            map.retain(|_, a| {
                let end = match (a.quarantined, a.quarantine_end) {
                    (true, Some(end)) => end,
                    _ => return true,
                };
                if end <= now {
                    self.alloc_seq.remove(&a.id);
                    false
                } else {
                    next = Some(next.map_or(end, |n| n.min(end)));
                    true
                }
            });
        }
        self.next_expiry = next;
    }

    // --- login access ----------------------------------------------------------------------------------------

    pub(crate) fn add_login_group(
        &mut self,
        name: &str,
        assigned_tokens: u32,
        created: Timestamp,
    ) -> Uuid {
        let id = self.new_id();
        let seq = self.seq();
        let created = millis(created);
        self.login_groups.insert(
            seq,
            LoginGroupRec {
                id,
                name: name.to_string(),
                assigned_tokens,
                created,
                modified: created,
            },
        );
        id
    }

    pub(crate) fn login_groups(&self) -> impl Iterator<Item = &LoginGroupRec> {
        self.login_groups.values()
    }

    pub(crate) fn delete_login_group(&mut self, id: Uuid) -> Option<LoginGroupRec> {
        let seq = *self.login_groups.iter().find(|(_, g)| g.id == id)?.0;
        let group = self.login_groups.remove(&seq)?;
        self.login_usage.retain(|_, u| u.group != id);
        Some(group)
    }

    pub(crate) fn add_login_usage(
        &mut self,
        group: Uuid,
        user: Uuid,
        start: Timestamp,
        latest: Timestamp,
    ) -> Result<Uuid, SiteError> {
        if !self.login_groups.values().any(|g| g.id == group) {
            return Err(SiteError::UnknownLoginGroup(group));
        }
        if self.user(user).is_none() {
            return Err(SiteError::UnknownUser(user));
        }
        let id = self.new_id();
        let seq = self.seq();
        self.login_usage.insert(
            seq,
            LoginUsageRec {
                id,
                group,
                user,
                use_start: millis(start),
                latest_activity: millis(latest),
            },
        );
        Ok(id)
    }

    pub(crate) fn login_usage(&self) -> impl Iterator<Item = &LoginUsageRec> {
        self.login_usage.values()
    }

    fn used_passes(&self, group: Uuid) -> u32 {
        let n = self
            .login_usage
            .values()
            .filter(|u| u.group == group)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    // --- rendering -------------------------------------------------------------------------------------------

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
        let login_allocated: u64 = self
            .login_groups
            .values()
            .map(|g| u64::from(g.assigned_tokens))
            .sum();
        let login_used_passes: u64 = self
            .login_groups
            .values()
            .map(|g| u64::from(self.used_passes(g.id)))
            .sum();
        let login_used = login_used_passes.div_ceil(u64::from(PASSES_PER_TOKEN));
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

    /// `GET /qrs/license/accesstypeinfo` (deprecated in QRS, still served).
    pub(crate) fn access_type_info(&self) -> serde_json::Value {
        let user = self.type_counts(SimAccessType::User);
        let prof = self.type_counts(SimAccessType::Professional);
        let anal = self.type_counts(SimAccessType::Analyzer);
        let login_allocated: u64 = self
            .login_groups
            .values()
            .map(|g| u64::from(g.assigned_tokens))
            .sum();
        let login_used_passes: u64 = self
            .login_groups
            .values()
            .map(|g| u64::from(self.used_passes(g.id)))
            .sum();
        let tokens = u64::from(self.seats.tokens);
        serde_json::json!({
            "totalTokens": tokens,
            "availableTokens": tokens.saturating_sub(user.allocated + user.quarantined + login_allocated),
            "loginAccessType": {
                "tokenCost": 1,
                "allocatedTokens": login_allocated,
                "usedTokens": login_used_passes.div_ceil(u64::from(PASSES_PER_TOKEN)),
                "unavailableTokens": login_used_passes.div_ceil(u64::from(PASSES_PER_TOKEN)),
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

fn connector_for(directory: &str) -> String {
    match directory.to_ascii_uppercase().as_str() {
        "INTERNAL" => String::new(),
        "EXTERNAL" => "SAML".to_string(),
        other => format!("ActiveDirectory - {other}"),
    }
}

pub(crate) fn random_uuid(rng: &mut StdRng) -> Uuid {
    uuid::Builder::from_random_bytes(rand::Rng::random(rng)).into_uuid()
}

const PRIVILEGES: [&str; 4] = ["create", "read", "update", "delete"];

fn privileges_json(on: bool) -> serde_json::Value {
    if on {
        serde_json::json!(PRIVILEGES)
    } else {
        serde_json::Value::Null
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Views: how entities are filtered and rendered

enum DateOut<'a> {
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
            excess: (a.kind != SimAccessType::User).then_some(a.excess),
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
                "excess" if a.kind != SimAccessType::User => Val::Bool(a.excess),
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

// ---------------------------------------------------------------------------------------------------------------
// Public handle

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

    /// The simulated time.
    pub fn now(&self) -> Timestamp {
        self.shared.now()
    }

    /// Creates a user, created now.
    pub fn add_user(&self, user: NewUser) -> Result<Uuid, SiteError> {
        self.with(|s, now| s.add_user(&user, now))
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
                id,
                kind: access_type,
                user: Some(user),
                deleted_user: None,
                created,
                modified: last_used.map_or(created, |t| t.max(created)),
                modified_by: "INTERNAL\\sa_repository".to_string(),
                last_used: last_used.map_or(LastUsed::Never, |t| LastUsed::At(millis(t))),
                excess: false,
                quarantined,
                quarantine_end,
            })
        })
    }

    /// Replaces an allocation's `lastUsed` with text that need not be a date (to test "unknown date" handling).
    pub fn set_raw_last_used(&self, allocation: Uuid, raw: &str) -> Result<(), SiteError> {
        self.with(|s, _| {
            let a = s
                .allocation_mut(allocation)
                .ok_or(SiteError::UnknownAllocation(allocation))?;
            a.last_used = LastUsed::Raw(raw.to_string());
            Ok(())
        })
    }

    /// Sets an allocation's `lastUsed` (None: never used), as a login would.
    pub fn set_last_used(
        &self,
        allocation: Uuid,
        last_used: Option<Timestamp>,
    ) -> Result<(), SiteError> {
        self.with(|s, _| {
            let a = s
                .allocation_mut(allocation)
                .ok_or(SiteError::UnknownAllocation(allocation))?;
            a.last_used = last_used.map_or(LastUsed::Never, |t| LastUsed::At(millis(t)));
            Ok(())
        })
    }

    /// Marks an allocation as beyond the licence's seats.
    pub fn set_excess(&self, allocation: Uuid, excess: bool) -> Result<(), SiteError> {
        self.with(|s, _| {
            let a = s
                .allocation_mut(allocation)
                .ok_or(SiteError::UnknownAllocation(allocation))?;
            a.excess = excess;
            Ok(())
        })
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
                        id,
                        kind: access_type,
                        user: Some(user),
                        deleted_user: None,
                        created: now,
                        modified: now,
                        modified_by: "INTERNAL\\sa_repository".to_string(),
                        last_used: LastUsed::At(millis(now)),
                        excess: false,
                        quarantined: false,
                        quarantine_end: None,
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
        self.with(|s, _| {
            s.login_groups()
                .map(|g| LoginGroupSnapshot {
                    id: g.id,
                    name: g.name.clone(),
                    assigned_tokens: g.assigned_tokens,
                    used_passes: s.used_passes(g.id),
                })
                .collect()
        })
    }

    /// The allocations of one type, in the order QRS lists them.
    pub fn allocations(&self, access_type: SimAccessType) -> Vec<AllocationSnapshot> {
        self.with(|s, _| s.allocations(access_type).map(|a| snapshot(s, a)).collect())
    }

    pub fn allocation(&self, id: Uuid) -> Option<AllocationSnapshot> {
        self.with(|s, _| s.allocation(id).map(|a| snapshot(s, a)))
    }

    pub fn users(&self) -> Vec<UserSnapshot> {
        self.with(|s, _| {
            s.users()
                .map(|u| UserSnapshot {
                    id: u.id,
                    directory: u.user_directory.clone(),
                    user_id: u.user_id.clone(),
                    name: u.name.clone(),
                    roles: u.roles.clone(),
                    tags: u
                        .tags
                        .iter()
                        .filter_map(|t| s.tags.get(t))
                        .map(|t| t.name.clone())
                        .collect(),
                    custom_properties: u
                        .custom_properties
                        .iter()
                        .filter_map(|cp| {
                            s.cp_defs
                                .get(&cp.definition)
                                .map(|d| (d.name.clone(), cp.value.clone()))
                        })
                        .collect(),
                    inactive: u.inactive,
                    removed_externally: u.removed_externally,
                    blacklisted: u.blacklisted,
                })
                .collect()
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("valid timestamp")
    }

    #[test]
    fn timestamps_use_qrs_format() {
        assert_eq!(
            format_ts(ts("2024-01-31T19:44:28.951234Z")),
            "2024-01-31T19:44:28.951Z"
        );
        assert_eq!(
            format_ts(ts("1753-01-01T00:00:00Z")),
            "1753-01-01T00:00:00.000Z"
        );
        assert_eq!(
            format_ts(ts("0001-01-01T00:00:00Z")),
            "0001-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn deallocation_quarantines_recent_and_removes_old() {
        let now = ts("2025-03-10T12:00:00Z");
        let mut s = SiteState::new(7, super::super::NEVER_USED_SENTINEL, now);
        let u = s.add_user(&NewUser::new("CORP", "a"), now).expect("user");
        let mk = |s: &mut SiteState, last: LastUsed| {
            let id = s.new_id();
            s.insert_allocation(AllocRec {
                id,
                kind: SimAccessType::Professional,
                user: Some(u),
                deleted_user: None,
                created: ts("2024-01-01T00:00:00Z"),
                modified: ts("2024-01-01T00:00:00Z"),
                modified_by: String::new(),
                last_used: last,
                excess: false,
                quarantined: false,
                quarantine_end: None,
            })
            .expect("allocation")
        };
        let recent = mk(&mut s, LastUsed::At(ts("2025-03-05T08:00:00Z")));
        let old = mk(&mut s, LastUsed::At(ts("2025-02-01T00:00:00Z")));
        let never = mk(&mut s, LastUsed::Never);

        let (outcome, rec) = s
            .deallocate(SimAccessType::Professional, recent, now, "X\\y")
            .expect("found");
        assert_eq!(outcome, DeletionOutcome::Quarantined);
        assert_eq!(rec.quarantine_end, Some(ts("2025-03-12T08:00:00Z")));
        let (outcome, _) = s
            .deallocate(SimAccessType::Professional, recent, now, "X\\y")
            .expect("found");
        assert_eq!(outcome, DeletionOutcome::AlreadyQuarantined);
        assert_eq!(
            s.deallocate(SimAccessType::Professional, old, now, "X\\y")
                .map(|r| r.0),
            Some(DeletionOutcome::Removed)
        );
        assert!(
            s.deallocate(SimAccessType::Analyzer, never, now, "X\\y")
                .is_none(),
            "wrong type is not found"
        );
        assert_eq!(
            s.deallocate(SimAccessType::Professional, never, now, "X\\y")
                .map(|r| r.0),
            Some(DeletionOutcome::Removed)
        );
        assert!(
            s.deallocate(SimAccessType::Professional, old, now, "X\\y")
                .is_none()
        );

        s.expire(ts("2025-03-12T07:59:59Z"));
        assert!(s.allocation(recent).is_some());
        s.expire(ts("2025-03-12T08:00:00Z"));
        assert!(s.allocation(recent).is_none());
    }

    #[test]
    fn deleted_user_keeps_quarantined_row_until_it_ends() {
        let now = ts("2025-03-10T12:00:00Z");
        let mut s = SiteState::new(7, super::super::NEVER_USED_SENTINEL, now);
        let u = s
            .add_user(&NewUser::new("CORP", "gone"), now)
            .expect("user");
        let id = s.new_id();
        s.insert_allocation(AllocRec {
            id,
            kind: SimAccessType::Analyzer,
            user: Some(u),
            deleted_user: None,
            created: now,
            modified: now,
            modified_by: String::new(),
            last_used: LastUsed::At(ts("2025-03-09T12:00:00Z")),
            excess: false,
            quarantined: false,
            quarantine_end: None,
        })
        .expect("allocation");
        s.delete_user(u, now, "INTERNAL\\sa_repository")
            .expect("deleted");
        let a = s.allocation(id).expect("row stays");
        assert!(a.quarantined);
        assert_eq!(
            a.deleted_user,
            Some(("CORP".to_string(), "gone".to_string()))
        );
        let json = serde_json::to_value(s.alloc_view(a).full(false)).expect("json");
        assert_eq!(json["deletedUserId"], "gone");
        assert_eq!(json["user"], serde_json::Value::Null);
        s.expire(ts("2025-03-16T12:00:00Z"));
        assert!(s.allocation(id).is_none());
    }
}
