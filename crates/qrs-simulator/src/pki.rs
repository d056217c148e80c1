//! The simulator's certificates, shaped like the ones a Qlik Sense site issues: a root CA, a server certificate for
//! the node's short host name, and a client certificate with the common name `QlikClient` whose key is exported the
//! way the QMC does it (PKCS#1 RSA by default).

use std::io;
use std::path::Path;
use std::sync::Mutex;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{KeyFormat, SimulatorError};

/// PEM text of every certificate and key the simulator uses. The keys are secrets: [`Pki`]'s `Debug` leaves them
/// out.
#[derive(Clone)]
pub struct Pki {
    /// The CA that signed the server and client certificates (`root.pem`).
    pub root_pem: String,
    /// The server certificate presented by every listener.
    pub server_pem: String,
    pub server_key_pem: String,
    /// The client certificate (`client.pem`), common name `QlikClient`.
    pub client_pem: String,
    /// The client key (`client_key.pem`) in [`Pki::client_key_format`].
    pub client_key_pem: String,
    pub client_key_format: KeyFormat,
    /// An unrelated CA, for negative tests.
    pub wrong_root_pem: String,
    /// A client certificate signed by [`Pki::wrong_root_pem`], which the listeners refuse.
    pub wrong_client_pem: String,
    pub wrong_client_key_pem: String,
    /// The DNS name in the server certificate.
    pub server_name: String,
    pub(crate) root_der: CertificateDer<'static>,
    pub(crate) server_der: CertificateDer<'static>,
    server_key_der: Vec<u8>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("server_name", &self.server_name)
            .field("client_key_format", &self.client_key_format)
            .finish_non_exhaustive()
    }
}

fn pki_err(context: &str) -> impl Fn(rcgen::Error) -> SimulatorError + '_ {
    move |e| SimulatorError::Pki(format!("{context}: {e}"))
}

impl Pki {
    /// Creates a fresh root, server and client certificate (and the unrelated "wrong" pair).
    pub(crate) fn generate(
        server_name: &str,
        extra_sans: &[String],
        format: KeyFormat,
    ) -> Result<Pki, SimulatorError> {
        // Qlik names its CA after the node: "<host>-CA".
        let root_key = KeyPair::generate().map_err(pki_err("root key"))?;
        let root_params = ca_params(&format!("{server_name}-CA"));
        let root_cert = root_params
            .self_signed(&root_key)
            .map_err(pki_err("root certificate"))?;
        let root = Issuer::from_params(&root_params, &root_key);

        let server_key = KeyPair::generate().map_err(pki_err("server key"))?;
        let mut server_params = CertificateParams::default();
        server_params
            .distinguished_name
            .push(DnType::CommonName, server_name);
        server_params.subject_alt_names = std::iter::once(server_name)
            .chain(extra_sans.iter().map(String::as_str))
            .map(san)
            .collect::<Result<_, _>>()?;
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        set_validity(&mut server_params);
        let server_cert = server_params
            .signed_by(&server_key, &root)
            .map_err(pki_err("server certificate"))?;

        let (client_key, client_key_pem) = client_key(format)?;
        let client_cert = client_params()
            .signed_by(&client_key, &root)
            .map_err(pki_err("client certificate"))?;

        let wrong_key = KeyPair::generate().map_err(pki_err("second root key"))?;
        let wrong_params = ca_params("UnrelatedIssuer-CA");
        let wrong_root_cert = wrong_params
            .self_signed(&wrong_key)
            .map_err(pki_err("second root certificate"))?;
        let wrong_issuer = Issuer::from_params(&wrong_params, &wrong_key);
        let wrong_client_key = KeyPair::generate().map_err(pki_err("second client key"))?;
        let wrong_client_cert = client_params()
            .signed_by(&wrong_client_key, &wrong_issuer)
            .map_err(pki_err("second client certificate"))?;

        Ok(Pki {
            root_pem: root_cert.pem(),
            server_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            client_pem: client_cert.pem(),
            client_key_pem,
            client_key_format: format,
            wrong_root_pem: wrong_root_cert.pem(),
            wrong_client_pem: wrong_client_cert.pem(),
            wrong_client_key_pem: wrong_client_key.serialize_pem(),
            server_name: server_name.to_string(),
            root_der: root_cert.der().clone(),
            server_der: server_cert.der().clone(),
            server_key_der: server_key.serialize_der(),
        })
    }

