//! Bodies and I/O wrappers: the response body that streams the backend's
//! reply to the client (counting bytes, holding the backend's in-flight slot,
//! enforcing the request deadline, logging when done), and the connection
//! I/O wrapper that records the last activity for the keep-alive timeout.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The error type of every body the gateway handles.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type the gateway sends (to clients and to backends).
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// A complete body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> ProxyBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// The request ran past its deadline while the body was streaming.
#[derive(Debug, thiserror::Error)]
#[error("request timeout while streaming the body")]
pub struct DeadlineExceeded;

/// Streams an inner body, counting bytes, failing at a deadline, and
/// calling `on_end(bytes, complete)` exactly once: when the body ends,
/// fails, or is dropped early (the client went away). Generic over the
/// body and the callback so that wrapping a response costs one allocation
/// (the boxing into [`ProxyBody`]), not one per layer.
pub struct Tracked<B: Body, F: FnOnce(u64, bool)> {
    inner: B,
    deadline: Option<Instant>,
    /// The deadline's timer, made the first time the body has to wait: a
    /// body that is ready whenever it is asked for (most short responses)
    /// needs none, only a clock check per frame — a timer costs an
    /// allocation and an insertion into and removal from tokio's wheel.
    timer: Option<Pin<Box<Sleep>>>,
    bytes: u64,
    on_end: Option<F>,
}

impl<B: Body, F: FnOnce(u64, bool)> Tracked<B, F> {
    /// Wraps `inner`; with a `deadline` it fails with [`DeadlineExceeded`]
    /// then.
    pub fn new(inner: B, deadline: Option<Instant>, on_end: F) -> Self {
        Self {
            inner,
            deadline,
            timer: None,
            bytes: 0,
            on_end: Some(on_end),
        }
    }

    fn finish(&mut self, complete: bool) {
        if let Some(f) = self.on_end.take() {
            f(self.bytes, complete);
        }
    }

    fn expired(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.finish(false);
        Poll::Ready(Some(Err(Box::new(DeadlineExceeded))))
    }
}

impl<B, F> Body for Tracked<B, F>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    F: FnOnce(u64, bool) + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(timer) = this.timer.as_mut()
            && timer.as_mut().poll(cx).is_ready()
        {
            return this.expired();
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(_)))
                if this.timer.is_none() && this.deadline.is_some_and(|d| Instant::now() >= d) =>
            {
                this.expired()
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                } else if frame.is_trailers() {
                    // Trailers are the last frame, and hyper's HTTP/1
                    // server drops the body right after writing them.
                    this.finish(true);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish(false);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.finish(true);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.timer.is_none()
                    && let Some(deadline) = this.deadline
                {
                    // The body has to wait: from now on the timer wakes
                    // this task at the deadline.
                    let mut timer = Box::pin(tokio::time::sleep_until(deadline));
                    if timer.as_mut().poll(cx).is_ready() {
                        return this.expired();
                    }
                    this.timer = Some(timer);
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Body, F: FnOnce(u64, bool)> Drop for Tracked<B, F> {
    fn drop(&mut self) {
        // The client went away (or hyper dropped the body) before the end.
        let complete = self.inner.is_end_stream();
        self.finish(complete);
    }
}

/// When bytes last moved on a connection, as seen by its timer.
///
/// A read or write only raises a flag (no clock read per I/O: that was an
/// `Instant::now` and a 128-bit division each time); the connection's timer
/// ([`LastActivity::last_seen`]) lowers it and takes its own time as the
/// last activity. So the time seen is late by at most the span between two
/// looks, which the timer keeps short against the idle timeouts it checks.
#[derive(Debug)]
pub struct LastActivity {
    start: Instant,
    moved: AtomicBool,
    /// Bytes were written (the answer still going out).
    wrote: AtomicBool,
    /// When the timer last saw bytes moved: milliseconds since `start`.
    seen_ms: AtomicU64,
}

impl LastActivity {
    /// Starts counting now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            moved: AtomicBool::new(false),
            wrote: AtomicBool::new(false),
            seen_ms: AtomicU64::new(0),
        })
    }

    /// Bytes moved.
    pub(crate) fn touch(&self) {
        if !self.moved.load(Ordering::Relaxed) {
            self.moved.store(true, Ordering::Relaxed);
        }
    }

    /// Bytes were written.
    pub(crate) fn touch_write(&self) {
        self.touch();
        if !self.wrote.load(Ordering::Relaxed) {
            self.wrote.store(true, Ordering::Relaxed);
        }
    }

    /// Whether bytes were written since the last call.
    pub fn wrote_since_last_look(&self) -> bool {
        self.wrote.load(Ordering::Relaxed) && self.wrote.swap(false, Ordering::Relaxed)
    }

    /// When bytes last moved either way, as known at `now`: `now` if they
    /// moved since the last look, else what the last look found (the start,
    /// if none has).
    pub fn last_seen(&self, now: Instant) -> Instant {
        if self.moved.swap(false, Ordering::Relaxed) {
            let ms = now.saturating_duration_since(self.start).as_millis();
            self.seen_ms
                .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
            return now;
        }
        self.start + Duration::from_millis(self.seen_ms.load(Ordering::Relaxed))
    }
}

