//! User-space forwarding: the fallback when splice is off or unavailable.
//!
//! The buffer is allocated for a burst and freed when the source would
//! block, so an idle connection holds no buffer.

use std::io;

use tokio::net::TcpStream;

use super::Burst;

const BUFFER: usize = 16 * 1024;

/// Moves everything `src` has now into `dst`, until `src` would block or EOF.
pub(super) async fn burst(
    src: &TcpStream,
    dst: &TcpStream,
    on_bytes: &mut (dyn FnMut(u64) + Send),
) -> io::Result<Burst> {
    let mut buf = vec![0u8; BUFFER];
    let mut moved = 0u64;
    loop {
        let n = match src.try_read(&mut buf) {
            Ok(0) => {
                return Ok(Burst {
                    bytes: moved,
                    eof: true,
                });
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Ok(Burst {
                    bytes: moved,
                    eof: false,
                });
            }
            Err(e) => return Err(e),
        };
        let mut written = 0;
        while written < n {
            dst.writable().await?;
            match dst.try_write(&buf[written..n]) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(w) => {
                    written += w;
                    moved += w as u64;
                    on_bytes(w as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}
