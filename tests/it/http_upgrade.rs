//! Upgrades through the HTTP gateway: a real WebSocket client and server.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Weir, eventually};

/// A WebSocket server that answers every text message with `{id}: {text}`.
async fn ws_backend(id: &'static str) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let reply = match msg {
                        Message::Text(t) => Message::text(format!("{id}: {t}")),
                        Message::Close(_) => return,
                        _ => continue,
                    };
                    if ws.send(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_passes_through_the_gateway() {
    let backend = ws_backend("b0").await;
    let text = "[runtime]\nshutdown_grace = \"2s\"\n\n[[listeners]]\nname = \"{listener}\"\nbind = \"127.0.0.1:0\"\nprotocol = \"http\"\naccess_log = \"off\"\n\n[[listeners.routes]]\npath_prefix = \"/ws\"\npool = \"{pool}\"\n\n[[pools]]\nname = \"{pool}\"\n{backends}";
    let weir = Weir::start(text, &[backend]).await;
    let url = format!("ws://{}/ws/chat", weir.addr);
    let (mut ws, resp) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("handshake in time")
    .expect("handshake through weir");
    assert_eq!(resp.status(), 101);
    for i in 0..5 {
        ws.send(Message::text(format!("hello {i}"))).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("reply")
            .unwrap()
            .unwrap();
        assert_eq!(reply, Message::text(format!("b0: hello {i}")));
    }
    // A large message crosses the tunnel intact.
    let big = "x".repeat(1 << 20);
    ws.send(Message::text(big.clone())).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("reply")
        .unwrap()
        .unwrap();
    assert_eq!(reply.into_text().unwrap().len(), big.len() + 4);
    ws.close(None).await.unwrap();
    drop(ws);
    eventually(
        Duration::from_secs(5),
        "the upgraded request is logged as 101",
        || async {
            weir.metric(
                "weir_http_requests_total",
                &[("listener", &weir.listener), ("class", "1xx")],
            )
            .await
                == 1.0
        },
    )
    .await;
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_websocket_keeps_its_connection_slot() {
    let backend = ws_backend("b0").await;
    let text = "[runtime]\nshutdown_grace = \"1s\"\n\n[[listeners]]\nname = \"{listener}\"\nbind = \"127.0.0.1:0\"\nprotocol = \"http\"\naccess_log = \"off\"\nmax_connections = 1\n\n[[listeners.routes]]\npath_prefix = \"/ws\"\npool = \"{pool}\"\n\n[[pools]]\nname = \"{pool}\"\n{backends}";
    let weir = Weir::start(text, &[backend]).await;
    let url = format!("ws://{}/ws", weir.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.clone())
        .await
        .expect("first websocket");
    ws.send(Message::text("one")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("b0: one"));
    // The tunnel still holds the only slot: a second client is refused.
    let second = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(url.clone()),
    )
    .await;
    assert!(
        matches!(second, Ok(Err(_))),
        "second connection refused while the tunnel is open"
    );
    assert!(
        weir.listener_metric(
            "weir_listener_connections_rejected_total",
            &[("reason", "max_connections")]
        )
        .await
            >= 1.0
    );
    // Closing the tunnel frees the slot.
    ws.close(None).await.unwrap();
    drop(ws);
    eventually(Duration::from_secs(5), "slot freed", || async {
        weir.listener_metric("weir_listener_connections_active", &[])
            .await
            == 0.0
    })
    .await;
    let (mut again, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("a new websocket after the first closed");
    again.send(Message::text("two")).await.unwrap();
    assert_eq!(
        again.next().await.unwrap().unwrap(),
        Message::text("b0: two")
    );
    weir.stop().await;
}
