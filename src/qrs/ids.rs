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

/// Bytes of a `filter` of GUIDs in one read. Filters of ids go in the query string, and the request line's smallest
/// common limit is 8 KB (nginx's default buffer for it, and Apache's `LimitRequestLine`, in front of a site;
/// HTTP.sys, QRS's own server, allows 16 KB): 6,000 bytes leave 2 KB for the path, `xrfkey` and any other condition.
/// An id costs its property, ` eq `, 36 characters and ` or ` (spaces travel as `+`), so a read carries about 130
/// ids (`id`) or 115 (`user.id`): a site with thousands of candidates is read in tens of requests.
pub const FILTER_BYTES: usize = 6_000;

/// GUIDs of `property` (`id`, `user.id`, `owner.id`) one read's filter carries: as many as fit [`FILTER_BYTES`].
pub fn ids_per_read(property: &str) -> usize {
    const GUID_CHARS: usize = 36;
    FILTER_BYTES / (property.len() + " eq ".len() + GUID_CHARS + " or ".len())
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
