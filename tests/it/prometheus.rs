//! The admin listener's exposition: it passes `promtool check metrics`, has
//! every metric operators need (with the duration as a real histogram), and
//! the admin endpoints answer as documented.

use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::fake::{Behaviour, FakeBackend};
use crate::support::peers::{promtool, run_bounded};
use crate::support::{Weir, eventually, http_get, read_line};

/// Runs `promtool check metrics` with `text` on stdin: (success, its output).
fn promtool_check(text: &str) -> (bool, String) {
    let mut cmd = Command::new(promtool());
    cmd.args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_bounded(cmd, Some(text), Duration::from_secs(60));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// The series lines of `name` (exactly that name) carrying every label given.
fn series<'a>(text: &'a str, name: &str, labels: &[(&str, &str)]) -> Vec<&'a str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_cover_the_required_series() {
    let b0 = FakeBackend::start("b0", Behaviour::Greet).await;
    let b1 = FakeBackend::start("b1", Behaviour::Greet).await;
    // Probes every 200 ms; rise 1 brings both up at the first probe, and
    // fall 100 keeps b1 "up" after it dies, so real traffic still tries it
    // (and fails over): connect errors with health checks in one pool.
    let health = "[pools.health_check]\ntype = \"tcp\"\ninterval = \"200ms\"\ntimeout = \"1s\"\nrise = 1\nfall = 100\n";
    let weir = Weir::start(
        &Weir::simple("round_robin", "max_connections = 3", health),
        &[b0.addr, b1.addr],
    )
    .await;
    weir.wait_backends_up(2, Duration::from_secs(10)).await;

    // b1 dies: wait until its port refuses, then every new connection
    // alternates onto it, is refused and fails over to b0.
    b1.stop();
    eventually(Duration::from_secs(5), "b1's port refuses", || async {
        TcpStream::connect(b1.addr).await.is_err()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(weir.addr).await.unwrap();
        assert_eq!(read_line(&mut s).await, "b0", "failed over to b0");
        s.write_all(b"some bytes upstream\n").await.unwrap();
        assert_eq!(read_line(&mut s).await, "some bytes upstream");
        held.push(s);
    }
    // A fourth while three are open: rejected at accept (max_connections = 3).
    // weir resets it at once, so the connect itself may already report the reset.
    let _extra = TcpStream::connect(weir.addr).await;
    eventually(Duration::from_secs(5), "a rejection counted", || async {
        weir.listener_metric("weir_listener_connections_rejected_total", &[])
            .await
            >= 1.0
    })
    .await;
    assert_eq!(
        weir.listener_metric("weir_listener_connections_active", &[])
            .await,
        3.0
    );
    assert_eq!(
        weir.backend_metric("weir_backend_connections_active", "b0", &[])
            .await,
        3.0
    );
    drop(held);
    eventually(Duration::from_secs(5), "connections closed", || async {
        weir.listener_metric("weir_listener_connections_active", &[])
            .await
            == 0.0
    })
    .await;
    eventually(Duration::from_secs(5), "a failed probe of b1", || async {
        weir.backend_metric("weir_health_checks_total", "b1", &[("result", "failure")])
            .await
            >= 1.0
    })
    .await;

    let text = weir.metrics().await;
    let (ok, said) = tokio::task::spawn_blocking({
        let text = text.clone();
        move || promtool_check(&text)
    })
    .await
    .unwrap();
    assert!(ok, "promtool check metrics failed:\n{said}");
    assert!(
        said.trim().is_empty(),
        "promtool check metrics complained:\n{said}"
    );

    let (l, p) = (weir.listener.as_str(), weir.pool.as_str());
    let must_move: &[(&str, &[(&str, &str)])] = &[
        (
            "weir_listener_connections_accepted_total",
            &[("listener", l)],
        ),
        (
            "weir_listener_connections_rejected_total",
            &[("listener", l), ("reason", "max_connections")],
        ),
        (
            "weir_listener_bytes_total",
            &[("listener", l), ("direction", "upstream")],
        ),
        (
            "weir_listener_bytes_total",
            &[("listener", l), ("direction", "downstream")],
        ),
        (
            "weir_backend_connections_total",
            &[("pool", p), ("backend", "b0")],
        ),
        (
            "weir_backend_connect_errors_total",
            &[("pool", p), ("backend", "b1"), ("reason", "refused")],
        ),
        ("weir_backend_up", &[("pool", p), ("backend", "b0")]),
        (
            "weir_health_checks_total",
            &[("pool", p), ("backend", "b0"), ("result", "success")],
        ),
        (
            "weir_health_checks_total",
            &[("pool", p), ("backend", "b1"), ("result", "failure")],
        ),
        ("weir_connection_duration_seconds_count", &[("listener", l)]),
        ("weir_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
    ];
    for (name, labels) in must_move {
        let found = series(&text, name, labels);
        assert_eq!(found.len(), 1, "one series {name}{labels:?}:\n{text}");
        let value: f64 = found[0]
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        assert!(value > 0.0, "{name}{labels:?} moved: {}", found[0]);
    }
    // Present (the gauges are back to zero by now).
    for (name, labels) in [
        ("weir_listener_connections_active", vec![("listener", l)]),
        (
            "weir_backend_connections_active",
            vec![("pool", p), ("backend", "b0")],
        ),
        (
            "weir_backend_connect_errors_total",
            vec![("pool", p), ("backend", "b0")],
        ),
    ] {
        assert!(
            !series(&text, name, &labels).is_empty(),
            "{name}{labels:?} present:\n{text}"
        );
    }
    // Backend up/down is a gauge; b1 is still "up" (fall = 100).
    assert!(text.contains("# TYPE weir_backend_up gauge"));

    // The connection duration is a histogram with the configured buckets.
    assert!(
        text.contains("# TYPE weir_connection_duration_seconds histogram"),
        "histogram, not summary:\n{text}"
    );
    let buckets = series(
        &text,
        "weir_connection_duration_seconds_bucket",
        &[("listener", l)],
    );
    for le in ["0.001", "0.1", "1", "3600", "86400", "+Inf"] {
        assert!(
            buckets.iter().any(|b| b.contains(&format!("le=\"{le}\""))),
            "bucket le={le}: {buckets:?}"
        );
    }
    assert!(
        !series(
            &text,
            "weir_connection_duration_seconds_sum",
            &[("listener", l)]
        )
        .is_empty()
    );
    assert!(
        series(
            &text,
            "weir_connection_duration_seconds",
            &[("quantile", "0.5")]
        )
        .is_empty(),
        "no summary quantiles"
    );
    let inf: f64 = buckets
        .iter()
        .find(|b| b.contains("le=\"+Inf\""))
        .and_then(|b| b.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(
        inf >= 3.0,
        "the three proxied connections are counted: {inf}"
    );

    // Admin endpoints.
    let (status, body) = http_get(weir.admin, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = http_get(weir.admin, "/no-such-path").await;
    assert_eq!(status, 404);
    let (status, metrics_body) = http_get(weir.admin, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics_body.contains("weir_build_info"));

    weir.stop().await;
    drop(b0);
}

#[test]
fn promtool_rejects_a_bad_exposition() {
    // The checker itself is live: a counter without `_total` is a lint error.
    let (ok, said) = promtool_check(
        "# HELP bad_counter A counter.\n# TYPE bad_counter counter\nbad_counter 1\n",
    );
    assert!(!ok || !said.trim().is_empty(), "promtool lints: {said}");
}
