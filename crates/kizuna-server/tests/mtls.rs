//! The server's TLS configuration (`kizuna_server::tls`) in real handshakes:
//! tokio-rustls on both sides, a development CA from `kizuna-ca`, a client
//! certificate issued from a CSR.
//!
//! SECURITY-NOTES case 6: an expired CRL fails every certificate handshake
//! closed, and says so loudly. Also, at this level: CRL reloads act on the
//! next handshake (case 4) and the server never resumes a session (case 5).

use kizuna_ca::{CertificateAuthority, ClientSubject, RevocationReason, RevokedEntry};
use kizuna_server::tls::{ClientTrust, ReloadableVerifier, server_config};
use rcgen::{CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair, SerialNumber};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{CertificateError, HandshakeKind, ServerConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const FACILITY: i64 = 7;
const CRL_SECS: u64 = 3600;

/// A development CA, the server's certificate, and one client certificate.
struct Pki {
    _dir: tempfile::TempDir,
    ca: CertificateAuthority,
    server_chain: String,
    server_key: String,
    client_chain: String,
    client_key: String,
    client_serial: String,
}

fn pki() -> Pki {
    init_logging();
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca, created) = kizuna_ca::load_or_init_dev(dir.path().join("ca")).expect("dev CA");
    assert!(created);
    let server = ca
        .issue_server_certificate(&["localhost".into()], &[], 30)
        .expect("server certificate");
    let key = KeyPair::generate().expect("key");
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .expect("params")
        .serialize_request(&key)
        .expect("CSR")
        .pem()
        .expect("PEM");
    let subject = ClientSubject {
        user_id: 42,
        facility_id: FACILITY,
        device_label: "phone".into(),
        service_host: "localhost".into(),
    };
    let client = ca
        .issue_client_from_csr(FACILITY, &subject, &csr, Duration::from_secs(86_400))
        .expect("client certificate");
    Pki {
        _dir: dir,
        server_chain: server.chain_pem.clone(),
        server_key: server.key_pem.to_string(),
        client_chain: client.chain_pem,
        client_key: key.serialize_pem(),
        client_serial: client.serial_hex,
        ca,
    }
}

impl Pki {
    /// Root, issuing and facility CRLs as the service builds them.
    fn trust(&self, facility_crl: Vec<u8>, issuing_crl: Vec<u8>) -> ClientTrust {
        ClientTrust {
            root_der: self.ca.root_certificate().der().as_ref().to_vec(),
            crls_der: vec![
                self.ca.root_crl().der().as_ref().to_vec(),
                issuing_crl,
                facility_crl,
            ],
        }
    }

    fn facility_crl(&self, revoked: &[RevokedEntry], number: u64) -> Vec<u8> {
        self.ca
            .crl_for_facility(FACILITY, revoked, number, CRL_SECS)
            .expect("facility CRL")
            .der()
            .as_ref()
            .to_vec()
    }

    fn issuing_crl(&self) -> Vec<u8> {
        self.ca
            .issuing_crl(&[], 1, CRL_SECS)
            .expect("issuing CRL")
            .der()
            .as_ref()
            .to_vec()
    }

    fn fresh(&self) -> ClientTrust {
        self.trust(self.facility_crl(&[], 1), self.issuing_crl())
    }

    /// A CRL signed by the CA in `cert_file` (key next to it) whose
    /// nextUpdate passed a day ago. kizuna-ca only signs CRLs valid from
    /// now, so rcgen signs this one with the same key.
    fn expired_crl(&self, cert_file: &std::path::Path, key_file: &std::path::Path) -> Vec<u8> {
        let cert = std::fs::read_to_string(cert_file).expect("CA certificate");
        let key = std::fs::read_to_string(key_file).expect("CA key (dev keys are unencrypted)");
        let issuer =
            Issuer::from_ca_cert_pem(&cert, KeyPair::from_pem(&key).expect("key")).expect("issuer");
        let now = time::OffsetDateTime::now_utc();
        CertificateRevocationListParams {
            this_update: now - time::Duration::days(2),
            next_update: now - time::Duration::days(1),
            crl_number: SerialNumber::from(99u64),
            issuing_distribution_point: None,
            revoked_certs: Vec::new(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&issuer)
        .expect("sign CRL")
        .der()
        .as_ref()
        .to_vec()
    }

    fn expired_facility_crl(&self) -> Vec<u8> {
        let dir = self.ca.directory();
        self.expired_crl(
            &dir.facility_cert_path(FACILITY),
            &dir.facility_key_path(FACILITY),
        )
    }

    fn expired_issuing_crl(&self) -> Vec<u8> {
        let dir = self.ca.directory();
        self.expired_crl(&dir.issuing_cert_path(), &dir.issuing_key_path())
    }

    fn server(&self, verifier: &Arc<ReloadableVerifier>) -> Arc<ServerConfig> {
        server_config(
            &self.server_chain,
            &self.server_key,
            Some(Arc::clone(verifier)),
        )
        .expect("server config")
    }

    fn client(
        &self,
        with_cert: bool,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.ca.root_certificate().der().clone())
            .expect("root");
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[version])
        .expect("versions")
        .with_root_certificates(roots);
        Arc::new(if with_cert {
            builder
                .with_client_auth_cert(
                    CertificateDer::pem_slice_iter(self.client_chain.as_bytes())
                        .collect::<Result<Vec<_>, _>>()
                        .expect("chain"),
                    PrivateKeyDer::from_pem_slice(self.client_key.as_bytes()).expect("key"),
                )
                .expect("client auth")
        } else {
            builder.with_no_client_auth()
        })
    }
}

