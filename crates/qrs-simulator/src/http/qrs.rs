//! The QRS routes: `/qrs/about`, the licence overview, allocations of each access type, login access groups and
//! users, with QRS's DELETE and POST semantics.

use axum::http::{Method, StatusCode};
use jiff::Timestamp;
use uuid::Uuid;

use crate::records::{AllocRec, SimAccessType};
use crate::site::SiteState;
use crate::time::millis;
use crate::views::{AllocView, AppObjectView, AppView, UserView};
use crate::{DeletionOutcome, Identity, RecordedDeletion, Shared, lock};

use super::checks::*;
use super::collections::*;
use super::reply::*;
use super::*;

pub(super) fn about() -> serde_json::Value {
    serde_json::json!({
        "buildVersion": "34.25.2.0",
        "buildDate": "9/20/2013 10:09:00 AM",
        "databaseProvider": "Devart.Data.PostgreSql",
        "nodeType": 1,
        "sharedPersistence": true,
        "requiresBootstrap": false,
        "singleNodeOnly": false,
        "schemaPath": "About",
    })
}

/// A request to one collection route, once the checks passed: `rest` is the lower-cased path below the collection,
/// `original` the same segments as sent (ids keep their case).
pub(super) struct Call<'a> {
    shared: &'a Shared,
    pub(super) req: &'a Incoming<'a>,
    pub(super) identity: &'a Identity,
    pub(super) query: &'a Query,
    pub(super) now: Timestamp,
    pub(super) rest: &'a [&'a str],
    pub(super) original: &'a [&'a str],
}

pub(super) fn qrs(
    shared: &Shared,
    req: &Incoming<'_>,
    identity: &Identity,
    segs: &[&str],
    query: &Query,
) -> Reply {
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let method = req.method;
    let now = shared.now();
    let mut site = lock(&shared.site);
    site.expire(now);
    let get = method == Method::GET;
    // Only a selection's DELETE deletes several items and can fail part-way; any other request fails whole.
    if let Some((_, status)) = req.fail_after
        && !(method == Method::DELETE && matches!(l.as_slice(), ["selection", _, "license", _]))
    {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Reply::text(status, "injected fault");
    }
    match l.as_slice() {
        ["about"] if get => Reply::ok(&about()),
        ["license"] if get => Reply::ok(&site.license_json(now)),
        ["license", "accesstypeoverview"] if get => Reply::ok(&site.overview()),
        ["license", "accesstypeinfo"] if get => Reply::ok(&site.access_type_info()),
        ["about"]
        | ["license"]
        | ["license", "accesstypeoverview"]
        | ["license", "accesstypeinfo"] => Reply::method_not_allowed(),
        ["license", "loginaccessusage", rest @ ..] => {
            let p = query.flag("privileges");
            let rows: Vec<serde_json::Value> = site
                .login_usage()
                .map(|u| site.login_usage_json(u, p))
                .collect();
            json_collection(method, rest, &segs[2..], &rows, query, req.body)
        }
        ["license", kind, rest @ ..] => {
            let call = Call::new(shared, req, identity, query, now, (rest, &segs[2..]));
            match SimAccessType::from_path_segment(kind) {
                Some(SimAccessType::Login) => login_groups(&call, &mut site),
                Some(kind) => allocations(&call, &mut site, kind),
                None => Reply::not_found(),
            }
        }
        // Apps and their objects are read-only here: right-sizing reads who authored what.
        ["app", "object", rest @ ..] => {
            let call = Call::new(shared, req, identity, query, now, (rest, &segs[2..]));
            app_objects(&call, &site)
        }
        ["app", rest @ ..] => {
            let call = Call::new(shared, req, identity, query, now, (rest, &segs[1..]));
            apps(&call, &site)
        }
        ["user", rest @ ..] => {
            let call = Call::new(shared, req, identity, query, now, (rest, &segs[1..]));
            users(&call, &mut site)
        }
        ["selection", rest @ ..] => {
            let call = Call::new(shared, req, identity, query, now, (rest, &segs[1..]));
            super::selections::route(&call, &mut site)
        }
        _ => Reply::not_found(),
    }
}

