//! Ids in requests: a QRS id goes into a path or a filter only as a GUID, exactly as QRS listed it.

use reqwest::Method;

use super::{QrsError, wire};

/// Ok when `id` is a GUID: ids go into paths and filters exactly as QRS listed them, and anything else could name
/// another resource. The error says what was refused (`detail`), without repeating the id.
pub(super) fn require_guid(
    method: Method,
    endpoint: &str,
    id: &str,
    detail: impl FnOnce() -> String,
) -> Result<(), QrsError> {
    if wire::is_guid(id) {
        return Ok(());
    }
    Err(QrsError::Nonsense {
        method,
        endpoint: endpoint.into(),
        detail: detail(),
    })
}

/// `<property> eq <guid> or <property> eq <guid> ...` (`id`, `user.id`, `owner.id`): GUIDs are written bare in
/// QRS filters, so each must be one.
pub(super) fn guid_filter(
    endpoint: &str,
    property: &str,
    ids: &[impl AsRef<str>],
) -> Result<String, QrsError> {
    for id in ids {
        let id = id.as_ref();
        require_guid(Method::GET, endpoint, id, || {
            format!(
                "refusing to filter by {} characters that are not a GUID",
                id.len()
            )
        })?;
    }
    Ok(ids
        .iter()
        .map(|id| format!("{property} eq {}", id.as_ref()))
        .collect::<Vec<_>>()
        .join(" or "))
}
