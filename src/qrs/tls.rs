//! TLS to Qlik: the client certificate, trust pinned to the site's own root CA, and the two escape hatches Qlik
//! sites need (a different expected server name, and, loudly, no verification at all).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::credentials::Credentials;

/// How the server certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerVerification {
    /// Against the root CA, for the host name of the URL.
    UrlHost,
    /// Against the root CA, for this name instead of the URL's host (Qlik often certifies the short host name).
    Name(String),
    /// Not at all.
    Insecure,
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn client_config(
    credentials: &Credentials,
    verification: &ServerVerification,
) -> Result<ClientConfig, String> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    for root in &credentials.roots {
        roots
            .add(root.clone())
            .map_err(|e| format!("root.pem cannot be used as a trust anchor: {e}"))?;
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("cannot build the server certificate verifier: {e}"))?;

    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?;
    let builder = match verification {
        ServerVerification::UrlHost => builder.with_webpki_verifier(webpki),
        ServerVerification::Name(name) => {
            let name = ServerName::try_from(name.clone())
                .map_err(|_| format!("tls.serverName {name:?} is not a valid host name"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SiteVerifier {
                    chain: Some((webpki, name)),
                    provider,
                }))
        }
        ServerVerification::Insecure => {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SiteVerifier {
                    chain: None,
                    provider,
                }))
        }
    };
    let mut config = builder
        .with_client_auth_cert(
            credentials.client_chain.clone(),
            credentials.client_key.clone_key(),
        )
        .map_err(|e| format!("client.pem and client_key.pem cannot be used together: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The two ways Qlik sites need besides the usual check: the chain against the root CA for a configured name
/// rather than the URL's host (`chain: Some`), or, loudly, no check of the certificate at all (`chain: None`).
/// The handshake signatures are checked either way, so the session keys are sound; without a chain check anyone on
/// the path can impersonate Qlik.
#[derive(Debug)]
struct SiteVerifier {
    chain: Option<(Arc<WebPkiServerVerifier>, ServerName<'static>)>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for SiteVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.chain {
            Some((webpki, name)) => {
                webpki.verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
            }
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
