//! Active health checks seen from the outside: start-up, failure, recovery, flapping.

use std::time::Duration;

use crate::support::fake::{Behaviour, FakeBackend};
use crate::support::{Weir, eventually, who};

fn checked(algorithm: &str, check: &str) -> String {
    Weir::simple(algorithm, "", &format!("[pools.health_check]\n{check}\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_start_down_until_rise_probes_pass() {
    let backend = FakeBackend::start("b0", Behaviour::Greet).await;
    let text = checked(
        "round_robin",
        "interval = \"150ms\"\ntimeout = \"100ms\"\nrise = 3\nfall = 2",
    );
    let weir = Weir::start(&text, &[backend.addr]).await;
    // Before three successful probes (~300 ms), there is no ready backend.
    assert_eq!(weir.backend_metric("weir_backend_up", "b0", &[]).await, 0.0);
    weir.wait_backends_up(1, Duration::from_secs(5)).await;
    assert!(
        weir.backend_metric("weir_health_checks_total", "b0", &[("result", "success")])
            .await
            >= 3.0
    );
    assert_eq!(who(weir.addr).await, "b0");
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_backend_goes_down_after_fall_and_returns_after_rise() {
    let b0 = FakeBackend::start("b0", Behaviour::Greet).await;
    let b1 = FakeBackend::start("b1", Behaviour::Greet).await;
    let text = checked(
        "round_robin",
        "interval = \"100ms\"\ntimeout = \"100ms\"\nrise = 2\nfall = 2",
    );
    let weir = Weir::start(&text, &[b0.addr, b1.addr]).await;
    weir.wait_backends_up(2, Duration::from_secs(5)).await;
    let addr0 = b0.addr;
    b0.stop();
    drop(b0);
    eventually(Duration::from_secs(5), "b0 marked down", || async {
        weir.backend_metric("weir_backend_up", "b0", &[]).await == 0.0
    })
    .await;
    for _ in 0..10 {
        assert_eq!(who(weir.addr).await, "b1", "all traffic on the survivor");
    }
    let b0 = FakeBackend::start_at(addr0, "b0", Behaviour::Greet).await;
    eventually(Duration::from_secs(5), "b0 back up", || async {
        weir.backend_metric("weir_backend_up", "b0", &[]).await == 1.0
    })
    .await;
    let mut seen_b0 = false;
    for _ in 0..4 {
        seen_b0 |= who(weir.addr).await == "b0";
    }
    assert!(seen_b0, "traffic returns to b0");
    assert_eq!(
        weir.backend_metric("weir_health_transitions_total", "b0", &[("to", "down")])
            .await,
        1.0
    );
    drop(b0);
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_expect_mismatch_keeps_a_backend_down() {
    let good = FakeBackend::start("good", Behaviour::Cycle(vec!["+PONG\r\n"])).await;
    let wrong = FakeBackend::start("wrong", Behaviour::Cycle(vec!["-LOADING\r\n"])).await;
    let check = "type = \"send_expect\"\nsend = \"PING\\r\\n\"\nexpect = \"+PONG\"\ninterval = \"100ms\"\nrise = 1\nfall = 1";
    let weir = Weir::start(&checked("round_robin", check), &[good.addr, wrong.addr]).await;
    weir.wait_backends_up(1, Duration::from_secs(5)).await;
    eventually(
        Duration::from_secs(5),
        "three failed probes of b1",
        || async {
            weir.backend_metric("weir_health_checks_total", "b1", &[("result", "failure")])
                .await
                >= 3.0
        },
    )
    .await;
    assert_eq!(weir.backend_metric("weir_backend_up", "b1", &[]).await, 0.0);
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_backend_changes_state_only_after_rise_and_fall() {
    // Replies alternate ok, bad, ok, bad…: never two failures in a row, so
    // with fall = 2 the backend never goes down.
    let flappy = FakeBackend::start("b0", Behaviour::Cycle(vec!["+PONG\r\n", "-ERR\r\n"])).await;
    let check =
        "type = \"send_expect\"\nexpect = \"+PONG\"\ninterval = \"50ms\"\nrise = 1\nfall = 2";
    let weir = Weir::start(&checked("round_robin", check), &[flappy.addr]).await;
    weir.wait_backends_up(1, Duration::from_secs(5)).await;
    eventually(Duration::from_secs(10), "ten probes", || async {
        weir.backend_metric("weir_health_checks_total", "b0", &[("result", "failure")])
            .await
            >= 5.0
    })
    .await;
    assert_eq!(
        weir.backend_metric("weir_health_transitions_total", "b0", &[("to", "down")])
            .await,
        0.0
    );
    assert_eq!(weir.backend_metric("weir_backend_up", "b0", &[]).await, 1.0);
    weir.stop().await;
}
