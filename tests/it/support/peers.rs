//! Real peers (redis-server, PostgreSQL, promtool) started by tests on loopback.
//!
//! Every peer runs as a child process on a free 127.0.0.1 port, in its own
//! temporary directory; readiness is polled with a deadline (never a fixed
//! sleep), and `Drop` stops the process and removes the directory. A missing
//! peer binary fails the test with the Debian package to install.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Finds a peer's executable on PATH or in `extra_dirs`; panics with the
/// Debian package to install when it is missing (a missing peer is a failed
/// test, never a silent skip).
pub fn require(bin: &str, package: &str, extra_dirs: &[&str]) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs = path
        .split(':')
        .map(PathBuf::from)
        .chain(extra_dirs.iter().map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(bin);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("`{bin}` not found: install the Debian package `{package}` (.ci/run does)");
}

/// `promtool` (Debian package `prometheus`).
pub fn promtool() -> PathBuf {
    require("promtool", "prometheus", &[])
}

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh, uniquely named directory.
    pub fn new(prefix: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "weir-{prefix}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir(&path).expect("create temp dir");
        TempDir { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A loopback port nothing listens on right now (bind port 0, read it back,
/// close). For peers that cannot be told to pick their own port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Polls `check` every 20 ms until it returns true or `within` passes;
/// returns whether it succeeded.
pub fn poll(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last `n` lines of a log file (for failure messages).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Stops a child: `signal` first (by pid, through kill(1)), SIGKILL if it has
/// not exited within `within`; always reaps it.
pub fn stop_child(child: &mut Child, signal: &str, within: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !poll(within, || matches!(child.try_wait(), Ok(Some(_)))) {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Sends one inline `PING` on a fresh connection to `addr`; true on `+PONG`.
pub fn redis_ping(addr: SocketAddr) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// Runs `redis-cli -h 127.0.0.1 -p PORT ARGS…` with `stdin` on its input,
/// bounded to 30 s.
pub fn redis_cli(port: u16, args: &[&str], stdin: Option<&str>) -> Output {
    let cli = require("redis-cli", "redis-tools", &[]);
    let mut cmd = Command::new(cli);
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    run_bounded(cmd, stdin, Duration::from_secs(30))
}

/// Runs a command to completion with optional stdin, killing it after `within`.
pub fn run_bounded(mut cmd: Command, stdin: Option<&str>, within: Duration) -> Output {
    use std::io::Write as _;
    let what = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(text.as_bytes());
    }
    // Read the pipes on threads so a chatty child never blocks on a full pipe.
    let out = child.stdout.take().map(|mut o| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = std::io::Read::read_to_end(&mut o, &mut v);
            v
        })
    });
    let err = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = std::io::Read::read_to_end(&mut e, &mut v);
            v
        })
    });
    let finished = poll(within, || matches!(child.try_wait(), Ok(Some(_))));
    if !finished {
        let _ = child.kill();
    }
    let status = child.wait().expect("wait for child");
    let stdout = out
        .map(|t| t.join().unwrap_or_default())
        .unwrap_or_default();
    let stderr = err
        .map(|t| t.join().unwrap_or_default())
        .unwrap_or_default();
    assert!(
        finished,
        "{what} did not finish within {within:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    Output {
        status,
        stdout,
        stderr,
    }
}

/// A redis-server child on a loopback port, without persistence.
#[derive(Debug)]
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl RedisServer {
    /// Starts redis-server on a free port and waits until it answers PING.
    pub fn start() -> RedisServer {
        let mut server = RedisServer {
            port: 0,
            child: None,
            dir: TempDir::new("redis"),
        };
        // The port is picked before redis binds it: retry if someone else won the race.
        for _ in 0..5 {
            server.port = free_port();
            if server.try_spawn() {
                return server;
            }
        }
        panic!(
            "redis-server did not start on any of 5 free ports:\n{}",
            tail(&server.dir.join("redis.log"), 20)
        );
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the server (SIGKILL: a crash, not a goodbye) and reaps it; its
    /// port then refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and waits until it answers PING.
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.try_spawn(),
            "redis-server did not restart on port {}:\n{}",
            self.port,
            tail(&self.dir.join("redis.log"), 20)
        );
    }

    /// Spawns on `self.port`; true once it answers PING, false (and reaped) if
    /// it exits or stays silent for 20 s.
    fn try_spawn(&mut self) -> bool {
        let bin = require("redis-server", "redis-server", &[]);
        let log = File::create(self.dir.join("redis.log")).expect("redis log file");
        let child = Command::new(bin)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(["--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn redis-server");
        let mut child = child;
        let addr = self.addr();
        let ready = poll(Duration::from_secs(20), || {
            matches!(child.try_wait(), Ok(None)) && redis_ping(addr)
        });
        if ready {
            self.child = Some(child);
        } else {
            let _ = child.kill();
            let _ = child.wait();
        }
        ready
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The uid and gid of a local account, from /etc/passwd.
fn account(name: &str) -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() > 3 && fields[0] == name {
            if let (Ok(uid), Ok(gid)) = (fields[2].parse(), fields[3].parse()) {
                return (uid, gid);
            }
        }
    }
    panic!("no `{name}` account: install the Debian package `postgresql` (it creates it)");
}

