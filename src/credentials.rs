//! The client certificate, key, trusted root and xrfkey that a policy's Secret (or a folder shaped like it) holds.
//!
//! Everything is parsed and checked up front so that a broken Secret fails before any request, with a message
//! that names the key at fault. Nothing here ever prints key material.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use rand::Rng;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Secret key holding the client certificate (PEM, as a QMC export names it).
pub const CLIENT_CERT_KEY: &str = "client.pem";
/// Secret key holding the client private key (PKCS#1, PKCS#8 or SEC1 PEM).
pub const CLIENT_KEY_KEY: &str = "client_key.pem";
/// Secret key holding the Qlik root CA certificate that signed the server certificates.
pub const ROOT_CERT_KEY: &str = "root.pem";
/// Optional Secret key holding a fixed xrfkey.
pub const XRFKEY_KEY: &str = "xrfkey";

/// Why credentials cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "{key} is missing: the Secret (or folder) must hold client.pem, client_key.pem and root.pem as exported by the QMC"
    )]
    Missing { key: &'static str },
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{key} is not usable: {problem}")]
    Invalid { key: &'static str, problem: String },
}

impl CredentialsError {
    fn invalid(key: &'static str, problem: impl Into<String>) -> Self {
        Self::Invalid {
            key,
            problem: problem.into(),
        }
    }
}

/// An anti-CSRF key: Qlik requires the same 16 characters of `[0-9A-Za-z]` in the `xrfkey` query parameter and
/// the `X-Qlik-Xrfkey` header of every request.
#[derive(Clone, PartialEq, Eq)]
pub struct Xrfkey(String);

impl Xrfkey {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let key = raw.trim();
        if key.len() != 16 || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!(
                "must be exactly 16 characters of 0-9, A-Z and a-z (found {} characters{})",
                key.chars().count(),
                if key.chars().all(|c| c.is_ascii_alphanumeric()) {
                    ""
                } else {
                    ", some of them not letters or digits"
                }
            ));
        }
        Ok(Self(key.to_string()))
    }

    /// A fresh random key, so that no two clients share one (a fixed, published key defeats its purpose).
    pub fn random() -> Self {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut rng = rand::rng();
        Self(
            (0..16)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect(),
        )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Xrfkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Xrfkey(..)")
    }
}

/// Parsed, checked credentials.
pub struct Credentials {
    pub(crate) client_chain: Vec<CertificateDer<'static>>,
    pub(crate) client_key: PrivateKeyDer<'static>,
    pub(crate) roots: Vec<CertificateDer<'static>>,
    /// The Secret's xrfkey, if it has one.
    pub xrfkey: Option<Xrfkey>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_chain", &self.client_chain.len())
            .field("roots", &self.roots.len())
            .field("xrfkey", &self.xrfkey.is_some())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Parse the entries of a Secret's `data` (or a folder's files), by key name.
    pub fn from_entries(entries: &BTreeMap<String, Vec<u8>>) -> Result<Self, CredentialsError> {
        let get = |key: &'static str| {
            entries
                .get(key)
                .map(Vec::as_slice)
                .ok_or(CredentialsError::Missing { key })
        };

        let client_chain = parse_certificates(CLIENT_CERT_KEY, get(CLIENT_CERT_KEY)?)?;
        let client_key = parse_private_key(get(CLIENT_KEY_KEY)?)?;
        let roots = parse_certificates(ROOT_CERT_KEY, get(ROOT_CERT_KEY)?)?;
        let xrfkey = match entries.get(XRFKEY_KEY) {
            None => None,
            Some(raw) => {
                let text = std::str::from_utf8(raw)
                    .map_err(|_| CredentialsError::invalid(XRFKEY_KEY, "is not text"))?;
                Some(Xrfkey::parse(text).map_err(|p| CredentialsError::invalid(XRFKEY_KEY, p))?)
            }
        };
        let credentials = Self {
            client_chain,
            client_key,
            roots,
            xrfkey,
        };
        credentials.check_key_matches_certificate()?;
        Ok(credentials)
    }

    /// Read a folder shaped like the mounted Secret: `client.pem`, `client_key.pem`, `root.pem`, optional `xrfkey`.
    pub fn from_dir(dir: &Path) -> Result<Self, CredentialsError> {
        if !dir.is_dir() {
            return Err(CredentialsError::Unreadable {
                path: dir.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a folder"),
            });
        }
        let mut entries = BTreeMap::new();
        for key in [CLIENT_CERT_KEY, CLIENT_KEY_KEY, ROOT_CERT_KEY, XRFKEY_KEY] {
            let path = dir.join(key);
            match crate::files::read_at_most(&path, crate::files::SECRET_BYTES) {
                Ok(bytes) => {
                    entries.insert(key.to_string(), bytes);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(CredentialsError::Unreadable {
                        path: path.display().to_string(),
                        source,
                    });
                }
            }
        }
        Self::from_entries(&entries)
    }

    /// The xrfkey to use: the Secret's, or a random one.
    pub fn xrfkey_or_random(&self) -> Xrfkey {
        self.xrfkey.clone().unwrap_or_else(Xrfkey::random)
    }

    /// A certificate and a key that do not belong together make an opaque TLS failure later; say it now.
    fn check_key_matches_certificate(&self) -> Result<(), CredentialsError> {
        let provider = rustls::crypto::ring::default_provider();
        let signing_key = provider
            .key_provider
            .load_private_key(self.client_key.clone_key())
            .map_err(|e| {
                CredentialsError::invalid(
                    CLIENT_KEY_KEY,
                    format!("the private key cannot be used for signing: {e}"),
                )
            })?;
        let certified = rustls::sign::CertifiedKey::new(self.client_chain.clone(), signing_key);
        match certified.keys_match() {
            Ok(()) => Ok(()),
            // Not every key type can report its public key; the TLS handshake will tell then.
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
            Err(_) => Err(CredentialsError::invalid(
                CLIENT_KEY_KEY,
                "does not belong to the certificate in client.pem (export both from the same QMC certificate export)",
            )),
        }
    }
}

