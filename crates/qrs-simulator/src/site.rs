//! The simulated site's state and the changes QRS makes to it: users, allocations and their quarantine, login
//! access groups and their usage, seat accounting.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use rand::SeedableRng;
use rand::rngs::StdRng;
use uuid::Uuid;

use crate::DeletionOutcome;
use crate::records::*;
use crate::time::*;

/// A login pass costs a tenth of a token: one token buys ten passes (help.qlik.com "Removing access passes").
pub(crate) const PASSES_PER_TOKEN: u32 = 10;

/// The whole site.
/// A selection: items picked by a filter, to act on together (the QMC's multi-select).
#[derive(Debug, Clone)]
pub(crate) struct SelectionRec {
    pub(crate) id: Uuid,
    pub(crate) created: Timestamp,
    pub(crate) by: String,
    /// Each item: its access type, its id and the selection item's own id.
    pub(crate) items: Vec<(SimAccessType, Uuid, Uuid)>,
}

pub(crate) struct SiteState {
    pub(crate) sentinel_text: String,
    pub(crate) sentinel_ts: Option<Timestamp>,
    /// Ids come from a seeded generator, so a seed and a sequence of operations give the same ids.
    ids: StdRng,
    next_seq: u64,
    pub(crate) users: BTreeMap<u64, UserRec>,
    user_seq: HashMap<Uuid, u64>,
    user_names: HashMap<(String, String), Uuid>,
    allocations: [BTreeMap<u64, AllocRec>; 3],
    alloc_seq: HashMap<Uuid, (SimAccessType, u64)>,
    pub(crate) login_groups: BTreeMap<u64, LoginGroupRec>,
    login_usage: BTreeMap<u64, LoginUsageRec>,
    pub(crate) tags: HashMap<Uuid, TagRec>,
    tag_names: HashMap<String, Uuid>,
    pub(crate) cp_defs: HashMap<Uuid, CustomPropertyDef>,
    cp_names: HashMap<String, Uuid>,
    pub(crate) seats: SeatTotals,
    /// Apps and their objects, in the order they were added.
    pub(crate) apps: Vec<AppRec>,
    pub(crate) app_objects: Vec<AppObjectRec>,
    /// Selections (`POST /qrs/selection/...`), by id, until dropped.
    pub(crate) selections: HashMap<Uuid, SelectionRec>,
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
            sentinel_ts: parse_date(sentinel),
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
            apps: Vec::new(),
            app_objects: Vec::new(),
            selections: HashMap::new(),
            next_expiry: None,
            started: millis(started),
            license_id,
        }
    }

    /// Adds an app owned by `owner`.
    pub(crate) fn add_app(
        &mut self,
        owner: Uuid,
        name: &str,
        (created, modified): (Timestamp, Timestamp),
    ) -> Result<Uuid, SiteError> {
        if self.user(owner).is_none() {
            return Err(SiteError::UnknownUser(owner));
        }
        let id = self.new_id();
        self.apps.push(AppRec {
            id,
            name: name.to_string(),
            owner,
            created: millis(created),
            modified: millis(modified),
            published: false,
        });
        Ok(id)
    }

    /// Adds an object of type `object_type` to `app`, owned by `owner`.
    pub(crate) fn add_app_object(
        &mut self,
        app: Uuid,
        owner: Uuid,
        (object_type, name): (&str, &str),
        (created, modified): (Timestamp, Timestamp),
    ) -> Result<Uuid, SiteError> {
        if self.user(owner).is_none() {
            return Err(SiteError::UnknownUser(owner));
        }
        if !self.apps.iter().any(|a| a.id == app) {
            return Err(SiteError::UnknownApp(app));
        }
        let id = self.new_id();
        self.app_objects.push(AppObjectRec {
            id,
            name: name.to_string(),
            object_type: object_type.to_string(),
            owner,
            app,
            created: millis(created),
            modified: millis(modified),
            published: false,
        });
        Ok(id)
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

    pub(crate) fn user_mut(&mut self, id: Uuid) -> Option<&mut UserRec> {
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

    pub(crate) fn used_passes(&self, group: Uuid) -> u32 {
        let n = self
            .login_usage
            .values()
            .filter(|u| u.group == group)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    // --- rendering -------------------------------------------------------------------------------------------
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

#[cfg(test)]
mod tests;
