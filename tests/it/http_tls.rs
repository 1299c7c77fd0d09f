//! TLS on https listeners, end to end: the certificate chosen by SNI, ALPN
//! h2, old protocol versions refused, slow handshakes cut off, real clients
//! (curl, openssl s_client), and certificate reload without dropping open
//! connections. Every certificate is made by the test (rcgen): a CA and
//! leaves for `a.test` and `b.test`; clients trust only that CA.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use hyper::Version;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::support::fake_http::{ClientBody, FakeHttp, Reply, read_reply, req_with};
use crate::support::peers::{require, run_bounded};
use crate::support::pki::Pki;
use crate::support::{Weir, eventually};

/// Bound on any one handshake or exchange.
const BOUND: Duration = Duration::from_secs(10);

/// An https listener → one pool of `backends`, with `extra` listener keys
/// and one `[[listeners.certificates]]` per (cert, key).
fn https_config(certs: &[(String, String)], extra: &str) -> String {
    let mut tables = String::new();
    for (cert, key) in certs {
        tables.push_str(&format!(
            "\n[[listeners.certificates]]\ncert = \"{cert}\"\nkey = \"{key}\"\n"
        ));
    }
    Weir::simple(
        "round_robin",
        &format!("protocol = \"https\"\naccess_log = \"off\"\n{extra}\n{tables}"),
        "",
    )
}

/// A client that trusts only the test CA, offers `alpn`, never resumes a
/// session (each connection sees the certificate served now) and sends SNI
/// only when `sni`.
fn connector(pki: &Pki, alpn: &[&str], sni: bool) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    config.resumption = rustls::client::Resumption::disabled();
    config.enable_sni = sni;
    TlsConnector::from(Arc::new(config))
}

/// Connects and does the TLS handshake, verifying the server as `name`.
async fn connect(
    addr: SocketAddr,
    tls: &TlsConnector,
    name: &str,
) -> Result<TlsStream<TcpStream>, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from(name.to_owned()).unwrap();
    tokio::time::timeout(BOUND, tls.connect(name, tcp))
        .await
        .expect("the handshake ends in time")
        .map_err(|e| e.to_string())
}

/// The DNS names in the server certificate's subjectAltName.
fn peer_names(s: &TlsStream<TcpStream>) -> Vec<String> {
    let certs: &[CertificateDer<'_>] = s.get_ref().1.peer_certificates().expect("a certificate");
    let leaf = webpki::EndEntityCert::try_from(&certs[0]).unwrap();
    leaf.valid_dns_names().map(str::to_owned).collect()
}

/// The negotiated ALPN protocol, as text.
fn alpn(s: &TlsStream<TcpStream>) -> Option<String> {
    s.get_ref()
        .1
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned())
}

/// An HTTP/1.1 client connection over `stream` (kept open for more requests).
async fn h1(stream: TlsStream<TcpStream>) -> http1::SendRequest<ClientBody> {
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    sender
}

