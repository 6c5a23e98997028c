//! TLS for the chat server (`--tls-cert`, `--tls-key`), with rustls used
//! sans-IO: the shells keep doing their own non-blocking reads and writes
//! and pass the bytes through a [`Tls`] session (ciphertext in, plaintext
//! out; plaintext in, ciphertext out), so readiness, send queues,
//! coalescing and timers stay exactly as for plain connections.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Loads a PEM certificate chain and private key into a server config.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read the certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: not a PEM certificate chain", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{}: no certificate in it", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read a PEM private key from {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and the key do not go together")?;
    Ok(Arc::new(config))
}

/// One connection's TLS session.
#[derive(Debug)]
pub(crate) struct Tls(rustls::ServerConnection);

/// What decrypting some bytes found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Opened {
    /// Plaintext (possibly none yet) was appended.
    Data,
    /// The peer closed the TLS session (close_notify).
    Closed,
}

impl Tls {
    pub fn new(config: &Arc<rustls::ServerConfig>) -> io::Result<Tls> {
        let mut conn = rustls::ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
        // The send queue in front of it is what is bounded.
        conn.set_buffer_limit(None);
        Ok(Tls(conn))
    }

    /// Ciphertext read from the socket; the plaintext it carries is
    /// appended to `plain`. An error is a TLS failure (the reason).
    pub fn open(&mut self, mut raw: &[u8], plain: &mut Vec<u8>) -> Result<Opened, String> {
        while !raw.is_empty() {
            self.0.read_tls(&mut raw).map_err(|e| format!("TLS error: {e}"))?;
            self.0.process_new_packets().map_err(|e| format!("TLS error: {e}"))?;
        }
        let mut buf = [0u8; 4096];
        loop {
            match self.0.reader().read(&mut buf) {
                Ok(0) => return Ok(Opened::Closed),
                Ok(n) => plain.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Opened::Data),
                Err(e) => return Err(format!("TLS error: {e}")),
            }
        }
    }

    /// Plaintext to send; its ciphertext (and anything else the session has
    /// to say, e.g. the handshake) is appended to `raw`.
    pub fn seal(&mut self, plain: &[u8], raw: &mut Vec<u8>) {
        if !plain.is_empty() {
            // Unbounded buffer: writing cannot fall short.
            let _ = self.0.writer().write_all(plain);
        }
        self.flush(raw);
    }

    /// Appends what the session wants to send (handshake records, alerts).
    pub fn flush(&mut self, raw: &mut Vec<u8>) {
        while self.0.wants_write() {
            if self.0.write_tls(raw).is_err() {
                break;
            }
        }
    }

    /// Ends the session politely (close_notify), appended to `raw`.
    pub fn close(&mut self, raw: &mut Vec<u8>) {
        self.0.send_close_notify();
        self.flush(raw);
    }
}
