//! A client connection's deadlines, kept by one lazily re-armed timer.
//!
//! - **Header read timeout** (slowloris): while the connection has no
//!   request being answered — from its start, and on HTTP/1.x from the end
//!   of each response — the next request head must arrive within
//!   `header_read_timeout`, or the connection is closed. A response ends
//!   for its request when its body's last piece is handed to hyper, which
//!   may still be writing it out to a slow client: so bytes written since
//!   the timer last looked restart the wait (the answer is still going
//!   out), and the head is due between one and two timeouts after the
//!   answer's last byte. HTTP/2 has no heads to wait for between requests:
//!   once a connection shows it speaks HTTP/2 only the keep-alive timeout
//!   applies.
//! - **Keep-alive timeout**: a connection no byte has crossed for
//!   `keepalive_timeout` is closed gracefully (requests in flight finish).
//!   Bytes only raise a flag ([`LastActivity`]) that the timer looks at, so
//!   the timer looks at least every half keep-alive timeout, and an idle
//!   connection is closed between one and one and a half timeouts after
//!   its last byte.
//!
//! Requests only record what they change ([`RequestClock::begin`] and
//! [`RequestClock::end`]: an atomic or two each), and no timer is touched
//! per request: the connection's one timer is armed no later than the
//! earliest deadline could be, and when it fires the deadlines are worked
//! out from what was recorded — met, or the timer re-armed for the next.
//! (hyper's own header read timer re-armed a tokio timer for every request
//! head: 1.5k instructions per request, 4% of the gateway's.) Deadlines only
//! ever move later as requests and bytes come, except a request's end,
//! which starts a head deadline; so while requests are in flight the timer
//! is armed at most `header_read_timeout` ahead, and the head deadline a
//! request's end starts is never earlier than that.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use http::Version;
use tokio::time::Instant;

use crate::body::LastActivity;

/// What a connection's requests tell its timer.
#[derive(Debug)]
pub struct RequestClock {
    opened: Instant,
    /// Requests being answered (HTTP/1.x: zero or one).
    in_flight: AtomicU32,
    /// When the last request ended: milliseconds since `opened`.
    free_since_ms: AtomicU64,
    /// A request arrived.
    started: AtomicBool,
    /// A request arrived over HTTP/2.
    http2: AtomicBool,
}

impl RequestClock {
    /// A connection opened at `opened`.
    pub fn new(opened: Instant) -> Self {
        Self {
            opened,
            in_flight: AtomicU32::new(0),
            free_since_ms: AtomicU64::new(0),
            started: AtomicBool::new(false),
            http2: AtomicBool::new(false),
        }
    }

    /// A request (of `version`) is being answered.
    pub fn begin(&self, version: Version) {
        if !self.started.load(Ordering::Relaxed) {
            self.started.store(true, Ordering::Relaxed);
        }
        if version == Version::HTTP_2 && !self.http2.load(Ordering::Relaxed) {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request begun with [`RequestClock::begin`] ended at `at`.
    pub fn end(&self, at: Instant) {
        // The time first: a timer that sees no request in flight must see
        // when the last one ended, not an older end.
        self.free_since(at);
        self.in_flight.fetch_sub(1, Ordering::Release);
    }

    /// The wait for the next head starts at `at`.
    fn free_since(&self, at: Instant) {
        let ms = at.saturating_duration_since(self.opened).as_millis();
        self.free_since_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Whether a request has arrived.
    pub fn started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    /// When a request head is due, if one is awaited: no request in flight
    /// on a connection not (known to be) HTTP/2. An answer still being
    /// written at `now` (`writing`) restarts the wait.
    fn head_due(
        &self,
        header_read_timeout: Duration,
        now: Instant,
        writing: bool,
    ) -> Option<Instant> {
        if self.http2.load(Ordering::Relaxed) || self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        if writing {
            self.free_since(now);
        }
        let free_since = Duration::from_millis(self.free_since_ms.load(Ordering::Relaxed));
        Some(self.opened + free_since + header_read_timeout)
    }
}

/// What a connection's timer found when it fired.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    /// No request head within the header read timeout: close now.
    HeadTimeout,
    /// No byte either way for the keep-alive timeout: close gracefully.
    Idle,
    /// Nothing yet: fire again then.
    At(Instant),
}

/// A connection's timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// For a request head (and for the first request after connecting).
    pub header_read_timeout: Duration,
    /// For a connection no byte crosses.
    pub keepalive: Duration,
}

impl Deadlines {
    /// When the timer of a connection that opened at `opened` first fires.
    pub fn first(&self, opened: Instant) -> Instant {
        opened + self.header_read_timeout.min(self.keepalive)
    }