/// GET `path` with `Host: host` on an HTTP/1.1 connection.
async fn get_h1(sender: &mut http1::SendRequest<ClientBody>, host: &str, path: &str) -> Reply {
    let exchange = async {
        let resp = sender
            .send_request(req_with("GET", path, &[("host", host)], ""))
            .await
            .map_err(|e| e.to_string())?;
        read_reply(resp).await
    };
    tokio::time::timeout(BOUND, exchange)
        .await
        .expect("an answer in time")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_alpn_and_forwarded_proto() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test"]);
    let b = pki.leaf("b", &["b.test", "*.b.test"]);
    let backend = FakeHttp::start("b0").await;
    let weir = Weir::start(&https_config(&[a, b], ""), &[backend.addr]).await;

    // SNI picks the certificate; a wildcard name gets its certificate too.
    for (sni, want) in [
        ("a.test", "a.test"),
        ("b.test", "b.test"),
        ("x.b.test", "b.test"),
    ] {
        let s = connect(weir.addr, &connector(&pki, &["http/1.1"], true), sni)
            .await
            .unwrap_or_else(|e| panic!("handshake for {sni}: {e}"));
        let names = peer_names(&s);
        assert!(names.contains(&want.to_owned()), "SNI {sni}: got {names:?}");
        let version = s.get_ref().1.protocol_version();
        assert_eq!(version, Some(rustls::ProtocolVersion::TLSv1_3), "{sni}");
    }

    // No SNI: the first certificate, the default.
    let s = connect(weir.addr, &connector(&pki, &[], false), "a.test")
        .await
        .unwrap();
    assert_eq!(peer_names(&s), ["a.test"]);
    assert_eq!(alpn(&s), None);

    // HTTP/1.1 over TLS (ALPN http/1.1): the backend sees X-Forwarded-Proto https.
    let s = connect(weir.addr, &connector(&pki, &["http/1.1"], true), "b.test")
        .await
        .unwrap();
    assert_eq!(alpn(&s).as_deref(), Some("http/1.1"));
    let mut sender = h1(s).await;
    let r = get_h1(&mut sender, "b.test", "/tls/h1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.version, Version::HTTP_11);
    let echo = r.echo();
    assert_eq!(echo.path(), "/tls/h1");
    assert_eq!(echo.header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(echo.header("x-forwarded-host").as_deref(), Some("b.test"));

    // ALPN offering h2 first negotiates h2, and the request goes over HTTP/2.
    let s = connect(
        weir.addr,
        &connector(&pki, &["h2", "http/1.1"], true),
        "a.test",
    )
    .await
    .unwrap();
    assert_eq!(alpn(&s).as_deref(), Some("h2"));
    let (mut sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = req_with("GET", "https://a.test/tls/h2", &[], "");
    let resp = tokio::time::timeout(BOUND, sender.send_request(req))
        .await
        .expect("an answer in time")
        .unwrap();
    let r = read_reply(resp).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.version, Version::HTTP_2);
    assert_eq!(
        r.echo().header("x-forwarded-proto").as_deref(),
        Some("https")
    );
    assert_eq!(r.echo().path(), "/tls/h2");

    // A client that does not trust the certificate fails its own check;
    // weir counts the failed handshake and goes on serving.
    let other = Pki::new();
    let e = connect(weir.addr, &connector(&other, &[], true), "a.test")
        .await
        .unwrap_err();
    assert!(e.contains("certificate"), "{e}");
    eventually(BOUND, "the failed handshake is counted", || async {
        weir.listener_metric("weir_tls_handshake_errors_total", &[])
            .await
            >= 1.0
    })
    .await;
    assert_eq!(backend.requests(), 2);
    weir.stop().await;
}

/// A TLS 1.1 ClientHello (no supported_versions extension): what an old
/// client sends. It carries signature_algorithms, without which rustls
/// refuses any hello (handshake_failure) before looking at the version.
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02]; // client_version: TLS 1.1
    body.extend([0x5a; 32]); // random
    body.push(0); // no session id
    body.extend([0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // two CBC suites of that era
    body.extend([0x01, 0x00]); // compression: null only
    // extensions: signature_algorithms = [ecdsa_secp256r1_sha256]
    body.extend([0x00, 0x08, 0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x03]);
    let mut handshake = vec![0x01, 0x00, 0x00, body.len() as u8]; // ClientHello
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, handshake.len() as u8];
    record.extend(handshake);
    record
}

/// Runs `openssl s_client` against `addr` with `args`; (success, output).
async fn s_client(addr: SocketAddr, args: &[&str]) -> (bool, String) {
    let exe = require("openssl", "openssl", &[]);
    let mut cmd = Command::new(exe);
    cmd.args([
        "s_client",
        "-connect",
        &addr.to_string(),
        "-servername",
        "a.test",
    ])
    .args(args)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || run_bounded(cmd, Some(""), BOUND))
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_versions_and_slow_handshakes_are_refused() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test"]);
    let backend = FakeHttp::start("b0").await;
    let weir = Weir::start(
        &https_config(&[a], "header_read_timeout = \"1s\""),
        &[backend.addr],
    )
    .await;

    // A TLS 1.1 ClientHello gets a protocol_version alert (70), then EOF.
    let mut s = TcpStream::connect(weir.addr).await.unwrap();
    s.write_all(&tls11_client_hello()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(BOUND, s.read_to_end(&mut reply))
        .await
        .expect("weir answers and closes in time")
        .unwrap();
    assert_eq!(reply.first(), Some(&0x15), "an alert record: {reply:02x?}");
    assert_eq!(
        reply.get(5..7),
        Some(&[0x02, 70][..]),
        "fatal protocol_version: {reply:02x?}"
    );

    // The same with a real TLS 1.1 client (OpenSSL offers it at security
    // level 0). Its hello has no signature_algorithms, so rustls refuses it
    // with handshake_failure before it gets to the version: either way the
    // refusal is an alert from weir, not the client giving up by itself.
    // TLS 1.2 from the same client works, trusting the test CA.
    let ca = pki.ca_pem().display().to_string();
    let (ok, out) = s_client(weir.addr, &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]).await;
    assert!(!ok, "TLS 1.1 must fail:\n{out}");
    assert!(
        out.contains("alert protocol version") || out.contains("alert handshake failure"),
        "refused by weir with an alert:\n{out}"
    );
    assert!(
        !out.contains("no protocols available"),
        "the client did try:\n{out}"
    );
    let (ok, out) = s_client(
        weir.addr,
        &["-tls1_2", "-CAfile", &ca, "-verify_return_error"],
    )
    .await;
    assert!(ok, "TLS 1.2 works:\n{out}");
    assert!(
        out.contains("TLSv1.2") && out.contains("Verify return code: 0 (ok)"),
        "{out}"
    );

    // A client that connects and never says hello is cut off at the
    // header read timeout.
    let mut idle = TcpStream::connect(weir.addr).await.unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0))), "closed after 1s: {closed:?}");

    eventually(BOUND, "three failed handshakes counted", || async {
        weir.listener_metric("weir_tls_handshake_errors_total", &[])
            .await
            >= 3.0
    })
    .await;
    assert_eq!(backend.requests(), 0);
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls13_only_refuses_tls12() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test"]);
    let backend = FakeHttp::start("b0").await;
    let weir = Weir::start(
        &https_config(&[a], "tls_min_version = \"1.3\""),
        &[backend.addr],
    )
    .await;
    let tls12_only = {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    };
    let e = connect(weir.addr, &tls12_only, "a.test").await.unwrap_err();
    assert!(e.to_lowercase().contains("protocolversion"), "{e}");
    let s = connect(weir.addr, &connector(&pki, &[], true), "a.test")
        .await
        .unwrap();
    assert_eq!(
        s.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    weir.stop().await;
}

