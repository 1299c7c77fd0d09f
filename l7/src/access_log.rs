//! The access log: one JSON object per request, written when the response
//! body ends (so bytes and duration are the real ones).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weir_config::http::AccessLog;

/// One request, as logged.
#[derive(Debug)]
pub struct Entry<'a> {
    /// Client address.
    pub client: SocketAddr,
    /// Method.
    pub method: &'a str,
    /// Host (lowercase, no port).
    pub host: &'a str,
    /// Path (no query: queries may carry secrets).
    pub path: &'a str,
    /// Status sent.
    pub status: u16,
    /// Response body bytes sent.
    pub bytes: u64,
    /// From request to the end of the response body.
    pub duration: Duration,
    /// Route name, or `none`.
    pub route: &'a str,
    /// Backend name, when one was tried.
    pub backend: Option<&'a str>,
    /// Request id.
    pub request_id: &'a str,
    /// False when the body was cut short (client gone, backend died, timeout).
    pub complete: bool,
}

/// Where log lines go.
#[derive(Debug, Clone)]
pub enum AccessLogger {
    /// Nowhere.
    Off,
    /// Standard output.
    Stdout,
    /// An appended file.
    File(Arc<Mutex<File>>),
}

impl AccessLogger {
    /// Opens the configured destination.
    pub fn open(config: &AccessLog) -> io::Result<Self> {
        Ok(match config {
            AccessLog::Off => Self::Off,
            AccessLog::Stdout => Self::Stdout,
            AccessLog::File(path) => Self::File(Arc::new(Mutex::new(
                OpenOptions::new().create(true).append(true).open(path)?,
            ))),
        })
    }

    /// Whether lines go nowhere (callers then skip making them).
    pub fn is_off(&self) -> bool {
        matches!(self, Self::Off)
    }

    /// Writes one line; a failed write is dropped (never fails a request).
    pub fn write(&self, e: &Entry<'_>) {
        if matches!(self, Self::Off) {
            return;
        }
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut line = serde_json::json!({
            "time": time,
            "client": e.client.to_string(),
            "method": e.method,
            "host": e.host,
            "path": e.path,
            "status": e.status,
            "bytes": e.bytes,
            "duration_ms": e.duration.as_secs_f64() * 1000.0,
            "route": e.route,
            "backend": e.backend,
            "request_id": e.request_id,
            "complete": e.complete,
        })
        .to_string();
        line.push('\n');
        match self {
            Self::Off => {}
            Self::Stdout => {
                let _ = io::stdout().lock().write_all(line.as_bytes());
            }
            Self::File(file) => {
                if let Ok(mut f) = file.lock() {
                    let _ = f.write_all(line.as_bytes());
                }
            }
        }
    }
}
