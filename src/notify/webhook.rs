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

/// Slack's mrkdwn reads `<...>` as a mention (`<!channel>`, `<@U123>`) or a link (`<https://...|text>`), and `&` as
/// the start of an entity: user names, directory data and QRS's answers are escaped so that they show as written.
fn slack_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// An Adaptive Card's TextBlock reads Markdown (links `[text](url)`, emphasis, lists, and `<at>` mentions in
/// Teams): each character that could start one is escaped with a backslash, so the text shows as written.
fn teams_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '|' | '<' | '>' | '~'
        ) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn slack(title: &str, summary: &str) -> Value {
    json!({ "text": format!("*{}*\n{}", slack_escape(title), slack_escape(summary)) })
}

fn teams(title: &str, summary: &str, record: &RunRecord) -> Value {
    let totals = &record.header.totals;
    let facts = [
        ("Result", record.header.result.as_str().to_string()),
        ("Dry run", record.header.dry_run.to_string()),
        ("Reclaimed", totals.reclaimed.to_string()),
        ("Failed", totals.failed.to_string()),
        ("Candidates", totals.candidates.to_string()),
    ];
    let mut body = vec![
        json!({"type": "TextBlock", "text": teams_escape(title), "weight": "Bolder", "size": "Medium", "wrap": true}),
    ];
    // The run's message once: the default summary (and the text sent when the template fails) already holds it.
    if !summary.contains(&record.header.message) {
        body.push(
            json!({"type": "TextBlock", "text": teams_escape(&record.header.message), "wrap": true}),
        );
    }
    body.push(json!({"type": "FactSet", "facts": facts.iter().map(|(t, v)| json!({"title": t, "value": v})).collect::<Vec<_>>()}));
    body.push(json!({"type": "TextBlock", "text": teams_escape(summary), "wrap": true, "fontType": "Monospace", "size": "Small"}));
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "type": "AdaptiveCard",
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "version": "1.4",
                "body": body,
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

    const HOSTILE: &str = "CORP\\<!channel> <https://evil.example|click> [here](https://evil.example) *now* & <at>all</at>";

    fn record(message: &str) -> RunRecord {
        serde_json::from_value(json!({
            "id": "r1", "result": "Failed", "dryRun": false,
            "startTime": "2026-12-01T09:00:00.000000Z", "completionTime": "2026-12-01T09:00:05.000000Z",
            "message": message,
            "totals": {"allocated": 10, "candidates": 3, "reclaimed": 2, "failed": 1, "excluded": 0},
            "decisions": [], "kept": {}, "returned": 0
        }))
        .expect("a record")
    }

    #[test]
    fn slack_shows_directory_data_as_written_never_as_a_mention_or_a_link() {
        let text = slack(HOSTILE, &format!("Failed (1):\n  {HOSTILE}  professional"))["text"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_default();
        assert!(!text.contains('<') && !text.contains('>'), "{text}");
        assert!(
            text.contains(
                "CORP\\&lt;!channel&gt; &lt;https://evil.example|click&gt; [here](https://evil.example) *now* &amp; &lt;at&gt;all&lt;/at&gt;"
            ),
            "{text}"
        );
        assert!(
            text.starts_with("*CORP\\&lt;!channel&gt;"),
            "the title is bold: {text}"
        );
    }

    #[test]
    fn teams_shows_directory_data_as_written_never_as_markdown() {
        let summary = format!("Failed (1):\n  {HOSTILE}  professional");
        let card = teams(HOSTILE, &summary, &record(&format!("stopped ({HOSTILE})")));
        let body = card["attachments"][0]["content"]["body"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let texts: Vec<&str> = body.iter().filter_map(|b| b["text"].as_str()).collect();
        let escaped = "CORP\\\\\\<!channel\\> \\<https://evil.example\\|click\\> \\[here\\]\\(https://evil.example\\) \\*now\\* & \\<at\\>all\\</at\\>";
        assert_eq!(texts.len(), 3, "title, message, summary: {texts:?}");
        for text in texts {
            assert!(text.contains(escaped), "{text}");
            // Every markdown character is preceded by a backslash: none can start a link, a mention or emphasis.
            let mut previous = ' ';
            for c in text.chars() {
                if "[]()<>*_|~#`".contains(c) {
                    assert_eq!(previous, '\\', "{c} unescaped in {text}");
                }
                previous = if previous == '\\' && c == '\\' {
                    ' '
                } else {
                    c
                };
            }
        }
    }

    #[test]
    fn teams_states_the_run_message_once() {
        let message = "1 of 3 deallocations failed; the others were reclaimed";
        // The default summary carries the message on its second line: the card does not repeat it.
        let summary = format!("Run r1 of prod: Failed.\n{message}\n");
        let card = teams("Qlik licences", &summary, &record(message));
        let text = card.to_string();
        assert_eq!(text.matches("deallocations failed").count(), 1, "{text}");
        // A site's template without the message: the card adds it.
        let card = teams("Qlik licences", "2 reclaimed", &record(message));
        assert_eq!(card.to_string().matches("deallocations failed").count(), 1);
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