    /// The client certificate followed by its key, the input `reqwest::Identity::from_pem` expects.
    pub fn client_identity_pem(&self) -> String {
        format!("{}{}", self.client_pem, self.client_key_pem)
    }

    /// The unrelated client certificate and key, concatenated.
    pub fn wrong_client_identity_pem(&self) -> String {
        format!("{}{}", self.wrong_client_pem, self.wrong_client_key_pem)
    }

    /// Writes `client.pem`, `client_key.pem` and `root.pem` into `dir` (created if missing). On Unix the key is
    /// readable by its owner only.
    pub fn write_credentials(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("client.pem"), &self.client_pem)?;
        std::fs::write(dir.join("root.pem"), &self.root_pem)?;
        let key_path = dir.join("client_key.pem");
        write_secret(&key_path, self.client_key_pem.as_bytes())
    }

    /// The client credentials keyed as a Secret (or a folder like it) holds them.
    pub fn secret_entries(&self) -> std::collections::BTreeMap<String, Vec<u8>> {
        [
            ("client.pem", &self.client_pem),
            ("client_key.pem", &self.client_key_pem),
            ("root.pem", &self.root_pem),
        ]
        .into_iter()
        .map(|(key, pem)| (key.to_string(), pem.as_bytes().to_vec()))
        .collect()
    }

    pub(crate) fn server_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone()))
    }
}

#[cfg(unix)]
fn write_secret(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)
}

#[cfg(not(unix))]
fn write_secret(path: &Path, contents: &[u8]) -> io::Result<()> {
    std::fs::write(path, contents)
}

/// Valid from yesterday to ten years ahead, so a certificate is valid now whatever the clock skew between processes.
fn set_validity(params: &mut CertificateParams) {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let yesterday = today.yesterday().unwrap_or(today);
    params.not_before = rcgen::date_time_ymd(
        i32::from(yesterday.year()),
        yesterday.month().unsigned_abs(),
        yesterday.day().unsigned_abs(),
    );
    params.not_after = rcgen::date_time_ymd(i32::from(today.year()) + 10, 1, 1);
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params);
    params
}

fn client_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "QlikClient");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    set_validity(&mut params);
    params
}

fn san(name: &str) -> Result<SanType, SimulatorError> {
    if let Ok(ip) = name.parse::<std::net::IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    name.to_string()
        .try_into()
        .map(SanType::DnsName)
        .map_err(|e| SimulatorError::Pki(format!("'{name}' is not a valid DNS name: {e}")))
}

/// The client key pair (for signing its certificate) and its PEM text in the requested format.
fn client_key(format: KeyFormat) -> Result<(KeyPair, String), SimulatorError> {
    match format {
        KeyFormat::Pkcs1Rsa | KeyFormat::Pkcs8 => {
            let rsa = rsa_key()?;
            let key = KeyPair::from_pkcs8_der_and_sign_algo(
                &PrivatePkcs8KeyDer::from(rsa.pkcs8_der.as_slice()),
                &rcgen::PKCS_RSA_SHA256,
            )
            .map_err(pki_err("RSA client key"))?;
            let pem = if format == KeyFormat::Pkcs1Rsa {
                rsa.pkcs1_pem
            } else {
                rsa.pkcs8_pem
            };
            Ok((key, pem))
        }
        KeyFormat::Sec1Ecdsa => {
            let key = KeyPair::generate().map_err(pki_err("ECDSA client key"))?;
            let sec1 = pkcs8_p256_to_sec1(key.serialized_der()).ok_or_else(|| {
                SimulatorError::Pki("could not re-encode the ECDSA key as SEC1".into())
            })?;
            Ok((key, pem_encode("EC PRIVATE KEY", &sec1)))
        }
    }
}

#[derive(Clone)]
struct RsaKeyMaterial {
    pkcs1_pem: String,
    pkcs8_pem: String,
    pkcs8_der: Vec<u8>,
}

