//! Login access groups and their usage as QRS renders them (as JSON values: there are few of them).

use super::privileges_json;
use super::user::condensed_user;
use crate::records::*;
use crate::site::{PASSES_PER_TOKEN, SiteState};
use crate::time::*;

impl SiteState {
    pub(crate) fn login_group_json(
        &self,
        g: &LoginGroupRec,
        privileges: bool,
    ) -> serde_json::Value {
        let assigned = g.assigned_tokens.saturating_mul(PASSES_PER_TOKEN);
        let used = self.used_passes(g.id);
        serde_json::json!({
            "id": g.id,
            "createdDate": format_ts(g.created),
            "modifiedDate": format_ts(g.modified),
            "modifiedByUserName": "INTERNAL\\sa_repository",
            "name": g.name,
            "assignedTokens": g.assigned_tokens,
            "assignedAccessTypes": assigned,
            "usedAccessTypes": used,
            "remainingAccessTypes": assigned.saturating_sub(used),
            "privileges": privileges_json(privileges),
            "schemaPath": SimAccessType::Login.schema_path(),
        })
    }

    pub(crate) fn login_usage_json(
        &self,
        u: &LoginUsageRec,
        privileges: bool,
    ) -> serde_json::Value {
        let user = self
            .user(u.user)
            .map(|user| condensed_user(user, privileges));
        let group = self
            .login_groups
            .values()
            .find(|g| g.id == u.group)
            .map(|g| serde_json::json!({"id": g.id, "name": g.name, "privileges": privileges_json(privileges)}));
        serde_json::json!({
            "id": u.id,
            "createdDate": format_ts(u.use_start),
            "modifiedDate": format_ts(u.latest_activity),
            "modifiedByUserName": "INTERNAL\\sa_repository",
            "useStartTime": format_ts(u.use_start),
            "latestActivity": format_ts(u.latest_activity),
            "useStopTime": self.sentinel_text,
            "user": user,
            "sessions": [],
            "loginAccessType": group,
            "privileges": privileges_json(privileges),
            "schemaPath": "License.LoginAccessUsage",
        })
    }
}
