//! UDP in front of real DNS servers (dnsmasq), driven by dig and dnsperf.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::dns::{DnsServer, dig, dnsperf, hex, query};
use crate::support::peers::TempDir;
use crate::support::{Weir, eventually};

fn dns_config() -> String {
    let check = format!(
        "[pools.health_check]\ntype = \"udp\"\nsend_hex = \"{}\"\nexpect_hex = \"beef\"\ninterval = \"500ms\"\ntimeout = \"500ms\"\nrise = 1\nfall = 2",
        hex(&query(0xbeef))
    );
    Weir::udp("maglev", "responses = 1", &check)
}

/// Runs blocking client work (dig, dnsperf) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_through_weir_sticks_to_one_server_and_fails_over() {
    let mut servers = [DnsServer::start("10.53.0.1"), DnsServer::start("10.53.0.2")];
    let weir = Weir::start(&dns_config(), &[servers[0].addr, servers[1].addr]).await;
    weir.wait_backends_up(2, Duration::from_secs(10)).await;
    let front = weir.addr;

    // Every dig uses a new source port; maglev on the client IP keeps them on one server.
    let answers = blocking(move || (0..10).map(|_| dig(front)).collect::<Vec<_>>()).await;
    let distinct: HashSet<_> = answers.iter().collect();
    assert_eq!(
        distinct.len(),
        1,
        "one client address, one server: {answers:?}"
    );
    let first = answers[0].clone().expect("answered");
    // responses = 1: flows end with their answer instead of piling up.
    eventually(
        Duration::from_secs(5),
        "flows closed after one answer",
        || async {
            weir.listener_metric("weir_udp_flows_closed_total", &[("reason", "responses")])
                .await
                >= 10.0
        },
    )
    .await;

    // Stop the server that answered; after the fall threshold the survivor answers everything.
    let (dead, survivor) = if first == servers[0].answer {
        (0, 1)
    } else {
        (1, 0)
    };
    servers[dead].stop();
    let dead_name = format!("b{dead}");
    eventually(
        Duration::from_secs(10),
        "stopped server marked down",
        || async {
            weir.backend_metric("weir_backend_up", &dead_name, &[])
                .await
                == 0.0
        },
    )
    .await;
    let answers = blocking(move || (0..10).map(|_| dig(front)).collect::<Vec<_>>()).await;
    let want = servers[survivor].answer.clone();
    assert!(
        answers.iter().all(|a| a.as_deref() == Some(want.as_str())),
        "survivor answers all: {answers:?}"
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnsperf_through_weir_loses_no_queries() {
    let servers = [DnsServer::start("10.53.0.3"), DnsServer::start("10.53.0.4")];
    let weir = Weir::start(&dns_config(), &[servers[0].addr, servers[1].addr]).await;
    weir.wait_backends_up(2, Duration::from_secs(10)).await;
    let front = weir.addr;
    let dir = TempDir::new("dnsperf");
    // Bounded: 3 seconds at a modest 500 queries/s.
    let perf = blocking(move || dnsperf(front, 3, 500, &dir)).await;
    assert!(perf.completed >= 500, "{}", perf.report);
    assert_eq!(perf.lost, 0, "no lost queries:\n{}", perf.report);
    assert_eq!(perf.sent, perf.completed);
    assert_eq!(
        weir.listener_metric(
            "weir_udp_datagrams_dropped_total",
            &[("reason", "send_error")]
        )
        .await,
        0.0
    );
    weir.stop().await;
}
