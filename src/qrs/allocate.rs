//! What `restore` and moves need of QRS: users found by name, the seats of one type they hold, and a seat
//! allocated to a user (`POST /qrs/license/<type>accesstype`, as the QMC's "Allocate" does).

use std::collections::{HashMap, HashSet};

use reqwest::Method;
use serde::Deserialize;

use super::{QrsClient, QrsError, TextBudget, wire};
use crate::model::{AccessType, Allocation, UserIdentity};

/// Seats of one access type one user may be listed with: one, or a quarantined one and its successor.
const SEATS_OF_ONE_USER: usize = 8;

/// Users looked up by name a request at most; fewer when their names would take the filter past
/// [`super::FILTER_BYTES`] (QRS's names are up to 255 characters each). Only a restore from a record kept before
/// records held users' ids asks for names.
const NAMES_PER_READ: usize = 50;

impl QrsClient {
    /// The QRS ids of these users (`DIRECTORY\userId`, compared as QRS compares names, ignoring case), read up to
    /// [`NAMES_PER_READ`] names a request; a user QRS does not know is absent.
    pub async fn user_ids(
        &self,
        users: &[&UserIdentity],
    ) -> Result<HashMap<UserIdentity, String>, QrsError> {
        let mut ids = HashMap::with_capacity(users.len());
        for (batch, filter) in by_names(users) {
            let rows = self
                .user_names(filter, (batch.len(), ", more users than names asked for"))
                .await?;
            for (name, id) in rows {
                if ids.insert(name.clone(), id).is_some() {
                    return Err(QrsError::Nonsense {
                        method: Method::GET,
                        endpoint: "user/full".into(),
                        detail: format!("more than one user is named {name}"),
                    });
                }
            }
        }
        Ok(ids)
    }

    /// Which of these users (QRS ids, GUIDs) QRS still knows, lower case, read [`super::ids_per_read`] a request.
    pub async fn existing_users(&self, user_ids: &[&str]) -> Result<HashSet<String>, QrsError> {
        let mut known = HashSet::with_capacity(user_ids.len());
        for batch in user_ids.chunks(super::ids_per_read("id")) {
            let filter = super::guid_filter("user/full", "id", batch)?;
            let rows = self
                .user_names(filter, (batch.len(), ", more users than ids asked for"))
                .await?;
            known.extend(rows.into_iter().map(|(_, id)| id.to_ascii_lowercase()));
        }
        Ok(known)
    }

    /// The users `filter` selects on `user/full`, each by name with its QRS id (a GUID), at most `rows` of them.
    async fn user_names(
        &self,
        filter: String,
        rows: (usize, &'static str),
    ) -> Result<Vec<(UserIdentity, String)>, QrsError> {
        self.get_list(
            "user/full",
            &[("filter", filter)],
            rows,
            "users",
            |row: UserNameJson| {
                wire::is_guid(&row.id)
                    .then(|| (UserIdentity::new(row.user_directory, row.user_id), row.id))
                    .ok_or_else(|| "a user id is not a GUID".to_string())
            },
        )
        .await
    }

    /// The allocations of one access type held by any of these users (QRS ids, GUIDs as QRS listed them), read
    /// [`super::ids_per_read`] users a request.
    pub async fn allocations_held_by(
        &self,
        access_type: AccessType,
        user_ids: &[&str],
    ) -> Result<Vec<Allocation>, QrsError> {
        let mut held = Vec::new();
        for (filter, rows) in by_users(access_type, user_ids)? {
            held.extend(
                self.allocation_list(
                    access_type,
                    filter,
                    (rows, ", more than the users can hold"),
                    TextBudget::for_seats(rows),
                )
                .await?,
            );
        }
        Ok(held)
    }

    /// The seats of one access type held by any of these users (QRS ids, GUIDs as QRS listed them), read
    /// [`super::ids_per_read`] users a request, each with whether it gives its user access: a seat quarantined or
    /// excess (beyond the licence: the proxy denies its user) does not, and one whose flags QRS did not send is
    /// unknown.
    pub async fn seats_held_by(
        &self,
        access_type: AccessType,
        user_ids: &[&str],
    ) -> Result<Vec<super::Holder>, QrsError> {
        let endpoint = format!("license/{}/full", access_type.qrs_entity());
        let mut held = Vec::new();
        for (filter, rows) in by_users(access_type, user_ids)? {
            held.extend(
                self.get_list(
                    &endpoint,
                    &[("filter", filter)],
                    (rows, ", more than the users can hold"),
                    "allocations",
                    |row: wire::HeldSeatJson| row.into_holder(),
                )
                .await?,
            );
        }
        Ok(held)
    }

    /// Allocate a seat of `access_type` to the user with this QRS id; the new allocation's id when QRS's answer
    /// (201, the entity) names one. Sent once: a POST is not repeated, since one that timed out may have allocated
    /// the seat.
    pub async fn allocate(
        &self,
        access_type: AccessType,
        user_id: &str,
    ) -> Result<Option<String>, QrsError> {
        let endpoint = format!("license/{}", access_type.qrs_entity());
        if !access_type.is_per_user_seat() || !wire::is_guid(user_id) {
            return Err(QrsError::Setup(format!(
                "refusing to allocate {}: not a per-user seat, or a user id that is not a GUID",
                access_type.qrs_entity()
            )));
        }
        let url = format!("{}/qrs/{endpoint}", self.qrs_base);
        let body = serde_json::json!({"user": {"id": user_id}});
        let response = self
            .send(Method::POST, &url, &endpoint, &[], Some(&body), false)
            .await?;
        let response = self.check_status(Method::POST, &endpoint, response).await?;
        // The seat is allocated whatever the body says: an answer without a readable id is not an error, only an
        // allocation the run cannot name.
        let body = super::answer::read_capped(response, super::SMALL_ANSWER_BYTES)
            .await
            .unwrap_or_default();
        Ok(serde_json::from_slice::<CreatedJson>(&body)
            .ok()
            .map(|created| created.id)
            .filter(|id| wire::is_guid(id)))
    }
}

/// The part of a created allocation (201) the client reads.
#[derive(serde::Deserialize)]
struct CreatedJson {
    id: String,
}

/// The `user.id eq ... or ...` filters that read the seats of these users ([`super::ids_per_read`] a request), each
/// with the most rows its users can hold.
fn by_users(access_type: AccessType, user_ids: &[&str]) -> Result<Vec<(String, usize)>, QrsError> {
    let endpoint = format!("license/{}/full", access_type.qrs_entity());
    user_ids
        .chunks(super::ids_per_read("user.id"))
        .map(|batch| {
            let filter = super::guid_filter(&endpoint, "user.id", batch)?;
            Ok((filter, batch.len() * SEATS_OF_ONE_USER))
        })
        .collect()
}

/// A user as `user/full` lists it, read only for its name and id.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserNameJson {
    id: String,
    user_directory: String,
    user_id: String,
}

