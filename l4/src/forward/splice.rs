//! Zero-copy forwarding with `splice(2)` through a pipe (Linux).
//!
//! Bytes move socket → pipe → socket inside the kernel. Pipes are taken from
//! a process-wide pool only for a burst of traffic and returned *empty* when
//! the source has nothing more to read, so an idle connection holds no pipe
//! (two fds and up to 64 KiB of kernel buffer each). A pipe that may still
//! hold bytes (an error mid-burst) is closed, never returned: a pooled pipe
//! with stale bytes would leak one connection's data into another's.
//!
//! nix wraps splice(2), pipe2(2) and fcntl(2) safely, so this module needs
//! no `unsafe`.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;

use nix::fcntl::{SpliceFFlags, splice};
use nix::unistd::pipe2;
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::{Burst, Side};

/// Bytes moved per splice call at most (the default pipe capacity).
const CHUNK: usize = 64 * 1024;
/// Empty pipes kept for reuse; beyond it they are closed.
const POOL_MAX: usize = 256;

/// A pipe: read end, write end.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

static POOL: Mutex<Vec<Pipe>> = Mutex::new(Vec::new());

fn take() -> io::Result<Pipe> {
    let pooled = POOL.lock().ok().and_then(|mut pool| pool.pop());
    match pooled {
        Some(pipe) => Ok(pipe),
        None => {
            let (read, write) =
                pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC)?;
            Ok(Pipe { read, write })
        }
    }
}

fn give_back(pipe: Pipe) {
    if let Ok(mut pool) = POOL.lock()
        && pool.len() < POOL_MAX
    {
        pool.push(pipe);
    }
}

/// Pipes idle in the pool now (tests and diagnostics).
pub fn pooled_pipes() -> usize {
    POOL.lock().map(|p| p.len()).unwrap_or(0)
}

/// Moves everything `src` has to offer now into `dst`, until `src` would
/// block (or hits EOF). `Ok(None)` means no pipe could be had: the caller
/// falls back to copying.
pub(super) async fn burst(
    src: &TcpStream,
    dst: &TcpStream,
    on_bytes: &mut (dyn FnMut(u64) + Send),
) -> Result<Option<Burst>, (Side, io::Error)> {
    let Ok(pipe) = take() else {
        return Ok(None);
    };
    loop {
        let read = src.try_io(Interest::READABLE, || {
            splice(
                src.as_fd(),
                None,
                pipe.write.as_fd(),
                None,
                CHUNK,
                SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE,
            )
            .map_err(io::Error::from)
        });
        let mut in_pipe = match read {
            Ok(0) => {
                give_back(pipe);
                return Ok(Some(Burst { eof: true }));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                give_back(pipe);
                return Ok(Some(Burst { eof: false }));
            }
            // The pipe is empty here, but drop it anyway on errors: cheap and obviously safe.
            Err(e) => return Err((Side::Src, e)),
        };
        while in_pipe > 0 {
            dst.writable().await.map_err(|e| (Side::Dst, e))?;
            let wrote = dst.try_io(Interest::WRITABLE, || {
                splice(
                    pipe.read.as_fd(),
                    None,
                    dst.as_fd(),
                    None,
                    in_pipe,
                    SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE,
                )
                .map_err(io::Error::from)
            });
            match wrote {
                Ok(0) => return Err((Side::Dst, io::Error::from(io::ErrorKind::WriteZero))),
                Ok(n) => {
                    in_pipe -= n;
                    on_bytes(n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // `pipe` drops here with bytes in it: closed, not pooled.
                Err(e) => return Err((Side::Dst, e)),
            }
        }
    }
}
