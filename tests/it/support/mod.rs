//! Test support: fake backends that say who they are, weir run in-process on
//! port 0, a metrics scraper, and polling with a deadline (never sleeps to
//! wait for readiness).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod dns;
pub mod fake;
pub mod fake_http;
pub mod fake_udp;
pub mod nginx;
pub mod peers;
pub mod pki;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use weir::App;
use weir_common::shutdown::{Shutdown, ShutdownTrigger};

/// A name unique in this test process (metrics are process-wide, so every
/// test uses its own listener and pool names).
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Polls `check` every 10 ms until it returns true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// weir running in-process.
pub struct Weir {
    /// The listener's first bound address.
    pub addr: SocketAddr,
    /// The admin listener's address.
    pub admin: SocketAddr,
    /// Listener name (metric label).
    pub listener: String,
    /// Pool name (metric label).
    pub pool: String,
    /// Reloads the https listeners' certificates (what SIGHUP does).
    pub tls: weir::TlsReloader,
    trigger: Option<ShutdownTrigger>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Weir {
    /// Starts weir with one listener `{listener}` → pool `{pool}`, from a TOML
    /// snippet that may use `{listener}`, `{pool}` and `{backends}` (a list
    /// of `[[pools.backends]]` tables named `b0..` built from `backends`).
    pub async fn start(toml: &str, backends: &[SocketAddr]) -> Weir {
        let listener = unique("l");
        let pool = unique("p");
        let mut backend_tables = String::new();
        for (i, b) in backends.iter().enumerate() {
            backend_tables.push_str(&format!(
                "\n[[pools.backends]]\nname = \"b{i}\"\naddress = \"{b}\"\n"
            ));
        }
        let text = toml
            .replace("{listener}", &listener)
            .replace("{pool}", &pool)
            .replace("{backends}", &backend_tables);
        let text = format!("[admin]\naddress = \"127.0.0.1:0\"\n\n{text}");
        Self::start_text(&text, listener, pool).await
    }

    /// Starts weir from complete config text whose listener and pool are named
    /// `listener` and `pool`.
    pub async fn start_text(text: &str, listener: String, pool: String) -> Weir {
        let _ = weir::telemetry::metrics_handle();
        let config = match weir_config::parse(text, "test") {
            Ok(v) => v.config,
            Err(e) => panic!("test config invalid: {e}\n{text}"),
        };
        let app = App::bind(config).expect("bind");
        let tls = app.tls_reloader();
        let addr = app.listener_addrs(&listener)[0];
        let admin = app.admin_addr().expect("admin");
        let (trigger, shutdown) = Shutdown::new();
        let task = tokio::spawn(app.run(shutdown));
        Weir {
            addr,
            admin,
            listener,
            pool,
            tls,
            trigger: Some(trigger),
            task: Some(task),
        }
    }

    /// A minimal config snippet: one TCP listener → one pool using
    /// `algorithm`, with extra keys appended to the listener and pool tables.
    pub fn simple(algorithm: &str, extra_listener: &str, extra_pool: &str) -> String {
        format!(
            "[runtime]\nshutdown_grace = \"2s\"\n\n[[listeners]]\nname = \"{{listener}}\"\nbind = \"127.0.0.1:0\"\npool = \"{{pool}}\"\n{extra_listener}\n\n[[pools]]\nname = \"{{pool}}\"\nalgorithm = \"{algorithm}\"\n{extra_pool}\n{{backends}}"
        )
    }

    /// `toml` (from [`Weir::simple`] and friends) served by `n` worker
    /// threads: connections spread over them by the kernel, and the gateway
    /// keeps backend connections per worker, so tests that count backend
    /// connections fix the number.
    pub fn workers(n: usize, toml: &str) -> String {
        assert!(toml.contains("[runtime]\n"), "a Weir::simple-style config");
        toml.replacen(
            "[runtime]\n",
            &format!("[runtime]\nworker_threads = {n}\n"),
            1,
        )
    }

    /// Like [`Weir::simple`], for a UDP listener.
    pub fn udp(algorithm: &str, extra_listener: &str, extra_pool: &str) -> String {
        Self::simple(
            algorithm,
            &format!("protocol = \"udp\"\n{extra_listener}"),
            extra_pool,
        )
    }

    /// Like [`Weir::simple`], for an HTTP listener whose `pool` catches what
    /// no route matches (route `default`); the access log is off unless
    /// `extra_listener` sets it. `extra_listener` may end with
    /// `[[listeners.routes]]` tables (using `pool = "{pool}"`).
    pub fn http(algorithm: &str, extra_listener: &str, extra_pool: &str) -> String {
        let log = if extra_listener.contains("access_log") {
            ""
        } else {
            "access_log = \"off\"\n"
        };
        Self::simple(
            algorithm,
            &format!("protocol = \"http\"\n{log}{extra_listener}"),
            extra_pool,
        )
    }

    /// Like [`Weir::http`], without a listener pool: only the routes in
    /// `extra_listener` match, everything else gets 404.
    pub fn http_routes(algorithm: &str, extra_listener: &str, extra_pool: &str) -> String {
        Self::http(algorithm, extra_listener, extra_pool).replacen(
            "pool = \"{pool}\"\nprotocol",
            "protocol",
            1,
        )
    }

    /// Fires graceful shutdown without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(t) = self.trigger.take() {
            t.trigger();
        }
    }

    /// Shuts down and waits for `run` to return (bounded).
    pub async fn stop(mut self) {
        self.begin_shutdown();
        self.join(Duration::from_secs(15)).await;
    }

    /// Waits for `run` to return after a shutdown already begun.
    pub async fn join(mut self, within: Duration) {
        if let Some(task) = self.task.take() {
            tokio::time::timeout(within, task)
                .await
                .expect("weir stops in time")
                .expect("run task")
                .expect("run result");
        }
    }

    /// The admin `/metrics` text.
    pub async fn metrics(&self) -> String {
        scrape(self.admin).await
    }

    /// The value of the series `name{labels}` (all given labels must match),
    /// or 0 when absent.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_value(&self.metrics().await, name, labels)
    }

    /// A metric labelled with this listener plus `extra`.
    pub async fn listener_metric(&self, name: &str, extra: &[(&str, &str)]) -> f64 {
        let mut labels = vec![("listener", self.listener.as_str())];
        labels.extend_from_slice(extra);
        self.metric(name, &labels).await
    }

    /// A metric labelled with this pool, `backend` and `extra`.
    pub async fn backend_metric(&self, name: &str, backend: &str, extra: &[(&str, &str)]) -> f64 {
        let mut labels = vec![("pool", self.pool.as_str()), ("backend", backend)];
        labels.extend_from_slice(extra);
        self.metric(name, &labels).await
    }

    /// Waits until `weir_backend_up` is 1 for backends `b0..b{n-1}`.
    pub async fn wait_backends_up(&self, n: usize, within: Duration) {
        for i in 0..n {
            let name = format!("b{i}");
            eventually(within, &format!("backend {name} up"), || async {
                self.backend_metric("weir_backend_up", &name, &[]).await == 1.0
            })
            .await;
        }
    }
}

