//! The TLS policy against real clients on a loopback listener: rustls clients for TLS 1.3 and
//! 1.2, and hand-written ClientHello records for what rustls clients cannot speak (TLS 1.1,
//! TLS 1.2 with CBC suites).

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ProtocolVersion, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::*;
use crate::server::tests::{patient, start_with, until_closed, PATIENCE, SHORT};
use crate::server::ServerLimits;

/// A self-signed certificate for `localhost` and its key.
struct TestCert {
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
}

fn test_cert() -> TestCert {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    TestCert {
        der: certified.cert.der().clone(),
        key_der: certified.signing_key.serialize_der(),
        cert_pem: certified.cert.pem(),
        key_pem: certified.signing_key.serialize_pem(),
    }
}

fn server_tls(cert: &TestCert, versions: TlsVersions) -> Tls {
    let key = PrivateKeyDer::try_from(cert.key_der.clone()).unwrap();
    Tls::new(vec![cert.der.clone()], key, versions).unwrap()
}

/// A TLS server on loopback; stops when the returned sender drops.
async fn start_tls(
    cert: &TestCert,
    versions: TlsVersions,
    limits: ServerLimits,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    start_with(limits, Some(server_tls(cert, versions))).await
}

/// A client trusting `cert` that speaks only `versions`.
fn client(cert: &TestCert, versions: &[&'static rustls::SupportedProtocolVersion]) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(cert.der.clone()).unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(provider::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// What a client got: the protocol version, the cipher suite and the whole response.
#[derive(Debug)]
struct Served {
    version: ProtocolVersion,
    suite: String,
    response: String,
}

/// Handshakes as `connector`, GETs /ping.
async fn get_ping(addr: SocketAddr, connector: &TlsConnector) -> io::Result<Served> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = tokio::time::timeout(PATIENCE, connector.connect(name, tcp))
        .await
        .expect("the handshake ends")?;
    let session = tls.get_ref().1;
    let version = session.protocol_version().unwrap();
    let suite = format!("{:?}", session.negotiated_cipher_suite().unwrap().suite());
    tls.write_all(b"GET /ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let response = until_closed(&mut tls).await;
    Ok(Served {
        version,
        suite,
        response,
    })
}

#[tokio::test]
async fn a_tls_1_3_client_is_served_and_told_to_keep_using_https() {
    let cert = test_cert();
    let (addr, _stop) = start_tls(&cert, TlsVersions::Tls13, patient()).await;

    let Served {
        version, response, ..
    } = get_ping(addr, &client(&cert, &[&rustls::version::TLS13]))
        .await
        .unwrap();

    assert_eq!(version, ProtocolVersion::TLSv1_3);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("pong"), "{response}");
    assert!(
        response.contains("strict-transport-security: max-age=31536000; includeSubDomains"),
        "{response}"
    );
}

#[tokio::test]
async fn a_tls_1_2_only_client_is_refused_by_default() {
    let cert = test_cert();
    let (addr, _stop) = start_tls(&cert, TlsVersions::Tls13, patient()).await;

    let refused = get_ping(addr, &client(&cert, &[&rustls::version::TLS12])).await;

    let err = refused.expect_err("TLS 1.2 is off unless allowed");
    assert!(
        err.to_string().contains("ProtocolVersion"),
        "refused with a protocol_version alert: {err}"
    );
}

#[tokio::test]
async fn a_tls_1_2_only_client_is_served_with_an_ecdhe_aead_suite_when_tls_1_2_is_allowed() {
    let cert = test_cert();
    let (addr, _stop) = start_tls(&cert, TlsVersions::Tls13AndTls12, patient()).await;

    let Served {
        version,
        suite,
        response,
    } = get_ping(addr, &client(&cert, &[&rustls::version::TLS12]))
        .await
        .unwrap();

    assert_eq!(version, ProtocolVersion::TLSv1_2);
    assert!(suite.starts_with("TLS_ECDHE_ECDSA_WITH_"), "{suite}");
    assert!(
        suite.contains("_GCM_") || suite.contains("CHACHA20"),
        "{suite}"
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("strict-transport-security"), "{response}");
}

#[tokio::test]
async fn a_tls_1_1_client_hello_is_answered_with_a_protocol_version_alert_even_when_tls_1_2_is_allowed(
) {
    let cert = test_cert();
    let (addr, _stop) = start_tls(&cert, TlsVersions::Tls13AndTls12, patient()).await;

    let answer = raw_hello(addr, TLS_1_1, CBC_SUITES).await;

    assert_eq!(alert(&answer), Some(PROTOCOL_VERSION), "{answer:02x?}");
}

#[tokio::test]
async fn a_tls_1_2_client_hello_offering_only_cbc_suites_is_refused_when_tls_1_2_is_allowed() {
    let cert = test_cert();
    let (addr, _stop) = start_tls(&cert, TlsVersions::Tls13AndTls12, patient()).await;

    let answer = raw_hello(addr, TLS_1_2, CBC_SUITES).await;

    assert_eq!(alert(&answer), Some(HANDSHAKE_FAILURE), "{answer:02x?}");
}

#[tokio::test]
async fn the_raw_tls_1_2_client_hello_of_these_tests_is_answered_with_a_server_hello_when_it_offers_gcm(
) {
    // The two refusals above are refusals of the version and the suites, not of a malformed
    // record: the same hello with an ECDHE-ECDSA-AES-GCM suite is taken.
    let cert = test_cert();
    let (addr, _stop) = start_tls(&cert, TlsVersions::Tls13AndTls12, patient()).await;

    let answer = raw_hello(addr, TLS_1_2, &[0xc02b]).await;

    assert_eq!(answer.first(), Some(&HANDSHAKE), "{answer:02x?}");
    assert_eq!(answer.get(5), Some(&SERVER_HELLO), "{answer:02x?}");
}

#[tokio::test]
async fn a_client_that_stalls_in_the_tls_handshake_is_closed_after_the_header_timeout() {
    let cert = test_cert();
    let limits = ServerLimits {
        header_read_timeout: SHORT,
        ..patient()
    };
    let (addr, _stop) = start_tls(&cert, TlsVersions::Tls13, limits).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();

    let hello = client_hello(TLS_1_2, &[0xc02b]);
    tcp.write_all(&hello[..hello.len() / 2]).await.unwrap();

    assert_eq!(until_closed(&mut tcp).await, "");
}

#[tokio::test]
async fn plain_http_responses_carry_no_hsts() {
    let (addr, _stop) = start_with(patient(), None).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();

    tcp.write_all(b"GET /ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();

    let response = until_closed(&mut tcp).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        !response.contains("strict-transport-security"),
        "{response}"
    );
}

#[test]
fn a_pem_certificate_and_key_from_files_make_a_tls_1_3_configuration() {
    let cert = test_cert();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, &cert.cert_pem).unwrap();
    std::fs::write(&key_path, &cert.key_pem).unwrap();

    let tls = Tls::from_pem_files(&cert_path, &key_path, TlsVersions::Tls13).unwrap();

    assert_eq!(tls.versions(), TlsVersions::Tls13);
    assert!(!format!("{tls:?}").contains("PRIVATE"));
}