/// The users in batches whose `(userDirectory eq '...' and userId eq '...') or ...` filter stays within
/// [`super::FILTER_BYTES`] as sent (form-encoded), each with its filter; a name longer than that alone is a batch of
/// its own.
fn by_names<'a, 'u>(users: &'a [&'u UserIdentity]) -> Vec<(&'a [&'u UserIdentity], String)> {
    let mut batches = Vec::new();
    let (mut start, mut filter) = (0, String::new());
    for (i, u) in users.iter().enumerate() {
        let term = format!(
            "(userDirectory eq '{}' and userId eq '{}')",
            literal(&u.directory),
            literal(&u.user_id)
        );
        let joined = if filter.is_empty() {
            term.clone()
        } else {
            format!("{filter} or {term}")
        };
        let full = i - start == NAMES_PER_READ || encoded_len(&joined) > super::FILTER_BYTES;
        if full && !filter.is_empty() {
            batches.push((&users[start..i], std::mem::replace(&mut filter, term)));
            start = i;
        } else {
            filter = joined;
        }
    }
    if !filter.is_empty() {
        batches.push((&users[start..], filter));
    }
    batches
}

/// Bytes of `text` form-encoded, as a query string carries it: a space is `+`, other bytes but letters, digits and
/// `*-._` take three.
fn encoded_len(text: &str) -> usize {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b" *-._".contains(&b) {
                1
            } else {
                3
            }
        })
        .sum()
}

/// A value inside a QRS filter's quotes: a quote is written twice.
fn literal(text: &str) -> String {
    text.replace('\'', "''")
}

#[cfg(test)]
mod tests {
    use crate::model::UserIdentity;

    #[test]
    fn quotes_in_names_are_doubled() {
        assert_eq!(super::literal("o'brien"), "o''brien");
    }

    /// As sent, with every byte form-encoding can change.
    fn sent_len(filter: &str) -> usize {
        let url =
            reqwest::Url::parse_with_params("https://q/", &[("filter", filter)]).expect("url");
        url.query().map_or(0, |q| q.len() - "filter=".len())
    }

    #[test]
    fn names_are_looked_up_in_batches_whose_filter_fits_as_sent() {
        let short: Vec<UserIdentity> = (0..120)
            .map(|i| UserIdentity::new("CORP", format!("u{i}")))
            .collect();
        let long: Vec<UserIdentity> = (0..40)
            .map(|i| {
                UserIdentity::new(
                    "CORPORATE-EMEA (Växjö) & Co",
                    format!(
                        "firstname.o'lastname+{i:03}@example-company.com/{}",
                        "x".repeat(200)
                    ),
                )
            })
            .collect();
        for users in [&short, &long] {
            let refs: Vec<&UserIdentity> = users.iter().collect();
            let batches = super::by_names(&refs);
            let names: usize = batches.iter().map(|(b, _)| b.len()).sum();
            assert_eq!(names, users.len(), "every name is asked for once");
            for (batch, filter) in &batches {
                assert!(batch.len() <= super::NAMES_PER_READ);
                assert_eq!(super::encoded_len(filter), sent_len(filter), "{filter}");
                assert!(
                    sent_len(filter) <= crate::qrs::FILTER_BYTES,
                    "{} bytes",
                    sent_len(filter)
                );
            }
        }
        assert_eq!(super::by_names(&short.iter().collect::<Vec<_>>()).len(), 3);
        assert!(super::by_names(&long.iter().collect::<Vec<_>>()).len() > 2);
    }
}