/// What each side saw of one connection.
#[derive(Debug)]
struct Outcome {
    /// The client read the server's greeting (the handshake passed), or the error.
    client: Result<HandshakeKind, String>,
    /// The server's accept: Ok, or the rustls error.
    server: Result<(), rustls::Error>,
}

/// One connection: the server greets after a successful accept; the client
/// writes nothing and reads (so a refusal arrives as the alert, never as a
/// reset caused by unread data).
async fn connect(server: Arc<ServerConfig>, client: Arc<rustls::ClientConfig>) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accept = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        match tokio_rustls::TlsAcceptor::from(server).accept(tcp).await {
            Ok(mut tls) => {
                tls.write_all(b"hello\n").await.expect("greet");
                tls.flush().await.expect("flush");
                // Keep the connection until the client has read.
                let mut sink = [0u8; 1];
                let _ = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut sink)).await;
                Ok(())
            }
            Err(e) => Err(e
                .get_ref()
                .and_then(|i| i.downcast_ref::<rustls::Error>())
                .cloned()
                .unwrap_or_else(|| panic!("not a TLS error: {e}"))),
        }
    });
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let client = async {
        let mut tls = tokio_rustls::TlsConnector::from(client)
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await
            .map_err(|e| e.to_string())?;
        let mut greeting = [0u8; 6];
        tokio::time::timeout(Duration::from_secs(10), tls.read_exact(&mut greeting))
            .await
            .map_err(|_| "no greeting in 10 s".to_owned())?
            .map_err(|e| e.to_string())?;
        assert_eq!(&greeting, b"hello\n");
        let kind = tls.get_ref().1.handshake_kind().expect("handshake done");
        drop(tls);
        Ok(kind)
    }
    .await;
    Outcome {
        client,
        server: accept.await.expect("server task"),
    }
}

fn is_expired_crl(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            CertificateError::ExpiredRevocationList
                | CertificateError::ExpiredRevocationListContext { .. }
        )
    )
}

/// Log output, kept per thread. One global subscriber for the whole test
/// binary (installed before any event, so no callsite's interest is cached
/// as "never"); the tests run on current-thread runtimes, so the server
/// task's events land in the test's own thread's log.
static LOGS: OnceLock<Mutex<HashMap<ThreadId, Vec<u8>>>> = OnceLock::new();

struct ThreadLog;

impl std::io::Write for ThreadLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.get_or_init(Default::default)
            .lock()
            .expect("logs")
            .entry(std::thread::current().id())
            .or_default()
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .with_writer(|| ThreadLog)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
    });
}