fn parse_certificates(
    key: &'static str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, CredentialsError> {
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_slice_iter(pem) {
        // The PEM parser's own message can quote the input byte by byte: say what is wrong without it.
        let cert =
            cert.map_err(|_| CredentialsError::invalid(key, diagnose_pem(pem, "CERTIFICATE")))?;
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(CredentialsError::invalid(
            key,
            diagnose_pem(pem, "CERTIFICATE"),
        ));
    }
    for (i, cert) in certs.iter().enumerate() {
        // webpki's errors name the problem (an unsupported algorithm, a bad encoding), never the bytes.
        rustls::server::ParsedCertificate::try_from(cert).map_err(|e| {
            CredentialsError::invalid(key, format!("certificate {} cannot be parsed: {e}", i + 1))
        })?;
    }
    Ok(certs)
}

fn parse_private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, CredentialsError> {
    // Never include the parser's error: for a key whose line breaks were lost it lists the key's bytes.
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|_| CredentialsError::invalid(CLIENT_KEY_KEY, diagnose_pem(pem, "PRIVATE KEY")))
}

/// Why `pem` holds no usable PEM block, in words an administrator can act on, without quoting any of it. The
/// usual causes are the ways Secrets get made by hand: a value pasted into a form loses its line breaks (or
/// has them written as the two characters `\n`), a value base64-encoded once more than Kubernetes wants, a
/// Windows file with a byte-order mark, or the wrong file under the key.
fn diagnose_pem(pem: &[u8], expected: &str) -> String {
    const KINDS: &str = "expected PEM: a -----BEGIN CERTIFICATE----- block for certificates; BEGIN RSA PRIVATE KEY (PKCS#1), BEGIN PRIVATE KEY (PKCS#8) or BEGIN EC PRIVATE KEY (SEC1) for the key";
    let text = String::from_utf8_lossy(pem);
    let text = text.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return format!("is empty; {KINDS}");
    }
    if !text.contains("-----BEGIN") {
        if looks_like_base64_of_pem(text) {
            return "looks base64-encoded twice: the value decodes to PEM text. Kubernetes already base64-encodes \
                    `data` values; put the PEM file itself in the Secret (kubectl create secret generic --from-file \
                    does this)"
                .to_string();
        }
        if pem.first() == Some(&0x30) {
            return format!(
                "is binary DER, not PEM; convert it (openssl x509 -inform der, or openssl pkey -inform der) or export it as PEM from the QMC; {KINDS}"
            );
        }
        return format!("holds no PEM block (no -----BEGIN line); {KINDS}");
    }
    if text.contains("\\n") {
        return "the PEM has literal \\n sequences where its line breaks should be (the value was written with \
                escaped newlines); write the file with real line breaks"
            .to_string();
    }
    let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
    if lines < 3 {
        return "the PEM lost its line breaks (BEGIN line, base64 body and END line must be on separate lines, as \
                in the exported file); create the Secret from the file rather than pasting its text"
            .to_string();
    }
    if !text.contains("-----END") {
        return "the PEM is cut off: its -----END line is missing".to_string();
    }
    if !text.contains(expected) {
        return format!("holds a PEM block of another kind; {KINDS}");
    }
    format!(
        "the PEM block cannot be decoded (its base64 body is damaged); export it again from the QMC; {KINDS}"
    )
}

