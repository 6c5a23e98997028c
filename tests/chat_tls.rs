//! `trident chat serve --tls-cert --tls-key`: IRC over TLS on every engine,
//! with a certificate the test makes and a rustls client that trusts only it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};

use crate::chat_harness::{ChatServer, Irc, TIMEOUT};
use crate::engine_tests;

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A self-signed certificate for 127.0.0.1 in `dir`: (cert.pem, key.pem, DER).
fn certificate(dir: &std::path::Path) -> (String, String, CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("certificate");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let der = certified.cert.der().clone();
    (cert.to_string_lossy().into_owned(), key.to_string_lossy().into_owned(), der)
}

/// A registered IRC client over TLS.
struct TlsIrc {
    reader: BufReader<TlsStream>,
}

impl TlsIrc {
    fn register(addr: SocketAddr, trusted: &CertificateDer<'static>, nick: &str) -> TlsIrc {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(trusted.clone()).expect("trust our certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("127.0.0.1").expect("name");
        let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        let mut irc = TlsIrc { reader: BufReader::new(rustls::StreamOwned::new(conn, tcp)) };
        irc.send(&format!("NICK {nick}"));
        irc.send(&format!("USER {nick} 0 * :{nick}"));
        irc.expect(" 422 ");
        irc
    }

    fn send(&mut self, line: &str) {
        let stream = self.reader.get_mut();
        stream.write_all(format!("{line}\r\n").as_bytes()).expect("send");
        stream.flush().expect("flush");
    }

    fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
            // A peer that ends the TCP connection without close_notify.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => None,
            Err(e) => panic!("no line: {e}"),
        }
    }

    fn expect(&mut self, pattern: &str) -> String {
        loop {
            let line = self.line().unwrap_or_else(|| panic!("closed before {pattern:?}"));
            if line.contains(pattern) {
                return line;
            }
        }
    }
}

engine_tests! {
    fn irc_over_tls_works_and_plaintext_on_the_tls_port_is_refused(engine) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key, der) = certificate(dir.path());
        let mut server = ChatServer::start(engine, &["--tls-cert", &cert, "--tls-key", &key]);
        let mut alice = TlsIrc::register(server.addr, &der, "alice");
        let mut bob = TlsIrc::register(server.addr, &der, "bob");
        alice.send("JOIN #secure");
        alice.expect(" 366 ");
        bob.send("JOIN #secure");
        bob.expect(" 366 ");
        alice.expect(":bob!bob@127.0.0.1 JOIN #secure");

        // A plaintext client on the TLS port gets no IRC and is dropped.
        let mut plain = Irc::connect(server.addr);
        plain.send("NICK mallory");
        plain.send("USER mallory 0 * :m");
        let mut junk = Vec::new();
        let _ = plain.stream.read_to_end(&mut junk);
        assert!(!String::from_utf8_lossy(&junk).contains(" 001 "), "plaintext registered on the TLS port");

        bob.send("PRIVMSG #secure :over TLS");
        assert_eq!(alice.expect("over TLS"), ":bob!bob@127.0.0.1 PRIVMSG #secure :over TLS");
        let (status, _) = server.terminate();
        assert!(status.success());
        assert_eq!(alice.expect("ERROR"), "ERROR :Server shutting down");
    }
}

engine_tests! {
    fn a_missing_or_bad_certificate_or_key_is_bad_input_before_serving(engine) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key, _) = certificate(dir.path());
        let other = tempfile::tempdir().expect("tempdir");
        let (_, other_key, _) = certificate(other.path());
        let missing = dir.path().join("nope.pem").to_string_lossy().into_owned();
        let (cert, key) = (cert.as_str(), key.as_str());
        for (tls_cert, tls_key, says) in [
            (missing.as_str(), key, "cannot read the certificate"),
            (cert, missing.as_str(), "cannot read a PEM private key"),
            (key, key, "no certificate in it"),
            (cert, cert, "cannot read a PEM private key"),
            (cert, other_key.as_str(), "do not go together"),
        ] {
            let o = crate::util::run(&[
                "chat", "serve", "-e", engine, "--listen", "127.0.0.1:0", "--tls-cert", tls_cert, "--tls-key", tls_key,
            ]);
            let err = crate::util::stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{tls_cert} {tls_key}: {err}");
            assert!(err.starts_with("trident: ") && err.contains(says), "{says}: {err}");
            assert!(!err.contains("Serving"), "nothing was served: {err}");
        }
    }
}