impl Drop for Weir {
    fn drop(&mut self) {
        if let Some(t) = self.trigger.take() {
            t.trigger();
        }
    }
}

/// GET /metrics from an admin address.
pub async fn scrape(admin: SocketAddr) -> String {
    http_get(admin, "/metrics").await.1
}

/// A bare HTTP/1.0 GET: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect admin");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: weir\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("admin answers within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Parses one series' value out of Prometheus text (0 when absent).
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_part, value) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once("} ") {
                Some((l, v)) => (l, v),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(v) => ("", v),
                None => continue,
            },
        };
        if labels
            .iter()
            .all(|(k, v)| label_part.split(',').any(|kv| kv == format!("{k}=\"{v}\"")))
        {
            return value.trim().parse().unwrap_or(0.0);
        }
    }
    0.0
}

/// Reads one `\n`-terminated line (without the line end), bounded in time;
/// returns what was read before EOF if the stream closes first.
pub async fn read_line(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match s.read(&mut byte).await {
                Ok(0) | Err(_) => break,
                Ok(_) if byte[0] == b'\n' => break,
                Ok(_) => out.push(byte[0]),
            }
        }
    })
    .await
    .expect("line within 10 s");
    String::from_utf8_lossy(&out)
        .trim_end_matches('\r')
        .to_owned()
}

/// Connects through weir and returns the id line the fake backend greets with.
pub async fn who(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect weir");
    read_line(&mut s).await
}

/// The number of open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The `weir` binary built for these tests.
pub fn weir_bin() -> &'static str {
    env!("CARGO_BIN_EXE_weir")
}

/// Open (non-TIME_WAIT, non-listening) TCP sockets held by any process whose
/// local or remote port is `port`, from /proc/net/tcp{,6}. Exact even while
/// other tests run, since every test uses its own ports.
pub fn sockets_on_port(port: u16) -> usize {
    let mut count = 0;
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 {
                continue;
            }
            let port_of = |a: &str| {
                a.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            let (local, remote, state, inode) =
                (port_of(cols[1]), port_of(cols[2]), cols[3], cols[9]);
            // 0A = LISTEN; inode 0 = TIME_WAIT (no owner).
            if state == "0A" || inode == "0" {
                continue;
            }
            if local == Some(port) || remote == Some(port) {
                count += 1;
            }
        }
    }
    count
}

/// UDP sockets (of any process) connected to remote port `port`, from
/// /proc/net/udp{,6}: exact per test, since each backend has its own port.
pub fn udp_sockets_to(port: u16) -> usize {
    let mut count = 0;
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let remote = cols
                .get(2)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if remote == Some(port) {
                count += 1;
            }
        }
    }
    count
}
