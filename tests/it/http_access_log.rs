//! What operators see of each request: one JSON access-log line per
//! request (bytes, duration, route, backend, request id, whether the body
//! was complete), and requests whose client left before the response
//! began, logged as 499 and counted.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::fake_http::{FakeHttp, req, req_with, send, try_send};
use crate::support::peers::TempDir;
use crate::support::{Weir, eventually};

fn read_log(log: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_file_has_one_json_line_per_request() {
    let dir = TempDir::new("weir-access-log");
    let log = dir.join("access.log");
    let b = [FakeHttp::start("b0").await];
    let weir = Weir::start(
        &Weir::http(
            "round_robin",
            &format!("access_log = \"{}\"", log.display()),
            "",
        ),
        &[b[0].addr],
    )
    .await;
    let r1 = send(
        weir.addr,
        req_with(
            "GET",
            "/a/b?secret=1",
            &[("host", "Log.Test"), ("x-request-id", "log-1")],
            "",
        ),
    )
    .await;
    let r2 = send(
        weir.addr,
        req_with("POST", "/p", &[("host", "log.test")], "body"),
    )
    .await;
    let _ = try_send(weir.addr, req("GET", "/die-after-headers")).await;
    let read = || read_log(&log);
    eventually(Duration::from_secs(5), "three log lines", || async {
        read().len() == 3
    })
    .await;
    let lines = read();
    let by_path = |p: &str| {
        lines
            .iter()
            .find(|l| l["path"] == p)
            .unwrap_or_else(|| panic!("no line for {p}: {lines:?}"))
            .clone()
    };
    let a = by_path("/a/b");
    assert!(
        a["client"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{a}"
    );
    assert_eq!(a["method"], "GET");
    assert_eq!(a["host"], "log.test");
    assert_eq!(a["status"], 200);
    assert_eq!(a["bytes"], r1.body.len());
    assert!(a["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(a["time"].as_f64().unwrap() > 1.6e9);
    assert_eq!(a["route"], "default");
    assert_eq!(a["backend"], "b0");
    assert_eq!(a["request_id"], "log-1");
    assert_eq!(a["complete"], true);
    assert!(!a.to_string().contains("secret"), "no query in the log");
    let p = by_path("/p");
    assert_eq!(
        (&p["method"], &p["bytes"]),
        (&"POST".into(), &r2.body.len().into())
    );
    assert_eq!(p["request_id"], r2.header("x-request-id").unwrap());
    let d = by_path("/die-after-headers");
    assert_eq!(d["complete"], false, "{d}");
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_before_the_response_is_logged_as_499() {
    let dir = TempDir::new("weir-abandoned");
    let log = dir.join("access.log");
    let backend = FakeHttp::start("b0").await;
    let weir = Weir::start(
        &Weir::http(
            "round_robin",
            &format!("access_log = \"{}\"", log.display()),
            "",
        ),
        &[backend.addr],
    )
    .await;
    let mut client = TcpStream::connect(weir.addr).await.unwrap();
    client
        .write_all(b"GET /slow/3s HTTP/1.1\r\nHost: gone.test\r\nX-Request-Id: gone-1\r\n\r\n")
        .await
        .unwrap();
    eventually(
        Duration::from_secs(5),
        "the request reached the backend",
        || async { backend.requests() == 1 },
    )
    .await;
    drop(client);
    eventually(Duration::from_secs(5), "one log line", || async {
        read_log(&log).len() == 1
    })
    .await;
    let line = &read_log(&log)[0];
    assert_eq!(line["status"], 499, "{line}");
    assert_eq!(line["complete"], false, "{line}");
    assert_eq!(line["backend"], "b0", "{line}");
    assert_eq!(line["request_id"], "gone-1", "{line}");
    assert_eq!(line["path"], "/slow/3s", "{line}");
    assert_eq!(
        weir.listener_metric("weir_http_requests_abandoned_total", &[])
            .await,
        1.0
    );
    assert_eq!(
        weir.listener_metric("weir_http_requests_total", &[("class", "4xx")])
            .await,
        1.0
    );
    assert_eq!(
        weir.listener_metric("weir_http_requests_active", &[]).await,
        0.0
    );
    weir.stop().await;
}
