//! What a backend learns about the client: `X-Forwarded-*` (always),
//! RFC 7239 `Forwarded` and `Via` (when configured), and the request id
//! sent up and echoed back.

use crate::support::Weir;
use crate::support::fake_http::{FakeHttp, get, req_with, send};

pub fn is_request_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_and_request_ids() {
    let b = FakeHttp::start("b0").await;
    let weir = Weir::start(&Weir::http("round_robin", "", ""), &[b.addr]).await;

    let r = send(
        weir.addr,
        req_with(
            "GET",
            "/f",
            &[
                ("host", "App.Test:8080"),
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "evil.test"),
            ],
            "",
        ),
    )
    .await;
    let e = r.echo();
    assert_eq!(e.header_all("x-forwarded-for"), ["203.0.113.7, 127.0.0.1"]);
    assert_eq!(
        e.header_all("x-forwarded-proto"),
        ["http"],
        "a client cannot claim https"
    );
    assert_eq!(e.header_all("x-forwarded-host"), ["app.test"]);
    assert_eq!(e.header_all("host"), ["App.Test:8080"], "Host is kept");

    let e = get(weir.addr, "/f").await.echo();
    assert_eq!(e.header_all("x-forwarded-for"), ["127.0.0.1"]);

    // A request id is made, sent upstream, and echoed back.
    let r = get(weir.addr, "/id").await;
    let sent = r.echo().header("x-request-id").expect("backend sees an id");
    assert!(is_request_id(&sent), "{sent}");
    assert_eq!(r.header("x-request-id"), Some(sent.as_str()));
    let other = get(weir.addr, "/id").await;
    assert_ne!(
        other.header("x-request-id"),
        Some(sent.as_str()),
        "ids differ"
    );

    // A sane client id is kept; an insane one is replaced.
    for (given, kept) in [
        ("abc-123", true),
        ("trace:1.2_3", true),
        ("bad value!", false),
        (&*"x".repeat(129), false),
    ] {
        let r = send(
            weir.addr,
            req_with("GET", "/id", &[("host", "a"), ("x-request-id", given)], ""),
        )
        .await;
        let upstream = r.echo().header_all("x-request-id");
        assert_eq!(upstream.len(), 1, "{upstream:?}");
        let down = r.header("x-request-id").unwrap().to_owned();
        assert_eq!(upstream[0], down, "the id sent up is the id sent back");
        if kept {
            assert_eq!(down, given);
        } else {
            assert!(is_request_id(&down), "{given:?} replaced by {down}");
        }
    }
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7239_forwarded_and_via_when_configured() {
    let b = FakeHttp::start("b0").await;
    // Off by default.
    let weir = Weir::start(&Weir::http("round_robin", "", ""), &[b.addr]).await;
    let r = get(weir.addr, "/plain").await;
    assert!(r.echo().header("forwarded").is_none());
    assert!(r.echo().header("via").is_none());
    assert!(r.header("via").is_none());
    weir.stop().await;

    let weir = Weir::start(
        &Weir::http("round_robin", "forwarded = true\nvia = \"weir\"", ""),
        &[b.addr],
    )
    .await;
    let r = send(
        weir.addr,
        req_with(
            "GET",
            "/f",
            &[
                ("host", "App.Test:8080"),
                ("forwarded", "for=203.0.113.7;proto=https"),
                ("via", "1.1 edge"),
            ],
            "",
        ),
    )
    .await;
    let e = r.echo();
    assert_eq!(
        e.header_all("forwarded"),
        [
            "for=203.0.113.7;proto=https",
            "for=127.0.0.1;host=app.test;proto=http"
        ],
        "this hop is appended; the client's claim stays as evidence, not trusted"
    );
    assert_eq!(e.header_all("via"), ["1.1 edge", "1.1 weir"]);
    assert_eq!(
        r.header_all("via"),
        ["1.1 weir"],
        "the response names the hop too, with the backend's version"
    );
    weir.stop().await;
}
