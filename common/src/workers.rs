//! Worker threads: one single-threaded tokio runtime per thread.
//!
//! weir serves traffic the way NGINX and Envoy do: each worker thread runs
//! its own event loop (a tokio current-thread runtime), every listener has
//! one `SO_REUSEPORT` socket per worker so the kernel spreads new
//! connections over them, and a connection stays on the worker that
//! accepted it for its whole life — its sockets, timers and tasks never
//! move between threads. Against tokio's work-stealing scheduler this saves
//! the cross-thread wake-ups and queue hand-offs of every request
//! (measured in docs/benchmarks.md). What the workers share (pools, health,
//! limits, metrics) is atomics and locks behind `Arc`s, as before.
//!
//! State that is cheaper per worker (the L7 gateway's idle backend
//! connections) is indexed by [`index`], the calling worker's number.

use std::cell::Cell;
use std::future::Future;
use std::io;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::shutdown::{Shutdown, ShutdownTrigger};

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The calling thread's worker number (`0..count`); 0 on any thread that is
/// not a worker (the control thread, tests).
pub fn index() -> usize {
    INDEX.with(Cell::get)
}

/// Running worker threads. Dropping this stops them without waiting;
/// [`Workers::stop`] waits.
#[derive(Debug)]
pub struct Workers {
    handles: Vec<Handle>,
    stop: Option<ShutdownTrigger>,
    done: Vec<oneshot::Receiver<()>>,
}

impl Workers {
    /// Starts `count` (at least one) worker threads, each driving its own
    /// current-thread runtime until [`Workers::stop`].
    pub fn start(count: usize) -> io::Result<Self> {
        let (trigger, stop) = Shutdown::new();
        let mut workers = Self {
            handles: Vec::new(),
            stop: Some(trigger),
            done: Vec::new(),
        };
        for i in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            workers.handles.push(runtime.handle().clone());
            let (done, finished) = oneshot::channel();
            workers.done.push(finished);
            let stop: Shutdown = stop.clone();
            std::thread::Builder::new()
                .name(format!("weir-worker-{i}"))
                .spawn(move || {
                    INDEX.with(|index| index.set(i));
                    runtime.block_on(stop.wait());
                    // Ends every task still on this worker.
                    drop(runtime);
                    let _ = done.send(());
                })?;
        }
        Ok(workers)
    }

    /// The workers' runtimes, to spawn a worker's accept loops on.
    pub fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// Stops every worker (their remaining tasks are dropped) and waits
    /// until each thread has let go of its runtime.
    pub async fn stop(mut self) {
        self.stop.take();
        for finished in std::mem::take(&mut self.done) {
            let _ = finished.await;
        }
    }
}

/// Runs `serve(socket)` for every socket, socket `i` on worker
/// `i % workers.len()` (on the calling runtime when `workers` is empty),
/// until all have ended. The first error ends the others and is returned.
pub async fn serve_each<S, F, Fut>(
    workers: &[Handle],
    sockets: Vec<S>,
    mut serve: F,
) -> io::Result<()>
where
    F: FnMut(S) -> Fut,
    Fut: Future<Output = io::Result<()>> + Send + 'static,
{
    let mut loops = tokio::task::JoinSet::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        match workers.get(i % workers.len().max(1)) {
            Some(worker) => loops.spawn_on(serve(socket), worker),
            None => loops.spawn(serve(socket)),
        };
    }
    while let Some(ended) = loops.join_next().await {
        if let Ok(Err(e)) = ended {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_run_on_their_own_worker_thread_until_stopped() {
        let workers = Workers::start(2).unwrap();
        assert_eq!(workers.handles().len(), 2);
        let mut seen = Vec::new();
        for (i, handle) in workers.handles().iter().enumerate() {
            let (name, index) = handle
                .spawn(async {
                    tokio::task::yield_now().await;
                    (std::thread::current().name().map(String::from), index())
                })
                .await
                .unwrap();
            assert_eq!(name.as_deref(), Some(format!("weir-worker-{i}").as_str()));
            seen.push(index);
        }
        assert_eq!(seen, [0, 1]);
        assert_eq!(index(), 0, "not a worker");
        // A task still pending when the workers stop is dropped, not leaked.
        let (tx, rx) = oneshot::channel::<()>();
        let _pending = workers.handles()[1].spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        tokio::time::timeout(std::time::Duration::from_secs(10), workers.stop())
            .await
            .expect("workers stop");
        assert!(rx.await.is_err(), "the pending task was dropped");
    }
}
