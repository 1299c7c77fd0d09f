//! Real HTTP clients under load: curl, wrk (HTTP/1.1) and h2load (cleartext
//! HTTP/2, prior knowledge) through weir to a real nginx backend, each run
//! bounded to a few seconds; no client sees an error and weir's gateway
//! counts none. And clients that give up mid-request (as wrk does when its
//! time is up) leave nothing counted as active.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::fake_http::FakeHttp;
use crate::support::nginx::{self, Nginx};
use crate::support::peers::{require, run_bounded};
use crate::support::{Weir, eventually};

/// The sum of every `name` series labelled with `listener` (and `extra`),
/// across its other labels.
fn sum_series(text: &str, name: &str, listener: &str, extra: &[(&str, &str)]) -> f64 {
    let want: Vec<String> = [("listener", listener)]
        .iter()
        .chain(extra)
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect();
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix('{'))
        .filter_map(|rest| rest.split_once("} "))
        .filter(|(labels, _)| want.iter().all(|w| labels.split(',').any(|kv| kv == w)))
        .filter_map(|(_, value)| value.trim().parse::<f64>().ok())
        .sum()
}

/// Runs `bin args…` off the async runtime, killed after `within`; asserts
/// a zero exit and returns (stdout, stdout + stderr).
async fn run(
    bin: &'static str,
    package: &'static str,
    args: &[&str],
    within: Duration,
) -> (Vec<u8>, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(require(bin, package, &[]));
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = run_bounded(cmd, None, within);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{bin} {args:?} failed:\n{text}");
        (out.stdout, text)
    })
    .await
    .expect("client task")
}

