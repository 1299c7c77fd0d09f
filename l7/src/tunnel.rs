//! HTTP/1.1 upgrades (WebSocket and others): recognising an upgrade
//! request, and on the backend's 101 joining the two upgraded connections
//! with a byte tunnel that keeps the client connection's limits.

use std::sync::Arc;

use http::header;
use http::{Response, Version};
use hyper::body::Incoming;

use crate::body::{ProxyBody, empty};
use crate::headers;

/// Where the connection that carried an upgrade finds the tunnel's task, so
/// it can wait for it: the tunnel then keeps the connection's slot under
/// `max_connections`, its drain guard and its idle and hard-stop limits.
#[derive(Debug, Clone, Default)]
pub struct TunnelSlot(pub Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>);

/// True for an HTTP/1.1 request asking to switch protocols (WebSocket…).
pub(crate) fn is_upgrade(parts: &http::request::Parts) -> bool {
    parts.version == Version::HTTP_11
        && parts.headers.contains_key(header::UPGRADE)
        && parts
            .headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Answers 101 to the client and joins the two upgraded connections with a
/// byte tunnel (half-close exact, like L4). The backend's in-flight slot is
/// held for the tunnel's life.
pub(crate) fn tunnel(
    mut resp: Response<Incoming>,
    client_side: hyper::upgrade::OnUpgrade,
    in_flight: weir_common::backend::InFlight,
    slot: Option<TunnelSlot>,
) -> Response<ProxyBody> {
    let backend_side = hyper::upgrade::on(&mut resp);
    let (mut parts, _) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, true);
    let task = tokio::spawn(async move {
        let _in_flight = in_flight;
        match tokio::try_join!(client_side, backend_side) {
            Ok((client, backend)) => {
                let mut client = hyper_util::rt::TokioIo::new(client);
                let mut backend = hyper_util::rt::TokioIo::new(backend);
                if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
                    tracing::debug!(error = %e, "upgraded connection ended with an error");
                }
            }
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });
    match slot.and_then(|s| s.0.lock().ok().map(|mut guard| guard.replace(task))) {
        Some(None) => {}
        // No connection is waiting for it (or a stale one): it still ends
        // with either side; abort nothing.
        _ => tracing::debug!("upgrade tunnel without a connection slot"),
    }
    Response::from_parts(parts, empty())
}
