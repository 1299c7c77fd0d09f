//! The forwarder: moves bytes both ways between a client and a backend with
//! exact half-close, an idle timeout, and byte counts.
//!
//! Each direction waits for its source to be readable, then moves a burst
//! until the source is drained: small messages through a buffer (a read and
//! a write), bulk with splice on Linux (copy otherwise). At EOF it
//! shuts down the write side of its destination and stops, while the other
//! direction carries on: a client that sends and half-closes still gets the
//! whole reply, and a backend that writes and closes delivers every byte
//! before the client sees EOF. An error in either direction ends both, and
//! the other socket is reset (SO_LINGER 0) so its peer sees an abort, never
//! a clean end of a half-done session.

mod copy;
#[cfg(target_os = "linux")]
pub mod splice;

use std::future::{Future, poll_fn};
use std::io;
use std::net::Shutdown;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use metrics::Counter;
use socket2::SockRef;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How one burst ended (bytes are reported through the callback as they move).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Burst {
    /// The source reached end of stream.
    eof: bool,
}

/// How to forward.
#[derive(Debug, Clone, Copy)]
pub struct ForwardOptions {
    /// Close both sides after this long without a byte either way.
    pub idle_timeout: Duration,
    /// Use splice(2) where available.
    pub splice: bool,
    /// TCP keepalive idle time for the backend socket, armed once the
    /// connection has lived [`KEEPALIVE_AFTER`].
    pub keepalive: Option<Duration>,
}

/// How long a connection lives before its backend socket gets keepalive.
/// The first probe is due after at least 1 s of silence (the shortest
/// `keepalive` allowed), so a connection that ends sooner could never have
/// sent one, and skips the three system calls of turning it on.
pub const KEEPALIVE_AFTER: Duration = Duration::from_secs(1);

/// How a forwarded connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both directions reached EOF.
    Closed,
    /// No traffic for the idle timeout.
    IdleTimeout,
    /// A socket error (reset, broken pipe) on the client side.
    ClientError,
    /// A socket error on the backend side.
    BackendError,
}

/// Byte counts and the ending of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Client → backend bytes.
    pub upstream: u64,
    /// Backend → client bytes.
    pub downstream: u64,
    /// How it ended.
    pub end: End,
}

/// Counters the forwarder increments as bytes move.
#[derive(Debug, Clone)]
pub struct ByteCounters {
    /// Client → backend.
    pub upstream: Counter,
    /// Backend → client.
    pub downstream: Counter,
}

/// Milliseconds since `start` of the last byte moved, shared by both directions.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    bytes: [AtomicU64; 2],
    /// Which directions reached EOF.
    ended: [AtomicBool; 2],
}

impl Activity {
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Which socket failed.
pub(crate) enum Side {
    Src,
    Dst,
}

async fn one_way(
    src: &TcpStream,
    dst: &TcpStream,
    splice: bool,
    activity: &Activity,
    direction: usize,
    counter: &Counter,
) -> Result<(), (Side, io::Error)> {
    let on_bytes = |n: u64| {
        counter.increment(n);
        activity.bytes[direction].fetch_add(n, Ordering::Relaxed);
        activity.touch();
    };
    let mut small = true;
    loop {
        // poll_read_ready keeps the waker in the socket's own reader slot;
        // `readable()` would hold a 150-byte waiter in every idle connection.
        poll_fn(|cx| src.poll_read_ready(cx))
            .await
            .map_err(|e| (Side::Src, e))?;
        let mut moved = 0;
        let mut count = |n: u64| {
            moved += n;
            on_bytes(n);
        };
        // A small message costs a read and a write (a pipe would take three
        // calls: splice in, splice out, and a read that would block), done
        // right here. The rest of a burst is boxed: it lives only while
        // bytes move, and an idle connection's task then carries no room
        // for one (less memory per held connection).
        let first = if small {
            copy::first(src, dst, &mut count)?
        } else {
            copy::First::More
        };
        let burst = match first {
            copy::First::Done(burst) => burst,
            rest => Box::pin(finish_burst(src, dst, splice, rest, &mut count)).await?,
        };
        // Bursts that fit the first read go on with a read and a write;
        // once one does not, bulk traffic splices until bursts turn small.
        small = moved < copy::FIRST as u64;
        if burst.eof {
            activity.ended[direction].store(true, Ordering::Relaxed);
            if activity.ended[1 - direction].load(Ordering::Relaxed) {
                // Both ways are done: closing the sockets, next, sends the
                // FIN, and a shutdown call would only repeat it.
                return Ok(());
            }
            // Propagate the half-close; the other direction carries on.
            match SockRef::from(dst).shutdown(Shutdown::Write) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                Err(e) => return Err((Side::Dst, e)),
            }
            return Ok(());
        }
    }
}

