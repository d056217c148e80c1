//! E-mail over SMTP (lettre, rustls): the settings a Secret holds, and one message sent at a time.

use std::collections::BTreeMap;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::NotifyError;
use super::templates::Rendered;
use crate::qrs::Scrubber;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text first, then STARTTLS, required (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS at all: only for a relay on a trusted network.
    None,
}

/// The SMTP settings, as the Secret `notify.email.smtpSecretRef` holds them.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub from: Mailbox,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
    /// A CA to trust besides Mozilla's (a company CA, say).
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for SmtpSettings {
    // The password is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl SmtpSettings {
    /// The settings from a Secret's entries: host, port, from, tls (starttls, tls or none; default starttls), and
    /// optionally username, password and ca.pem. Errors name the key, never a value.
    pub fn from_entries(entries: &BTreeMap<String, Vec<u8>>) -> Result<Self, NotifyError> {
        let text = |key: &str| -> Result<Option<String>, NotifyError> {
            match entries.get(key) {
                None => Ok(None),
                Some(bytes) => String::from_utf8(bytes.clone())
                    .map(|s| Some(s.trim().to_string()).filter(|s| !s.is_empty()))
                    .map_err(|_| NotifyError::Smtp(format!("the key {key} is not UTF-8 text"))),
            }
        };
        let required = |key: &str| {
            text(key)?
                .ok_or_else(|| NotifyError::Smtp(format!("the key {key} is missing or empty")))
        };
        let host = required("host")?;
        let tls = match text("tls")?
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("starttls") => SmtpTls::StartTls,
            Some("tls") => SmtpTls::Tls,
            Some("none") => SmtpTls::None,
            Some(_) => {
                return Err(NotifyError::Smtp(
                    "the key tls must be starttls, tls or none".into(),
                ));
            }
        };
        let port = match text("port")? {
            None => match tls {
                SmtpTls::Tls => 465,
                SmtpTls::StartTls => 587,
                SmtpTls::None => 25,
            },
            Some(port) => port.parse().map_err(|_| {
                NotifyError::Smtp("the key port must be a port number (1 to 65535)".into())
            })?,
        };
        let from = required("from")?
            .parse()
            .map_err(|_| NotifyError::Smtp("the key from is not an e-mail address".into()))?;
        let (username, password) = (text("username")?, text("password")?);
        if username.is_some() != password.is_some() {
            return Err(NotifyError::Smtp(
                "set both username and password, or neither".into(),
            ));
        }
        let allow_plaintext_auth = match text("allowPlaintextAuth")?
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(NotifyError::Smtp(
                    "the key allowPlaintextAuth must be true or false".into(),
                ));
            }
        };
        // Without TLS, AUTH sends the password base64-encoded, which is to say readable by anyone on the path.
        if tls == SmtpTls::None && username.is_some() && !allow_plaintext_auth {
            return Err(NotifyError::Smtp(
                "tls: none with a username would send the SMTP password in clear text, readable by anyone on the \
                 network path: use tls: starttls or tls, or, for a relay on a trusted network, set the key \
                 allowPlaintextAuth to \"true\" to accept that risk"
                    .into(),
            ));
        }
        Ok(Self {
            host,
            port,
            from,
            tls,
            username,
            password,
            ca_pem: entries.get("ca.pem").cloned(),
        })
    }
}

/// Sends mail through one SMTP server.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// Removes the credentials from the server's replies before they are repeated.
    scrubber: Scrubber,
}

/// The most of an SMTP server's reply an error repeats.
const REPLY_CHARS: usize = 200;

/// What an SMTP server may echo of the credentials it was sent: the username and password, the AUTH PLAIN
/// response (`\0user\0password`, base64) and the AUTH LOGIN ones (each base64). The base64 forms are kept
/// without their `=` padding, so that an echo with or without it is found.
fn credential_forms(username: &str, password: &str) -> Vec<String> {
    use base64::Engine as _;
    let encode = |bytes: &[u8]| {
        base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .trim_end_matches('=')
            .to_string()
    };
    let mut forms = vec![
        username.to_string(),
        password.to_string(),
        encode(format!("\0{username}\0{password}").as_bytes()),
        encode(username.as_bytes()),
        encode(password.as_bytes()),
    ];
    // Longest first: a username inside the password must not be removed first and leave the rest of the password.
    forms.sort_by_key(|form| std::cmp::Reverse(form.len()));
    forms
}

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

impl Mailer {
    pub fn new(settings: &SmtpSettings) -> Result<Self, NotifyError> {
        let tls_parameters = || -> Result<TlsParameters, NotifyError> {
            let mut builder = TlsParameters::builder(settings.host.clone())
                .certificate_store(CertificateStore::WebpkiRoots);
            if let Some(pem) = &settings.ca_pem {
                let ca = Certificate::from_pem(pem).map_err(|_| {
                    NotifyError::Smtp("the key ca.pem holds no PEM certificate".into())
                })?;
                builder = builder.add_root_certificate(ca);
            }
            builder
                .build_rustls()
                .map_err(|e| NotifyError::Smtp(format!("TLS settings: {e}")))
        };
        let tls = match settings.tls {
            SmtpTls::StartTls => Tls::Required(tls_parameters()?),
            SmtpTls::Tls => Tls::Wrapper(tls_parameters()?),
            SmtpTls::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
        let mut secrets = Vec::new();
        if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
            secrets = credential_forms(user, password);
        }
        Ok(Self {
            transport: builder.build(),
            from: settings.from.clone(),
            scrubber: Scrubber::new(secrets.iter().map(String::as_str)),
        })
    }