/// The directory holding PostgreSQL's server binaries (initdb, postgres).
fn pg_bindir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    // Newest major version first.
    dirs.sort_by_key(|d| {
        std::cmp::Reverse(
            d.parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(0),
        )
    });
    let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let refs: Vec<&str> = dirs.iter().map(String::as_str).collect();
    let initdb = require("initdb", "postgresql", &refs);
    initdb
        .parent()
        .expect("initdb has a directory")
        .to_path_buf()
}

/// A throw-away PostgreSQL cluster on a loopback port: trust auth, user
/// `postgres`, database `postgres` holding the pgbench tables (scale 1).
#[derive(Debug)]
pub struct Postgres {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl Postgres {
    /// initdb, start on a free port (127.0.0.1 only, socket in the temp dir,
    /// fsync off), wait for `pg_isready`, then `pgbench -i -s 1`.
    pub fn start() -> Postgres {
        let bindir = pg_bindir();
        let (uid, gid) = account("postgres");
        let dir = TempDir::new("pg");
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown pg temp dir");
        let data = dir.join("data");
        let mut initdb = Command::new(bindir.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"])
            .current_dir(dir.path())
            .uid(uid)
            .gid(gid)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = run_bounded(initdb, None, Duration::from_secs(120));
        assert!(
            out.status.success(),
            "initdb failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        let mut pg = Postgres {
            port: 0,
            child: None,
            dir,
        };
        let mut started = false;
        for _ in 0..5 {
            pg.port = free_port();
            if pg.try_spawn(&bindir, uid, gid) {
                started = true;
                break;
            }
        }
        assert!(
            started,
            "postgres did not start:\n{}",
            tail(&pg.dir.join("postgres.log"), 30)
        );

        let pgbench = require("pgbench", "postgresql-client", &[]);
        let mut init = Command::new(pgbench);
        init.args(["-i", "-s", "1", "-q", "-h", "127.0.0.1", "-U", "postgres"])
            .args(["-p", &pg.port.to_string(), "postgres"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = run_bounded(init, None, Duration::from_secs(120));
        assert!(
            out.status.success(),
            "pgbench -i failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        pg
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Spawns the postmaster on `self.port`; true once `pg_isready` says it
    /// accepts connections, false (and stopped) if it exits or stays
    /// unready for 60 s.
    fn try_spawn(&mut self, bindir: &Path, uid: u32, gid: u32) -> bool {
        let log = File::create(self.dir.join("postgres.log")).expect("postgres log file");
        std::os::unix::fs::chown(self.dir.join("postgres.log"), Some(uid), Some(gid))
            .expect("chown postgres log");
        let mut child = Command::new(bindir.join("postgres"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.path().display()
            ))
            .args(["-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"])
            .args(["-c", "shared_buffers=16MB"])
            .args(["-c", "max_connections=40"])
            .current_dir(self.dir.path())
            .uid(uid)
            .gid(gid)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn postgres");
        let isready = require("pg_isready", "postgresql-client", &[]);
        let port = self.port.to_string();
        let ready = poll(Duration::from_secs(60), || {
            matches!(child.try_wait(), Ok(None))
                && Command::new(&isready)
                    .args(["-q", "-h", "127.0.0.1", "-p", &port, "-U", "postgres"])
                    .args(["-t", "2"])
                    .stdin(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
        });
        if ready {
            self.child = Some(child);
        } else {
            stop_child(&mut child, "QUIT", Duration::from_secs(5));
        }
        ready
    }

    /// Stops the cluster (fast shutdown, SIGKILL after 15 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, "INT", Duration::from_secs(15));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
