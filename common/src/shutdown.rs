//! Shutdown signalling and connection draining.
//!
//! [`Shutdown`] is a cheap, cloneable signal every server and task receives;
//! [`Drain`] counts live connections so the binary can wait for them to
//! finish up to a grace period.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

/// Fires once; every clone sees it.
#[derive(Debug, Clone)]
pub struct Shutdown {
    inner: Arc<Signal>,
}

#[derive(Debug, Default)]
struct Signal {
    fired: AtomicBool,
    notify: Notify,
}

/// The sending side of [`Shutdown`]; dropping it fires the signal too.
#[derive(Debug)]
pub struct ShutdownTrigger {
    inner: Arc<Signal>,
}

impl Shutdown {
    /// A new signal and its trigger.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let inner = Arc::new(Signal::default());
        (
            ShutdownTrigger {
                inner: Arc::clone(&inner),
            },
            Shutdown { inner },
        )
    }

    /// True once triggered.
    pub fn is_triggered(&self) -> bool {
        self.inner.fired.load(Ordering::Acquire)
    }

    /// Resolves when triggered (or when the trigger is dropped).
    ///
    /// Every connection task waits on this beside its work, so the future
    /// is polled on each of the task's wake-ups: after its first poll it
    /// costs one atomic load and a waker comparison, not a lock (tokio's
    /// `Notified` takes its waiter-list mutex on every poll).
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            signal: &self.inner,
            notified: self.inner.notify.notified(),
            registered: None,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Shutdown::wait`].
    #[derive(Debug)]
    pub struct Wait<'a> {
        signal: &'a Signal,
        // Made before the first check of `fired`, so a trigger after that
        // check wakes it (`notify_waiters` reaches every `Notified` made
        // before the call).
        #[pin]
        notified: Notified<'a>,
        // The waker `notified` was last polled with.
        registered: Option<Waker>,
    }
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if this.signal.fired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        if this
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            // Registered with this task's waker already: a trigger wakes it.
            return Poll::Pending;
        }
        if this.notified.poll(cx).is_ready() {
            return Poll::Ready(());
        }
        *this.registered = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl ShutdownTrigger {
    /// Fires the signal.
    pub fn trigger(&self) {
        self.inner.fired.store(true, Ordering::Release);
        self.inner.notify.notify_waiters();
    }
}

impl Drop for ShutdownTrigger {
    fn drop(&mut self) {
        self.trigger();
    }
}

/// Counts live connections; [`Drain::idle`] resolves when none are left.
#[derive(Debug, Clone, Default)]
pub struct Drain {
    inner: Arc<DrainInner>,
}

#[derive(Debug, Default)]
struct DrainInner {
    live: AtomicUsize,
    notify: Notify,
}

/// Held by one live connection.
#[derive(Debug)]
pub struct DrainGuard {
    inner: Arc<DrainInner>,
}

impl Drain {
    /// An empty counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a live connection until the guard drops.
    pub fn enter(&self) -> DrainGuard {
        self.inner.live.fetch_add(1, Ordering::AcqRel);
        DrainGuard {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Live connections now.
    pub fn live(&self) -> usize {
        self.inner.live.load(Ordering::Acquire)
    }

    /// Resolves when no connection is live.
    pub async fn idle(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.live() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for DrainGuard {
    fn drop(&mut self) {
        if self.inner.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.notify.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const LIMIT: Duration = Duration::from_secs(5);

    /// Fires `trigger`; `waiter` must end within [`LIMIT`].
    async fn fire_and_join(trigger: &ShutdownTrigger, waiter: tokio::task::JoinHandle<()>) {
        trigger.trigger();
        tokio::time::timeout(LIMIT, waiter)
            .await
            .expect("the waiter woke")
            .unwrap();
    }

    #[tokio::test]
    async fn a_waiting_task_wakes_when_triggered() {
        let (trigger, shutdown) = Shutdown::new();
        let waiter = tokio::spawn(async move { shutdown.wait().await });
        // Let the task poll (and register) before the trigger.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished());
        fire_and_join(&trigger, waiter).await;
    }

    #[tokio::test]
    async fn polled_often_beside_other_work_it_still_wakes() {
        // A connection task polls the wait on every wake-up of its other
        // branch; the registration made on the first poll must hold.
        let (trigger, shutdown) = Shutdown::new();
        let ticks = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&ticks);
        let waiter = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            let wait = shutdown.wait();
            tokio::pin!(wait);
            while counted.load(Ordering::Relaxed) < 5 {
                tokio::select! {
                    () = &mut wait => return,
                    _ = tick.tick() => { counted.fetch_add(1, Ordering::Relaxed); }
                }
            }
            // Now only the trigger can wake this task.
            wait.await;
        });
        let deadline = tokio::time::Instant::now() + LIMIT;
        while ticks.load(Ordering::Relaxed) < 5 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(ticks.load(Ordering::Relaxed) >= 5);
        fire_and_join(&trigger, waiter).await;
    }

    #[tokio::test]
    async fn a_wait_begun_after_the_trigger_is_ready_at_once() {
        let (trigger, shutdown) = Shutdown::new();
        assert!(!shutdown.is_triggered());
        trigger.trigger();
        assert!(shutdown.is_triggered());
        tokio::time::timeout(LIMIT, shutdown.wait()).await.unwrap();
        tokio::time::timeout(LIMIT, shutdown.clone().wait())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn dropping_the_trigger_fires_it() {
        let (trigger, shutdown) = Shutdown::new();
        let waiter = tokio::spawn(async move { shutdown.wait().await });
        tokio::task::yield_now().await;
        drop(trigger);
        tokio::time::timeout(LIMIT, waiter).await.unwrap().unwrap();
    }
}