pub(super) fn json_collection(
    method: &Method,
    rest: &[&str],
    original: &[&str],
    rows: &[serde_json::Value],
    query: &Query,
    body: &[u8],
) -> Reply {
    let op = match collection_op(method, rest, original) {
        Ok(op) => op,
        Err(reply) => return reply,
    };
    serve_collection(op, rows.iter().map(JsonRow).collect(), query, body)
}

impl<'a> Call<'a> {
    /// `path` is the path below the collection, lower-cased and as sent.
    pub(super) fn new(
        shared: &'a Shared,
        req: &'a Incoming<'a>,
        identity: &'a Identity,
        query: &'a Query,
        now: Timestamp,
        (rest, original): (&'a [&'a str], &'a [&'a str]),
    ) -> Call<'a> {
        Call {
            shared,
            req,
            identity,
            query,
            now,
            rest,
            original,
        }
    }

    /// What the collection was asked for: a DELETE's id, or a read.
    fn target(&self) -> Result<Target, Reply> {
        if self.req.method == Method::DELETE {
            return delete_target(self.rest, self.original).map(Target::Delete);
        }
        collection_op(self.req.method, self.rest, self.original).map(Target::Read)
    }

    /// Records a deletion QRS carried out.
    fn record_deletion(&self, deleted: Deleted) {
        self.shared.record_deletion(RecordedDeletion {
            at: self.now,
            listener: self.req.listener,
            access_type: deleted.access_type,
            allocation_id: deleted.id,
            user: deleted.user,
            user_directory: deleted.directory,
            user_id: deleted.user_id,
            outcome: deleted.outcome,
            requested_by: Some(self.identity.clone()),
        });
    }
}

/// What a request to a collection is after.
enum Target {
    Delete(Uuid),
    Read(CollectionOp),
}

/// One deletion, for the record.
struct Deleted {
    access_type: SimAccessType,
    id: Uuid,
    user: Option<Uuid>,
    directory: String,
    user_id: String,
    outcome: DeletionOutcome,
}

pub(super) fn login_groups(call: &Call<'_>, site: &mut SiteState) -> Reply {
    match call.target() {
        Err(reply) => reply,
        // A login access type is a group: deleting it removes the whole group and its passes.
        Ok(Target::Delete(id)) => match site.delete_login_group(id) {
            Some(_) => {
                call.record_deletion(Deleted {
                    access_type: SimAccessType::Login,
                    id,
                    user: None,
                    directory: String::new(),
                    user_id: String::new(),
                    outcome: DeletionOutcome::Removed,
                });
                Reply::empty(StatusCode::NO_CONTENT)
            }
            None => Reply::not_found(),
        },
        Ok(Target::Read(op)) => {
            let p = call.query.flag("privileges");
            let rows: Vec<serde_json::Value> = site
                .login_groups()
                .map(|g| site.login_group_json(g, p))
                .collect();
            serve_collection(
                op,
                rows.iter().map(JsonRow).collect(),
                call.query,
                call.req.body,
            )
        }
    }
}

pub(super) fn allocations(call: &Call<'_>, site: &mut SiteState, kind: SimAccessType) -> Reply {
    if call.req.method == Method::POST && call.rest.is_empty() {
        let privileges = call.query.flag("privileges");
        return create_allocation(
            site,
            kind,
            call.req.body,
            call.identity,
            call.now,
            privileges,
        );
    }
    if call.req.method == Method::POST && call.rest == ["many"] {
        let privileges = call.query.flag("privileges");
        return super::selections::create_many(call, site, kind, privileges);
    }
    match call.target() {
        Err(reply) => reply,
        Ok(Target::Delete(id)) => match deallocate(call, site, kind, id) {
            Some(_) => Reply::empty(StatusCode::NO_CONTENT),
            None => Reply::not_found(),
        },
        Ok(Target::Read(op)) => {
            let site: &SiteState = site;
            let rows: Vec<AllocView<'_>> =
                site.allocations(kind).map(|a| site.alloc_view(a)).collect();
            serve_collection(op, rows, call.query, call.req.body)
        }
    }
}

