//! Bulk requests, as Qlik's Repository API defines them and the QMC's multi-select uses them: a selection of seats
//! made from a filter, its items deleted with a filter QRS checks at the moment of deletion, the selection dropped;
//! and several seats allocated with one `POST .../many`.

use reqwest::Method;
use serde::Deserialize;

use super::{QrsClient, QrsError, SEATS_PER_BATCH, SMALL_ANSWER_BYTES, answer, guid_filter, wire};
use crate::model::AccessType;

/// A selection QRS made, by its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub id: String,
    /// How many items it holds.
    pub items: usize,
}

#[derive(Deserialize)]
struct SelectionJson {
    id: String,
    /// Required: a selection whose items QRS does not list cannot be checked against the ids asked for.
    items: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct CreatedJson {
    id: String,
    #[serde(default)]
    user: Option<CreatedUserJson>,
}

#[derive(Deserialize)]
struct CreatedUserJson {
    id: String,
}

/// An allocation `POST .../many` made: its id, and its user's as QRS named them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub allocation: String,
    pub user: Option<String>,
}

impl QrsClient {
    /// A selection of those of these allocations of one access type (at most [`SEATS_PER_BATCH`] ids, GUIDs as QRS
    /// listed them) that `condition` (a QRS filter) matches: `POST /qrs/selection/license/<type>accesstype?filter=
    /// (id eq ... or ...) and <condition>`, answered 201 with the selection. Not repeated: a selection made twice is
    /// only an orphan, but the run must know which one it acts on.
    pub async fn select(
        &self,
        access_type: AccessType,
        ids: &[&str],
        condition: &str,
    ) -> Result<Selection, QrsError> {
        let endpoint = format!("selection/license/{}", access_type.qrs_entity());
        if ids.is_empty() || ids.len() > SEATS_PER_BATCH || !access_type.is_per_user_seat() {
            return Err(QrsError::Setup(format!(
                "refusing to select {} seats of {}: 1 to {SEATS_PER_BATCH} per-user seats a selection",
                ids.len(),
                access_type.qrs_entity()
            )));
        }
        let filter = format!("({}) and {condition}", guid_filter(&endpoint, "id", ids)?);
        let url = format!("{}/qrs/{endpoint}", self.qrs_base);
        let response = self
            .send(
                Method::POST,
                &url,
                &endpoint,
                &[("filter", filter)],
                None,
                false,
            )
            .await?;
        let response = self.check_status(Method::POST, &endpoint, response).await?;
        let body = answer::read_capped(response, SMALL_ANSWER_BYTES)
            .await
            .map_err(|e| self.read_error(&endpoint, &url, e))?;
        let nonsense = |detail: String| QrsError::Nonsense {
            method: Method::POST,
            endpoint: endpoint.clone(),
            detail,
        };
        let selection: SelectionJson = serde_json::from_slice(&body)
            .map_err(|e| nonsense(format!("not a selection ({e})")))?;
        if !wire::is_guid(&selection.id) {
            return Err(nonsense("the selection's id is not a GUID".into()));
        }
        if selection.items.len() > ids.len() {
            return Err(nonsense(format!(
                "a selection of {} ids holds {} items",
                ids.len(),
                selection.items.len()
            )));
        }
        Ok(Selection {
            id: selection.id,
            items: selection.items.len(),
        })
    }

    /// Deletes the items of `access_type` in the selection that are among `ids` and match `condition` when QRS
    /// deletes them: `DELETE /qrs/selection/{id}/license/<type>accesstype?filter=(id eq ...) and <condition>` (204),
    /// so that nothing but the seats asked for can go, whatever the selection holds. Repeated on a failure like any
    /// DELETE: deleting what is gone already deletes nothing.
    pub async fn delete_selected(
        &self,
        selection: &Selection,
        access_type: AccessType,
        ids: &[&str],
        condition: &str,
    ) -> Result<(), QrsError> {
        let endpoint = format!("selection/{{id}}/license/{}", access_type.qrs_entity());
        super::require_guid(Method::DELETE, &endpoint, &selection.id, || {
            "the selection id is not a GUID; nothing was deleted".into()
        })?;
        let url = format!(
            "{}/qrs/selection/{}/license/{}",
            self.qrs_base,
            selection.id,
            access_type.qrs_entity()
        );
        let filter = format!("({}) and {condition}", guid_filter(&endpoint, "id", ids)?);
        let response = self
            .send(
                Method::DELETE,
                &url,
                &endpoint,
                &[("filter", filter)],
                None,
                true,
            )
            .await?;
        self.check_status(Method::DELETE, &endpoint, response)
            .await?;
        Ok(())
    }

    /// Drops a selection (`DELETE /qrs/selection/{id}`, 204); one gone already is dropped.
    pub async fn drop_selection(&self, selection: &Selection) -> Result<(), QrsError> {
        let endpoint = "selection/{id}";
        super::require_guid(Method::DELETE, endpoint, &selection.id, || {
            "the selection id is not a GUID".into()
        })?;
        let url = format!("{}/qrs/selection/{}", self.qrs_base, selection.id);
        let response = self
            .send(Method::DELETE, &url, endpoint, &[], None, true)
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        self.check_status(Method::DELETE, endpoint, response)
            .await?;
        Ok(())
    }

    /// Allocates a seat of `access_type` to each of these users (QRS ids, at most [`SEATS_PER_BATCH`]) with one
    /// `POST /qrs/license/<type>accesstype/many`, answered 201 with the allocations made; QRS makes all or none, and
    /// a refusal is the error it answered. The allocations made, as QRS listed them. Not repeated, as a POST.
    pub async fn allocate_many(
        &self,
        access_type: AccessType,
        user_ids: &[&str],
    ) -> Result<Vec<Created>, QrsError> {
        let endpoint = format!("license/{}/many", access_type.qrs_entity());
        if user_ids.is_empty()
            || user_ids.len() > SEATS_PER_BATCH
            || !access_type.is_per_user_seat()
            || !user_ids.iter().all(|id| wire::is_guid(id))
        {
            return Err(QrsError::Setup(format!(
                "refusing to allocate {} seats of {} at once: 1 to {SEATS_PER_BATCH} users, each a GUID",
                user_ids.len(),
                access_type.qrs_entity()
            )));
        }
        let url = format!("{}/qrs/{endpoint}", self.qrs_base);
        let body = serde_json::Value::Array(
            user_ids
                .iter()
                .map(|id| serde_json::json!({"user": {"id": id}}))
                .collect(),
        );
        let response = self
            .send(Method::POST, &url, &endpoint, &[], Some(&body), false)
            .await?;
        let response = self.check_status(Method::POST, &endpoint, response).await?;
        let body = answer::read_capped(response, SMALL_ANSWER_BYTES)
            .await
            .map_err(|e| self.read_error(&endpoint, &url, e))?;
        let created: Vec<CreatedJson> =
            serde_json::from_slice(&body).map_err(|e| QrsError::Nonsense {
                method: Method::POST,
                endpoint: endpoint.clone(),
                detail: format!("not a list of allocations ({e})"),
            })?;
        Ok(created
            .into_iter()
            .filter(|c| wire::is_guid(&c.id))
            .map(|c| Created {
                allocation: c.id,
                user: c.user.map(|u| u.id).filter(|id| wire::is_guid(id)),
            })
            .collect())
    }
}
