//! TLS from the gateway to its backends (`[pools.tls]`): HTTP/1.1 and
//! HTTP/2 (ALPN h2) to backends whose certificates a test CA signed, the
//! name checked, untrusted and misnamed backends refused (and counted),
//! mutual TLS, and connect errors labelled by their cause.

use std::time::Duration;

use crate::support::fake_http::{FakeHttp, get};
use crate::support::pki::{Pki, server_config};
use crate::support::{Weir, eventually};

/// weir with an HTTP listener → one TLS pool with `tls` keys and `extra`
/// pool keys.
async fn weir_to(backend: &FakeHttp, extra: &str, tls: &str) -> Weir {
    Weir::start(
        &Weir::http(
            "round_robin",
            "",
            &format!("passive = false\n{extra}\n[pools.tls]\n{tls}\n"),
        ),
        &[backend.addr],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_and_h2_over_tls_to_backends_signed_by_a_private_ca() {
    let pki = Pki::new();
    let ca = pki.ca_pem().display().to_string();
    let both = server_config(
        &pki,
        "backend",
        &["backend.test"],
        &["h2", "http/1.1"],
        None,
    );
    let backend = FakeHttp::start_tls("tls", both).await;

    let weir = weir_to(
        &backend,
        "",
        &format!("ca_file = \"{ca}\"\nserver_name = \"backend.test\""),
    )
    .await;
    for _ in 0..3 {
        let r = get(weir.addr, "/one").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.echo().id(), "tls");
        assert_eq!(r.echo().version(), "HTTP/1.1", "ALPN offered http/1.1 only");
    }
    weir.stop().await;

    let weir = weir_to(
        &backend,
        "http_version = \"h2\"",
        &format!("ca_file = \"{ca}\"\nserver_name = \"backend.test\""),
    )
    .await;
    let r = get(weir.addr, "/two").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.echo().version(), "HTTP/2.0", "ALPN negotiated h2");
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_ip_is_the_default_name() {
    let pki = Pki::new();
    let ca = pki.ca_pem().display().to_string();
    let config = server_config(&pki, "ip", &["127.0.0.1"], &["http/1.1"], None);
    let backend = FakeHttp::start_tls("by-ip", config).await;
    let weir = weir_to(&backend, "", &format!("ca_file = \"{ca}\"")).await;
    let r = get(weir.addr, "/").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.echo().id(), "by-ip");
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misnamed_and_untrusted_backends_are_refused_and_counted() {
    let pki = Pki::new();
    let stranger = Pki::new();
    let config = server_config(&pki, "backend", &["backend.test"], &["http/1.1"], None);
    let backend = FakeHttp::start_tls("tls", config).await;
    let cases = [
        (
            "wrong name",
            format!(
                "ca_file = \"{}\"\nserver_name = \"other.test\"",
                pki.ca_pem().display()
            ),
        ),
        (
            "untrusted CA",
            format!(
                "ca_file = \"{}\"\nserver_name = \"backend.test\"",
                stranger.ca_pem().display()
            ),
        ),
    ];
    for (case, tls) in cases {
        let weir = weir_to(&backend, "", &tls).await;
        let r = get(weir.addr, "/").await;
        assert_eq!(r.status, 502, "{case}: {}", r.text());
        assert_eq!(
            backend.requests(),
            0,
            "{case}: no request reached the backend"
        );
        let errors = weir
            .backend_metric(
                "weir_backend_connect_errors_total",
                "b0",
                &[("reason", "other")],
            )
            .await;
        assert!(errors >= 1.0, "{case}: handshake failure counted: {errors}");
        weir.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_presents_the_client_certificate() {
    let pki = Pki::new();
    let clients = Pki::new();
    let config = server_config(
        &pki,
        "backend",
        &["backend.test"],
        &["http/1.1"],
        Some(&clients),
    );
    let backend = FakeHttp::start_tls("mtls", config).await;
    let base = format!(
        "ca_file = \"{}\"\nserver_name = \"backend.test\"",
        pki.ca_pem().display()
    );

    let weir = weir_to(&backend, "", &base).await;
    assert_eq!(
        get(weir.addr, "/").await.status,
        502,
        "no client certificate"
    );
    eventually(
        Duration::from_secs(5),
        "the backend refused the handshake",
        || async {
            backend
                .stats
                .tls_failures
                .load(std::sync::atomic::Ordering::SeqCst)
                >= 1
        },
    )
    .await;
    weir.stop().await;

    let (cert, key) = clients.leaf("weir-client", &["weir.test"]);
    let weir = weir_to(
        &backend,
        "",
        &format!("{base}\ncert = \"{cert}\"\nkey = \"{key}\""),
    )
    .await;
    let r = get(weir.addr, "/").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.echo().id(), "mtls");
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_errors_are_labelled_by_cause() {
    // A port nothing listens on: refused at once.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let weir = Weir::start(&Weir::http("round_robin", "", "passive = false"), &[closed]).await;
    assert_eq!(get(weir.addr, "/").await.status, 502);
    let refused = weir
        .backend_metric(
            "weir_backend_connect_errors_total",
            "b0",
            &[("reason", "refused")],
        )
        .await;
    assert!(refused >= 1.0, "refused: {refused}");
    weir.stop().await;
}
