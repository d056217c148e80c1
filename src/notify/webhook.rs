//! Webhooks: one message per run to Slack (and what speaks its format), Microsoft Teams (an Adaptive Card), or any
//! HTTP endpoint (the run's record as JSON). The URL carries the token: it never appears in a message.

use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, RootCertStore};
use serde_json::{Value, json};

use super::NotifyError;
use crate::policy::WebhookFormat;
use crate::record::RunRecord;

/// Attempts per message: a 5xx, a 429 or no answer is tried again, a 4xx is not.
const ATTEMPTS: u32 = 3;
const TIMEOUT: Duration = Duration::from_secs(10);

/// One webhook.
pub struct Webhook {
    url: String,
    format: WebhookFormat,
    http: reqwest::Client,
    /// The first wait between attempts; doubled each time.
    backoff: Duration,
}

impl Webhook {
    /// A webhook to `url` (http or https; https is checked against Mozilla's roots).
    pub fn new(url: &str, format: WebhookFormat) -> Result<Self, NotifyError> {
        let url = url.trim();
        let parsed = reqwest::Url::parse(url)
            .map_err(|_| NotifyError::Webhook("the URL in the Secret is not a URL".into()))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(NotifyError::Webhook(
                "the URL in the Secret must be https (or http)".into(),
            ));
        }
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| NotifyError::Webhook(format!("TLS set-up failed: {e}")))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| NotifyError::Webhook(format!("HTTP client: {}", e.without_url())))?;
        Ok(Self {
            url: url.to_string(),
            format,
            http,
            backoff: Duration::from_secs(1),
        })
    }

    /// Shorter waits between attempts (tests).
    pub fn with_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Tell the endpoint about a run; `summary` is the plain-text summary, `record` the run's record.
    pub async fn send(
        &self,
        title: &str,
        summary: &str,
        record: &RunRecord,
    ) -> Result<(), NotifyError> {
        let body = match self.format {
            WebhookFormat::Slack => slack(title, summary),
            WebhookFormat::Teams => teams(title, summary, record),
            WebhookFormat::Json => serde_json::to_value(record)
                .map_err(|e| NotifyError::Webhook(format!("cannot encode the record: {e}")))?,
        };
        let mut wait = self.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self.http.post(&self.url).json(&body).send().await;
            let (retry, problem) = match outcome {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => {
                    let status = response.status();
                    (
                        status.is_server_error() || status.as_u16() == 429,
                        format!("the endpoint answered {status}"),
                    )
                }
                Err(e) => (true, format!("no answer: {}", e.without_url())),
            };
            if !retry || attempt >= ATTEMPTS {
                return Err(NotifyError::Webhook(format!(
                    "{problem} (after {attempt} attempts)"
                )));
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
}

fn slack(title: &str, summary: &str) -> Value {
    json!({ "text": format!("*{title}*\n{summary}") })
}

fn teams(title: &str, summary: &str, record: &RunRecord) -> Value {
    let totals = &record.totals;
    let facts = [
        ("Result", record.result.as_str().to_string()),
        ("Dry run", record.dry_run.to_string()),
        ("Reclaimed", totals.reclaimed.to_string()),
        ("Failed", totals.failed.to_string()),
        ("Candidates", totals.candidates.to_string()),
    ];
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "type": "AdaptiveCard",
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": true},
                    {"type": "TextBlock", "text": record.message, "wrap": true},
                    {"type": "FactSet", "facts": facts.iter().map(|(t, v)| json!({"title": t, "value": v})).collect::<Vec<_>>()},
                    {"type": "TextBlock", "text": summary, "wrap": true, "fontType": "Monospace", "size": "Small"},
                ],
            },
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teams_gets_an_adaptive_card_with_the_counts_and_slack_a_text() {
        let record: RunRecord = serde_json::from_value(json!({
            "id": "r1", "result": "Succeeded", "dryRun": false,
            "startTime": "2026-12-01T09:00:00.000000Z", "completionTime": "2026-12-01T09:00:05.000000Z",
            "message": "reclaimed 3 of 3 candidate seats",
            "totals": {"allocated": 10, "candidates": 3, "reclaimed": 3, "failed": 0, "excluded": 0},
            "decisions": [], "kept": {}, "returned": 0
        }))
        .expect("a record");
        let card = teams("Qlik licences", "3 reclaimed", &record);
        let attachment = &card["attachments"][0];
        assert_eq!(
            attachment["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(attachment["content"]["type"], "AdaptiveCard");
        let facts = &attachment["content"]["body"][2]["facts"];
        assert!(
            facts.as_array().is_some_and(|f| f
                .iter()
                .any(|f| f["title"] == "Reclaimed" && f["value"] == "3")),
            "{facts}"
        );
        assert_eq!(
            slack("Qlik licences", "3 reclaimed")["text"],
            "*Qlik licences*\n3 reclaimed"
        );
    }

    #[test]
    fn a_url_that_is_no_web_address_is_refused_without_repeating_it() {
        for url in ["not a url TOKEN123", "ftp://example.com/TOKEN123"] {
            let Err(e) = Webhook::new(url, WebhookFormat::Slack) else {
                panic!("{url} accepted")
            };
            assert!(!e.to_string().contains("TOKEN123"), "{e}");
        }
    }
}
