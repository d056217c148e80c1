//! The licence as QRS renders it: the licence itself, the access type overview and info, and the free seats QRS
//! checks before it allocates.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::records::*;
use crate::site::{PASSES_PER_TOKEN, SiteState};
use crate::time::*;

/// Counting and rendering the licence's seats.
impl SiteState {
    /// `GET /qrs/license/accesstypeoverview`. `allocated` counts seats held (not quarantined), `used` those of them
    /// used at least once, `quarantined` the ones waiting out their quarantine,
    /// `available = total - allocated - quarantined`, and `excess` what is held beyond the total.
    pub(crate) fn overview(&self) -> serde_json::Value {
        let seat_block = |kind: SimAccessType, total: u32, schema: &str| {
            let s = self.type_counts(kind);
            let held = s.allocated + s.quarantined;
            serde_json::json!({
                "enabled": total > 0 || held > 0,
                "total": total,
                "allocated": s.allocated,
                "used": s.used,
                "quarantined": s.quarantined,
                "available": u64::from(total).saturating_sub(held),
                "excess": held.saturating_sub(u64::from(total)),
                "schemaPath": schema,
            })
        };
        let user = self.type_counts(SimAccessType::User);
        let (login_allocated, login_used) = self.login_tokens();
        let tokens = u64::from(self.seats.tokens);
        let spent = user.allocated + user.quarantined + login_allocated;
        serde_json::json!({
            "totalTokens": tokens,
            "availableTokens": tokens.saturating_sub(spent),
            "tokensEnabled": tokens > 0,
            "professionalAccess": seat_block(SimAccessType::Professional, self.seats.professional, "AccessTypeOverview.Details"),
            "analyzerAccess": seat_block(SimAccessType::Analyzer, self.seats.analyzer, "AccessTypeOverview.Details"),
            "userAccess": {
                "enabled": tokens > 0 || user.allocated > 0,
                "tokenCost": 1,
                "allocatedTokens": user.allocated,
                "usedTokens": user.used,
                "quarantinedTokens": user.quarantined,
                "schemaPath": "AccessTypeOverview.TokenDetails",
            },
            "loginAccess": {
                "enabled": tokens > 0 || login_allocated > 0,
                "tokenCost": 1,
                "allocatedTokens": login_allocated,
                "usedTokens": login_used,
                "unavailableTokens": login_used,
                "schemaPath": "AccessTypeOverview.LoginTokenDetails",
            },
            "analyzerTimeAccess": {
                "enabled": false,
                "allocatedMinutes": 0,
                "usedMinutes": 0,
                "unavailableMinutes": 0,
                "schemaPath": "AccessTypeOverview.AnalyzerTimeDetails",
            },
            "schemaPath": "AccessTypeOverview",
        })
    }

    /// Tokens assigned to login access groups, and tokens their passes in use cost (ten passes a token).
    fn login_tokens(&self) -> (u64, u64) {
        let groups = self.login_groups.values();
        let allocated: u64 = groups.clone().map(|g| u64::from(g.assigned_tokens)).sum();
        let used_passes: u64 = groups.map(|g| u64::from(self.used_passes(g.id))).sum();
        (allocated, used_passes.div_ceil(u64::from(PASSES_PER_TOKEN)))
    }

    /// `GET /qrs/license/accesstypeinfo` (deprecated in QRS, still served).
    pub(crate) fn access_type_info(&self) -> serde_json::Value {
        let user = self.type_counts(SimAccessType::User);
        let prof = self.type_counts(SimAccessType::Professional);
        let anal = self.type_counts(SimAccessType::Analyzer);
        let (login_allocated, login_used) = self.login_tokens();
        let tokens = u64::from(self.seats.tokens);
        serde_json::json!({
            "totalTokens": tokens,
            "availableTokens": tokens.saturating_sub(user.allocated + user.quarantined + login_allocated),
            "loginAccessType": {
                "tokenCost": 1,
                "allocatedTokens": login_allocated,
                "usedTokens": login_used,
                "unavailableTokens": login_used,
                "schemaPath": "AccessTypeInfo.AccessTypeInfoDetails",
            },
            "userAccessType": {
                "tokenCost": 1,
                "allocatedTokens": user.allocated,
                "usedTokens": user.used,
                "quarantinedTokens": user.quarantined,
                "schemaPath": "AccessTypeInfo.AccessTypeInfoDetails",
            },
            "professionalAccessType": {
                "total": self.seats.professional,
                "allocated": prof.allocated,
                "used": prof.used,
                "quarantined": prof.quarantined,
            },
            "analyzerAccessType": {
                "total": self.seats.analyzer,
                "allocated": anal.allocated,
                "used": anal.used,
                "quarantined": anal.quarantined,
            },
            "schemaPath": "AccessTypeInfo",
        })
    }

    /// Seats (or, for user passes, tokens) of `kind` the licence still has free: what QRS checks before it allocates.
    pub(crate) fn free_seats(&self, kind: SimAccessType) -> u64 {
        let held = |kind| {
            let c = self.type_counts(kind);
            c.allocated + c.quarantined
        };
        match kind {
            SimAccessType::Professional => {
                u64::from(self.seats.professional).saturating_sub(held(kind))
            }
            SimAccessType::Analyzer => u64::from(self.seats.analyzer).saturating_sub(held(kind)),
            SimAccessType::User | SimAccessType::Login => {
                let (login_allocated, _) = self.login_tokens();
                let spent = held(SimAccessType::User) + login_allocated;
                u64::from(self.seats.tokens).saturating_sub(spent)
            }
        }
    }

    fn type_counts(&self, kind: SimAccessType) -> Counts {
        let mut c = Counts::default();
        for a in self.allocations(kind) {
            if a.quarantined {
                c.quarantined += 1;
            } else {
                c.allocated += 1;
                if matches!(a.last_used, LastUsed::At(_)) {
                    c.used += 1;
                }
            }
        }
        c
    }

    pub(crate) fn license_json(&self, now: Timestamp) -> serde_json::Value {
        let valid_from = TimeZone::UTC
            .to_datetime(shift(self.started, SignedDuration::from_hours(-24 * 400)))
            .date();
        let valid_to = TimeZone::UTC
            .to_datetime(shift(self.started, SignedDuration::from_hours(24 * 365)))
            .date();
        let expiry = TimeZone::UTC
            .to_timestamp(valid_to.to_datetime(jiff::civil::Time::midnight()))
            .unwrap_or(self.started);
        serde_json::json!({
            "id": self.license_id,
            "createdDate": format_ts(shift(self.started, SignedDuration::from_hours(-24 * 400))),
            "modifiedDate": format_ts(self.started),
            "modifiedByUserName": "INTERNAL\\sa_repository",
            "name": "Simulated Site",
            "organization": "Example Corp",
            "serial": "9999000000012345",
            "key": "",
            "lef": "9999000000012345;Example Corp;;\nPRODUCTLEVEL;50;;\nPROFESSIONALACCESS;...;;",
            "keyDetails": format!(
                "Valid From: {valid_from}\nValid To: {valid_to}\nProfessional: {}\nAnalyzer: {}\nTokens: {}",
                self.seats.professional, self.seats.analyzer, self.seats.tokens
            ),
            "isExpired": now >= expiry,
            "expiredReason": "",
            "isBlacklisted": false,
            "isInvalid": false,
            "isSubscription": false,
            "isCloudServices": false,
            "isElastic": false,
            "product": 0,
            "numberOfCores": -1,
            "privileges": null,
            "schemaPath": "License",
        })
    }
}

#[derive(Default)]
struct Counts {
    allocated: u64,
    quarantined: u64,
    used: u64,
}
