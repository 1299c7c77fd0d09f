//! UDP load balancing with fake backends: affinity, flow lifetimes, bounds.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::fake_udp::{FakeUdp, ask, client, id_of, recv};
use crate::support::{Weir, eventually, udp_sockets_to};

async fn backends(n: usize) -> Vec<FakeUdp> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(FakeUdp::start(&format!("b{i}")).await);
    }
    v
}

fn addrs(b: &[FakeUdp]) -> Vec<std::net::SocketAddr> {
    b.iter().map(|b| b.addr).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maglev_on_client_ip_keeps_every_flow_of_a_client_on_one_backend() {
    let b = backends(3).await;
    let weir = Weir::start(&Weir::udp("maglev", "", ""), &addrs(&b)).await;
    let mut seen = HashSet::new();
    // Many client sockets (ports) of one client IP: one backend.
    for i in 0..20 {
        let c = client().await;
        let reply = ask(&c, weir.addr, format!("q{i}").as_bytes()).await;
        assert!(reply.ends_with(format!(":q{i}").as_bytes()));
        seen.insert(id_of(&reply));
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    weir.stop().await;

    let weir = Weir::start(
        &Weir::udp("maglev", "", "hash_key = \"client_ip_port\""),
        &addrs(&b),
    )
    .await;
    let mut seen = HashSet::new();
    for i in 0..40 {
        let c = client().await;
        seen.insert(id_of(&ask(&c, weir.addr, format!("q{i}").as_bytes()).await));
    }
    assert_eq!(seen.len(), 3, "ip:port keys spread: {seen:?}");
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_stays_on_its_backend_and_counts_traffic() {
    let b = backends(2).await;
    let weir = Weir::start(&Weir::udp("round_robin", "", ""), &addrs(&b)).await;
    let c = client().await;
    let first = id_of(&ask(&c, weir.addr, b"hello").await);
    for i in 0..10 {
        assert_eq!(
            id_of(&ask(&c, weir.addr, format!("m{i}").as_bytes()).await),
            first,
            "one flow, one backend"
        );
    }
    assert_eq!(
        weir.listener_metric("weir_udp_flows_opened_total", &[])
            .await,
        1.0
    );
    assert_eq!(
        weir.listener_metric("weir_udp_flows_active", &[]).await,
        1.0
    );
    assert_eq!(
        weir.listener_metric(
            "weir_listener_datagrams_total",
            &[("direction", "upstream")]
        )
        .await,
        11.0
    );
    assert_eq!(
        weir.listener_metric(
            "weir_listener_datagrams_total",
            &[("direction", "downstream")]
        )
        .await,
        11.0
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_one_closes_the_flow_after_the_reply() {
    let b = backends(1).await;
    let weir = Weir::start(&Weir::udp("round_robin", "responses = 1", ""), &addrs(&b)).await;
    let c = client().await;
    for i in 0..5 {
        ask(&c, weir.addr, format!("q{i}").as_bytes()).await;
    }
    eventually(
        Duration::from_secs(5),
        "five flows closed after one reply each",
        || async {
            weir.listener_metric("weir_udp_flows_closed_total", &[("reason", "responses")])
                .await
                == 5.0
        },
    )
    .await;
    assert_eq!(
        weir.listener_metric("weir_udp_flows_active", &[]).await,
        0.0
    );
    // A second reply on a closed flow is dropped and counted.
    c.send_to(b"twice", weir.addr).await.unwrap();
    assert_eq!(recv(&c, Duration::from_secs(5)).await.unwrap(), b"b0:1");
    assert!(
        recv(&c, Duration::from_millis(300)).await.is_none(),
        "the second reply is not forwarded"
    );
    eventually(Duration::from_secs(5), "late reply counted", || async {
        weir.listener_metric(
            "weir_udp_datagrams_dropped_total",
            &[("reason", "flow_closed")],
        )
        .await
            >= 1.0
    })
    .await;
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_flows_expire() {
    let b = backends(1).await;
    let weir = Weir::start(
        &Weir::udp("round_robin", "idle_timeout = \"200ms\"", ""),
        &addrs(&b),
    )
    .await;
    let c = client().await;
    ask(&c, weir.addr, b"hi").await;
    assert_eq!(
        weir.listener_metric("weir_udp_flows_active", &[]).await,
        1.0
    );
    eventually(Duration::from_secs(5), "flow expired", || async {
        weir.listener_metric("weir_udp_flows_closed_total", &[("reason", "idle")])
            .await
            == 1.0
    })
    .await;
    assert_eq!(
        weir.listener_metric("weir_udp_flows_active", &[]).await,
        0.0
    );
    // The client comes back: a new flow, served.
    ask(&c, weir.addr, b"again").await;
    assert_eq!(
        weir.listener_metric("weir_udp_flows_opened_total", &[])
            .await,
        2.0
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_flows_evicts_the_least_recently_used_and_drops_its_late_reply() {
    let b = backends(1).await;
    let weir = Weir::start(
        &Weir::udp("round_robin", "max_flows = 2\nsockets = 1", ""),
        &addrs(&b),
    )
    .await;
    let (a, bb, cc) = (client().await, client().await, client().await);
    // A asks something slow; B and C arrive before the answer, evicting A.
    a.send_to(b"sleep:400:slow", weir.addr).await.unwrap();
    eventually(Duration::from_secs(5), "A's flow open", || async {
        weir.listener_metric("weir_udp_flows_active", &[]).await == 1.0
    })
    .await;
    ask(&bb, weir.addr, b"b").await;
    ask(&cc, weir.addr, b"c").await;
    assert_eq!(
        weir.listener_metric("weir_udp_flows_evicted_total", &[])
            .await,
        1.0
    );
    assert_eq!(
        weir.listener_metric("weir_udp_flows_active", &[]).await,
        2.0
    );
    assert!(
        recv(&a, Duration::from_millis(800)).await.is_none(),
        "A's late reply is dropped"
    );
    eventually(Duration::from_secs(5), "late reply counted", || async {
        weir.listener_metric(
            "weir_udp_datagrams_dropped_total",
            &[("reason", "flow_closed")],
        )
        .await
            >= 1.0
    })
    .await;
    // B is now the least recently used; A comes back and evicts it, and is served.
    assert_eq!(id_of(&ask(&a, weir.addr, b"back").await), "b0");
    assert_eq!(
        weir.listener_metric("weir_udp_flows_evicted_total", &[])
            .await,
        2.0
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn largest_and_empty_datagrams_pass_intact() {
    let b = backends(1).await;
    let weir = Weir::start(&Weir::udp("round_robin", "", ""), &addrs(&b)).await;
    let c = client().await;
    let big: Vec<u8> = (0..65_507u32).map(|i| (i % 251) as u8).collect();
    assert!(
        ask(&c, weir.addr, &big).await == big,
        "65,507 bytes both ways"
    );
    // A zero-length datagram reaches the backend as a datagram…
    assert_eq!(ask(&c, weir.addr, b"").await, b"b0:");
    // …and a zero-length reply reaches the client as one.
    assert_eq!(ask(&c, weir.addr, b"empty-reply").await, b"");
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_datagrams_are_dropped_and_counted() {
    let b = backends(1).await;
    let weir = Weir::start(
        &Weir::udp("round_robin", "max_datagram_size = 512", ""),
        &addrs(&b),
    )
    .await;
    let c = client().await;
    c.send_to(&[7u8; 513], weir.addr).await.unwrap();
    assert!(recv(&c, Duration::from_millis(300)).await.is_none());
    assert_eq!(
        weir.listener_metric(
            "weir_udp_datagrams_dropped_total",
            &[("reason", "oversize")]
        )
        .await,
        1.0
    );
    assert_eq!(b[0].received(), 0);
    assert_eq!(
        ask(&c, weir.addr, &[b'x'; 512]).await.len(),
        512 + 3,
        "at the limit passes"
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_backend_fails_and_the_flow_moves_elsewhere() {
    let mut b = backends(2).await;
    let weir = Weir::start(
        &Weir::udp("round_robin", "", "fail_timeout = \"60s\""),
        &addrs(&b),
    )
    .await;
    let c = client().await;
    let first = id_of(&ask(&c, weir.addr, b"one").await);
    // Stop the backend this client's flow is on: its port now answers with
    // ICMP port unreachable.
    let idx: usize = first.trim_start_matches('b').parse().unwrap();
    let dead = b.remove(idx);
    dead.stop().await;
    c.send_to(b"lost", weir.addr).await.unwrap(); // refused: this one is lost, like any UDP loss
    assert!(recv(&c, Duration::from_millis(200)).await.is_none());
    // Like any UDP client (a DNS resolver), retry a lost query: under load
    // a datagram may reach the old flow in the moment between its failure
    // and its removal, and be refused too.
    let mut survivor = None;
    for _ in 0..3 {
        c.send_to(b"again", weir.addr).await.unwrap();
        if let Some(reply) = recv(&c, Duration::from_secs(2)).await {
            survivor = Some(id_of(&reply));
            break;
        }
    }
    let survivor = survivor.expect("a reply to one of three tries");
    assert_ne!(
        survivor, first,
        "the flow was re-established on another backend"
    );
    eventually(Duration::from_secs(5), "flow closed as refused", || async {
        weir.listener_metric("weir_udp_flows_closed_total", &[("reason", "refused")])
            .await
            >= 1.0
    })
    .await;
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_health_checks_take_a_silent_backend_out() {
    let b = backends(2).await;
    let check = "[pools.health_check]\ntype = \"udp\"\nsend = \"ping\"\nexpect = \"b\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 2";
    let weir = Weir::start(&Weir::udp("maglev", "", check), &addrs(&b)).await;
    weir.wait_backends_up(2, Duration::from_secs(5)).await;
    let mut b = b;
    let gone = b.remove(0);
    gone.stop().await;
    eventually(Duration::from_secs(5), "b0 down", || async {
        weir.backend_metric("weir_backend_up", "b0", &[]).await == 0.0
    })
    .await;
    for _ in 0..10 {
        let c = client().await;
        assert_eq!(
            id_of(&ask(&c, weir.addr, b"q").await),
            "b1",
            "every query answered by the survivor"
        );
    }
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_new_clients_cannot_grow_sockets_past_the_bound() {
    let b = backends(1).await;
    let weir = Weir::start(
        &Weir::udp("round_robin", "max_flows = 4\nsockets = 1", ""),
        &addrs(&b),
    )
    .await;
    // 200 distinct clients, each leaving a slow question behind: every new
    // one evicts the least recently used flow.
    let mut clients = Vec::new();
    for i in 0..200 {
        let c = client().await;
        c.send_to(format!("sleep:2000:{i}").as_bytes(), weir.addr)
            .await
            .unwrap();
        clients.push(c);
    }
    eventually(
        Duration::from_secs(10),
        "every datagram handled",
        || async {
            weir.listener_metric(
                "weir_listener_datagrams_total",
                &[("direction", "upstream")],
            )
            .await
                == 200.0
        },
    )
    .await;
    assert_eq!(
        weir.listener_metric("weir_udp_flows_active", &[]).await,
        4.0
    );
    assert_eq!(
        weir.listener_metric("weir_udp_flows_evicted_total", &[])
            .await,
        196.0
    );
    // Open flows (4) plus at most 16 lingering sockets: never one per client.
    let open = udp_sockets_to(b[0].addr.port());
    assert!(open <= 4 + 16, "{open} upstream sockets open for 4 flows");
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_with_one_config_send_a_client_to_the_same_backend() {
    let b = backends(4).await;
    let text = Weir::udp("maglev", "", "hash_key = \"client_ip_port\"");
    let (one, two) = (
        Weir::start(&text, &addrs(&b)).await,
        Weir::start(&text, &addrs(&b)).await,
    );
    let mut used = HashSet::new();
    for i in 0..24 {
        // One client socket (one key) asks both instances.
        let c = client().await;
        let a = id_of(&ask(&c, one.addr, format!("q{i}").as_bytes()).await);
        let z = id_of(&ask(&c, two.addr, format!("q{i}").as_bytes()).await);
        assert_eq!(
            a, z,
            "the ECMP property: same key, same backend on every instance"
        );
        used.insert(a);
    }
    assert!(used.len() >= 3, "keys spread over the pool: {used:?}");
    one.stop().await;
    two.stop().await;
}
