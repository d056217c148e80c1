//! E-mail over SMTP (lettre, rustls): the settings a Secret holds, and one message sent at a time.

use std::collections::BTreeMap;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::NotifyError;
use super::templates::Rendered;

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
        if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Self {
            transport: builder.build(),
            from: settings.from.clone(),
        })
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
            .map_err(|e| NotifyError::Smtp(e.to_string()))
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
