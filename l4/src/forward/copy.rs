//! User-space forwarding: the fallback when splice is off or unavailable,
//! and the first read of every burst of small messages.
//!
//! The copy buffer lives in a burst's own (boxed) future and the first
//! read's is one per thread, used by a synchronous call, so an idle
//! connection holds neither. A read that returns less than the buffer's
//! size shows the socket is drained, and tokio's readiness is cleared in
//! that same step (as tokio's own `poll_read` does), so the next wait sleeps
//! until new bytes arrive instead of paying for a read that would only
//! block: a request and its reply cost a read and a write each way, not
//! three calls.

use std::cell::RefCell;
use std::io::{self, Read as _};

use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::{Burst, Side};

/// The copy buffer of a burst when splice is off.
const BUFFER: usize = 16 * 1024;
/// The first read of a burst: messages up to this size cost a read and a
/// write; larger bursts carry on with splice (or the copy buffer).
pub(super) const FIRST: usize = 4 * 1024;

/// What one read found.
pub(super) enum Got {
    /// End of stream.
    Eof,
    /// `n` bytes; `drained` when the read was short (nothing more is queued).
    Bytes { n: usize, drained: bool },
    /// Nothing to read (the readiness was stale).
    Nothing,
}

/// Reads what `src` has now into `buf`.
pub(super) fn read_some(src: &TcpStream, buf: &mut [u8]) -> io::Result<Got> {
    let mut short = 0;
    let read = src.try_io(Interest::READABLE, || {
        let socket = SockRef::from(src);
        let n = (&*socket).read(buf)?;
        if n > 0 && n < buf.len() {
            // Reported as WouldBlock so that try_io clears the readiness it
            // saw before this read (a wake-up that came since survives).
            short = n;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match read {
        Ok(0) => Ok(Got::Eof),
        Ok(n) => Ok(Got::Bytes { n, drained: false }),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && short > 0 => Ok(Got::Bytes {
            n: short,
            drained: true,
        }),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Got::Nothing),
        Err(e) => Err(e),
    }
}

/// Writes all of `bytes` to `dst`, waiting for room as needed.
pub(super) async fn write_all(
    dst: &TcpStream,
    bytes: &[u8],
    on_bytes: &mut (dyn FnMut(u64) + Send),
) -> Result<(), (Side, io::Error)> {
    let mut written = 0;
    while written < bytes.len() {
        dst.writable().await.map_err(|e| (Side::Dst, e))?;
        match dst.try_write(&bytes[written..]) {
            Ok(0) => return Err((Side::Dst, io::Error::from(io::ErrorKind::WriteZero))),
            Ok(w) => {
                written += w;
                on_bytes(w as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err((Side::Dst, e)),
        }
    }
    Ok(())
}

/// What the first read of a burst came to.
pub(super) enum First {
    /// The whole burst: read and written (or end of stream, or nothing).
    Done(Burst),
    /// Read and written, and more may be queued: a bulk burst follows.
    More,
    /// Read, but `dst` would not take it all now: `bytes` still to write;
    /// `drained` when nothing more was queued.
    Unwritten { bytes: Vec<u8>, drained: bool },
}

/// The first read of a burst: up to [`FIRST`] bytes, written on at once.
/// Synchronous (its buffer is the thread's, not in any future), so a small
/// message needs no allocation unless `dst` cannot take it right away.
pub(super) fn first(
    src: &TcpStream,
    dst: &TcpStream,
    on_bytes: &mut (dyn FnMut(u64) + Send),
) -> Result<First, (Side, io::Error)> {
    FIRST_BUFFER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => first_with(&mut buf[..], src, dst, on_bytes),
        // Not reached (nothing re-enters `first` on a thread); a buffer of
        // its own keeps it correct if something ever does.
        Err(_) => first_with(&mut [0u8; FIRST], src, dst, on_bytes),
    })
}

thread_local! {
    /// The first read's buffer, one per thread and zeroed once: a fresh
    /// `[0u8; FIRST]` per read cost a 4 KiB memset for every message (CPU
    /// per proxied Redis GET 13.6 -> 13.2 µs without it). Only the bytes a
    /// read has just put in are ever used.
    static FIRST_BUFFER: RefCell<[u8; FIRST]> = const { RefCell::new([0; FIRST]) };
}

fn first_with(
    buf: &mut [u8],
    src: &TcpStream,
    dst: &TcpStream,
    on_bytes: &mut (dyn FnMut(u64) + Send),
) -> Result<First, (Side, io::Error)> {
    let (n, drained) = match read_some(src, buf).map_err(|e| (Side::Src, e))? {
        Got::Eof => return Ok(First::Done(Burst { eof: true })),
        Got::Nothing => return Ok(First::Done(Burst { eof: false })),
        Got::Bytes { n, drained } => (n, drained),
    };
    let mut written = 0;
    while written < n {
        match dst.try_write(&buf[written..n]) {
            Ok(0) => return Err((Side::Dst, io::Error::from(io::ErrorKind::WriteZero))),
            Ok(w) => {
                written += w;
                on_bytes(w as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Ok(First::Unwritten {
                    bytes: buf[written..n].to_vec(),
                    drained,
                });
            }
            Err(e) => return Err((Side::Dst, e)),
        }
    }
    Ok(if drained {
        First::Done(Burst { eof: false })
    } else {
        First::More
    })
}

/// Moves everything `src` has now into `dst`, until `src` is drained or EOF.
/// An error says which socket failed: reading `src` or writing `dst`.
pub(super) async fn burst(
    src: &TcpStream,
    dst: &TcpStream,
    on_bytes: &mut (dyn FnMut(u64) + Send),
) -> Result<Burst, (Side, io::Error)> {
    let mut buf = vec![0u8; BUFFER];
    loop {
        match read_some(src, &mut buf).map_err(|e| (Side::Src, e))? {
            Got::Eof => return Ok(Burst { eof: true }),
            Got::Nothing => return Ok(Burst { eof: false }),
            Got::Bytes { n, drained } => {
                write_all(dst, &buf[..n], on_bytes).await?;
                if drained {
                    return Ok(Burst { eof: false });
                }
            }
        }
    }
}
