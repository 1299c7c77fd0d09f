//! The gateway's pooled connections to backends: kept alive and reused
//! across requests and clients, not reused after a response cut short, and
//! replaced transparently when the backend closed an idle one.

use crate::support::Weir;
use crate::support::fake_http::{FakeHttp, get, req, try_send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_to_a_backend_are_reused() {
    let backend = FakeHttp::start("b0").await;
    let weir = Weir::start(&Weir::http("round_robin", "", ""), &[backend.addr]).await;
    // Each `get` is a new client connection; one backend connection serves
    // them all, one after another.
    for i in 0..30 {
        assert_eq!(get(weir.addr, &format!("/r{i}")).await.status, 200);
    }
    assert_eq!(backend.requests(), 30);
    assert_eq!(
        backend.connections(),
        1,
        "sequential requests share one backend connection"
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_cut_short_does_not_return_its_connection() {
    let backend = FakeHttp::start("b0").await;
    let weir = Weir::start(&Weir::http("round_robin", "", ""), &[backend.addr]).await;
    assert_eq!(get(weir.addr, "/first").await.status, 200);
    assert_eq!(backend.connections(), 1);
    // The backend dies mid-body on its connection: the client sees a
    // failed body, and the next request needs (and gets) a new connection.
    assert!(
        try_send(weir.addr, req("GET", "/die-after-headers"))
            .await
            .is_err()
    );
    for _ in 0..3 {
        assert_eq!(get(weir.addr, "/after").await.status, 200);
    }
    assert_eq!(backend.connections(), 2, "one new connection, then reused");
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_the_backend_closed_is_replaced_without_an_error() {
    let backend = FakeHttp::start("b0").await;
    let weir = Weir::start(&Weir::http("round_robin", "", ""), &[backend.addr]).await;
    assert_eq!(get(weir.addr, "/warm").await.status, 200);
    // The backend goes away with weir's idle connection and comes back on
    // the same port: the pooled connection is dead, whether or not weir has
    // noticed yet. Either way no client sees an error.
    backend.stop();
    let addr = backend.addr;
    drop(backend);
    let backend = FakeHttp::start_at(addr, "b0-again").await;
    for _ in 0..3 {
        let r = get(weir.addr, "/x").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.echo().id(), "b0-again");
    }
    assert_eq!(backend.connections(), 1);
    weir.stop().await;
}