/// Runs curl with `args` then the URL; returns (status, http version, body).
async fn curl(args: Vec<String>, url: String) -> (u16, String, String) {
    let exe = require("curl", "curl", &[]);
    let mut cmd = Command::new(exe);
    cmd.args([
        "-sS",
        "--max-time",
        "10",
        "-w",
        "\n%{http_code} %{http_version}",
    ])
    .args(&args)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || run_bounded(cmd, None, BOUND))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, last) = text.rsplit_once('\n').unwrap();
    let (code, version) = last.split_once(' ').unwrap();
    (code.parse().unwrap(), version.to_owned(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_over_tls_with_the_test_ca() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test"]);
    let b = pki.leaf("b", &["b.test"]);
    let backend = FakeHttp::start("b0").await;
    let weir = Weir::start(&https_config(&[a, b], ""), &[backend.addr]).await;
    let port = weir.addr.port();
    for (host, flag, want) in [
        ("a.test", "--http1.1", "1.1"),
        ("a.test", "--http2", "2"),
        ("b.test", "--http2", "2"),
    ] {
        let args = vec![
            "--cacert".to_owned(),
            pki.ca_pem().display().to_string(),
            "--resolve".to_owned(),
            format!("{host}:{port}:127.0.0.1"),
            flag.to_owned(),
        ];
        let (code, version, body) = curl(args, format!("https://{host}:{port}/curl/tls")).await;
        assert_eq!(code, 200, "{host} {flag}: {body}");
        assert_eq!(version, want, "{host} {flag}");
        let e: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(e["path"], "/curl/tls");
        let headers = e["headers"].as_array().unwrap();
        assert!(
            headers
                .iter()
                .any(|h| h[0] == "x-forwarded-proto" && h[1] == "https"),
            "{e}"
        );
    }
    assert_eq!(backend.requests(), 3);
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_without_dropping_connections() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test"]);
    let b = pki.leaf("b", &["b.test"]);
    let backend = FakeHttp::start("b0").await;
    let weir = Weir::start(&https_config(&[a, b], ""), &[backend.addr]).await;
    let tls = connector(&pki, &["http/1.1"], true);

    // A connection opened before the reload.
    let before = connect(weir.addr, &tls, "a.test").await.unwrap();
    assert_eq!(peer_names(&before), ["a.test"]);
    let mut old = h1(before).await;
    assert_eq!(get_h1(&mut old, "a.test", "/before").await.status, 200);

    // New files for a.test (a new key too), then the reload SIGHUP does.
    pki.leaf("a", &["a.test", "new.a.test"]);
    assert_eq!(weir.tls.len(), 1);
    assert_eq!(weir.tls.reload(), Ok(1));

    // New handshakes get the new certificate; b.test is unchanged.
    let after = connect(weir.addr, &tls, "a.test").await.unwrap();
    assert_eq!(peer_names(&after), ["a.test", "new.a.test"]);
    let mut new = h1(after).await;
    assert_eq!(get_h1(&mut new, "a.test", "/after").await.status, 200);
    let s = connect(weir.addr, &tls, "b.test").await.unwrap();
    assert_eq!(peer_names(&s), ["b.test"]);

    // The connection from before the reload goes on.
    let r = get_h1(&mut old, "a.test", "/before-again").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.echo().path(), "/before-again");

    // A reload that fails (a key that is not the certificate's) keeps the
    // previous certificates: new handshakes still work and get them.
    let (cert, _) = pki.leaf("stray", &["a.test"]);
    std::fs::copy(&cert, pki.dir.join("a.pem")).unwrap();
    let failures = weir.tls.reload().unwrap_err();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains("certificates[0].key: the private key in"),
        "{failures:?}"
    );
    let s = connect(weir.addr, &tls, "a.test").await.unwrap();
    assert_eq!(peer_names(&s), ["a.test", "new.a.test"]);
    let mut c = h1(s).await;
    assert_eq!(get_h1(&mut c, "a.test", "/after-failure").await.status, 200);

    assert_eq!(
        weir.listener_metric("weir_tls_reloads_total", &[("result", "ok")])
            .await,
        1.0
    );
    assert_eq!(
        weir.listener_metric("weir_tls_reloads_total", &[("result", "error")])
            .await,
        1.0
    );
    assert_eq!(backend.requests(), 4);
    weir.stop().await;
}