/// A 2048-bit RSA key, generated once per process: generating one takes a noticeable fraction of a second even
/// optimised, and every simulator start needs one.
fn rsa_key() -> Result<RsaKeyMaterial, SimulatorError> {
    static KEY: Mutex<Option<RsaKeyMaterial>> = Mutex::new(None);
    let mut slot = super::lock(&KEY);
    if let Some(key) = slot.as_ref() {
        return Ok(key.clone());
    }
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::EncodePrivateKey;
    let err = |e: &dyn std::fmt::Display| SimulatorError::Pki(format!("RSA key: {e}"));
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).map_err(|e| err(&e))?;
    let pkcs1_pem = key
        .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
        .map_err(|e| err(&e))?;
    let pkcs8_pem = key
        .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
        .map_err(|e| err(&e))?;
    let pkcs8_der = key.to_pkcs8_der().map_err(|e| err(&e))?;
    let material = RsaKeyMaterial {
        pkcs1_pem: pkcs1_pem.to_string(),
        pkcs8_pem: pkcs8_pem.to_string(),
        pkcs8_der: pkcs8_der.as_bytes().to_vec(),
    };
    *slot = Some(material.clone());
    Ok(material)
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use std::fmt::Write;
    let b64 = base64_encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        let _ = writeln!(out, "{}", String::from_utf8_lossy(chunk));
    }
    let _ = writeln!(out, "-----END {label}-----");
    out
}

fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One DER element: (tag, contents, rest of the input).
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn der_tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xff {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(contents);
    out
}

/// The OID of the P-256 curve (prime256v1), DER-encoded.
const PRIME256V1_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Re-encodes a PKCS#8 P-256 key as the SEC1 `ECPrivateKey` OpenSSL writes: version 1, the private scalar, the
/// curve as `[0]` parameters and the public point as `[1]`.
fn pkcs8_p256_to_sec1(pkcs8: &[u8]) -> Option<Vec<u8>> {
    let (0x30, info, _) = der_next(pkcs8)? else {
        return None;
    };
    let (0x02, _version, rest) = der_next(info)? else {
        return None;
    };
    let (0x30, _algorithm, rest) = der_next(rest)? else {
        return None;
    };
    let (0x04, inner, _) = der_next(rest)? else {
        return None;
    };
    let (0x30, ec, _) = der_next(inner)? else {
        return None;
    };
    let (0x02, _, mut rest) = der_next(ec)? else {
        return None;
    };
    let (0x04, scalar, after) = der_next(rest)? else {
        return None;
    };
    rest = after;
    let mut public = None;
    while let Some((tag, contents, after)) = der_next(rest) {
        if tag == 0xa1 {
            public = Some(contents);
        }
        rest = after;
    }
    let mut body = der_tlv(0x02, &[1]);
    body.extend(der_tlv(0x04, scalar));
    body.extend(der_tlv(0xa0, &PRIME256V1_OID));
    if let Some(public) = public {
        body.extend(der_tlv(0xa1, public));
    }
    Some(der_tlv(0x30, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn every_key_format_has_its_pem_label() {
        for (format, label) in [
            (KeyFormat::Pkcs1Rsa, "-----BEGIN RSA PRIVATE KEY-----"),
            (KeyFormat::Pkcs8, "-----BEGIN PRIVATE KEY-----"),
            (KeyFormat::Sec1Ecdsa, "-----BEGIN EC PRIVATE KEY-----"),
        ] {
            let pki = Pki::generate("qlikserver1", &[], format).expect("pki");
            assert!(
                pki.client_key_pem.starts_with(label),
                "{format:?}: {}",
                &pki.client_key_pem[..40]
            );
            assert!(pki.root_pem.starts_with("-----BEGIN CERTIFICATE-----"));
            assert!(!format!("{pki:?}").contains("PRIVATE"));
        }
    }

    #[test]
    fn sec1_key_is_readable_by_rustls() {
        let key = KeyPair::generate().expect("key");
        let sec1 = pkcs8_p256_to_sec1(key.serialized_der()).expect("sec1");
        let der = PrivateKeyDer::Sec1(sec1.into());
        let provider = rustls::crypto::ring::default_provider();
        assert!(provider.key_provider.load_private_key(der).is_ok());
    }
}
