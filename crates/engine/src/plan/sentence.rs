//! A decision's reason as a sentence for a Qlik administrator (`Display`), and the phrases it is made of.

use std::fmt;

use super::decision::{Reason, ScopeRule};

/// "less than a day ago", "1 day ago", "12 days ago".
struct Ago(i64);

impl fmt::Display for Ago {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            i64::MIN..=0 => f.write_str("less than a day ago"),
            1 => f.write_str("1 day ago"),
            days => write!(f, "{days} days ago"),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Inactive { .. }
            | Reason::NeverUsed { .. }
            | Reason::Active { .. }
            | Reason::NeverUsedGrace { .. } => self.fmt_idle(f),
            Reason::Leaver {
                state,
                idle_days,
                after_days,
                never_used,
            } => {
                let state = state.describe();
                if *never_used {
                    write!(
                        f,
                        "{state}; never used, allocated {} (leavers.afterDays {after_days})",
                        Ago(*idle_days)
                    )
                } else {
                    write!(
                        f,
                        "{state}; not used for {idle_days} days (leavers.afterDays {after_days})"
                    )
                }
            }
            Reason::Redundant => {
                f.write_str("holds a Professional seat too; the Analyzer seat is redundant")
            }
            Reason::RightSize { .. }
            | Reason::Authoring { .. }
            | Reason::MoveTarget
            | Reason::MovedRecently { .. }
            | Reason::UnclearAuthoring { .. } => self.fmt_right_size(f),
            Reason::OverCap {
                limit,
                idle_days,
                never_used,
                ..
            } => {
                write!(
                    f,
                    "over limits.maxReclaimsPerRun ({limit}); left for the next run"
                )?;
                if *never_used {
                    write!(f, " (never used, allocated {})", Ago(*idle_days))
                } else {
                    write!(f, " (not used for {idle_days} days)")
                }
            }
            kept => kept.fmt_kept(f),
        }
    }
}

impl Reason {
    /// The idle rule's reasons, whether they take the seat or keep it: the seat's age against the threshold, or
    /// against the grace when it was never used.
    fn fmt_idle(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Inactive {
                idle_days,
                threshold,
            } => write!(f, "not used for {idle_days} days (threshold {threshold})"),
            Reason::NeverUsed {
                allocated_days,
                grace,
            } => write!(
                f,
                "never used; allocated {} (grace {grace})",
                Ago(*allocated_days)
            ),
            Reason::Active {
                idle_days,
                threshold,
            } if *idle_days < 0 => write!(
                f,
                "last use date is in the future; treated as used (threshold {threshold})"
            ),
            Reason::Active {
                idle_days,
                threshold,
            } => write!(f, "used {} (threshold {threshold})", Ago(*idle_days)),
            Reason::NeverUsedGrace {
                allocated_days,
                grace,
            } if *allocated_days < 0 => write!(
                f,
                "never used; createdDate is in the future, treated as within the {grace}-day grace"
            ),
            Reason::NeverUsedGrace {
                allocated_days,
                grace,
            } => write!(
                f,
                "never used; allocated {}, within the {grace}-day grace",
                Ago(*allocated_days)
            ),
            // The other reasons are written by `fmt`.
            other => f.write_str(other.code()),
        }
    }
}

impl Reason {
    /// The reasons that keep a seat whatever its dates: exclusions, scope, quarantine, what Qlik did not say.
    fn fmt_kept(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::ExcludedUser { pattern } => {
                write!(f, "excluded by exclude.users pattern {pattern}")
            }
            Reason::ExcludedDirectory { directory } => {
                write!(f, "excluded: user directory {directory}")
            }
            Reason::ExcludedTag { tag } => write!(f, "excluded: tag {tag}"),
            Reason::ExcludedCustomProperty { name, value } => {
                write!(f, "excluded: custom property {name}={value}")
            }
            Reason::ExcludedRole { role } => write!(f, "excluded: role {role}"),
            Reason::OutOfScope {
                rule: ScopeRule::UserDirectories,
            } => f.write_str("outside scope.userDirectories"),
            Reason::OutOfScope {
                rule: ScopeRule::Users,
            } => f.write_str("outside scope.users"),
            Reason::Quarantined { until: Some(until) } => {
                write!(f, "quarantined until {}", until.strftime("%Y-%m-%d"))
            }
            Reason::Quarantined { until: None } => {
                f.write_str("quarantined (Qlik already deallocated it)")
            }
            Reason::UnknownDate { raw } => {
                write!(f, "last use date {raw:?} cannot be read; kept")
            }
            Reason::NoCreatedDate => f.write_str("never used and no createdDate; kept"),
            Reason::Incomplete { field } => write!(
                f,
                "QRS sent no usable {field}; kept (a missing value is never read as none)"
            ),
            Reason::UserNotFound => f.write_str("user record not found in QRS; kept"),
            Reason::ExcludedUserState { state } => {
                write!(
                    f,
                    "excluded: {} (exclude.userStates {})",
                    state.describe(),
                    state.key()
                )
            }
            Reason::LoginGroup => f.write_str("login access passes are groups; never deallocated"),
            Reason::NotManaged { access_type } => write!(
                f,
                "accessTypes.{} is not configured; not touched",
                access_type.key()
            ),
            // The reasons that take a seat, or wait for a later run, are written by `fmt`.
            taken => f.write_str(taken.code()),
        }
    }
}

impl Reason {
    /// The reasons of right-sizing: a move, an author kept, an Analyzer seat kept for a move.
    fn fmt_right_size(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::RightSize {
                last: Some(last),
                now,
                ..
            } => write!(
                f,
                "authored nothing for {} days; last: {} {:?} {}",
                super::rules::whole_days(last.at, *now),
                last.kind,
                last.name,
                last.at.strftime("%Y-%m-%d")
            ),
            Reason::RightSize {
                last: None,
                window_days,
                ..
            } => write!(
                f,
                "owns no app, sheet or master item; Professional for more than {window_days} days"
            ),
            Reason::Authoring { last, window_days } => write!(
                f,
                "authored {} {:?} on {}, within {window_days} days: stays Professional",
                last.kind,
                last.name,
                last.at.strftime("%Y-%m-%d")
            ),
            Reason::MoveTarget => f.write_str(
                "the user's Professional seat moves to Analyzer: this is the seat they keep",
            ),
            Reason::MovedRecently { at } => write!(
                f,
                "moved to Analyzer on {}: idle only once the threshold has passed since the move",
                at.strftime("%Y-%m-%d")
            ),
            Reason::UnclearAuthoring { why } => {
                write!(
                    f,
                    "cannot tell whether the user authors ({why}): stays Professional"
                )
            }
            other => other.fmt_kept(f),
        }
    }
}