/// Deallocates one seat as QRS does (quarantine when used within 7 days) and records the deletion; `None` when
/// there is no such seat of `kind`.
pub(super) fn deallocate(
    call: &Call<'_>,
    site: &mut SiteState,
    kind: SimAccessType,
    id: Uuid,
) -> Option<DeletionOutcome> {
    let (outcome, rec) = site.deallocate(kind, id, call.now, &call.identity.to_string())?;
    let user = rec.user.and_then(|u| site.user(u));
    let (directory, user_id) = match (user, &rec.deleted_user) {
        (Some(u), _) => (u.user_directory.clone(), u.user_id.clone()),
        (None, Some((d, i))) => (d.clone(), i.clone()),
        (None, None) => (String::new(), String::new()),
    };
    call.record_deletion(Deleted {
        access_type: kind,
        id,
        user: rec.user,
        directory,
        user_id,
        outcome,
    });
    Some(outcome)
}

/// `POST /qrs/license/<type>accesstype` with `{"user": {"id": ...}}`: allocates a seat, as QMC's "Allocate" does.
pub(super) fn create_allocation(
    site: &mut SiteState,
    kind: SimAccessType,
    body: &[u8],
    identity: &Identity,
    now: Timestamp,
    privileges: bool,
) -> Reply {
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Reply::bad_request(&format!("Invalid request body: {e}")),
    };
    let Some(user) = value
        .get("user")
        .and_then(|u| u.get("id"))
        .and_then(|id| id.as_str())
        .and_then(|id| Uuid::try_parse(id).ok())
    else {
        return Reply::bad_request("user.id is missing or not a GUID");
    };
    if site.user(user).is_none() {
        return Reply::bad_request("The user does not exist");
    }
    if site.allocations(kind).any(|a| a.user == Some(user)) {
        return Reply::bad_request("The user already has this access type");
    }
    // QRS refuses an allocation the licence has no room for, with the rule it breaks.
    if site.free_seats(kind) == 0 {
        let rule = format!("There is no available {kind} access on the license");
        return Reply::json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "BrokenRules": [rule] }),
        );
    }
    let id = site.new_id();
    let inserted =
        site.insert_allocation(AllocRec::new(id, kind, user, now, &identity.to_string()));
    if let Err(e) = inserted {
        return Reply::bad_request(&e.to_string());
    }
    match site.allocation(id) {
        Some(a) => Reply::json(StatusCode::CREATED, &site.alloc_view(a).full(privileges)),
        None => Reply::text(StatusCode::INTERNAL_SERVER_ERROR, "allocation vanished"),
    }
}

/// The id of `DELETE .../{id}`: a DELETE on the collection is not allowed, anything else is not found.
pub(super) fn delete_target(rest: &[&str], original: &[&str]) -> Result<Uuid, Reply> {
    let [_] = rest else {
        return Err(if rest.is_empty() {
            Reply::method_not_allowed()
        } else {
            Reply::not_found()
        });
    };
    Uuid::try_parse(original.first().copied().unwrap_or_default()).map_err(|_| Reply::not_found())
}

fn apps(call: &Call<'_>, site: &SiteState) -> Reply {
    match collection_op(call.req.method, call.rest, call.original) {
        Err(reply) => reply,
        Ok(op) => {
            let rows: Vec<AppView<'_>> = site.apps.iter().map(|a| site.app_view(a)).collect();
            serve_collection(op, rows, call.query, call.req.body)
        }
    }
}

fn app_objects(call: &Call<'_>, site: &SiteState) -> Reply {
    match collection_op(call.req.method, call.rest, call.original) {
        Err(reply) => reply,
        Ok(op) => {
            let rows: Vec<AppObjectView<'_>> = site
                .app_objects
                .iter()
                .map(|o| site.app_object_view(o))
                .collect();
            serve_collection(op, rows, call.query, call.req.body)
        }
    }
}

pub(super) fn users(call: &Call<'_>, site: &mut SiteState) -> Reply {
    match call.target() {
        Err(reply) => reply,
        Ok(Target::Delete(id)) => {
            match site.delete_user(id, millis(call.now), &call.identity.to_string()) {
                Ok(()) => Reply::empty(StatusCode::NO_CONTENT),
                Err(_) => Reply::not_found(),
            }
        }
        Ok(Target::Read(op)) => {
            let site: &SiteState = site;
            let rows: Vec<UserView<'_>> = site.users().map(|u| site.user_view(u)).collect();
            serve_collection(op, rows, call.query, call.req.body)
        }
    }
}