/// A `weir run` child process, stopped (SIGTERM, then SIGKILL) on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        crate::support::peers::stop_child(&mut self.0, "TERM", BOUND);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_weir_binary_certificates() {
    use crate::support::peers::free_port;

    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test"]);
    let backend = FakeHttp::start("b0").await;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let text = format!(
        "[admin]\nenabled = false\n\n[[listeners]]\nname = \"tls\"\nbind = \"{addr}\"\nprotocol = \"https\"\npool = \"web\"\naccess_log = \"off\"\n\n\
         [[listeners.certificates]]\ncert = \"{}\"\nkey = \"{}\"\n\n\
         [[pools]]\nname = \"web\"\nbackends = [{{ address = \"{}\" }}]\n",
        a.0, a.1, backend.addr
    );
    let config = pki.dir.join("weir.toml");
    std::fs::write(&config, text).unwrap();
    let log = pki.dir.join("weir.log");
    let mut child = Child(
        Command::new(crate::support::weir_bin())
            .args(["run", "-c"])
            .arg(&config)
            .env_remove("WEIR_CONFIG")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn weir run"),
    );
    let tls = connector(&pki, &["http/1.1"], true);
    eventually(BOUND, "weir serves TLS", || async {
        TcpStream::connect(addr).await.is_ok()
    })
    .await;
    let before = connect(addr, &tls, "a.test").await.unwrap();
    assert_eq!(peer_names(&before), ["a.test"]);
    let mut old = h1(before).await;
    assert_eq!(get_h1(&mut old, "a.test", "/before").await.status, 200);

    pki.leaf("a", &["a.test", "renewed.a.test"]);
    let status = Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    eventually(
        BOUND,
        "a new handshake gets the renewed certificate",
        || async {
            match connect(addr, &tls, "a.test").await {
                Ok(s) => peer_names(&s).contains(&"renewed.a.test".to_owned()),
                Err(_) => false,
            }
        },
    )
    .await;
    // Still running, and the connection from before still serves.
    assert!(
        matches!(child.0.try_wait(), Ok(None)),
        "SIGHUP must not stop weir"
    );
    assert_eq!(
        get_h1(&mut old, "a.test", "/before-again").await.status,
        200
    );
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(log.contains("tls certificates reloaded"), "{log}");
}