/// wrk's request count, from `N requests in 2.00s, … read`.
fn wrk_requests(report: &str) -> u64 {
    report
        .lines()
        .find_map(|l| {
            let (n, rest) = l.trim().split_once(' ')?;
            rest.starts_with("requests in ").then(|| n.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no request count in wrk's report:\n{report}"))
}

/// h2load's `requests: N total, N started, N done, N succeeded, N failed,
/// N errored, N timeout` as (name, count) pairs.
fn h2load_requests(report: &str) -> Vec<(String, u64)> {
    let line = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("requests: "))
        .unwrap_or_else(|| panic!("no `requests:` line in h2load's report:\n{report}"));
    line.split(", ")
        .map(|part| {
            let (n, what) = part
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad h2load field {part:?}:\n{report}"));
            (what.to_owned(), n.parse().expect("h2load count"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_wrk_and_h2load_through_weir_to_nginx_without_errors() {
    let nginx = tokio::task::spawn_blocking(Nginx::start)
        .await
        .expect("start nginx");
    let routes =
        "\n[[listeners.routes]]\nname = \"nginx\"\npool = \"{pool}\"\npath_prefix = \"/\"\n";
    let weir = Weir::start(&Weir::http_routes("round_robin", routes, ""), &[nginx.addr]).await;
    let base = format!("http://{}", weir.addr);
    let errors =
        |text: &str| sum_series(text, "weir_http_gateway_errors_total", &weir.listener, &[]);
    let errors_before = errors(&weir.metrics().await);

    // curl, HTTP/1.1 and HTTP/2 prior knowledge, small and large bodies.
    for version in ["--http1.1", "--http2-prior-knowledge"] {
        let curl = |path: &str| {
            let url = format!("{base}{path}");
            async move {
                let args = ["-sS", "--max-time", "5", version, "-o", "-", &url];
                run("curl", "curl", &args, Duration::from_secs(10)).await.0
            }
        };
        assert_eq!(
            curl("/").await,
            nginx::OK_BODY.as_bytes(),
            "curl {version} /"
        );
        let big = curl("/big").await;
        assert_eq!(big.len(), nginx::BIG_LEN, "curl {version} /big length");
        assert!(
            big.iter()
                .enumerate()
                .all(|(i, b)| *b == nginx::big_byte(i)),
            "curl {version} /big content"
        );
    }

    // wrk: HTTP/1.1 keep-alive, 16 connections for 2 s.
    let url = format!("{base}/");
    let args = ["-t1", "-c16", "-d2s", "--timeout", "5s", &url];
    let (_, report) = run("wrk", "wrk", &args, Duration::from_secs(15)).await;
    let wrk = wrk_requests(&report);
    eprintln!("wrk through weir to nginx:\n{report}");
    assert!(
        !report.contains("Non-2xx or 3xx responses"),
        "wrk saw error statuses:\n{report}"
    );
    assert!(
        !report.contains("Socket errors"),
        "wrk saw socket errors:\n{report}"
    );
    assert!(wrk > 200, "wrk did only {wrk} requests in 2 s:\n{report}");

    // h2load: cleartext HTTP/2 (prior knowledge), 8 connections × 4 streams.
    let total = 2000;
    let n = total.to_string();
    let args = ["-n", &n, "-c", "8", "-m", "4", &url];
    let (_, report) = run("h2load", "nghttp2-client", &args, Duration::from_secs(30)).await;
    eprintln!("h2load through weir to nginx:\n{report}");
    let counts = h2load_requests(&report);
    let count = |what: &str| {
        counts
            .iter()
            .find(|(w, _)| w == what)
            .map(|(_, n)| *n)
            .unwrap_or_else(|| panic!("no `{what}` in h2load's report:\n{report}"))
    };
    assert!(
        report.contains("Application protocol: h2c"),
        "h2load did not speak h2c:\n{report}"
    );
    for what in ["total", "started", "done", "succeeded"] {
        assert_eq!(count(what), total, "h2load {what}:\n{report}");
    }
    for what in ["failed", "errored", "timeout"] {
        assert_eq!(count(what), 0, "h2load {what}:\n{report}");
    }
    assert!(
        report.contains(&format!("status codes: {total} 2xx, 0 3xx, 0 4xx, 0 5xx")),
        "h2load saw error statuses:\n{report}"
    );

    // weir's side: nothing in flight, no gateway errors, no 5xx.
    eventually(
        Duration::from_secs(10),
        "no HTTP requests active",
        || async { weir.listener_metric("weir_http_requests_active", &[]).await == 0.0 },
    )
    .await;
    let text = weir.metrics().await;
    assert_eq!(
        errors(&text),
        errors_before,
        "weir's gateway errors moved:\n{}",
        text.lines()
            .filter(|l| l.starts_with("weir_http_gateway_errors_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let ok = sum_series(
        &text,
        "weir_http_requests_total",
        &weir.listener,
        &[("class", "2xx")],
    );
    let all = sum_series(&text, "weir_http_requests_total", &weir.listener, &[]);
    assert!(
        ok >= (wrk + total) as f64,
        "weir answered {ok} 2xx, clients completed {}",
        wrk + total
    );
    // wrk and h2load stop at their deadline with requests in flight: those
    // are abandoned (logged as 499), never answered with an error.
    let abandoned = sum_series(
        &text,
        "weir_http_requests_abandoned_total",
        &weir.listener,
        &[],
    );
    // At most the clients' concurrency: wrk's 16 connections and h2load's
    // 8 × 4 streams.
    assert!(
        abandoned <= 48.0,
        "{abandoned} abandoned: more than the clients' concurrency"
    );
    assert_eq!(ok + abandoned, all, "weir answered non-2xx responses");
    let nginx_errors = nginx.error_log();
    weir.stop().await;
    drop(nginx);
    assert!(
        !nginx_errors.contains("[error]") && !nginx_errors.contains("[crit]"),
        "nginx logged errors:\n{nginx_errors}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_give_up_before_the_response_are_not_left_active() {
    let backend = FakeHttp::start("b0").await;
    let weir = Weir::start(&Weir::http("round_robin", "", ""), &[backend.addr]).await;
    let url = format!("http://{}/slow/20s", weir.addr);
    for version in ["--http1.1", "--http2-prior-knowledge"] {
        // curl gives up after 1 s, long before the backend answers (20 s)
        // or weir's response timeout (30 s) would end the request.
        let args: Vec<String> = ["-sS", "--max-time", "1", version, &url]
            .iter()
            .map(|a| (*a).to_owned())
            .collect();
        let out = tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new(require("curl", "curl", &[]));
            cmd.args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            run_bounded(cmd, None, Duration::from_secs(10))
        })
        .await
        .expect("curl task");
        assert_eq!(
            out.status.code(),
            Some(28),
            "curl {version} timed out: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        eventually(
            Duration::from_secs(5),
            &format!("no request active after curl {version} left"),
            || async { weir.listener_metric("weir_http_requests_active", &[]).await == 0.0 },
        )
        .await;
    }
    weir.stop().await;
}
