//! User-space forwarding: the fallback when splice is off or unavailable.
//!
//! The buffer is allocated for a burst and freed when the source would
//! block, so an idle connection holds no buffer.

use std::io;

use tokio::net::TcpStream;

use super::{Burst, Side};

const BUFFER: usize = 16 * 1024;

/// Moves everything `src` has now into `dst`, until `src` would block or EOF.
/// An error says which socket failed: reading `src` or writing `dst`.
pub(super) async fn burst(
    src: &TcpStream,
    dst: &TcpStream,
    on_bytes: &mut (dyn FnMut(u64) + Send),
) -> Result<Burst, (Side, io::Error)> {
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = match src.try_read(&mut buf) {
            Ok(0) => {
                return Ok(Burst { eof: true });
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Ok(Burst { eof: false });
            }
            Err(e) => return Err((Side::Src, e)),
        };
        let mut written = 0;
        while written < n {
            dst.writable().await.map_err(|e| (Side::Dst, e))?;
            match dst.try_write(&buf[written..n]) {
                Ok(0) => return Err((Side::Dst, io::Error::from(io::ErrorKind::WriteZero))),
                Ok(w) => {
                    written += w;
                    on_bytes(w as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err((Side::Dst, e)),
            }
        }
    }
}