#[test]
fn a_certificate_given_as_the_key_is_an_error_naming_the_key_file() {
    let cert = test_cert();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    std::fs::write(&cert_path, &cert.cert_pem).unwrap();

    let err = Tls::from_pem_files(&cert_path, &cert_path, TlsVersions::Tls13).unwrap_err();

    assert!(
        matches!(err, TlsConfigError::Read { what: "key", .. }),
        "{err:?}"
    );
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_rejected() {
    let (cert, other) = (test_cert(), test_cert());
    let key = PrivateKeyDer::try_from(other.key_der).unwrap();

    let err = Tls::new(vec![cert.der], key, TlsVersions::Tls13).unwrap_err();

    assert!(matches!(err, TlsConfigError::Rejected(_)), "{err:?}");
}

const TLS_1_1: [u8; 2] = [3, 2];
const TLS_1_2: [u8; 2] = [3, 3];
/// ECDHE-RSA/ECDSA with AES-CBC, and RSA key exchange with AES-CBC.
const CBC_SUITES: &[u16] = &[0xc013, 0xc014, 0xc009, 0xc00a, 0x002f, 0x0035];
const HANDSHAKE: u8 = 0x16;
const ALERT: u8 = 0x15;
const SERVER_HELLO: u8 = 2;
const PROTOCOL_VERSION: u8 = 70;
const HANDSHAKE_FAILURE: u8 = 40;

/// A ClientHello record as an old client sends it: `legacy_version`, these suites, no
/// supported_versions extension; P-256/X25519 groups and RSA/ECDSA signatures.
fn client_hello(legacy_version: [u8; 2], suites: &[u16]) -> Vec<u8> {
    fn extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
        out.extend(kind.to_be_bytes());
        out.extend(u16::try_from(data.len()).unwrap().to_be_bytes());
        out.extend(data);
    }
    let mut extensions = Vec::new();
    extension(&mut extensions, 0x000a, &[0, 4, 0, 0x1d, 0, 0x17]);
    extension(&mut extensions, 0x000b, &[1, 0]);
    extension(&mut extensions, 0x000d, &[0, 6, 4, 1, 4, 3, 8, 4]);
    let mut hello = legacy_version.to_vec();
    hello.extend([0x5a; 32]);
    hello.push(0);
    hello.extend(u16::try_from(suites.len() * 2).unwrap().to_be_bytes());
    suites.iter().for_each(|s| hello.extend(s.to_be_bytes()));
    hello.extend([1, 0]);
    hello.extend(u16::try_from(extensions.len()).unwrap().to_be_bytes());
    hello.extend(extensions);
    let mut handshake = vec![1];
    handshake.extend(&u32::try_from(hello.len()).unwrap().to_be_bytes()[1..]);
    handshake.extend(hello);
    let mut record = vec![HANDSHAKE, 3, 1];
    record.extend(u16::try_from(handshake.len()).unwrap().to_be_bytes());
    record.extend(handshake);
    record
}

/// Sends a hand-written ClientHello; the server's first bytes (up to 64).
async fn raw_hello(addr: SocketAddr, legacy_version: [u8; 2], suites: &[u16]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&client_hello(legacy_version, suites))
        .await
        .unwrap();
    let mut answer = vec![0; 64];
    let n = tokio::time::timeout(PATIENCE, tcp.read(&mut answer))
        .await
        .expect("the server answers")
        .unwrap();
    answer.truncate(n);
    answer
}

/// The description of a fatal alert record, if that is what `answer` starts with.
fn alert(answer: &[u8]) -> Option<u8> {
    match answer {
        [ALERT, 3, _, 0, 2, 2, description, ..] => Some(*description),
        _ => None,
    }
}
