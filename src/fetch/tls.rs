//! TLS for the HTTP client (`http`): rustls with ring, HTTP/1.1 by ALPN,
//! the system's root certificates, loaded once per process on the first
//! https connection (a process-wide cache of what does not change during
//! a run), or with `--insecure` a verifier that accepts any certificate.

use std::sync::{Arc, OnceLock};

/// The rustls configuration (ring, HTTP/1.1 by ALPN): the system's roots,
/// loaded once per process on the first https connection, or any
/// certificate with `--insecure`.
pub(super) fn config(insecure: bool) -> Arc<rustls::ClientConfig> {
    static CHECKED: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    static INSECURE: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let build = |insecure: bool| {
        let mut config = if insecure {
            insecure::config()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            // Without any root, plain HTTP still works and every
            // certificate is rejected.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth()
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    };
    if insecure { INSECURE.get_or_init(|| build(true)).clone() } else { CHECKED.get_or_init(|| build(false)).clone() }
}

/// `--insecure`: a rustls configuration that accepts any
/// certificate (signatures are still checked, the chain and name are not).
mod insecure {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    #[derive(Debug)]
    struct AcceptAny(WebPkiSupportedAlgorithms);

    impl ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.supported_schemes()
        }
    }

    pub(super) fn config() -> rustls::ClientConfig {
        let provider: CryptoProvider = rustls::crypto::ring::default_provider();
        let algorithms = provider.signature_verification_algorithms;
        rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(algorithms)))
            .with_no_client_auth()
    }
}
