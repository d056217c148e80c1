//! Notifications: notices to users before their seat goes, a summary to administrators after each run that warns,
//! reclaims, fails or aborts, and chat webhooks. A channel that is down, slow or refusing is tried a bounded number
//! of times and reported; the run goes on, and no seat is reclaimed without a delivered notice.
//!
//! Nothing here logs or repeats an SMTP password or a webhook URL: errors name the key or the channel.

pub mod bounds;
pub mod email;
pub mod templates;
pub mod webhook;

use std::collections::BTreeMap;

use crate::policy::NotifySpec;
use email::{Mailer, SmtpSettings};
use templates::{NoticeVars, Rendered, SeatLine, SummaryCounts, SummaryVars, Templates};
use webhook::Webhook;

/// Why a notification could not be sent (or set up).
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotifyError {
    #[error("SMTP: {0}")]
    Smtp(String),
    #[error("not an e-mail address: {0:?}")]
    Address(String),
    #[error("template {name}: {detail}")]
    Template { name: String, detail: String },
    #[error("webhook: {0}")]
    Webhook(String),
    /// A Secret, key or ConfigMap the policy names is missing.
    #[error("{0}")]
    Setup(String),
}

/// Secrets by name, each a map of its keys, as the cluster or a folder holds them.
pub type SecretEntries = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// The Secrets a policy's notifications read: the SMTP settings, the webhook URLs, and the templates when they are
/// kept in a Secret.
pub fn secret_names(spec: &NotifySpec) -> Vec<String> {
    let mut names: Vec<String> = spec
        .email
        .iter()
        .flat_map(|e| {
            std::iter::once(e.smtp_secret_ref.name.clone()).chain(
                e.templates
                    .as_ref()
                    .and_then(|t| t.secret_ref.as_ref())
                    .map(|s| s.name.clone()),
            )
        })
        .chain(spec.webhooks.iter().map(|w| w.secret_ref.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Where a policy's template overrides are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSource {
    ConfigMap(String),
    Secret(String),
}

/// The ConfigMap or Secret holding a policy's template overrides, if it names one.
pub fn template_source(spec: &NotifySpec) -> Option<TemplateSource> {
    let templates = spec.email.as_ref()?.templates.as_ref()?;
    match (&templates.config_map_ref, &templates.secret_ref) {
        (Some(map), _) => Some(TemplateSource::ConfigMap(map.name.clone())),
        (None, Some(secret)) => Some(TemplateSource::Secret(secret.name.clone())),
        (None, None) => None,
    }
}

/// Template sources from a ConfigMap's or Secret's entries (text; other keys are ignored later).
pub fn template_texts(entries: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}

pub use crate::report::Delivery;

/// The channels of one policy, ready to send.
pub struct Notifier {
    policy: String,
    mailer: Option<Mailer>,
    mail_users: bool,
    admins: Vec<String>,
    templates: Templates,
    webhooks: Vec<Webhook>,
}

/// Seats a summary lists of each kind; the rest are counted.
const SUMMARY_SEATS: usize = 200;

impl Notifier {
    /// The channels `spec` names, from the Secrets in `secrets` and the template overrides in `templates` (the
    /// ConfigMap's or Secret's keys, already read).
    pub fn new(
        policy: &str,
        spec: &NotifySpec,
        secrets: &SecretEntries,
        templates: &BTreeMap<String, String>,
    ) -> Result<Self, NotifyError> {
        let secret = |name: &str| {
            secrets.get(name).ok_or_else(|| {
                NotifyError::Setup(format!("Secret {name} (named by spec.notify) not found"))
            })
        };
        let mailer = match &spec.email {
            Some(email) => {
                let entries = secret(&email.smtp_secret_ref.name)?;
                let settings = SmtpSettings::from_entries(entries).map_err(|e| {
                    NotifyError::Setup(format!("Secret {}: {e}", email.smtp_secret_ref.name))
                })?;
                Some(Mailer::new(&settings)?)
            }
            None => None,
        };
        let mut webhooks = Vec::new();
        for (i, hook) in spec.webhooks.iter().enumerate() {
            let url = secret(&hook.secret_ref.name)?
                .get(&hook.secret_ref.key)
                .ok_or_else(|| {
                    NotifyError::Setup(format!(
                        "Secret {} has no key {} (spec.notify.webhooks[{i}])",
                        hook.secret_ref.name, hook.secret_ref.key
                    ))
                })?;
            let url = String::from_utf8_lossy(url);
            webhooks.push(
                Webhook::new(&url, hook.format)
                    .map_err(|e| NotifyError::Setup(format!("spec.notify.webhooks[{i}]: {e}")))?,
            );
        }
        Ok(Self {
            policy: policy.to_string(),
            mailer,
            mail_users: spec.email.as_ref().is_some_and(|e| e.users),
            admins: spec
                .email
                .as_ref()
                .map(|e| e.admins.clone())
                .unwrap_or_default(),
            templates: Templates::new(templates)?,
            webhooks,
        })
    }

    /// Shorter waits between webhook attempts (tests).
    pub fn with_webhook_backoff(mut self, backoff: std::time::Duration) -> Self {
        self.webhooks = self
            .webhooks
            .into_iter()
            .map(|w| w.with_backoff(backoff))
            .collect();
        self
    }

    /// Whether notices can reach users at all.
    pub fn mails_users(&self) -> bool {
        self.mail_users && self.mailer.is_some()
    }

    /// The administrators' addresses, or a phrase, for "whom to ask" in a notice.
    pub fn contact(&self) -> String {
        if self.admins.is_empty() {
            "your Qlik Sense administrators".into()
        } else {
            self.admins.join(", ")
        }
    }

    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// Mail one notice to `to`.
    pub async fn notice(&self, to: &str, context: &NoticeVars) -> Result<(), NotifyError> {
        let Some(mailer) = self.mailer.as_ref().filter(|_| self.mail_users) else {
            return Err(NotifyError::Setup(
                "notices need spec.notify.email with users: true".into(),
            ));
        };
        let message = self.templates.render("notice", context)?;
        mailer.send(to, &message).await
    }

    /// The summary of a run to every administrator (one mail each) and every webhook; how each went.
    pub async fn summary(
        &self,
        summary: &SummaryVars,
        record: &crate::record::RunRecord,
        deadline: tokio::time::Instant,
    ) -> Vec<Delivery> {
        // One deadline for every channel: a channel that hangs leaves the others less time, never more.
        let late = || {
            "not delivered before the summary's deadline (the channel did not answer in time)"
                .to_string()
        };
        let mut deliveries = Vec::new();
        let message: Result<Rendered, NotifyError> = self.templates.render("summary", summary);
        if let Some(mailer) = &self.mailer {
            for admin in &self.admins {
                let error = match &message {
                    Ok(message) => {
                        match tokio::time::timeout_at(deadline, mailer.send(admin, message)).await {
                            Ok(sent) => sent.err().map(|e| e.to_string()),
                            Err(_) => Some(late()),
                        }
                    }
                    Err(e) => Some(e.to_string()),
                };
                deliveries.push(Delivery {
                    channel: "email",
                    error,
                });
            }
        }
        let (title, text) = match &message {
            Ok(m) => (m.subject.clone(), m.text.clone()),
            Err(_) => (
                format!("{}: {}", self.policy, record.header.result.as_str()),
                record.header.message.clone(),
            ),
        };
        for hook in &self.webhooks {
            let error =
                match tokio::time::timeout_at(deadline, hook.send(&title, &text, record)).await {
                    Ok(sent) => sent.err().map(|e| e.to_string()),
                    Err(_) => Some(late()),
                };
            deliveries.push(Delivery {
                channel: "webhook",
                error,
            });
        }
        deliveries
    }
}

/// A summary of a report: its counts from the report's totals, and the first [`SUMMARY_SEATS`] seats of each kind
/// with how many more there are (a list cut at 200 never makes 300 reclaimed seats read as 200).
pub fn summary_vars(policy: &str, report: &crate::report::RunReport) -> SummaryVars {
    use crate::report::Outcome;
    let kind = |outcomes: &[Outcome]| -> (Vec<SeatLine>, u64) {
        let mut all = report
            .decisions
            .iter()
            .filter(|e| outcomes.contains(&e.outcome));
        let lines = all
            .by_ref()
            .take(SUMMARY_SEATS)
            .map(|e| SeatLine {
                user: e.user.clone(),
                access_type: e.access_type.key().to_string(),
                last_used: e.last_used.get(..10).unwrap_or(&e.last_used).to_string(),
                // A failed notice's reason already ends with why it failed, which is also its error: said once.
                reason: match &e.error {
                    Some(error) if !e.reason.contains(error.as_str()) => {
                        format!("{}: {error}", e.reason)
                    }
                    _ => e.reason.clone(),
                },
            })
            .collect();
        (lines, all.count() as u64)
    };
    let (reclaimed, reclaimed_left) = kind(&[
        Outcome::Reclaimed,
        Outcome::AlreadyGone,
        Outcome::WouldReclaim,
    ]);
    let (moved, moved_left) = kind(&[Outcome::Moved, Outcome::WouldMove]);
    let (warned, warned_left) = kind(&[Outcome::Warned, Outcome::WouldWarn]);
    let (failed, failed_left) = kind(&[
        Outcome::Failed,
        Outcome::Unconfirmed,
        Outcome::NoticeFailed,
        Outcome::MoveUnfinished,
        Outcome::NoAnalyzerSeat,
    ]);
    // Failures the totals do not count: notices, and moves no Analyzer seat was free for.
    let failed_elsewhere = report
        .decisions
        .iter()
        .filter(|e| matches!(e.outcome, Outcome::NoticeFailed | Outcome::NoAnalyzerSeat))
        .count() as u64;
    let not_listed = SummaryCounts {
        reclaimed: reclaimed_left,
        moved: moved_left,
        warned: warned_left,
        failed: failed_left,
    };
    let counts = SummaryCounts {
        reclaimed: report.totals.reclaimed,
        moved: report.totals.moved,
        // The totals keep no count of notices: every warned seat is in the decisions.
        warned: warned.len() as u64 + warned_left,
        failed: report.totals.failed + failed_elsewhere,
    };
    SummaryVars {
        policy: policy.to_string(),
        run_id: report.id.clone(),
        result: report.result.as_str().to_string(),
        dry_run: report.dry_run,
        message: report.message.clone(),
        reclaimed,
        moved,
        warned,
        failed,
        counts,
        not_listed,
        omitted: usize::try_from(reclaimed_left + moved_left + warned_left + failed_left)
            .unwrap_or(usize::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::TypeCounts;
    use crate::report::{Entry, Outcome, RunReport};

    fn entry(user: String, outcome: Outcome, error: Option<&str>) -> Entry {
        Entry {
            error: error.map(str::to_string),
            ..crate::testing::entry(&user, outcome)
        }
    }

    fn report(decisions: Vec<Entry>, totals: TypeCounts) -> RunReport {
        crate::testing::succeeded_report("reclaimed 300 of 300 candidate seats", totals, decisions)
    }

    #[test]
    fn a_summary_of_300_reclaimed_seats_says_300_and_how_many_it_does_not_list() {
        let decisions = (0..300)
            .map(|i| entry(format!("CORP\\user{i:03}"), Outcome::Reclaimed, None))
            .chain((0..3).map(|i| entry(format!("CORP\\kept{i}"), Outcome::Kept, None)))
            .collect();
        let totals = TypeCounts {
            allocated: 303,
            candidates: 300,
            reclaimed: 300,
            ..TypeCounts::default()
        };
        let summary = summary_vars("prod-site", &report(decisions, totals));
        assert_eq!(summary.reclaimed.len(), SUMMARY_SEATS);
        assert_eq!(summary.counts.reclaimed, 300);
        assert_eq!(summary.not_listed.reclaimed, 100);
        assert_eq!(summary.omitted, 100);
        let rendered = templates::Templates::new(&BTreeMap::new())
            .expect("defaults")
            .render("summary", &summary)
            .expect("renders");
        assert_eq!(
            rendered.subject,
            "Qlik licences, prod-site: Succeeded: 300 reclaimed, 0 warned, 0 failed"
        );
        assert!(
            rendered.text.contains("Reclaimed (300):"),
            "{}",
            rendered.text
        );
        assert!(
            rendered.text.contains("and 100 more, not listed"),
            "{}",
            rendered.text
        );
        assert_eq!(rendered.text.matches("  CORP\\user").count(), SUMMARY_SEATS);
        assert!(
            rendered.html.contains("<h3>Reclaimed (300)</h3>"),
            "{}",
            rendered.html
        );
        assert!(
            rendered.html.contains("and 100 more, not listed"),
            "{}",
            rendered.html
        );
    }

    #[test]
    fn each_failure_reason_is_stated_once() {
        let mut notice = entry(
            "CORP\\b".into(),
            Outcome::NoticeFailed,
            Some("notice not delivered: SMTP: refused"),
        );
        // As a run writes it: the note in the reason, and the same note as the error.
        notice.reason = format!("{}; notice not delivered: SMTP: refused", notice.reason);
        let decisions = vec![
            entry("CORP\\a".into(), Outcome::Failed, Some("QRS answered 500")),
            notice,
        ];
        let totals = TypeCounts {
            failed: 1,
            ..TypeCounts::default()
        };
        let summary = summary_vars("prod-site", &report(decisions, totals));
        let reasons: Vec<&str> = summary.failed.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "not used for 304 days (threshold 90): QRS answered 500",
                "not used for 304 days (threshold 90); notice not delivered: SMTP: refused"
            ]
        );
        let rendered = templates::Templates::new(&BTreeMap::new())
            .expect("defaults")
            .render("summary", &summary)
            .expect("renders");
        for why in ["QRS answered 500", "SMTP: refused"] {
            assert_eq!(rendered.text.matches(why).count(), 1, "{}", rendered.text);
        }
    }

    #[test]
    fn failed_notices_count_with_failed_deallocations() {
        let decisions = vec![
            entry("CORP\\a".into(), Outcome::Failed, Some("QRS answered 500")),
            entry(
                "CORP\\b".into(),
                Outcome::NoticeFailed,
                Some("notice not delivered: SMTP: refused"),
            ),
            entry("CORP\\c".into(), Outcome::Warned, None),
        ];
        let totals = TypeCounts {
            failed: 1,
            ..TypeCounts::default()
        };
        let summary = summary_vars("prod-site", &report(decisions, totals));
        assert_eq!(
            summary.counts,
            SummaryCounts {
                reclaimed: 0,
                moved: 0,
                warned: 1,
                failed: 2
            }
        );
        assert_eq!(summary.not_listed, SummaryCounts::default());
    }

    #[test]
    fn moves_have_their_lines_and_moves_not_made_count_as_failed() {
        let decisions = vec![
            entry("CORP\\mover".into(), Outcome::Moved, None),
            entry(
                "CORP\\stuck".into(),
                Outcome::NoAnalyzerSeat,
                Some("no Analyzer seat is free"),
            ),
            entry(
                "CORP\\half".into(),
                Outcome::MoveUnfinished,
                Some("the Professional seat could not be deallocated"),
            ),
        ];
        let totals = TypeCounts {
            moved: 1,
            failed: 1,
            ..TypeCounts::default()
        };
        let summary = summary_vars("prod-site", &report(decisions, totals));
        assert_eq!((summary.counts.moved, summary.counts.failed), (1, 2));
        let rendered = templates::Templates::new(&BTreeMap::new())
            .expect("defaults")
            .render("summary", &summary)
            .expect("renders");
        assert!(
            rendered.subject.contains("1 moved to Analyzer"),
            "{}",
            rendered.subject
        );
        for part in [&rendered.text, &rendered.html] {
            assert!(part.contains("Moved to Analyzer (1)"), "{part}");
            assert!(part.contains("CORP\\mover"), "{part}");
            assert!(part.contains("no Analyzer seat is free"), "{part}");
        }
    }
}
