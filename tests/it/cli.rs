//! The `weir` binary itself: `check`, `--version`, start-up errors (exit 2,
//! nothing left bound), serving until SIGTERM, and an accept loop that
//! survives running out of file descriptors.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::fake::{Behaviour, FakeBackend};
use crate::support::peers::{TempDir, free_port, require, run_bounded};
use crate::support::{eventually, http_get, metric_value, read_line, weir_bin};

/// Writes `text` as `name` in `dir` and returns its path.
fn write_config(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

/// Runs `weir ARGS…` to completion (bounded).
fn weir(args: &[&str]) -> Output {
    let mut cmd = Command::new(weir_bin());
    cmd.args(args)
        .env_remove("WEIR_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    run_bounded(cmd, None, Duration::from_secs(60))
}

fn out_text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn good_config(admin: &str, bind: &str, backend: SocketAddr) -> String {
    format!(
        r#"[admin]
address = "{admin}"

[runtime]
shutdown_grace = "1s"

[[listeners]]
name = "pg_front"
bind = "{bind}"
pool = "pg_pool"

[[pools]]
name = "pg_pool"
algorithm = "least_connections"

[[pools.backends]]
name = "db1"
address = "{backend}"
"#
    )
}

#[test]
fn check_accepts_a_good_file_and_prints_a_summary() {
    let dir = TempDir::new("cli");
    let path = write_config(
        &dir,
        "good.toml",
        &good_config(
            "127.0.0.1:9090",
            "127.0.0.1:15432",
            "127.0.0.1:5432".parse().unwrap(),
        ),
    );
    let out = weir(&["check", "-c", path.to_str().unwrap()]);
    let (stdout, stderr) = out_text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    for needle in [
        "pg_front",
        "127.0.0.1:15432",
        "pool pg_pool",
        "least_connections",
        "db1",
        "configuration is valid",
    ] {
        assert!(stdout.contains(needle), "summary names {needle}:\n{stdout}");
    }
}

/// Key files that exist but cannot be used fail `weir check` (exit 2), one
/// line per provider naming the file, as they would fail `weir run`; good
/// keys pass.
#[test]
fn check_loads_jwt_key_files_and_lists_every_unusable_one() {
    let dir = TempDir::new("cli-jwt");
    std::fs::write(
        dir.join("garbage.pem"),
        "-----BEGIN PUBLIC KEY-----\nnot base64\n",
    )
    .unwrap();
    std::fs::write(dir.join("broken.json"), "{\"keys\": [").unwrap();
    let config = |pem: &str, jwks: &str| {
        format!(
            r#"[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "http"
pool = "web"

[[pools]]
name = "web"

[[pools.backends]]
address = "127.0.0.1:8080"

[[jwt_providers]]
name = "pem"
issuer = "https://a.example/"
algorithms = ["RS256"]
public_key_files = ["{pem}"]

[[jwt_providers]]
name = "jwks"
issuer = "https://b.example/"
algorithms = ["ES256"]
jwks_file = "{jwks}"
"#
        )
    };
    let bad = write_config(&dir, "bad.toml", &config("garbage.pem", "broken.json"));
    let out = weir(&["check", "-c", bad.to_str().unwrap()]);
    let (stdout, stderr) = out_text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(!stdout.contains("valid"), "{stdout}");
    for (provider, file) in [("pem", "garbage.pem"), ("jwks", "broken.json")] {
        assert!(
            stderr.lines().any(|l| l.contains("error: jwt provider")
                && l.contains(&format!("{provider:?}"))
                && l.contains(file)),
            "{provider} names {file}: {stderr}"
        );
    }

    // A real public key and a real key set pass.
    let rsa = crate::jwt::keys::TestKey::new("RS256", "r");
    let ec = crate::jwt::keys::TestKey::new("ES256", "e");
    std::fs::write(dir.join("good.pem"), rsa.pem()).unwrap();
    std::fs::write(dir.join("good.json"), crate::jwt::keys::jwks(&[&ec])).unwrap();
    let good = write_config(&dir, "good.toml", &config("good.pem", "good.json"));
    let out = weir(&["check", "-c", good.to_str().unwrap()]);
    let (stdout, stderr) = out_text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("configuration is valid"), "{stdout}");
}

#[test]
fn check_lists_every_semantic_error_with_its_path() {
    let dir = TempDir::new("cli");
    let path = write_config(
        &dir,
        "bad.toml",
        r#"[[listeners]]
name = "front"
bind = "127.0.0.1:99999"
pool = "nope"
connect_timeout = "5"

[[pools]]
name = "db"
algorithm = "fastest"

[[pools.backends]]
address = "127.0.0.1:5432"
weight = 0

[pools.health_check]
type = "send_expect"
interval = "2s"
"#,
    );
    let out = weir(&["check", "-c", path.to_str().unwrap()]);
    let (stdout, stderr) = out_text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(!stdout.contains("valid"), "{stdout}");
    let expected = [
        "listeners[0].bind[0]",
        "listeners[0].pool",
        "listeners[0].connect_timeout",
        "pools[0].algorithm",
        "pools[0].backends[0].weight",
        "pools[0].health_check.expect",
    ];
    for field in expected {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&format!("error: {field}: "))),
            "{field} reported:\n{stderr}"
        );
    }
    assert!(
        stderr.contains(&format!("{} error(s)", expected.len())),
        "{stderr}"
    );
}

