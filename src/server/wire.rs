//! The bytes on the wire: a connection's plaintext as it is, or through
//! TLS (`--tls-cert`, `--tls-key`).
//!
//! rustls is used sans-IO: the connection loops keep doing their own
//! non-blocking reads and writes and pass the bytes through a [`Wire`]
//! (ciphertext in, plaintext out; plaintext in, ciphertext out), so
//! readiness, send queues, coalescing and timers stay exactly as for plain
//! connections.

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

/// One connection's wire: plain, or a TLS session.
#[derive(Debug)]
pub(crate) struct Wire {
    /// Boxed: a TLS session is large, and a plain connection's task
    /// should not carry its size.
    tls: Option<Box<Tls>>,
    /// TLS: plaintext on its way in or out.
    plain: Vec<u8>,
}

impl Wire {
    /// A plain wire, or a TLS one with `tls`.
    pub fn new(tls: Option<&Arc<rustls::ServerConfig>>) -> io::Result<Wire> {
        let tls = tls.map(|config| Tls::new(config).map(Box::new)).transpose()?;
        Ok(Wire { tls, plain: Vec::new() })
    }

    /// Whether this is a TLS connection.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Sends the plaintext `fill` appends to its buffer: it ends up in
    /// `out` as wire bytes (plain: `fill` appends to `out` itself).
    pub fn send<T>(&mut self, out: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>) -> T) -> T {
        match &mut self.tls {
            None => fill(out),
            Some(tls) => {
                self.plain.clear();
                let filled = fill(&mut self.plain);
                tls.seal(&self.plain, out);
                self.plain = Vec::new();
                filled
            }
        }
    }

    /// Wire bytes read: `take` gets their plaintext (`None`: the peer ended
    /// the TLS session); what TLS has to answer (handshake) is appended to
    /// `out`. An error is a TLS failure (the reason).
    pub fn open<T>(
        &mut self,
        raw: &[u8],
        out: &mut Vec<u8>,
        take: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, String> {
        let Some(tls) = &mut self.tls else { return Ok(Some(take(raw))) };
        let opened = tls.open(raw, &mut self.plain);
        tls.flush(out);
        let taken = match opened? {
            Opened::Data => Some(take(&self.plain)),
            Opened::Closed => None,
        };
        self.plain.clear();
        Ok(taken)
    }

    /// Appends `last` and, for TLS, the end of the session.
    pub fn last_words(&mut self, last: &[u8], out: &mut Vec<u8>) {
        match &mut self.tls {
            None => out.extend_from_slice(last),
            Some(tls) => {
                tls.seal(last, out);
                tls.close(out);
            }
        }
    }
}

/// One connection's TLS session.
#[derive(Debug)]
struct Tls(rustls::ServerConnection);

/// What decrypting some bytes found.
#[derive(Debug, PartialEq, Eq)]
enum Opened {
    /// Plaintext (possibly none yet) was appended.
    Data,
    /// The peer closed the TLS session (close_notify).
    Closed,
}

impl Tls {
    fn new(config: &Arc<rustls::ServerConfig>) -> io::Result<Tls> {
        let mut conn = rustls::ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
        // The send queue in front of it is what is bounded.
        conn.set_buffer_limit(None);
        Ok(Tls(conn))
    }

    /// Ciphertext read from the socket; the plaintext it carries is
    /// appended to `plain`. An error is a TLS failure (the reason).
    fn open(&mut self, mut raw: &[u8], plain: &mut Vec<u8>) -> Result<Opened, String> {
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
    fn seal(&mut self, plain: &[u8], raw: &mut Vec<u8>) {
        if !plain.is_empty() {
            // Unbounded buffer: writing cannot fall short.
            let _ = self.0.writer().write_all(plain);
        }
        self.flush(raw);
    }

    /// Appends what the session wants to send (handshake records, alerts).
    fn flush(&mut self, raw: &mut Vec<u8>) {
        while self.0.wants_write() {
            if self.0.write_tls(raw).is_err() {
                break;
            }
        }
    }

    /// Ends the session politely (close_notify), appended to `raw`.
    fn close(&mut self, raw: &mut Vec<u8>) {
        self.0.send_close_notify();
        self.flush(raw);
    }
}
