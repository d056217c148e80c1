//! Users as QRS renders and filters them: the full object with its attributes, tags and custom properties, and the
//! condensed one other entities embed.

use serde::Serialize;
use uuid::Uuid;

use super::{privs, uuid_str};
use crate::filter::{Record, Val};
use crate::records::*;
use crate::site::SiteState;
use crate::time::*;

/// A user as QRS shows it.
#[derive(Clone, Copy)]
pub(crate) struct UserView<'a> {
    pub(crate) u: &'a UserRec,
    site: &'a SiteState,
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

pub(super) fn condensed_user(u: &UserRec, privileges: bool) -> UserCondensedOut<'_> {
    UserCondensedOut {
        id: u.id,
        user_id: &u.user_id,
        user_directory: &u.user_directory,
        user_directory_connector_name: &u.connector,
        name: &u.name,
        privileges: privs(privileges),
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

impl SiteState {
    pub(crate) fn user_view<'a>(&'a self, u: &'a UserRec) -> UserView<'a> {
        UserView { u, site: self }
    }
}
