//! Bulk operations as Qlik's Repository API defines them: selections (`/qrs/selection`: made from a filter over one
//! access type's allocations, their items listed, deleted with a filter checked at the moment of deletion, the
//! selection dropped) and `POST /qrs/license/<type>accesstype/many` (all allocations or none).

use axum::http::{Method, StatusCode};
use uuid::Uuid;

use crate::filter::Filter;
use crate::records::{AllocRec, SimAccessType};
use crate::site::{SelectionRec, SiteState};
use crate::time::{format_ts, millis};
use crate::views::AllocView;

use super::collections::*;
use super::qrs::{Call, deallocate};
use super::reply::*;

/// `/qrs/selection/...`: `rest` is the path below `selection`.
pub(super) fn route(call: &Call<'_>, site: &mut SiteState) -> Reply {
    let method = call.req.method;
    let kind_of = |segment: &str| {
        SimAccessType::from_path_segment(segment).filter(|k| *k != SimAccessType::Login)
    };
    match call.rest {
        ["license", kind] => match (kind_of(kind), method) {
            (Some(kind), &Method::POST) => create(call, site, kind),
            (Some(_), _) => Reply::method_not_allowed(),
            (None, _) => Reply::not_found(),
        },
        [_] => {
            let Some(id) = selection_id(call) else {
                return Reply::not_found();
            };
            match *method {
                Method::GET => match site.selections.get(&id) {
                    Some(selection) => Reply::ok(&selection_json(site, selection)),
                    None => Reply::not_found(),
                },
                Method::DELETE => match site.selections.remove(&id) {
                    Some(_) => Reply::empty(StatusCode::NO_CONTENT),
                    None => Reply::not_found(),
                },
                _ => Reply::method_not_allowed(),
            }
        }
        [_, "license", kind, rest @ ..] => {
            let (Some(id), Some(kind)) = (selection_id(call), kind_of(kind)) else {
                return Reply::not_found();
            };
            let Some(selection) = site.selections.get(&id).cloned() else {
                return Reply::not_found();
            };
            if method == Method::DELETE && rest.is_empty() {
                return delete_items(call, site, &selection, kind);
            }
            let op = match collection_op(method, rest, &call.original[3..]) {
                Ok(op) => op,
                Err(reply) => return reply,
            };
            let site: &SiteState = site;
            let rows: Vec<AllocView<'_>> = site
                .allocations(kind)
                .filter(|a| selection.items.iter().any(|(_, item, _)| *item == a.id))
                .map(|a| site.alloc_view(a))
                .collect();
            serve_collection(op, rows, call.query, call.req.body)
        }
        _ => Reply::not_found(),
    }
}

fn selection_id(call: &Call<'_>) -> Option<Uuid> {
    Uuid::try_parse(call.original.first().copied().unwrap_or_default()).ok()
}

/// `POST /qrs/selection/license/<type>accesstype?filter=...`: a selection of the allocations the filter matches.
fn create(call: &Call<'_>, site: &mut SiteState, kind: SimAccessType) -> Reply {
    let filter = match allocation_filter(call) {
        Ok(f) => f,
        Err(reply) => return reply,
    };
    let picked: Vec<Uuid> = site
        .allocations(kind)
        .filter(|a| matches(site, filter.as_ref(), a))
        .map(|a| a.id)
        .collect();
    let items = picked
        .into_iter()
        .map(|object| (kind, object, site.new_id()))
        .collect();
    let selection = SelectionRec {
        id: site.new_id(),
        created: millis(call.now),
        by: call.identity.to_string(),
        items,
    };
    let json = selection_json(site, &selection);
    site.selections.insert(selection.id, selection);
    Reply::json(StatusCode::CREATED, &json)
}

/// `DELETE /qrs/selection/{id}/license/<type>accesstype?filter=...`: deletes the selection's items of that type
/// that the filter matches now, each as a single DELETE would (quarantine included). A [`crate::Fault::FailAfter`]
/// stops it part-way.
fn delete_items(
    call: &Call<'_>,
    site: &mut SiteState,
    selection: &SelectionRec,
    kind: SimAccessType,
) -> Reply {
    let filter = match allocation_filter(call) {
        Ok(f) => f,
        Err(reply) => return reply,
    };
    let matching: Vec<Uuid> = selection
        .items
        .iter()
        .filter(|(k, _, _)| *k == kind)
        .filter_map(|(_, id, _)| site.allocation(*id))
        .filter(|a| !a.quarantined)
        .filter(|a| matches(site, filter.as_ref(), a))
        .map(|a| a.id)
        .collect();
    for (done, id) in matching.into_iter().enumerate() {
        if let Some((limit, status)) = call.req.fail_after
            && done >= limit
        {
            return Reply::text(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                &format!("{status} (injected fault after {limit} deletions)"),
            );
        }
        deallocate(call, site, kind, id);
    }
    Reply::empty(StatusCode::NO_CONTENT)
}

