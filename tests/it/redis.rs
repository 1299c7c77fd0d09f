//! Real redis-server instances behind weir: redis-cli and redis-benchmark
//! through the proxy, and failover when one instance dies and comes back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::support::peers::{RedisServer, redis_cli, require, run_bounded};
use crate::support::{Weir, eventually};

/// Pool keys: a RESP PING → +PONG check every 200 ms, rise 2, fall 2.
const HEALTH: &str = "[pools.health_check]\ntype = \"send_expect\"\nsend = \"PING\\r\\n\"\nexpect = \"+PONG\"\ninterval = \"200ms\"\ntimeout = \"1s\"\nrise = 2\nfall = 2\n";

async fn start_pair() -> (RedisServer, RedisServer) {
    tokio::task::spawn_blocking(|| {
        let a = std::thread::spawn(RedisServer::start);
        let b = RedisServer::start();
        (a.join().expect("start redis"), b)
    })
    .await
    .expect("start redis pair")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `redis-cli` on a blocking thread, so weir's tasks keep running.
async fn cli(port: u16, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let stdin = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        redis_cli(port, &args, stdin.as_deref())
    })
    .await
    .expect("redis-cli thread")
}

/// The `tcp_port` of the redis a new connection through `port` reaches.
async fn reached_port(port: u16) -> u16 {
    let out = cli(port, &["INFO", "server"], None).await;
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "INFO server through weir failed: {stdout}{}",
        text(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("tcp_port:"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no tcp_port in INFO server: {stdout}"))
}

async fn ping_cli(port: u16) {
    let out = cli(port, &["PING"], None).await;
    assert!(
        out.status.success() && text(&out.stdout).trim() == "PONG",
        "redis-cli PING through weir: status {:?}, stdout {:?}, stderr {:?}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_and_benchmark_through_weir() {
    let (r0, r1) = start_pair().await;
    let weir = Weir::start(
        &Weir::simple("round_robin", "", HEALTH),
        &[r0.addr(), r1.addr()],
    )
    .await;
    weir.wait_backends_up(2, Duration::from_secs(10)).await;
    let port = weir.addr.port();

    // SET then GET on one connection: the value comes back.
    let out = cli(
        port,
        &[],
        Some("SET weir:greeting hello\nGET weir:greeting\n"),
    )
    .await;
    assert!(out.status.success(), "redis-cli: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "OK\nhello\n");
    // It landed in exactly one of the two instances.
    let mut holders = 0;
    for r in [&r0, &r1] {
        let got = cli(r.port, &["GET", "weir:greeting"], None).await;
        if text(&got.stdout).trim() == "hello" {
            holders += 1;
        }
    }
    assert_eq!(holders, 1, "the key lives in one redis");

    // redis-benchmark through weir: every test completes, no errors. One
    // request per round trip, then pipelined (-P 16: many commands per read),
    // then values of 100 kB (larger than the forwarder's first read, so
    // bursts switch to splice and back for the small replies).
    let bench = require("redis-benchmark", "redis-tools", &[]);
    let runs: [&[&str]; 3] = [
        &["-n", "20000", "-c", "10", "-t", "ping,set,get"],
        &["-n", "20000", "-c", "10", "-P", "16", "-t", "ping,set,get"],
        &["-n", "1000", "-c", "4", "-d", "100000", "-t", "set,get"],
    ];
    for args in runs {
        let bench = bench.clone();
        let out = tokio::task::spawn_blocking(move || {
            let mut cmd = std::process::Command::new(bench);
            cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
                .args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            run_bounded(cmd, None, Duration::from_secs(300))
        })
        .await
        .unwrap();
        let stdout = text(&out.stdout);
        let stderr = text(&out.stderr);
        assert!(
            out.status.success(),
            "redis-benchmark {args:?} failed: {stdout}\n{stderr}"
        );
        assert!(
            !stdout.to_lowercase().contains("error") && !stderr.to_lowercase().contains("error"),
            "redis-benchmark {args:?} reported errors: {stdout}\n{stderr}"
        );
        let results: Vec<&str> = stdout
            .split(['\r', '\n'])
            .filter(|l| l.contains("requests per second"))
            .collect();
        let tests: &[&str] = if args.contains(&"-d") {
            &["SET", "GET"]
        } else {
            &["PING_INLINE", "PING_MBULK", "SET", "GET"]
        };
        for test in tests {
            assert!(
                results.iter().any(|l| l.starts_with(&format!("{test}: "))),
                "no result for {test} with {args:?}: {stdout}"
            );
        }
    }

    // Both instances took connections; none failed; all closed again.
    for b in ["b0", "b1"] {
        assert!(
            weir.backend_metric("weir_backend_connections_total", b, &[])
                .await
                > 0.0,
            "{b} got connections"
        );
        assert_eq!(
            weir.backend_metric("weir_backend_connect_errors_total", b, &[])
                .await,
            0.0,
            "{b} connect errors"
        );
    }
    eventually(Duration::from_secs(10), "connections closed", || async {
        weir.listener_metric("weir_listener_connections_active", &[])
            .await
            == 0.0
    })
    .await;
    weir.stop().await;
}

/// One PING on a new connection through weir.
async fn ping_once(addr: SocketAddr) -> Result<(), String> {
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    s.write_all(b"PING\r\n")
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = [0u8; 7];
    match tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf)).await {
        Ok(Ok(_)) if &buf == b"+PONG\r\n" => Ok(()),
        Ok(Ok(_)) => Err(format!("reply {:?}", String::from_utf8_lossy(&buf))),
        Ok(Err(e)) => Err(format!("read: {e}")),
        Err(_) => Err("no reply within 5 s".into()),
    }
}

/// One PING attempt of the load loop: when it started and how it ended.
struct Attempt {
    started: Instant,
    result: Result<(), String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_failover_and_rejoin() {
    let (r0, mut r1) = start_pair().await;
    let weir = Weir::start(
        &Weir::simple("round_robin", "", HEALTH),
        &[r0.addr(), r1.addr()],
    )
    .await;
    weir.wait_backends_up(2, Duration::from_secs(10)).await;
    let port = weir.addr.port();

    // A bounded load loop: new connection, PING, close; one at a time.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, done, addr) = (stop.clone(), done.clone(), weir.addr);
        tokio::spawn(async move {
            let mut log = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline && log.len() < 200_000 {
                let started = Instant::now();
                let result = ping_once(addr).await;
                if result.is_ok() {
                    done.fetch_add(1, Ordering::SeqCst);
                }
                log.push(Attempt { started, result });
            }
            log
        })
    };
    eventually(Duration::from_secs(10), "load running", || async {
        done.load(Ordering::SeqCst) >= 50
    })
    .await;

    // Kill r1 mid-run.
    let killing = Instant::now();
    tokio::task::block_in_place(|| r1.stop());
    let killed = Instant::now();
    eventually(Duration::from_secs(10), "b1 marked down", || async {
        weir.backend_metric("weir_backend_up", "b1", &[]).await == 0.0
    })
    .await;
    let down = Instant::now();
    let after_down = done.load(Ordering::SeqCst);
    eventually(Duration::from_secs(10), "load continues", || async {
        done.load(Ordering::SeqCst) >= after_down + 100
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let log = load.await.unwrap();

    // A PING in flight on r1 when it was killed may fail, and so may one that
    // reached it while the process was dying (the kernel still completes
    // handshakes on a dying listener); nothing that started after it was gone.
    let late: Vec<&String> = log
        .iter()
        .filter(|a| a.started >= killed)
        .filter_map(|a| a.result.as_ref().err())
        .collect();
    assert!(
        late.is_empty(),
        "connections started after the kill failed: {late:?}"
    );
    let early: Vec<String> = log
        .iter()
        .filter(|a| a.started < killed)
        .filter_map(|a| {
            let when = if a.started < killing {
                format!("{:?} before the kill", killing - a.started)
            } else {
                format!("{:?} into the kill", a.started - killing)
            };
            a.result
                .as_ref()
                .err()
                .map(|e| format!("{e} (started {when})"))
        })
        .collect();
    let before_kill = log
        .iter()
        .filter(|a| a.started < killing && a.result.is_err())
        .count();
    assert!(
        before_kill <= 1,
        "only the one PING in flight at the kill may fail: {early:?}"
    );
    let in_flight = early.len();
    let after_kill = log.iter().filter(|a| a.started >= killed).count();
    let failed_over = weir
        .backend_metric(
            "weir_backend_connect_errors_total",
            "b1",
            &[("reason", "refused")],
        )
        .await;
    assert!(
        failed_over >= 1.0,
        "new connections tried dead b1 and failed over (errors {failed_over})"
    );
    eventually(Duration::from_secs(10), "b1's probes fail", || async {
        weir.backend_metric("weir_health_checks_total", "b1", &[("result", "failure")])
            .await
            >= 1.0
    })
    .await;
    eprintln!(
        "redis failover: {} PINGs, {after_kill} after the kill, {in_flight} in-flight failure(s) \
         {early:?}, {failed_over} refused connects failed over; kill took {:?}, marked down {:?} \
         after it",
        log.len(),
        killed - killing,
        down - killed
    );

    // Every new connection now reaches the survivor.
    for _ in 0..20 {
        assert_eq!(reached_port(port).await, r0.port, "survivor serves");
        ping_cli(port).await;
    }

    // Bring r1 back on the same port: up after `rise` successful checks.
    let successes_while_down = weir
        .backend_metric("weir_health_checks_total", "b1", &[("result", "success")])
        .await;
    tokio::task::block_in_place(|| r1.restart());
    eventually(Duration::from_secs(10), "b1 back up", || async {
        weir.backend_metric("weir_backend_up", "b1", &[]).await == 1.0
    })
    .await;
    let successes = weir
        .backend_metric("weir_health_checks_total", "b1", &[("result", "success")])
        .await;
    assert!(
        successes >= successes_while_down + 2.0,
        "rejoined after rise = 2 checks ({successes_while_down} → {successes})"
    );
    let mut reached = Vec::new();
    for _ in 0..20 {
        let p = reached_port(port).await;
        reached.push(p);
        if p == r1.port {
            break;
        }
    }
    assert!(
        reached.contains(&r1.port),
        "new connections reach the restarted r1 ({}): {reached:?}",
        r1.port
    );
    weir.stop().await;
}
