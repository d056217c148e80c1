//! How QRS filters and renders the site's entities as JSON, with QRS's field names, date format and sentinels: what
//! every view shares is here; allocations, users, login access groups and the licence overviews have a file each.

mod allocation;
mod app;
mod licence;
mod login;
mod user;

use jiff::Timestamp;
use serde::Serialize;
use serde::ser::Serializer;
use uuid::Uuid;

use crate::filter::Val;
use crate::site::SiteState;
use crate::time::*;

pub(crate) use allocation::{AllocView, AllocationOut, IdCondensedOut};
pub(crate) use app::{
    AppCondensedOut, AppObjectCondensedOut, AppObjectOut, AppObjectView, AppOut, AppView,
};
pub(crate) use user::{UserCondensedOut, UserOut, UserView};

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

fn privs(on: bool) -> Option<[&'static str; 4]> {
    on.then_some(PRIVILEGES)
}

const PRIVILEGES: [&str; 4] = ["create", "read", "update", "delete"];

fn privileges_json(on: bool) -> serde_json::Value {
    if on {
        serde_json::json!(PRIVILEGES)
    } else {
        serde_json::Value::Null
    }
}

impl SiteState {
    pub(crate) fn date_text(&self, value: Option<Timestamp>) -> DateOut<'_> {
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
}
