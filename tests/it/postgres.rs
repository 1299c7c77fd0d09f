//! Two throw-away PostgreSQL clusters behind weir with least-connections:
//! psql and pgbench through the proxy. PostgreSQL speaks right after the
//! client's startup message, a real check of the forwarder in both
//! directions.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::support::peers::{Postgres, require, run_bounded};
use crate::support::{Weir, eventually};

async fn start_pair() -> (Postgres, Postgres) {
    tokio::task::spawn_blocking(|| {
        let a = std::thread::spawn(Postgres::start);
        let b = Postgres::start();
        (a.join().expect("start postgres"), b)
    })
    .await
    .expect("start postgres pair")
}

/// Runs a PostgreSQL client against `port` on a blocking thread.
async fn client(bin: &'static str, port: u16, args: &[&str]) -> Output {
    let exe = require(bin, "postgresql-client", &[]);
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(exe);
        cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .args(&args)
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        run_bounded(cmd, None, Duration::from_secs(180))
    })
    .await
    .expect("client thread")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_and_pgbench_through_weir_least_connections() {
    let (pg0, pg1) = start_pair().await;
    let weir = Weir::start(
        &Weir::simple("least_connections", "", ""),
        &[pg0.addr(), pg1.addr()],
    )
    .await;
    let port = weir.addr.port();

    // psql: a query through weir; `show port` says which cluster answered.
    let out = client("psql", port, &["-X", "-tA", "-c", "select 1", "postgres"]).await;
    assert!(
        out.status.success(),
        "psql through weir failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout).trim(), "1");
    let out = client("psql", port, &["-X", "-tA", "-c", "show port", "postgres"]).await;
    let answered: u16 = text(&out.stdout).trim().parse().expect("a port");
    assert!(
        answered == pg0.port || answered == pg1.port,
        "answered by {answered}, not {} or {}",
        pg0.port,
        pg1.port
    );

    // pgbench: 4 clients held open at once, select-only.
    let before = [
        weir.backend_metric("weir_backend_connections_total", "b0", &[])
            .await,
        weir.backend_metric("weir_backend_connections_total", "b1", &[])
            .await,
    ];
    let out = client(
        "pgbench",
        port,
        &["-S", "-t", "200", "-c", "4", "-n", "postgres"],
    )
    .await;
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "pgbench through weir failed: {stdout}{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("number of transactions actually processed: 800/800"),
        "{stdout}"
    );
    assert!(
        stdout.contains("number of failed transactions: 0"),
        "{stdout}"
    );
    // least_connections spreads the 4 concurrent sessions over both clusters.
    let after = [
        weir.backend_metric("weir_backend_connections_total", "b0", &[])
            .await,
        weir.backend_metric("weir_backend_connections_total", "b1", &[])
            .await,
    ];
    assert!(
        after[0] > before[0] && after[1] > before[1],
        "pgbench sessions on both clusters: before {before:?}, after {after:?}"
    );
    for b in ["b0", "b1"] {
        assert_eq!(
            weir.backend_metric("weir_backend_connect_errors_total", b, &[])
                .await,
            0.0
        );
    }
    eventually(Duration::from_secs(10), "sessions closed", || async {
        weir.listener_metric("weir_listener_connections_active", &[])
            .await
            == 0.0
    })
    .await;
    weir.stop().await;
    drop((pg0, pg1));
}
