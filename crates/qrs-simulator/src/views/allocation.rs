//! Allocations (seats of the per-user access types) as QRS renders and filters them.

use serde::Serialize;
use uuid::Uuid;

use super::user::{UserCondensedOut, UserView, condensed_user};
use super::{DateOut, privs, uuid_str};
use crate::filter::{Record, Val};
use crate::records::*;
use crate::site::SiteState;
use crate::time::*;

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
pub(crate) struct IdCondensedOut {
    id: Uuid,
    privileges: Option<[&'static str; 4]>,
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

impl SiteState {
    pub(crate) fn alloc_view<'a>(&'a self, a: &'a AllocRec) -> AllocView<'a> {
        AllocView {
            a,
            user: a.user.and_then(|u| self.user(u)),
            site: self,
        }
    }
}
