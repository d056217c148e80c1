//! What users own: their apps and app objects, read for right-sizing's authoring evidence
//! (`authoring::judge`). Owners are read [`super::ids_per_read`] a request, as user records are, so requests grow with the users
//! asked about, not with the site.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use jiff::Timestamp;
use serde::Deserialize;

use super::{QrsClient, QrsError, guid_filter, ids_per_read, wire};
use crate::authoring::{ObjectKind, Owned};

/// Apps and objects kept per user asked about, at most: an author of thousands of sheets stays an author, and the
/// run does not hold more than this. More is an error.
pub const OWNED_PER_USER: usize = 2000;

/// Characters of an app's or object's name kept: enough to recognise it in a report.
const NAME_CHARS: usize = 200;

/// Object types Analyzer users make too: not read, since they are not authoring.
const CONSUMPTION_TYPES: [&str; 3] = ["story", "bookmark", "snapshot"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnedJson {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    object_type: Option<String>,
    #[serde(default)]
    created_date: Option<String>,
    #[serde(default)]
    modified_date: Option<String>,
    #[serde(default)]
    owner: Option<OwnerJson>,
}

#[derive(Deserialize)]
struct OwnerJson {
    id: String,
}

/// A date as evidence: a sentinel, a missing or an unreadable date is no date, and the rules then keep the seat.
fn date(raw: Option<&str>) -> Option<Timestamp> {
    raw.and_then(|raw| wire::parse_qrs_date(raw).ok().flatten())
}

impl OwnedJson {
    /// The owner's id (lower case) and what is owned. `None` as the kind: an app.
    fn into_owned(self, app: bool) -> Result<(String, Owned), String> {
        let owner = self
            .owner
            .ok_or_else(|| {
                "an app or object without an owner, in an answer filtered by owner".to_string()
            })?
            .id
            .to_ascii_lowercase();
        let kind = if app {
            ObjectKind::App
        } else {
            ObjectKind::of_object_type(self.object_type.as_deref().unwrap_or_default())
        };
        let name: String = self
            .name
            .unwrap_or_default()
            .chars()
            .take(NAME_CHARS)
            .collect();
        let owned = Owned {
            kind,
            name,
            created: date(self.created_date.as_deref()),
            modified: date(self.modified_date.as_deref()),
        };
        Ok((owner, owned))
    }
}

impl QrsClient {
    /// The apps and the authoring app objects (not stories, bookmarks or snapshots) each of these users owns
    /// (QRS user ids, GUIDs), keyed by the lower-cased id. A user who owns nothing has an empty list.
    pub async fn owned_by(
        &self,
        user_ids: &[String],
    ) -> Result<HashMap<String, Vec<Owned>>, QrsError> {
        let mut owned: HashMap<String, Vec<Owned>> = user_ids
            .iter()
            .map(|id| (id.to_ascii_lowercase(), Vec::new()))
            .collect();
        let kept = Arc::new(AtomicUsize::new(0));
        let limit = user_ids.len().saturating_mul(OWNED_PER_USER);
        let not_consumption: Vec<String> = CONSUMPTION_TYPES
            .iter()
            .map(|t| format!("objectType ne '{t}'"))
            .collect();
        for batch in user_ids.chunks(ids_per_read("owner.id")) {
            // The owner filter reaches the owner's user record: `owner.id eq <guid>`.
            let owners = guid_filter("app/full", "owner.id", batch)?;
            let reads = [
                ("app/full", "apps", owners.clone(), true),
                (
                    "app/object/full",
                    "app objects",
                    format!("({owners}) and {}", not_consumption.join(" and ")),
                    false,
                ),
            ];
            for (endpoint, what, filter, app) in reads {
                let kept = Arc::clone(&kept);
                let rows = self
                    .get_list(
                        endpoint,
                        &[("filter", filter)],
                        (batch.len().saturating_mul(OWNED_PER_USER), ", more than a run keeps"),
                        what,
                        move |row: OwnedJson| {
                            if kept.fetch_add(1, Ordering::Relaxed) >= limit {
                                return Err(format!(
                                    "the users asked about own more than {OWNED_PER_USER} apps and objects each"
                                ));
                            }
                            row.into_owned(app)
                        },
                    )
                    .await?;
                for (owner, object) in rows {
                    let Some(list) = owned.get_mut(&owner) else {
                        return Err(QrsError::Nonsense {
                            method: reqwest::Method::GET,
                            endpoint: endpoint.into(),
                            detail: format!("{what} owned by {owner}, who was not asked about"),
                        });
                    };
                    list.push(object);
                }
            }
        }
        Ok(owned)
    }
}