#[test]
fn check_reports_syntax_errors_with_line_and_column() {
    let dir = TempDir::new("cli");
    let path = write_config(
        &dir,
        "syntax.toml",
        "[[listeners]]\nname = \"front\"\npool = = \"db\"\n",
    );
    let out = weir(&["check", "-c", path.to_str().unwrap()]);
    let (stdout, stderr) = out_text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("{}:3:8:", path.display())),
        "line 3, column 8:\n{stderr}"
    );
}

#[test]
fn version_prints_the_package_version() {
    let out = weir(&["--version"]);
    let (stdout, _) = out_text(&out);
    assert!(out.status.success());
    assert_eq!(stdout.trim(), format!("weir {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn run_with_an_unresolvable_backend_exits_2_naming_it() {
    let dir = TempDir::new("cli");
    let text = good_config(
        "127.0.0.1:0",
        "127.0.0.1:0",
        "127.0.0.1:5432".parse().unwrap(),
    )
    .replace("\"127.0.0.1:5432\"", "\"db.invalid:5432\"");
    let path = write_config(&dir, "unresolvable.toml", &text);
    let out = weir(&["run", "-c", path.to_str().unwrap()]);
    let (stdout, stderr) = out_text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("pools[0].backends[0].address") && stderr.contains("db.invalid"),
        "{stderr}"
    );
}

fn refused(addr: SocketAddr) -> bool {
    matches!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

#[test]
fn run_with_a_bind_address_in_use_exits_2_and_leaves_nothing_bound() {
    // Held without SO_REUSEPORT: weir's bind must fail, not share it.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap();
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let first = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = TempDir::new("cli");
    let text = format!(
        r#"[admin]
address = "{admin}"

[[listeners]]
name = "first"
bind = "{first}"
pool = "p"

[[listeners]]
name = "second"
bind = "{taken}"
pool = "p"

[[pools]]
name = "p"

[[pools.backends]]
address = "127.0.0.1:5432"
"#
    );
    let path = write_config(&dir, "inuse.toml", &text);
    let out = weir(&["run", "-c", path.to_str().unwrap()]);
    let (stdout, stderr) = out_text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains(&taken.to_string()) && stderr.contains("second"),
        "names the listener and address: {stderr}"
    );
    assert!(refused(admin), "admin {admin} not left listening");
    assert!(refused(first), "listener {first} not left listening");
    // The holder still owns its port.
    let c = std::net::TcpStream::connect(taken).unwrap();
    held.set_nonblocking(false).unwrap();
    let (accepted, _) = held.accept().unwrap();
    assert_eq!(accepted.peer_addr().unwrap(), c.local_addr().unwrap());
}

/// A `weir run` child process; killed on drop if still running.
struct WeirProcess {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl WeirProcess {
    /// Starts `weir run -c config`, under `ulimit -n` when `fd_limit` is set.
    fn start(config: &std::path::Path, fd_limit: Option<u32>) -> WeirProcess {
        let mut cmd = match fd_limit {
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" run -c \"$1\""))
                    .arg(weir_bin())
                    .arg(config);
                c
            }
            None => {
                let mut c = Command::new(weir_bin());
                c.arg("run").arg("-c").arg(config);
                c
            }
        };
        let mut child = cmd
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weir run");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr pipe");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        WeirProcess { child, stderr }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until the admin listener answers /healthz (failing at once if
    /// the process exits).
    async fn wait_ready(&mut self, admin: SocketAddr) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            assert!(
                self.running(),
                "weir exited during start-up:\n{}",
                self.stderr()
            );
            if TcpStream::connect(admin).await.is_ok() {
                assert_eq!(http_get(admin, "/healthz").await.0, 200);
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "weir not ready within 20 s:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new(require("kill", "procps", &[]))
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }

    async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "weir did not exit within {within:?}:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for WeirProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_then_drains_and_exits_0_on_sigterm() {
    let backend = FakeBackend::start("b0", Behaviour::Greet).await;
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = TempDir::new("cli");
    let path = write_config(
        &dir,
        "run.toml",
        &good_config(&admin.to_string(), &listen.to_string(), backend.addr),
    );
    let mut weir = WeirProcess::start(&path, None);
    weir.wait_ready(admin).await;

    let mut s = TcpStream::connect(listen).await.unwrap();
    assert_eq!(read_line(&mut s).await, "b0");
    s.write_all(b"through the binary\n").await.unwrap();
    assert_eq!(read_line(&mut s).await, "through the binary");
    let text = http_get(admin, "/metrics").await.1;
    assert_eq!(
        metric_value(
            &text,
            "weir_listener_connections_accepted_total",
            &[("listener", "pg_front")]
        ),
        1.0
    );

    // SIGTERM with a connection open: new connections are refused, the open
    // one keeps working through the grace period (1 s), then weir exits 0.
    weir.signal("TERM");
    eventually(Duration::from_secs(5), "listener closed", || async {
        TcpStream::connect(listen).await.is_err()
    })
    .await;
    s.write_all(b"still here\n").await.unwrap();
    assert_eq!(read_line(&mut s).await, "still here");
    let status = weir.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0), "{}", weir.stderr());
    // The grace period ended the held connection: EOF.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(rest.is_empty());
    assert!(weir.stderr().contains("SIGTERM"), "{}", weir.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_loop_survives_fd_exhaustion() {
    let backend = FakeBackend::start("b0", Behaviour::Greet).await;
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = TempDir::new("cli");
    // A long fail_timeout: if weir blamed its own fd shortage on the backend,
    // the backend would stay down for the rest of the test.
    let text = good_config(&admin.to_string(), &listen.to_string(), backend.addr).replace(
        "algorithm = \"least_connections\"",
        "algorithm = \"least_connections\"\nfail_timeout = \"60s\"",
    );
    let path = write_config(&dir, "fd.toml", &text);
    const LIMIT: u32 = 64;
    let mut weir = WeirProcess::start(&path, Some(LIMIT));
    weir.wait_ready(admin).await;
    let idle_fds = weir.open_fds();
    assert!(idle_fds < LIMIT as usize / 2, "{idle_fds} fds at idle");

    // 60 clients at once: far more than 64 descriptors can carry (2 each).
    let mut clients = Vec::new();
    for _ in 0..60 {
        clients.push(
            TcpStream::connect(listen)
                .await
                .expect("kernel accepts into the backlog"),
        );
    }
    eventually(Duration::from_secs(20), "weir runs out of fds", || async {
        weir.stderr().contains("accept failed")
    })
    .await;
    assert!(weir.running(), "weir survived:\n{}", weir.stderr());
    // How many got their greeting (information only: no waiting).
    let served = clients
        .iter()
        .filter(|c| {
            let mut buf = [0u8; 3];
            matches!(c.try_read(&mut buf), Ok(3))
        })
        .count();
    drop(clients);

    // Every client is accepted in the end (the backlog drains once
    // descriptors come back), and the admin listener answers again.
    let text = scrape_until(admin, Duration::from_secs(30), |text| {
        let l = [("listener", "pg_front")];
        metric_value(text, "weir_listener_connections_accepted_total", &l) >= 60.0
            && metric_value(text, "weir_listener_connections_active", &l) == 0.0
    })
    .await;
    let exhausted = metric_value(
        &text,
        "weir_listener_accept_errors_total",
        &[("listener", "pg_front"), ("reason", "fd_exhausted")],
    );
    assert!(exhausted >= 1.0, "fd_exhausted counted: {exhausted}");
    eprintln!(
        "fd exhaustion: {idle_fds} fds at idle, {served} of 60 clients served, {exhausted} \
         fd_exhausted accept errors, backend connect errors {}, unavailable {}",
        metric_value(
            &text,
            "weir_backend_connect_errors_total",
            &[("backend", "db1"), ("reason", "other")]
        ),
        metric_value(
            &text,
            "weir_listener_backend_unavailable_total",
            &[("listener", "pg_front"), ("reason", "no_ready_backend")]
        ),
    );
    // weir's own shortage is not the backend's fault: the backend was never
    // marked down, so no client was turned away for want of one.
    let evidence = text
        .lines()
        .filter(|l| {
            !l.starts_with('#')
                && (l.contains("db1") || l.contains("unavailable") || l.contains("accept_errors"))
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        metric_value(
            &text,
            "weir_health_transitions_total",
            &[("backend", "db1"), ("to", "down")]
        ),
        0.0,
        "running out of fds in weir marked the backend down:\n{evidence}"
    );
    assert_eq!(
        metric_value(
            &text,
            "weir_listener_backend_unavailable_total",
            &[("listener", "pg_front"), ("reason", "no_ready_backend")]
        ),
        0.0,
        "clients were refused as if the backend were down:\n{evidence}"
    );
    assert_eq!(
        metric_value(&text, "weir_backend_up", &[("backend", "db1")]),
        1.0
    );

    // A new connection is served again.
    eventually(
        Duration::from_secs(5),
        "a new connection is served",
        || async {
            let Ok(mut s) = TcpStream::connect(listen).await else {
                return false;
            };
            read_line(&mut s).await == "b0"
        },
    )
    .await;
    assert!(weir.running());
    weir.signal("TERM");
    let status = weir.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0), "{}", weir.stderr());
}

/// Scrapes `/metrics` until `done` holds for the text (tolerating an admin
/// listener that cannot accept yet); returns that text.
async fn scrape_until(admin: SocketAddr, within: Duration, done: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + within;
    let mut last = String::new();
    loop {
        if let Ok(mut s) = TcpStream::connect(admin).await
            && s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.is_ok()
        {
            let mut buf = Vec::new();
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await
            {
                let text = String::from_utf8_lossy(&buf).into_owned();
                if done(&text) {
                    return text;
                }
                last = text;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "metrics never satisfied the condition within {within:?}; last scrape:\n{last}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