/// Whether `text` is base64 (possibly wrapped) whose decoding starts a PEM block.
fn looks_like_base64_of_pem(text: &str) -> bool {
    use base64::Engine as _;
    let compact: String = text.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .is_ok_and(|decoded| decoded.trim_ascii_start().starts_with(b"-----BEGIN"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xrfkey_must_be_sixteen_alphanumerics() {
        assert!(Xrfkey::parse("abcdefghij012345").is_ok());
        assert!(
            Xrfkey::parse(" abcdefghij012345\n").is_ok(),
            "a trailing newline from a file is fine"
        );
        assert!(Xrfkey::parse("abcdefghij01234").is_err());
        assert!(Xrfkey::parse("abcdefghij0123456").is_err());
        let err = Xrfkey::parse("abcdefghij01234-").unwrap_err();
        assert!(err.contains("not letters or digits"), "{err}");
    }

    #[test]
    fn random_xrfkeys_are_valid_and_differ() {
        let a = Xrfkey::random();
        let b = Xrfkey::random();
        assert!(Xrfkey::parse(a.as_str()).is_ok());
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "Xrfkey(..)", "a key never reaches a log");
    }

    /// Every 16-character run of `secret` (its text, and its bytes written as a list of numbers), so that a
    /// message can be checked for any part of it.
    fn fragments(secret: &str) -> Vec<String> {
        let mut runs = Vec::new();
        let chars: Vec<char> = secret.chars().filter(|c| !c.is_whitespace()).collect();
        for window in chars.windows(16) {
            runs.push(window.iter().collect());
        }
        let numbers = format!("{:?}", &secret.as_bytes()[..secret.len().min(64)]);
        runs.push(numbers.trim_start_matches('[').chars().take(16).collect());
        runs
    }

    fn assert_no_fragment(message: &str, secret: &str) {
        for run in fragments(secret) {
            assert!(
                !message.contains(&run),
                "{message:?} repeats {run:?} of the key"
            );
        }
    }

    #[test]
    fn a_mangled_key_is_diagnosed_without_quoting_it() {
        let (entries, key_pem) = crate::testing::credential_entries();
        assert!(
            Credentials::from_entries(&entries).is_ok(),
            "the unmangled key is fine"
        );
        use base64::Engine as _;
        let cases: Vec<(&str, String, &str)> = vec![
            (
                "newlines lost",
                key_pem.replace('\n', ""),
                "lost its line breaks",
            ),
            (
                "newlines as spaces",
                key_pem.replace('\n', " "),
                "lost its line breaks",
            ),
            (
                "newlines written as \\n",
                key_pem.replace('\n', "\\n"),
                "literal \\n",
            ),
            (
                "base64-encoded twice",
                base64::engine::general_purpose::STANDARD.encode(&key_pem),
                "base64-encoded twice",
            ),
            (
                "cut off",
                key_pem[..key_pem.len() / 2].to_string(),
                "cut off",
            ),
            (
                "body damaged",
                key_pem.replacen("\n", "\n!!", 1),
                "cannot be decoded",
            ),
            ("empty", String::new(), "is empty"),
            (
                "no PEM at all",
                "not a key at all, just some words".into(),
                "no PEM block",
            ),
        ];
        for (what, mangled, expected) in cases {
            let mut entries = entries.clone();
            entries.insert(CLIENT_KEY_KEY.into(), mangled.into_bytes());
            let err = Credentials::from_entries(&entries)
                .expect_err(what)
                .to_string();
            assert!(
                err.starts_with("client_key.pem is not usable"),
                "{what}: {err}"
            );
            assert!(err.contains(expected), "{what}: {err}");
            assert_no_fragment(&err, &key_pem);
            assert_no_fragment(
                &format!("{:?}", Credentials::from_entries(&entries).err()),
                &key_pem,
            );
        }
    }

    #[test]
    fn a_mangled_certificate_is_diagnosed_without_quoting_it() {
        let (entries, _) = crate::testing::credential_entries();
        let cert = String::from_utf8(entries[CLIENT_CERT_KEY].clone()).expect("text");
        for mangled in [
            cert.replace('\n', ""),
            cert.replace('\n', "\\n"),
            cert[..cert.len() / 2].to_string(),
        ] {
            let mut entries = entries.clone();
            entries.insert(CLIENT_CERT_KEY.into(), mangled.into_bytes());
            let err = Credentials::from_entries(&entries)
                .expect_err("mangled")
                .to_string();
            assert!(err.starts_with("client.pem is not usable"), "{err}");
            assert_no_fragment(&err, &cert);
        }
    }

    #[test]
    fn missing_and_garbage_entries_are_named() {
        let mut entries = BTreeMap::new();
        let err = Credentials::from_entries(&entries).unwrap_err();
        assert!(
            err.to_string().starts_with("client.pem is missing"),
            "{err}"
        );

        entries.insert(CLIENT_CERT_KEY.to_string(), b"not a certificate".to_vec());
        entries.insert(CLIENT_KEY_KEY.to_string(), b"nope".to_vec());
        entries.insert(ROOT_CERT_KEY.to_string(), b"nope".to_vec());
        let err = Credentials::from_entries(&entries).unwrap_err();
        assert!(
            err.to_string().starts_with("client.pem is not usable"),
            "{err}"
        );
    }
}