    /// An error of the SMTP conversation as it may be repeated: a server's reply can echo what it was sent (the
    /// AUTH line with the base64 credentials), and it goes to the log, the NotificationFailed Event and the
    /// summary.
    fn failure(&self, e: &lettre::transport::smtp::Error) -> NotifyError {
        NotifyError::Smtp(self.scrub(&e.to_string()))
    }

    /// `text` without the credentials in any form, on one line, at most [`REPLY_CHARS`] characters.
    fn scrub(&self, text: &str) -> String {
        self.scrubber.scrub(text, REPLY_CHARS)
    }

    /// Send one message (plain text and HTML) to `to`.
    pub async fn send(&self, to: &str, message: &Rendered) -> Result<(), NotifyError> {
        let to: Mailbox = to
            .parse()
            .map_err(|_| NotifyError::Address(to.to_string()))?;
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                message.text.clone(),
                message.html.clone(),
            ))
            .map_err(|e| NotifyError::Smtp(format!("cannot build the message: {e}")))?;
        self.transport
            .send(email)
            .await
            .map(|_| ())
            .map_err(|e| self.failure(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn settings_take_defaults_by_tls_mode_and_never_show_the_password() {
        let s = SmtpSettings::from_entries(&entries(&[
            ("host", "smtp.example.com"),
            ("from", "Qlik <qlik@example.com>"),
            ("username", "robot"),
            ("password", "s3cret-pa55"),
        ]))
        .expect("valid");
        assert_eq!((s.tls, s.port), (SmtpTls::StartTls, 587));
        assert!(!format!("{s:?}").contains("s3cret"));
        let s = SmtpSettings::from_entries(&entries(&[
            ("host", "smtp.example.com"),
            ("from", "qlik@example.com"),
            ("tls", "TLS"),
        ]))
        .expect("valid");
        assert_eq!((s.tls, s.port), (SmtpTls::Tls, 465));
    }

    const USER: &str = "qlik-robot";
    const PASSWORD: &str = "s3cret-pa55word";

    fn smtp(tls: &str, extra: &[(&str, &str)]) -> Result<SmtpSettings, NotifyError> {
        let mut pairs = vec![
            ("host", "smtp.example.com"),
            ("from", "qlik@example.com"),
            ("tls", tls),
            ("username", USER),
            ("password", PASSWORD),
        ];
        pairs.extend_from_slice(extra);
        SmtpSettings::from_entries(&entries(&pairs))
    }

    #[test]
    fn a_password_in_clear_text_needs_the_secret_to_say_so() {
        let refused = smtp("none", &[]).expect_err("a password in clear text");
        let text = refused.to_string();
        assert!(
            text.contains("clear text") && text.contains("allowPlaintextAuth"),
            "{text}"
        );
        assert!(!text.contains(PASSWORD), "{text}");
        let refused = smtp("none", &[("allowPlaintextAuth", "false")]).expect_err("refused");
        assert!(refused.to_string().contains("clear text"));
        let e = smtp("none", &[("allowPlaintextAuth", "yes")]).expect_err("true or false");
        assert!(e.to_string().contains("allowPlaintextAuth"), "{e}");
        let allowed = smtp("none", &[("allowPlaintextAuth", "true")]).expect("allowed");
        assert_eq!((allowed.tls, allowed.port), (SmtpTls::None, 25));
        // With TLS, or without a password, nothing to allow.
        smtp("starttls", &[]).expect("starttls");
        SmtpSettings::from_entries(&entries(&[
            ("host", "relay.internal"),
            ("from", "qlik@example.com"),
            ("tls", "none"),
        ]))
        .expect("a relay without authentication");
    }

    #[test]
    fn a_reply_that_echoes_the_credentials_is_repeated_without_them() {
        use base64::Engine as _;
        let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        let mailer = Mailer::new(&smtp("starttls", &[]).expect("valid")).expect("mailer");
        let plain = b64(&format!("\0{USER}\0{PASSWORD}"));
        let reply = format!(
            "permanent error (535): 5.7.8 rejected AUTH PLAIN {plain} | AUTH LOGIN {} {} \
             (unpadded {}) for {USER} with {PASSWORD}\r\n{}",
            b64(USER),
            b64(PASSWORD),
            plain.trim_end_matches('='),
            "and more ".repeat(50)
        );
        let scrubbed = mailer.scrub(&reply);
        for secret in [
            USER.to_string(),
            PASSWORD.to_string(),
            plain.trim_end_matches('=').to_string(),
            b64(USER).trim_end_matches('=').to_string(),
            b64(PASSWORD).trim_end_matches('=').to_string(),
        ] {
            assert!(!scrubbed.contains(&secret), "{secret} in {scrubbed}");
        }
        assert!(
            scrubbed.starts_with("permanent error (535): 5.7.8 rejected AUTH PLAIN [redacted]")
        );
        assert!(scrubbed.chars().count() <= REPLY_CHARS + 1, "{scrubbed}");
        assert!(!scrubbed.contains('\n'), "one line: {scrubbed}");
    }

    #[test]
    fn bad_settings_name_the_key_not_the_value() {
        for (pairs, key) in [
            (vec![("from", "a@example.com")], "host"),
            (vec![("host", "h"), ("from", "not an address")], "from"),
            (
                vec![("host", "h"), ("from", "a@example.com"), ("port", "99999")],
                "port",
            ),
            (
                vec![("host", "h"), ("from", "a@example.com"), ("tls", "ssl3")],
                "tls",
            ),
            (
                vec![
                    ("host", "h"),
                    ("from", "a@example.com"),
                    ("password", "hunter2"),
                ],
                "username",
            ),
        ] {
            let e = SmtpSettings::from_entries(&entries(&pairs)).expect_err("invalid");
            let text = e.to_string();
            assert!(text.contains(key), "{key}: {text}");
            assert!(
                !text.contains("hunter2") && !text.contains("99999"),
                "{text}"
            );
        }
    }
}