/// This thread's log so far, which is then cleared.
fn take_thread_log() -> String {
    let bytes = LOGS
        .get_or_init(Default::default)
        .lock()
        .expect("logs")
        .remove(&std::thread::current().id())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn an_expired_crl_fails_certificate_handshakes_closed_and_logs_an_error() {
    let pki = pki();
    let tls13 = &rustls::version::TLS13;
    // Control: with fresh CRLs the certificate is accepted.
    let fresh = ReloadableVerifier::new(&pki.fresh()).expect("verifier");
    let ok = connect(pki.server(&fresh), pki.client(true, tls13)).await;
    assert!(ok.client.is_ok() && ok.server.is_ok(), "{ok:?}");

    for (which, trust) in [
        (
            "facility CA's CRL",
            pki.trust(pki.expired_facility_crl(), pki.issuing_crl()),
        ),
        (
            "issuing CA's CRL",
            pki.trust(pki.facility_crl(&[], 1), pki.expired_issuing_crl()),
        ),
    ] {
        take_thread_log();
        // The verifier builds (a CRL is not checked until it is used)…
        let verifier = ReloadableVerifier::new(&trust).expect("verifier");
        let server = pki.server(&verifier);
        // …and every certificate handshake then fails, in TLS 1.3 and 1.2.
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let out = connect(server.clone(), pki.client(true, version)).await;
            let client = out.client.expect_err(which);
            assert!(
                client.contains("received fatal alert: UnknownCA"),
                "{which}, {version:?}: {client}"
            );
            let server_err = out.server.expect_err(which);
            assert!(is_expired_crl(&server_err), "{which}: {server_err:?}");
        }
        // Loudly: an error-level event that names the expired CRL.
        let log = take_thread_log();
        let line = log
            .lines()
            .find(|l| l.contains("client certificate refused"))
            .unwrap_or_else(|| panic!("{which}: nothing logged: {log}"));
        assert!(line.contains("ERROR"), "{which}: {line}");
        assert!(line.to_lowercase().contains("expired"), "{which}: {line}");

        // A connection without a certificate is not refused in the handshake
        // (facilities may allow password-only login; the application decides).
        let out = connect(server.clone(), pki.client(false, tls13)).await;
        assert!(out.client.is_ok() && out.server.is_ok(), "{out:?}");
    }
}

#[tokio::test]
async fn crls_reloaded_while_running_act_on_the_next_handshake() {
    let pki = pki();
    let verifier = ReloadableVerifier::new(&pki.fresh()).expect("verifier");
    // One ServerConfig for the whole test, as in the running server.
    let server = pki.server(&verifier);
    let client = pki.client(true, &rustls::version::TLS13);
    let out = connect(server.clone(), client.clone()).await;
    assert!(out.client.is_ok(), "{out:?}");

    // The client's certificate revoked: the next handshake is refused.
    let revoked = RevokedEntry {
        serial_hex: pki.client_serial.clone(),
        revoked_at_unix: 1_700_000_000,
        reason: RevocationReason::KeyCompromise,
    };
    verifier
        .reload(&pki.trust(pki.facility_crl(&[revoked], 2), pki.issuing_crl()))
        .expect("reload");
    let out = connect(server.clone(), client.clone()).await;
    let err = out.client.expect_err("revoked");
    assert!(
        err.contains("received fatal alert: CertificateRevoked"),
        "{err}"
    );
    assert!(
        matches!(
            out.server,
            Err(rustls::Error::InvalidCertificate(CertificateError::Revoked))
        ),
        "{:?}",
        out.server
    );

    // CRLs that expire while the server runs: closed as well.
    verifier
        .reload(&pki.trust(pki.expired_facility_crl(), pki.issuing_crl()))
        .expect("reload");
    let out = connect(server.clone(), client.clone()).await;
    assert!(
        out.server.as_ref().is_err_and(is_expired_crl),
        "{:?}",
        out.server
    );

    // A CRL that does not parse is refused by reload; the previous trust stays.
    assert!(
        verifier
            .reload(&ClientTrust {
                root_der: pki.ca.root_certificate().der().as_ref().to_vec(),
                crls_der: vec![b"not a CRL".to_vec()],
            })
            .is_err()
    );
    let out = connect(server, client).await;
    assert!(
        out.server.as_ref().is_err_and(is_expired_crl),
        "{:?}",
        out.server
    );
}

#[tokio::test]
async fn the_server_never_resumes_a_session() {
    let pki = pki();
    let verifier = ReloadableVerifier::new(&pki.fresh()).expect("verifier");
    let server = pki.server(&verifier);
    assert!(!server.session_storage.can_cache(), "no session cache");
    assert_eq!(server.send_tls13_tickets, 0, "no TLS 1.3 tickets");
    assert!(!server.ticketer.enabled(), "no TLS 1.2 tickets");
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        // One client configuration, so one client session cache.
        let client = pki.client(true, version);
        for attempt in 0..3 {
            let out = connect(server.clone(), client.clone()).await;
            assert_eq!(
                out.client.as_ref().ok(),
                Some(&HandshakeKind::Full),
                "{version:?}, connection {attempt}: {out:?}"
            );
        }
    }
}
