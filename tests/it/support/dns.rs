//! Real DNS peers: dnsmasq servers on loopback, and the dig and dnsperf clients.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::peers::{TempDir, poll, require, run_bounded, stop_child, tail};

/// The name every test server answers, each with its own address.
pub const NAME: &str = "who.weir.test";

/// A dnsmasq child answering `NAME` with `answer`, on a free loopback port.
pub struct DnsServer {
    /// Its address (UDP).
    pub addr: SocketAddr,
    /// What it answers for `NAME`.
    pub answer: String,
    child: Option<Child>,
    dir: TempDir,
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind udp")
        .port()
}

impl DnsServer {
    /// Starts dnsmasq answering `NAME` with `answer` and waits until it does.
    pub fn start(answer: &str) -> DnsServer {
        let mut server = DnsServer {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            answer: answer.to_owned(),
            child: None,
            dir: TempDir::new("dnsmasq"),
        };
        for _ in 0..5 {
            server.addr.set_port(free_udp_port());
            if server.spawn() {
                return server;
            }
        }
        panic!(
            "dnsmasq did not start:\n{}",
            tail(&server.dir.join("dnsmasq.log"), 20)
        );
    }

    fn spawn(&mut self) -> bool {
        let bin = require("dnsmasq", "dnsmasq-base", &["/usr/sbin"]);
        let log = std::fs::File::create(self.dir.join("dnsmasq.log")).expect("log file");
        let child = Command::new(bin)
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--user=root",
                "--pid-file=",
                "--log-facility=-",
            ])
            .arg(format!("--port={}", self.addr.port()))
            .arg(format!("--address=/{NAME}/{}", self.answer))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn dnsmasq");
        self.child = Some(child);
        let addr = self.addr;
        let answer = self.answer.clone();
        if poll(Duration::from_secs(10), || {
            dig(addr).as_deref() == Some(answer.as_str())
        }) {
            return true;
        }
        self.stop();
        false
    }

    /// Stops the server; its port then answers with ICMP port unreachable.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, "TERM", Duration::from_secs(5));
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One `dig` lookup of `NAME` (1 s per try, two tries so one datagram late
/// on a loaded machine is not a failure): the answer, or None.
pub fn dig(server: SocketAddr) -> Option<String> {
    let bin = require("dig", "bind9-dnsutils", &[]);
    let mut cmd = Command::new(bin);
    cmd.args([
        "+short",
        "+time=1",
        "+tries=2",
        "-p",
        &server.port().to_string(),
    ])
    .arg(format!("@{}", server.ip()))
    .arg(NAME)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let out = run_bounded(cmd, None, Duration::from_secs(10));
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !text.is_empty() && !text.starts_with(';')).then_some(text)
}

/// A DNS query datagram for `NAME`/A with transaction id `id` (for checks).
pub fn query(id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in NAME.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Hex digits of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// dnsperf's summary figures.
#[derive(Debug)]
pub struct Perf {
    /// Queries sent.
    pub sent: u64,
    /// Queries answered.
    pub completed: u64,
    /// Queries lost.
    pub lost: u64,
    /// The whole report.
    pub report: String,
}

/// Runs dnsperf against `server` for `seconds` at most `qps` queries/s.
pub fn dnsperf(server: SocketAddr, seconds: u32, qps: u32, dir: &TempDir) -> Perf {
    let bin = require("dnsperf", "dnsperf", &[]);
    let data = dir.join("queries.txt");
    std::fs::write(&data, format!("{NAME} A\n")).expect("write queries");
    let mut cmd = Command::new(bin);
    cmd.args([
        "-s",
        &server.ip().to_string(),
        "-p",
        &server.port().to_string(),
    ])
    .args([
        "-l",
        &seconds.to_string(),
        "-Q",
        &qps.to_string(),
        "-c",
        "4",
        "-t",
        "2",
    ])
    .arg("-d")
    .arg(&data)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let out = run_bounded(cmd, None, Duration::from_secs(u64::from(seconds) + 30));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dnsperf failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| -> u64 {
        report
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|rest| {
                rest.trim_start_matches(':')
                    .split_whitespace()
                    .next()
                    .map(str::to_owned)
            })
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {name:?} in dnsperf output:\n{report}"))
    };
    Perf {
        sent: field("Queries sent"),
        completed: field("Queries completed"),
        lost: field("Queries lost"),
        report,
    }
}
