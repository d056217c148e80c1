//! QRS's table view (`POST .../table`): a few columns of every allocation, paged, for questions about the whole
//! site that the filtered lists cannot answer (who holds which access type).

use reqwest::Method;

use super::wire::{self, Holder, HolderRow};
use super::{QrsClient, QrsError, answer};
use crate::model::AccessType;

/// Rows of QRS's table view read a page at a time: two GUIDs a row, about 8 MiB of JSON a page.
const TABLE_PAGE_ROWS: u64 = 50_000;
const TABLE_PAGE_BYTES: u64 = 16 * 1024 * 1024;
/// JSON values a page may hold, counted before it is parsed: each row is an array of four cells, and the page has
/// a few fields besides. Parsed, a value takes about 32 bytes however short its text (`0,` is two), so a page of
/// 16 MiB could otherwise take 256 MiB.
const TABLE_PAGE_VALUES: usize = (TABLE_PAGE_ROWS as usize + 64) * 6;

impl QrsClient {
    /// Every allocation of one access type held by an existing user, from QRS's table view (`POST .../table`): two
    /// ids and two flags a row however large the site, read a page at a time. `counted` is what the site counts of
    /// this type; more rows than that make no sense.
    pub async fn holders(
        &self,
        access_type: AccessType,
        counted: u64,
    ) -> Result<Vec<Holder>, QrsError> {
        let endpoint = format!("license/{}/table", access_type.qrs_entity());
        let url = format!("{}/qrs/{endpoint}", self.qrs_base);
        // The columns `Holder` reads, in its order.
        let columns: Vec<serde_json::Value> = ["id", "user.id", "quarantined", "excess"]
            .iter()
            .map(|path| serde_json::json!({"name": path, "columnType": "Property", "definition": path}))
            .collect();
        let definition = serde_json::json!({"type": "LicenseAccessType", "columns": columns});
        let nonsense = |detail: String| QrsError::Nonsense {
            method: Method::POST,
            endpoint: endpoint.clone(),
            detail,
        };
        let mut holders = Vec::new();
        loop {
            let query = [
                ("skip", holders.len().to_string()),
                ("take", TABLE_PAGE_ROWS.to_string()),
            ];
            let response = self
                .send(
                    Method::POST,
                    &url,
                    &endpoint,
                    &query,
                    Some(&definition),
                    true,
                )
                .await?;
            let response = self.check_status(Method::POST, &endpoint, response).await?;
            let body = answer::read_capped(response, TABLE_PAGE_BYTES)
                .await
                .map_err(|e| self.read_error(&endpoint, &url, e))?;
            // Every value but the first follows a comma or opens an array or object: bounded before any is parsed.
            let values = body
                .iter()
                .filter(|b| matches!(b, b',' | b'[' | b'{'))
                .count();
            if values > TABLE_PAGE_VALUES {
                return Err(nonsense(format!(
                    "a page holds more values than {TABLE_PAGE_ROWS} rows of 4 cells"
                )));
            }
            let page: wire::TableJson = serde_json::from_slice(&body)
                .map_err(|e| nonsense(format!("invalid JSON ({e})")))?;
            let rows = page.rows.len() as u64;
            for row in page.rows {
                holders.extend(row.into_holder().map_err(&nonsense)?);
            }
            if holders.len() as u64 > counted {
                return Err(nonsense(format!(
                    "more rows than the {counted} allocations the site counts"
                )));
            }
            if rows < TABLE_PAGE_ROWS {
                return Ok(holders);
            }
        }
    }
}
