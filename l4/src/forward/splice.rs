//! Zero-copy forwarding with `splice(2)` through a pipe (Linux).
//!
//! Bytes move socket → pipe → socket inside the kernel. Pipes are taken from
//! a process-wide pool only for a burst of traffic and returned *empty* when
//! the source has nothing more to read, so an idle connection holds no pipe
//! (two fds and up to 256 KiB of kernel buffer each). A pipe that may still
//! hold bytes (an error mid-burst) is closed, never returned: a pooled pipe
//! with stale bytes would leak one connection's data into another's.
//!
//! nix wraps splice(2), pipe2(2) and fcntl(2) safely, so this module needs
//! no `unsafe`.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::fcntl::{FcntlArg, SpliceFFlags, fcntl, splice};
use nix::unistd::pipe2;
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::{Burst, Side};

/// Capacity of the pipes weir enlarges (`F_SETPIPE_SZ`), and bytes moved
/// per splice call at most. Four times the kernel's default of 64 KiB: a
/// bulk stream moves a megabyte in 8 calls instead of 32, which measured
/// 27% less CPU per MB here (docs/benchmarks.md).
const PIPE_SIZE: usize = 256 * 1024;
/// Enlarged pipes alive at most (in use or pooled); beyond it pipes keep the
/// default size. The kernel charges a user's pipes by capacity, and once a
/// user holds more than `fs.pipe-user-pages-soft` (64 MiB by default) an
/// unprivileged user's new pipes get two pages: 64 pipes of 256 KiB stay at
/// a quarter of that.
const MAX_LARGE: usize = 64;
/// Empty pipes kept for reuse; beyond it they are closed.
const POOL_MAX: usize = 256;

/// A pipe: read end, write end.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Enlarged to [`PIPE_SIZE`], counted in [`LARGE`].
    large: bool,
}

impl Drop for Pipe {
    fn drop(&mut self) {
        if self.large {
            LARGE.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

static POOL: Mutex<Vec<Pipe>> = Mutex::new(Vec::new());
static LARGE: AtomicUsize = AtomicUsize::new(0);

fn take() -> io::Result<Pipe> {
    let pooled = POOL.lock().ok().and_then(|mut pool| pool.pop());
    match pooled {
        Some(pipe) => Ok(pipe),
        None => {
            let (read, write) =
                pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC)?;
            Ok(Pipe {
                large: enlarge(&write, &LARGE),
                read,
                write,
            })
        }
    }
}

/// Grows a new pipe to [`PIPE_SIZE`] while fewer than [`MAX_LARGE`] are
/// alive (`live` counts them); true if it did. A refusal (a lower
/// `fs.pipe-max-size`, the user's pipe budget) leaves the default size,
/// which works the same.
fn enlarge(write: &OwnedFd, live: &AtomicUsize) -> bool {
    if live.fetch_add(1, Ordering::Relaxed) >= MAX_LARGE {
        live.fetch_sub(1, Ordering::Relaxed);
        return false;
    }
    let size = i32::try_from(PIPE_SIZE).unwrap_or(i32::MAX);
    if fcntl(write, FcntlArg::F_SETPIPE_SZ(size)).is_ok() {
        return true;
    }
    live.fetch_sub(1, Ordering::Relaxed);
    false
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
                PIPE_SIZE,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn capacity(pipe: &(OwnedFd, OwnedFd)) -> usize {
        usize::try_from(fcntl(&pipe.1, FcntlArg::F_GETPIPE_SZ).unwrap()).unwrap()
    }

    fn new_pipe() -> (OwnedFd, OwnedFd) {
        pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC).unwrap()
    }

    #[test]
    fn pipes_are_enlarged_only_within_the_budget() {
        let live = AtomicUsize::new(0);
        let pipe = new_pipe();
        let default = capacity(&pipe);
        assert!(enlarge(&pipe.1, &live));
        assert_eq!(capacity(&pipe), PIPE_SIZE);
        assert_eq!(live.load(Ordering::Relaxed), 1);

        live.store(MAX_LARGE, Ordering::Relaxed);
        let pipe = new_pipe();
        assert!(!enlarge(&pipe.1, &live), "the budget is spent");
        assert_eq!(capacity(&pipe), default);
        assert_eq!(live.load(Ordering::Relaxed), MAX_LARGE, "nothing counted");
    }
}