/// The request's `filter` over allocations; `None` when it has none (everything matches).
fn allocation_filter(call: &Call<'_>) -> Result<Option<Filter>, Reply> {
    Filter::parse::<AllocView<'_>>(call.query.get("filter").unwrap_or("")).map_err(Reply::from)
}

/// Whether `filter` (none: everything) matches the allocation, as QRS judges it now.
fn matches(site: &SiteState, filter: Option<&Filter>, allocation: &AllocRec) -> bool {
    filter.is_none_or(|f| f.matches(&site.alloc_view(allocation)))
}

/// A selection as QRS answers it: the `Selection` entity with its `SelectionItem`s.
fn selection_json(site: &SiteState, selection: &SelectionRec) -> serde_json::Value {
    let created = format_ts(selection.created);
    let items: Vec<serde_json::Value> = selection
        .items
        .iter()
        .map(|(kind, object, item)| {
            let name = site
                .allocation(*object)
                .and_then(|a: &AllocRec| a.user)
                .and_then(|u| site.user(u))
                .map(|u| u.name.clone())
                .unwrap_or_default();
            serde_json::json!({
                "id": item,
                "createdDate": created,
                "modifiedDate": created,
                "modifiedByUserName": selection.by,
                "type": kind.schema_path(),
                "objectID": object,
                "objectName": name,
                "schemaPath": "SelectionItem",
            })
        })
        .collect();
    serde_json::json!({
        "id": selection.id,
        "createdDate": created,
        "modifiedDate": created,
        "modifiedByUserName": selection.by,
        "items": items,
        "schemaPath": "Selection",
    })
}

/// `POST /qrs/license/<type>accesstype/many` with a list of `{"user": {"id": ...}}`: every allocation or none. A
/// refusal (a user unknown, one already holding the type, twice in the list, or too few free seats) answers 400
/// with the broken rule, as a single POST would.
pub(super) fn create_many(
    call: &Call<'_>,
    site: &mut SiteState,
    kind: SimAccessType,
    privileges: bool,
) -> Reply {
    let value: serde_json::Value = match serde_json::from_slice(call.req.body) {
        Ok(v) => v,
        Err(e) => return Reply::bad_request(&format!("Invalid request body: {e}")),
    };
    let Some(list) = value.as_array() else {
        return Reply::bad_request("The body is not a list of entities");
    };
    let mut users: Vec<Uuid> = Vec::with_capacity(list.len());
    for entity in list {
        let user = entity
            .get("user")
            .and_then(|u| u.get("id"))
            .and_then(|id| id.as_str())
            .and_then(|id| Uuid::try_parse(id).ok());
        let Some(user) = user else {
            return Reply::bad_request("user.id is missing or not a GUID");
        };
        if site.user(user).is_none() || users.contains(&user) {
            return broken(&format!(
                "The user {user} does not exist or is listed twice"
            ));
        }
        if site.allocations(kind).any(|a| a.user == Some(user)) {
            return broken(&format!("The user {user} already has this access type"));
        }
        users.push(user);
    }
    if site.free_seats(kind) < users.len() as u64 {
        return broken(&format!(
            "There is no available {kind} access on the license for {} users",
            users.len()
        ));
    }
    let mut created = Vec::with_capacity(users.len());
    for user in users {
        let id = site.new_id();
        let by = call.identity.to_string();
        if let Err(e) = site.insert_allocation(AllocRec::new(id, kind, user, call.now, &by)) {
            return Reply::bad_request(&e.to_string());
        }
        created.push(id);
    }
    let site: &SiteState = site;
    let rows: Vec<_> = created
        .iter()
        .filter_map(|id| site.allocation(*id))
        .map(|a| site.alloc_view(a).full(privileges))
        .collect();
    Reply::json(StatusCode::CREATED, &rows)
}

fn broken(rule: &str) -> Reply {
    Reply::json(
        StatusCode::BAD_REQUEST,
        &serde_json::json!({ "BrokenRules": [rule] }),
    )
}
