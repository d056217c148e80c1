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
use templates::{NoticeContext, Rendered, SeatLine, SummaryContext, Templates};
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

/// A delivery and how it went, for metrics and Events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// "email" or "webhook".
    pub channel: &'static str,
    /// `None` when delivered; why not otherwise.
    pub error: Option<String>,
}

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
    pub async fn notice(&self, to: &str, context: &NoticeContext) -> Result<(), NotifyError> {
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
        summary: &SummaryContext,
        record: &crate::record::RunRecord,
    ) -> Vec<Delivery> {
        let mut deliveries = Vec::new();
        let message: Result<Rendered, NotifyError> = self.templates.render("summary", summary);
        if let Some(mailer) = &self.mailer {
            for admin in &self.admins {
                let sent = match &message {
                    Ok(message) => mailer.send(admin, message).await,
                    Err(e) => Err(e.clone()),
                };
                deliveries.push(Delivery {
                    channel: "email",
                    error: sent.err().map(|e| e.to_string()),
                });
            }
        }
        let (title, text) = match &message {
            Ok(m) => (m.subject.clone(), m.text.clone()),
            Err(_) => (
                format!("{}: {}", self.policy, record.result.as_str()),
                record.message.clone(),
            ),
        };
        for hook in &self.webhooks {
            deliveries.push(Delivery {
                channel: "webhook",
                error: hook
                    .send(&title, &text, record)
                    .await
                    .err()
                    .map(|e| e.to_string()),
            });
        }
        deliveries
    }
}

/// A summary's seat lists from a report: at most [`SUMMARY_SEATS`] of each kind.
pub fn summary_context(policy: &str, report: &crate::run::RunReport) -> SummaryContext {
    use crate::run::Outcome;
    let mut omitted = 0;
    let mut lines = |outcomes: &[Outcome]| -> Vec<SeatLine> {
        let all: Vec<&crate::run::Entry> = report
            .decisions
            .iter()
            .filter(|e| outcomes.contains(&e.outcome))
            .collect();
        omitted += all.len().saturating_sub(SUMMARY_SEATS);
        all.into_iter()
            .take(SUMMARY_SEATS)
            .map(|e| SeatLine {
                user: e.user.clone(),
                access_type: e.access_type.key().to_string(),
                last_used: e.last_used.get(..10).unwrap_or(&e.last_used).to_string(),
                reason: match &e.error {
                    Some(error) => format!("{}: {error}", e.reason),
                    None => e.reason.clone(),
                },
            })
            .collect()
    };
    let reclaimed = lines(&[
        Outcome::Reclaimed,
        Outcome::AlreadyGone,
        Outcome::WouldReclaim,
    ]);
    let warned = lines(&[Outcome::Warned, Outcome::WouldWarn]);
    let failed = lines(&[Outcome::Failed, Outcome::NoticeFailed]);
    SummaryContext {
        policy: policy.to_string(),
        run_id: report.id.clone(),
        result: report.result.as_str().to_string(),
        dry_run: report.dry_run,
        message: report.message.clone(),
        reclaimed,
        warned,
        failed,
        omitted,
    }
}
