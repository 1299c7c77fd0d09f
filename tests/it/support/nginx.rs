//! A real nginx (Debian `nginx`) as an HTTP/1.1 backend on loopback.
//!
//! nginx runs as a child process (`daemon off`, one worker) on a free
//! 127.0.0.1 port, with its config, pid file, logs and temp paths in its own
//! temporary directory; readiness is polled with a deadline, and `Drop` stops
//! it (SIGQUIT, SIGKILL after a few seconds) and removes the directory.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::peers::{TempDir, free_port, poll, require, stop_child, tail};

/// The body of `GET /` (and any path but `/big`).
pub const OK_BODY: &str = "nginx-ok\n";

/// The size of the body of `GET /big` (a static file).
pub const BIG_LEN: usize = 256 * 1024;

/// The byte at offset `i` of `/big`'s body.
pub fn big_byte(i: usize) -> u8 {
    b'a' + (i % 26) as u8
}

/// nginx.conf, with `{user}`, `{dir}` (the temp dir) and `{addr}` filled in.
const CONFIG: &str = r#"{user}daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;

events {
    worker_connections 512;
}

http {
    access_log off;
    default_type text/plain;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 100000;

    server {
        listen {addr};

        location / {
            return 200 "nginx-ok\n";
        }

        location = /big {
            alias {dir}/big;
            default_type application/octet-stream;
        }
    }
}
"#;

/// An nginx child serving `OK_BODY` on `/` and `BIG_LEN` bytes on `/big`.
#[derive(Debug)]
pub struct Nginx {
    /// Its address (127.0.0.1, never port 80).
    pub addr: SocketAddr,
    child: Option<Child>,
    dir: TempDir,
}

impl Nginx {
    /// Starts nginx on a free port and waits until `GET /` answers.
    pub fn start() -> Nginx {
        let dir = TempDir::new("nginx");
        let big: Vec<u8> = (0..BIG_LEN).map(big_byte).collect();
        std::fs::write(dir.join("big"), big).expect("write nginx /big file");
        let mut nginx = Nginx {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child: None,
            dir,
        };
        // The port is picked before nginx binds it: retry if someone else won the race.
        for _ in 0..5 {
            nginx.addr.set_port(free_port());
            if nginx.try_spawn() {
                return nginx;
            }
        }
        panic!(
            "nginx did not start on any of 5 free ports:\n{}",
            tail(&nginx.dir.join("error.log"), 20)
        );
    }

    /// The config for `self.addr`, everything nginx writes kept in the temp dir.
    fn config(&self) -> String {
        let d = self.dir.path().display();
        // As root, nginx would switch its worker to `nobody`; keep root so the
        // worker can read the temp dir (the directive is ignored otherwise).
        let as_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let user = if as_root { "user root root;\n" } else { "" };
        CONFIG
            .replace("{user}", user)
            .replace("{dir}", &d.to_string())
            .replace("{addr}", &self.addr.to_string())
    }

    /// Spawns on `self.addr`; true once `GET /` answers `OK_BODY`, false
    /// (and stopped) if it exits or stays silent for 20 s.
    fn try_spawn(&mut self) -> bool {
        let bin = require("nginx", "nginx", &["/usr/sbin"]);
        let conf = self.dir.join("nginx.conf");
        std::fs::write(&conf, self.config()).expect("write nginx.conf");
        let log = std::fs::File::create(self.dir.join("stderr.log")).expect("nginx stderr log");
        let mut child = Command::new(bin)
            // -p and -e keep nginx off /var/log/nginx and /etc/nginx entirely.
            .arg("-p")
            .arg(self.dir.path())
            .arg("-e")
            .arg(self.dir.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn nginx");
        let addr = self.addr;
        let ready = poll(Duration::from_secs(20), || {
            matches!(child.try_wait(), Ok(None)) && get(addr, "/").is_some_and(|b| b == OK_BODY)
        });
        if ready {
            self.child = Some(child);
        } else {
            stop_child(&mut child, "QUIT", Duration::from_secs(5));
            eprintln!(
                "nginx on {addr} not ready:\n{}\n{}",
                tail(&self.dir.join("stderr.log"), 10),
                tail(&self.dir.join("error.log"), 10)
            );
        }
        ready
    }

    /// The tail of its error log (for failure messages).
    pub fn error_log(&self) -> String {
        tail(&self.dir.join("error.log"), 20)
    }

    /// Stops nginx: graceful (SIGQUIT), SIGKILL after 5 s.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, "QUIT", Duration::from_secs(5));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One bounded HTTP/1.0 `GET path` on a fresh connection: the body of a 200,
/// or None.
pub fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: nginx\r\n\r\n").as_bytes())
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200 ").then(|| body.to_owned())
}
