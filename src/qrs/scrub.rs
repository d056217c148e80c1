//! Text that Qlik (or a proxy in front of it) sends back is repeated in errors, logs, the status and Events.
//! Error pages often echo the request: its URL with the xrfkey, its headers with the session cookie. Before any
//! of it is repeated, the secrets this client sent are removed and the text is cut short.

/// What replaces a secret.
const REDACTED: &str = "[redacted]";

/// Removes the secrets one client sends (xrfkey, session id) from text it is about to repeat.
#[derive(Clone, Default)]
pub(crate) struct Scrubber {
    /// Lowercase (the secrets are ASCII), with their percent-encoded forms.
    secrets: Vec<String>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrubber({} secrets)", self.secrets.len())
    }
}

impl Scrubber {
    pub(crate) fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut list = Vec::new();
        for secret in secrets {
            let secret = secret.trim();
            // Too short to be a secret, and replacing it would mangle ordinary words.
            if secret.len() < 6 {
                continue;
            }
            list.push(secret.to_ascii_lowercase());
            let encoded =
                percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
                    .to_ascii_lowercase();
            if encoded != list[list.len() - 1] {
                list.push(encoded);
            }
        }
        Self { secrets: list }
    }

    /// `text` without the secrets, without the value of anything named like an xrfkey or a session cookie,
    /// control characters as spaces, runs of whitespace as one, and at most `max_chars` characters.
    pub(crate) fn scrub(&self, text: &str, max_chars: usize) -> String {
        let mut text = text.to_string();
        for secret in &self.secrets {
            text = replace_ascii_case_insensitive(&text, secret, REDACTED);
        }
        // Whatever key or session another component added (a proxy's own, a key this client did not send).
        for name in ["xrfkey", "x-qlik-session"] {
            text = redact_values_after(&text, name);
        }
        let mut out = String::with_capacity(text.len().min(max_chars + 8));
        let mut count = 0;
        let mut last_space = true;
        for c in text.chars() {
            let c = if c.is_control() || c.is_whitespace() {
                ' '
            } else {
                c
            };
            if c == ' ' && last_space {
                continue;
            }
            last_space = c == ' ';
            if count == max_chars {
                out.push('…');
                return out.trim_end().to_string();
            }
            out.push(c);
            count += 1;
        }
        out.trim_end().to_string()
    }
}

fn replace_ascii_case_insensitive(text: &str, needle_lower: &str, with: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    while let Some(found) = lower[from..].find(needle_lower) {
        let start = from + found;
        out.push_str(&text[from..start]);
        out.push_str(with);
        from = start + needle_lower.len();
    }
    out.push_str(&text[from..]);
    out
}

/// After each `name` (ASCII case-insensitive), then any of `=:"' ` and a cookie-name suffix such as `-ops`,
/// replace the value (a run of letters, digits and `-`) with the redaction mark.
fn redact_values_after(text: &str, name: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    while let Some(found) = lower[from..].find(name) {
        let after_name = from + found + name.len();
        out.push_str(&text[from..after_name]);
        let rest = &text[after_name..];
        // A cookie name may continue with a virtual proxy suffix ("X-Qlik-Session-ops").
        let suffix_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(rest.len());
        let (suffix, rest) = rest.split_at(suffix_len);
        let separator_len = rest
            .find(|c: char| !matches!(c, '=' | ':' | '"' | '\'' | ' ' | '\\'))
            .unwrap_or(rest.len());
        let (separator, rest) = rest.split_at(separator_len);
        let value_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(rest.len());
        out.push_str(suffix);
        out.push_str(separator);
        if !separator.is_empty() && value_len >= 6 {
            out.push_str(REDACTED);
        } else {
            out.push_str(&rest[..value_len]);
        }
        from = after_name + suffix_len + separator_len + value_len;
    }
    out.push_str(&text[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AbCdEfGh01234567";
    const SESSION: &str = "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b";

    #[test]
    fn secrets_are_removed_wherever_they_appear() {
        let scrubber = Scrubber::new([KEY, SESSION]);
        let page = format!(
            "<p>GET https://qlik:4242/qrs/user?XRFKEY={KEY}&filter=x failed</p>\
             <li>cookie: X-Qlik-Session-ops={SESSION}</li><li>x-qlik-xrfkey: {}</li> key {}",
            KEY.to_lowercase(),
            KEY
        );
        let scrubbed = scrubber.scrub(&page, 10_000);
        for secret in [KEY, &KEY.to_lowercase(), SESSION] {
            assert!(!scrubbed.contains(secret), "{scrubbed}");
        }
        assert!(scrubbed.contains("[redacted]"), "{scrubbed}");
        assert!(
            scrubbed.contains("/qrs/user"),
            "the rest stays readable: {scrubbed}"
        );
    }

    #[test]
    fn keys_it_did_not_send_are_removed_too() {
        let scrubber = Scrubber::default();
        let scrubbed = scrubber.scrub(
            "url /qrs/about?xrfkey=ZZZZyyyy00001111 and \"X-Qlik-Xrfkey\": \"QQQQwwww22223333\"",
            1000,
        );
        assert!(!scrubbed.contains("ZZZZyyyy00001111"), "{scrubbed}");
        assert!(!scrubbed.contains("QQQQwwww22223333"), "{scrubbed}");
    }

    #[test]
    fn percent_encoded_secrets_are_removed() {
        let scrubber = Scrubber::new(["a key/with+signs"]);
        let scrubbed = scrubber.scrub("sent a%20key%2Fwith%2Bsigns along", 1000);
        assert!(!scrubbed.contains("a%20key"), "{scrubbed}");
    }

    #[test]
    fn text_is_flattened_and_cut() {
        let scrubber = Scrubber::default();
        assert_eq!(scrubber.scrub("a\n\n\tb\u{7}c", 100), "a b c");
        let long = "x".repeat(500);
        let cut = scrubber.scrub(&long, 200);
        assert_eq!(cut.chars().count(), 201);
        assert!(cut.ends_with('…'));
        assert_eq!(scrubber.scrub("ünïcödé", 3), "ünï…");
    }
}
