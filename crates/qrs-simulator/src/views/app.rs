//! Apps and app objects as QRS renders and filters them, with the owner and the dates right-sizing reads. Filters
//! reach the owner's user record (`owner.id eq ...`, `owner.userDirectory eq '...'`) and an object's app.

use serde::Serialize;
use uuid::Uuid;

use super::user::condensed_user;
use super::{DateOut, UserCondensedOut, UserView, privs, uuid_str};
use crate::filter::{Record, Val};
use crate::records::{AppObjectRec, AppRec, UserRec};
use crate::site::SiteState;
use crate::time::Ts;

/// An app as QRS shows it.
#[derive(Clone, Copy)]
pub(crate) struct AppView<'a> {
    pub(crate) a: &'a AppRec,
    owner: Option<&'a UserRec>,
    site: &'a SiteState,
}

/// An app object as QRS shows it.
#[derive(Clone, Copy)]
pub(crate) struct AppObjectView<'a> {
    pub(crate) o: &'a AppObjectRec,
    owner: Option<&'a UserRec>,
    app: Option<&'a AppRec>,
    site: &'a SiteState,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppCondensedOut<'a> {
    id: Uuid,
    name: &'a str,
    app_id: &'static str,
    publish_time: DateOut<'a>,
    published: bool,
    stream: Option<()>,
    privileges: Option<[&'static str; 4]>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppOut<'a> {
    id: Uuid,
    created_date: Ts,
    modified_date: Ts,
    modified_by_user_name: String,
    name: &'a str,
    app_id: &'static str,
    publish_time: DateOut<'a>,
    published: bool,
    stream: Option<()>,
    owner: Option<UserCondensedOut<'a>>,
    privileges: Option<[&'static str; 4]>,
    schema_path: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppObjectCondensedOut<'a> {
    id: Uuid,
    name: &'a str,
    object_type: &'a str,
    engine_object_id: String,
    description: &'static str,
    publish_time: DateOut<'a>,
    published: bool,
    privileges: Option<[&'static str; 4]>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppObjectOut<'a> {
    id: Uuid,
    created_date: Ts,
    modified_date: Ts,
    modified_by_user_name: String,
    name: &'a str,
    object_type: &'a str,
    engine_object_id: String,
    engine_object_type: &'a str,
    description: &'static str,
    publish_time: DateOut<'a>,
    published: bool,
    approved: bool,
    owner: Option<UserCondensedOut<'a>>,
    app: Option<AppCondensedOut<'a>>,
    privileges: Option<[&'static str; 4]>,
    schema_path: &'static str,
}

/// Who last changed something: its owner, as `DIRECTORY\userId`.
fn modified_by(owner: Option<&UserRec>) -> String {
    owner.map_or_else(String::new, |u| {
        format!("{}\\{}", u.user_directory, u.user_id)
    })
}

impl<'a> AppView<'a> {
    pub(crate) fn full(self, privileges: bool) -> AppOut<'a> {
        let a = self.a;
        AppOut {
            id: a.id,
            created_date: Ts(a.created),
            modified_date: Ts(a.modified),
            modified_by_user_name: modified_by(self.owner),
            name: &a.name,
            app_id: "",
            publish_time: self.site.date_text(None),
            published: a.published,
            stream: None,
            owner: self.owner.map(|u| condensed_user(u, privileges)),
            privileges: privs(privileges),
            schema_path: "App",
        }
    }

    pub(crate) fn condensed(self, privileges: bool) -> AppCondensedOut<'a> {
        app_condensed(self.a, self.site, privileges)
    }
}

fn app_condensed<'a>(a: &'a AppRec, site: &'a SiteState, privileges: bool) -> AppCondensedOut<'a> {
    AppCondensedOut {
        id: a.id,
        name: &a.name,
        app_id: "",
        publish_time: site.date_text(None),
        published: a.published,
        stream: None,
        privileges: privs(privileges),
    }
}

impl<'a> AppObjectView<'a> {
    pub(crate) fn full(self, privileges: bool) -> AppObjectOut<'a> {
        let o = self.o;
        AppObjectOut {
            id: o.id,
            created_date: Ts(o.created),
            modified_date: Ts(o.modified),
            modified_by_user_name: modified_by(self.owner),
            name: &o.name,
            object_type: &o.object_type,
            engine_object_id: o.id.simple().to_string(),
            engine_object_type: &o.object_type,
            description: "",
            publish_time: self.site.date_text(None),
            published: o.published,
            approved: false,
            owner: self.owner.map(|u| condensed_user(u, privileges)),
            app: self.app.map(|a| app_condensed(a, self.site, privileges)),
            privileges: privs(privileges),
            schema_path: "App.Object",
        }
    }

    pub(crate) fn condensed(self, privileges: bool) -> AppObjectCondensedOut<'a> {
        let o = self.o;
        AppObjectCondensedOut {
            id: o.id,
            name: &o.name,
            object_type: &o.object_type,
            engine_object_id: o.id.simple().to_string(),
            description: "",
            publish_time: self.site.date_text(None),
            published: o.published,
            privileges: privs(privileges),
        }
    }
}

/// What an app and an app object share, as filters read it: the fields of both, and the owner's user record.
struct Shared<'a> {
    id: &'a Uuid,
    name: &'a str,
    created: jiff::Timestamp,
    modified: jiff::Timestamp,
    published: bool,
    schema_path: &'static str,
    owner: Option<&'a UserRec>,
    site: &'a SiteState,
}

impl Shared<'_> {
    const FIELDS: [&'static str; 8] = [
        "id",
        "name",
        "createddate",
        "modifieddate",
        "modifiedbyusername",
        "published",
        "schemapath",
        "owner",
    ];

    fn known_path(path: &[String]) -> bool {
        match path {
            [one] => Self::FIELDS.contains(&one.as_str()),
            [head, rest @ ..] if head == "owner" => UserView::known_path(rest),
            _ => false,
        }
    }

    /// A shared field, or the owner (`owner eq <guid>`, `owner.userId eq '...'`); null for anything else.
    fn visit(&self, path: &[String], f: &mut dyn FnMut(Val<'_>) -> bool) -> bool {
        let mut buf = Uuid::encode_buffer();
        let owner = |rest: &[String], f: &mut dyn FnMut(Val<'_>) -> bool| match self.owner {
            Some(u) => self.site.user_view(u).visit(rest, f),
            None => f(Val::Null),
        };
        match path {
            [one] => f(match one.as_str() {
                "owner" => return owner(&["id".into()], f),
                "modifiedbyusername" => return f(Val::Str(&modified_by(self.owner))),
                "id" => Val::Str(uuid_str(self.id, &mut buf)),
                "name" => Val::Str(self.name),
                "createddate" => Val::Time(self.created),
                "modifieddate" => Val::Time(self.modified),
                "published" => Val::Bool(self.published),
                "schemapath" => Val::Str(self.schema_path),
                _ => Val::Null,
            }),
            [head, rest @ ..] if head == "owner" => owner(rest, f),
            _ => f(Val::Null),
        }
    }
}

impl<'a> AppView<'a> {
    fn shared(&self) -> Shared<'a> {
        let a = self.a;
        Shared {
            id: &a.id,
            name: &a.name,
            created: a.created,
            modified: a.modified,
            published: a.published,
            schema_path: "App",
            owner: self.owner,
            site: self.site,
        }
    }
}

