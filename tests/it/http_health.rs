//! Active HTTP health checks (`type = "http"`) against small fake HTTP
//! backends whose `/healthz` answer is switched at run time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::support::fake::{Behaviour, FakeBackend};
use crate::support::{Weir, eventually, http_get};

/// A fake HTTP/1.1 backend: `/healthz` answers `200 OK` or `503` as
/// `healthy` says; any other path answers `200` with the backend's name as
/// the body. Every response closes the connection.
struct HttpBackend {
    addr: SocketAddr,
    healthy: Arc<AtomicBool>,
    /// `/healthz` requests answered 200 and 503 so far.
    ok_answers: Arc<AtomicUsize>,
    failed_answers: Arc<AtomicUsize>,
    /// The head of the last `/healthz` request.
    last_probe: Arc<Mutex<String>>,
    task: JoinHandle<()>,
}

impl HttpBackend {
    async fn start(name: &'static str) -> HttpBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let healthy = Arc::new(AtomicBool::new(true));
        let ok_answers = Arc::new(AtomicUsize::new(0));
        let failed_answers = Arc::new(AtomicUsize::new(0));
        let last_probe = Arc::new(Mutex::new(String::new()));
        let state = (
            healthy.clone(),
            ok_answers.clone(),
            failed_answers.clone(),
            last_probe.clone(),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let (healthy, ok, failed, last) = state;
                    let _ = serve(stream, name, &healthy, &ok, &failed, &last).await;
                });
            }
        });
        HttpBackend {
            addr,
            healthy,
            ok_answers,
            failed_answers,
            last_probe,
            task,
        }
    }

    fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut stream: TcpStream,
    name: &str,
    healthy: &AtomicBool,
    ok: &AtomicUsize,
    failed: &AtomicUsize,
    last: &Mutex<String>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if n == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head.split(' ').nth(1).unwrap_or_default();
    let reply = if target == "/healthz" {
        *last.lock().unwrap() = head.clone();
        if healthy.load(Ordering::SeqCst) {
            ok.fetch_add(1, Ordering::SeqCst);
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n".to_owned()
        } else {
            failed.fetch_add(1, Ordering::SeqCst);
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_owned()
        }
    } else {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
            name.len()
        )
    };
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

fn http_checked(check: &str) -> String {
    Weir::simple(
        "round_robin",
        "",
        &format!("[pools.health_check]\ntype = \"http\"\npath = \"/healthz\"\n{check}\n"),
    )
}

/// Which backend answered a request sent through weir.
async fn who(weir: &Weir) -> String {
    let (status, body) = http_get(weir.addr, "/who").await;
    assert_eq!(status, 200, "request through weir: {body:?}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_takes_a_backend_down_after_fall_and_200_brings_it_back_after_rise() {
    let b0 = HttpBackend::start("b0").await;
    let b1 = HttpBackend::start("b1").await;
    let text = http_checked("interval = \"100ms\"\ntimeout = \"1s\"\nrise = 2\nfall = 3");
    let weir = Weir::start(&text, &[b0.addr, b1.addr]).await;
    weir.wait_backends_up(2, Duration::from_secs(5)).await;

    // The probe is a minimal HTTP/1.1 request with the backend as Host.
    let probe = b0.last_probe.lock().unwrap().clone();
    assert_eq!(
        probe,
        format!(
            "GET /healthz HTTP/1.1\r\nHost: {}\r\nUser-Agent: weir-health\r\nConnection: close\r\n\r\n",
            b0.addr
        )
    );
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(who(&weir).await);
    }
    assert!(
        seen.iter().any(|w| w == "b0") && seen.iter().any(|w| w == "b1"),
        "both backends take traffic: {seen:?}"
    );

    b0.set_healthy(false);
    eventually(Duration::from_secs(5), "b0 marked down", || async {
        weir.backend_metric("weir_backend_up", "b0", &[]).await == 0.0
    })
    .await;
    assert!(
        b0.failed_answers.load(Ordering::SeqCst) >= 3,
        "down only after fall = 3 failed probes"
    );
    assert!(
        weir.backend_metric("weir_health_checks_total", "b0", &[("result", "failure")])
            .await
            >= 3.0
    );
    assert_eq!(weir.backend_metric("weir_backend_up", "b1", &[]).await, 1.0);
    for _ in 0..10 {
        assert_eq!(who(&weir).await, "b1", "all traffic on the healthy backend");
    }

    let ok_before = b0.ok_answers.load(Ordering::SeqCst);
    b0.set_healthy(true);
    eventually(Duration::from_secs(5), "b0 back up", || async {
        weir.backend_metric("weir_backend_up", "b0", &[]).await == 1.0
    })
    .await;
    assert!(
        b0.ok_answers.load(Ordering::SeqCst) - ok_before >= 2,
        "up only after rise = 2 passed probes"
    );
    let mut seen_b0 = false;
    for _ in 0..4 {
        seen_b0 |= who(&weir).await == "b0";
    }
    assert!(seen_b0, "traffic returns to b0");
    assert_eq!(
        weir.backend_metric("weir_health_transitions_total", "b0", &[("to", "down")])
            .await,
        1.0
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_does_not_speak_http_or_answers_outside_the_range_stays_down() {
    let web = HttpBackend::start("web").await;
    // Writes "b1\n" on connect: no HTTP status line.
    let not_http = FakeBackend::start("b1", Behaviour::Greet).await;
    let text = http_checked(
        "interval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1\nhost = \"health.example\"",
    );
    let weir = Weir::start(&text, &[web.addr, not_http.addr]).await;
    weir.wait_backends_up(1, Duration::from_secs(5)).await;
    assert!(
        web.last_probe
            .lock()
            .unwrap()
            .contains("\r\nHost: health.example\r\n"),
        "the configured Host is sent"
    );
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

    // 200 is not within expect_status = "204": never up.
    let text = http_checked(
        "interval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1\nexpect_status = \"204\"",
    );
    let weir = Weir::start(&text, &[web.addr]).await;
    eventually(
        Duration::from_secs(5),
        "three failed probes of b0",
        || async {
            weir.backend_metric("weir_health_checks_total", "b0", &[("result", "failure")])
                .await
                >= 3.0
        },
    )
    .await;
    assert_eq!(weir.backend_metric("weir_backend_up", "b0", &[]).await, 0.0);
    weir.stop().await;
}