/// The rest of a burst whose first read did not finish it: the bytes `dst`
/// did not take yet, then (unless that read drained `src`) a bulk burst.
async fn finish_burst(
    src: &TcpStream,
    dst: &TcpStream,
    use_splice: bool,
    first: copy::First,
    on_bytes: &mut (dyn FnMut(u64) + Send),
) -> Result<Burst, (Side, io::Error)> {
    if let copy::First::Unwritten { bytes, drained } = first {
        copy::write_all(dst, &bytes, on_bytes).await?;
        if drained {
            return Ok(Burst { eof: false });
        }
    }
    run_burst(src, dst, use_splice, on_bytes).await
}

async fn run_burst(
    src: &TcpStream,
    dst: &TcpStream,
    use_splice: bool,
    on_bytes: &mut (dyn FnMut(u64) + Send),
) -> Result<Burst, (Side, io::Error)> {
    #[cfg(target_os = "linux")]
    if use_splice {
        match splice::burst(src, dst, on_bytes).await {
            Ok(Some(burst)) => return Ok(burst),
            Ok(None) => {} // no pipe available (fd pressure): copy this burst
            Err(e) => return Err(e),
        }
    }
    let _ = use_splice;
    copy::burst(src, dst, on_bytes).await
}

/// Forwards until both directions end, an error, or the idle timeout.
pub async fn forward(
    client: &TcpStream,
    backend: &TcpStream,
    opts: ForwardOptions,
    counters: &ByteCounters,
) -> Outcome {
    let activity = Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
        bytes: [AtomicU64::new(0), AtomicU64::new(0)],
        ended: [AtomicBool::new(false), AtomicBool::new(false)],
    };
    // The two directions and the idle timer are polled in place by hand:
    // joining them with `try_join!`/`select!` moved each direction's future
    // into the join while keeping its first slot, and an idle connection's
    // task carried both copies (1,696 bytes here against 664 now).
    let mut up = pin!(one_way(
        client,
        backend,
        opts.splice,
        &activity,
        0,
        &counters.upstream
    ));
    let mut down = pin!(one_way(
        backend,
        client,
        opts.splice,
        &activity,
        1,
        &counters.downstream
    ));
    let mut keepalive = opts.keepalive;
    let first_wake = match keepalive {
        Some(_) => KEEPALIVE_AFTER.min(opts.idle_timeout),
        None => opts.idle_timeout,
    };
    let mut idle = pin!(tokio::time::sleep_until(activity.start + first_wake));
    let mut done = [false, false];
    let end = poll_fn(|cx| {
        if !done[0]
            && let Poll::Ready(r) = up.as_mut().poll(cx)
        {
            match r {
                Ok(()) => done[0] = true,
                Err((Side::Src, e)) => return Poll::Ready(failed(End::ClientError, &e)),
                Err((Side::Dst, e)) => return Poll::Ready(failed(End::BackendError, &e)),
            }
        }
        if !done[1]
            && let Poll::Ready(r) = down.as_mut().poll(cx)
        {
            match r {
                Ok(()) => done[1] = true,
                Err((Side::Src, e)) => return Poll::Ready(failed(End::BackendError, &e)),
                Err((Side::Dst, e)) => return Poll::Ready(failed(End::ClientError, &e)),
            }
        }
        if done == [true, true] {
            return Poll::Ready(End::Closed);
        }
        // The timer fires first to arm the backend's keepalive, then at the
        // earliest possible idle deadline; traffic since then moves it on
        // instead of re-arming on every byte.
        while idle.as_mut().poll(cx).is_ready() {
            if let Some(after) = keepalive.take() {
                crate::connect::set_keepalive(SockRef::from(backend), after);
            }
            let idle_until = activity.last() + opts.idle_timeout;
            if idle_until <= Instant::now() {
                return Poll::Ready(End::IdleTimeout);
            }
            idle.as_mut().reset(idle_until);
        }
        Poll::Pending
    })
    .await;
    if matches!(end, End::ClientError | End::BackendError) {
        // Abort the surviving side so its peer sees a reset, not a clean EOF.
        let _ = SockRef::from(client).set_linger(Some(Duration::ZERO));
        let _ = SockRef::from(backend).set_linger(Some(Duration::ZERO));
    }
    Outcome {
        upstream: activity.bytes[0].load(Ordering::Relaxed),
        downstream: activity.bytes[1].load(Ordering::Relaxed),
        end,
    }
}

fn failed(end: End, err: &io::Error) -> End {
    tracing::debug!(error = %err, ?end, "forwarding ended with an error");
    end
}

#[cfg(test)]
mod tests;
