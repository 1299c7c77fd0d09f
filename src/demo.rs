//! `weir demo`: the main job on an embedded default, with nothing installed.
//!
//! Starts three tiny TCP backends on loopback that greet each connection
//! with their name and echo lines back, puts them behind an L4 listener
//! with health checks, and serves metrics on the admin listener.

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Names of the demo backends.
pub const BACKENDS: [&str; 3] = ["alpha", "bravo", "charlie"];

/// Starts one demo backend on an ephemeral loopback port: it writes
/// `hello from NAME` on connect, then answers each line with `NAME: line`.
pub async fn spawn_backend(name: &'static str) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                if write
                    .write_all(format!("hello from {name}\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if write
                        .write_all(format!("{name}: {line}\r\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// The embedded configuration for the demo, given the backends' addresses.
pub fn config_text(listen: SocketAddr, admin: SocketAddr, backends: &[SocketAddr]) -> String {
    let mut text = format!(
        r#"# weir demo: an L4 listener in front of three built-in backends.
[admin]
address = "{admin}"

[runtime]
shutdown_grace = "2s"

[[listeners]]
name = "demo"
bind = "{listen}"
pool = "demo"
idle_timeout = "5m"

[[pools]]
name = "demo"
algorithm = "least_connections"

[pools.health_check]
type = "tcp"
interval = "1s"
rise = 1
fall = 2
"#
    );
    for (name, addr) in BACKENDS.iter().zip(backends) {
        text.push_str(&format!(
            "\n[[pools.backends]]\nname = \"{name}\"\naddress = \"{addr}\"\n"
        ));
    }
    text
}

/// The text printed once the demo is up.
pub fn banner(listen: SocketAddr, admin: SocketAddr, backends: &[SocketAddr]) -> String {
    let list: Vec<String> = BACKENDS
        .iter()
        .zip(backends)
        .map(|(n, a)| format!("{n} {a}"))
        .collect();
    format!(
        "weir demo is running: an L4 TCP listener in front of 3 backends ({}).\n\
         \n\
         \x20 listener  {listen}  (least_connections, health-checked)\n\
         \x20 metrics   http://{admin}/metrics\n\
         \n\
         Try, in another terminal:\n\
         \x20 nc {ip} {port}        # greeted by a backend; type a line and it echoes\n\
         \x20 for i in 1 2 3; do exec 3<>/dev/tcp/{ip}/{port}; head -1 <&3; done   # bash, no nc needed\n\
         \x20 curl -s http://{admin}/metrics | grep -E 'weir_(backend|listener)_'\n\
         \n\
         Ctrl-C stops it (open connections get 2 s to finish).\n",
        list.join(", "),
        ip = listen.ip(),
        port = listen.port(),
    )
}