    /// Works out the deadlines at `now`.
    pub fn due(&self, now: Instant, requests: &RequestClock, activity: &LastActivity) -> Due {
        let idle_at = activity.last_seen(now) + self.keepalive;
        let writing = activity.wrote_since_last_look();
        let head_at = requests.head_due(self.header_read_timeout, now, writing);
        if head_at.is_some_and(|at| now >= at) {
            return Due::HeadTimeout;
        }
        if now >= idle_at {
            return Due::Idle;
        }
        // With requests in flight, a head deadline starts when the last one
        // ends, at the earliest a header read timeout from now.
        let next = head_at.unwrap_or(now + self.header_read_timeout);
        // Bytes are seen only when the timer looks: at least every half
        // keep-alive timeout.
        Due::At(next.min(idle_at).min(now + self.keepalive / 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINES: Deadlines = Deadlines {
        header_read_timeout: Duration::from_secs(10),
        keepalive: Duration::from_secs(60),
    };

    fn at(opened: Instant, secs: u64) -> Instant {
        opened + Duration::from_secs(secs)
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_times_out_at_the_header_read_timeout() {
        let opened = Instant::now();
        let (clock, activity) = (RequestClock::new(opened), LastActivity::new());
        assert_eq!(DEADLINES.first(opened), at(opened, 10));
        assert_eq!(
            DEADLINES.due(at(opened, 9), &clock, &activity),
            Due::At(at(opened, 10))
        );
        assert_eq!(
            DEADLINES.due(at(opened, 10), &clock, &activity),
            Due::HeadTimeout
        );
        assert!(!clock.started());
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_holds_off_the_head_deadline() {
        let opened = Instant::now();
        let (clock, activity) = (RequestClock::new(opened), LastActivity::new());
        clock.begin(Version::HTTP_11);
        assert!(clock.started());
        // A slow answer: no head is awaited; the timer looks again later.
        assert_eq!(
            DEADLINES.due(at(opened, 10), &clock, &activity),
            Due::At(at(opened, 20))
        );
        clock.end(at(opened, 25));
        // The next head is due a header read timeout after the answer.
        assert_eq!(
            DEADLINES.due(at(opened, 30), &clock, &activity),
            Due::At(at(opened, 35))
        );
        assert_eq!(
            DEADLINES.due(at(opened, 35), &clock, &activity),
            Due::HeadTimeout
        );
    }

    #[tokio::test(start_paused = true)]
    async fn http2_waits_for_no_heads_only_for_bytes() {
        let opened = Instant::now();
        let (clock, activity) = (RequestClock::new(opened), LastActivity::new());
        clock.begin(Version::HTTP_2);
        clock.end(at(opened, 1));
        assert_eq!(
            DEADLINES.due(at(opened, 30), &clock, &activity),
            Due::At(at(opened, 40))
        );
        assert_eq!(DEADLINES.due(at(opened, 60), &clock, &activity), Due::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_put_off_the_keepalive_timeout() {
        let opened = Instant::now();
        let (clock, activity) = (RequestClock::new(opened), LastActivity::new());
        clock.begin(Version::HTTP_2);
        let idle = Deadlines {
            header_read_timeout: Duration::from_secs(100),
            keepalive: Duration::from_secs(60),
        };
        // The timer looks every half keep-alive timeout; bytes moved
        // between two looks count from the second.
        assert_eq!(
            idle.due(at(opened, 30), &clock, &activity),
            Due::At(at(opened, 60))
        );
        activity.touch();
        assert_eq!(
            idle.due(at(opened, 60), &clock, &activity),
            Due::At(at(opened, 90))
        );
        assert_eq!(
            idle.due(at(opened, 90), &clock, &activity),
            Due::At(at(opened, 120))
        );
        assert_eq!(idle.due(at(opened, 120), &clock, &activity), Due::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_is_never_armed_past_a_deadline_a_request_starts() {
        let opened = Instant::now();
        let (clock, activity) = (RequestClock::new(opened), LastActivity::new());
        let short = Deadlines {
            header_read_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(600),
        };
        clock.begin(Version::HTTP_11);
        let Due::At(armed) = short.due(at(opened, 5), &clock, &activity) else {
            panic!("nothing is due at 5 s");
        };
        // However soon the request ends, its head deadline is not before
        // the timer fires.
        clock.end(at(opened, 5));
        assert!(armed <= at(opened, 15), "armed at {armed:?}");
        assert_eq!(short.due(armed, &clock, &activity), Due::HeadTimeout);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_still_being_written_holds_off_the_next_head_deadline() {
        let opened = Instant::now();
        let (clock, activity) = (RequestClock::new(opened), LastActivity::new());
        clock.begin(Version::HTTP_11);
        // Its body's last piece went to hyper at 5 s; hyper is still
        // writing it to a slow client when the timer looks at 12 s.
        clock.end(at(opened, 5));
        activity.touch_write();
        assert_eq!(
            DEADLINES.due(at(opened, 12), &clock, &activity),
            Due::At(at(opened, 22))
        );
        // Written out: the head is due a timeout after the timer saw the
        // last write.
        assert_eq!(
            DEADLINES.due(at(opened, 22), &clock, &activity),
            Due::HeadTimeout
        );
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_read_do_not_hold_off_a_head_deadline() {
        // Slowloris: a head trickling in byte by byte.
        let opened = Instant::now();
        let (clock, activity) = (RequestClock::new(opened), LastActivity::new());
        activity.touch();
        assert_eq!(
            DEADLINES.due(at(opened, 10), &clock, &activity),
            Due::HeadTimeout
        );
    }
}