impl<'a> AppObjectView<'a> {
    fn shared(&self) -> Shared<'a> {
        let o = self.o;
        Shared {
            id: &o.id,
            name: &o.name,
            created: o.created,
            modified: o.modified,
            published: o.published,
            schema_path: "App.Object",
            owner: self.owner,
            site: self.site,
        }
    }
}

impl Record for AppView<'_> {
    fn known_path(path: &[String]) -> bool {
        Shared::known_path(path) || matches!(path, [one] if one == "appid")
    }

    fn visit(&self, path: &[String], f: &mut dyn FnMut(Val<'_>) -> bool) -> bool {
        match path {
            [one] if one == "appid" => f(Val::Str("")),
            _ => self.shared().visit(path, f),
        }
    }
}

impl Record for AppObjectView<'_> {
    fn known_path(path: &[String]) -> bool {
        Shared::known_path(path)
            || match path {
                [one] => {
                    ["objecttype", "engineobjecttype", "approved", "app"].contains(&one.as_str())
                }
                [head, field] => head == "app" && ["id", "name"].contains(&field.as_str()),
                _ => false,
            }
    }

    fn visit(&self, path: &[String], f: &mut dyn FnMut(Val<'_>) -> bool) -> bool {
        let o = self.o;
        let mut buf = Uuid::encode_buffer();
        match path {
            [one] if one == "objecttype" || one == "engineobjecttype" => {
                f(Val::Str(&o.object_type))
            }
            [one] if one == "approved" => f(Val::Bool(false)),
            [one] if one == "app" => f(Val::Str(uuid_str(&o.app, &mut buf))),
            [head, field] if head == "app" => match (self.app, field.as_str()) {
                (Some(a), "id") => f(Val::Str(uuid_str(&a.id, &mut buf))),
                (Some(a), "name") => f(Val::Str(&a.name)),
                _ => f(Val::Null),
            },
            _ => self.shared().visit(path, f),
        }
    }
}

impl SiteState {
    pub(crate) fn app_view<'a>(&'a self, a: &'a AppRec) -> AppView<'a> {
        AppView {
            a,
            owner: self.user(a.owner),
            site: self,
        }
    }

    pub(crate) fn app_object_view<'a>(&'a self, o: &'a AppObjectRec) -> AppObjectView<'a> {
        AppObjectView {
            o,
            owner: self.user(o.owner),
            app: self.apps.iter().find(|a| a.id == o.app),
            site: self,
        }
    }
}