/// A connection's I/O that records when bytes last moved.
pub struct Watched<T> {
    inner: T,
    activity: Arc<LastActivity>,
}

impl<T> Watched<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, activity: Arc<LastActivity>) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch_write();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch_write();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What the gateway learns about a client's request body while a backend
/// reads it: how it failed, and whether the backend is waiting on the
/// client (so a stall is blamed on the right side).
#[derive(Debug, Default)]
pub struct ClientBodyState {
    /// Set when the body fails: too large, or malformed / cut off.
    pub error: std::sync::OnceLock<ClientBodyError>,
    waiting_on_client: std::sync::atomic::AtomicBool,
    ended: std::sync::atomic::AtomicBool,
}

impl ClientBodyState {
    /// True when the body's last poll found no bytes from the client: the
    /// backend asked for more and the client has not sent it.
    pub fn waiting_on_client(&self) -> bool {
        self.waiting_on_client.load(Ordering::Relaxed)
    }

    /// True once the whole body has gone to the backend: only then is the
    /// backend connection free for another request.
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }
}

/// How a client's body failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientBodyError {
    /// Over `max_body_bytes`.
    TooLarge,
    /// Malformed or cut off.
    Malformed,
}

/// The client's request body on its way to a backend: limited to
/// `max_body_bytes`, its failures and stalls recorded in a
/// [`ClientBodyState`].
pub struct ClientBody<B> {
    inner: http_body_util::Limited<B>,
    state: Arc<ClientBodyState>,
}

impl<B> ClientBody<B> {
    /// Wraps `inner`, refusing more than `limit` bytes.
    pub fn new(inner: B, limit: usize, state: Arc<ClientBodyState>) -> Self {
        Self {
            inner: http_body_util::Limited::new(inner, limit),
            state,
        }
    }
}

impl<B> Body for ClientBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        self.state
            .waiting_on_client
            .store(polled.is_pending(), Ordering::Relaxed);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.state.ended.store(true, Ordering::Relaxed);
        }
        if let Poll::Ready(Some(Err(e))) = &polled {
            let _ = self
                .state
                .error
                .set(if e.is::<http_body_util::LengthLimitError>() {
                    ClientBodyError::TooLarge
                } else {
                    ClientBodyError::Malformed
                });
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A body that yields `ready` one-byte frames at once, then waits
    /// forever.
    struct Trickle {
        ready: usize,
    }

    impl Body for Trickle {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            if self.ready == 0 {
                return Poll::Pending;
            }
            self.ready -= 1;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
        }
    }

    type Ended = Arc<Mutex<Option<(u64, bool)>>>;

    fn tracked(
        ready: usize,
        deadline: Duration,
    ) -> (Tracked<Trickle, impl FnOnce(u64, bool) + Unpin>, Ended) {
        let ended: Ended = Arc::default();
        let seen = Arc::clone(&ended);
        let body = Tracked::new(
            Trickle { ready },
            Some(Instant::now() + deadline),
            move |bytes, complete| *seen.lock().unwrap() = Some((bytes, complete)),
        );
        (body, ended)
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_fails_at_the_deadline() {
        let (mut body, ended) = tracked(2, Duration::from_secs(5));
        let started = Instant::now();
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "x"
        );
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "x"
        );
        // The third frame never comes: the deadline's timer ends the wait
        // (and without one, the test's own limit fails it).
        let err = tokio::time::timeout(Duration::from_secs(60), body.frame())
            .await
            .expect("the deadline ended the wait")
            .unwrap()
            .unwrap_err();
        assert!(err.is::<DeadlineExceeded>(), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(*ended.lock().unwrap(), Some((2, false)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_always_ready_still_stops_at_the_deadline() {
        let (mut body, ended) = tracked(usize::MAX, Duration::from_secs(5));
        assert!(body.frame().await.unwrap().is_ok());
        tokio::time::advance(Duration::from_secs(5)).await;
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<DeadlineExceeded>(), "{err}");
        assert_eq!(*ended.lock().unwrap(), Some((1, false)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_ends_in_time_is_complete() {
        let ended: Ended = Arc::default();
        let seen = Arc::clone(&ended);
        let mut body = Tracked::new(
            full("hello"),
            Some(Instant::now() + Duration::from_secs(5)),
            move |bytes, complete| *seen.lock().unwrap() = Some((bytes, complete)),
        );
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "hello"
        );
        assert!(body.frame().await.is_none());
        assert_eq!(*ended.lock().unwrap(), Some((5, true)));
    }
}
