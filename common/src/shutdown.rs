//! Shutdown signalling and connection draining.
//!
//! [`Shutdown`] is a cheap, cloneable signal every server and task receives;
//! [`Drain`] counts live connections so the binary can wait for them to
//! finish up to a grace period.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, watch};

/// Fires once; every clone sees it.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// The sending side of [`Shutdown`].
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

impl Shutdown {
    /// A new signal and its trigger.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger { tx }, Shutdown { rx })
    }

    /// True once triggered.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves when triggered (or when the trigger is dropped).
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        // An error means the trigger is gone: treat as shutdown.
        let _ = rx.wait_for(|&fired| fired).await;
    }
}

impl ShutdownTrigger {
    /// Fires the signal.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
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
