//! Process-wide telemetry: the Prometheus recorder and the log subscriber.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use weir_common::metrics as names;
use weir_common::shutdown::Shutdown;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder once per process and returns its handle.
/// Safe to call again (tests run many apps in one process).
pub fn metrics_handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(names::CONNECTION_DURATION.to_owned()),
                    names::DURATION_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(names::HTTP_DURATION.to_owned()),
                        names::HTTP_DURATION_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(names::RATE_LIMIT_REDIS_DURATION.to_owned()),
                        names::REDIS_DURATION_BUCKETS,
                    )
                });
            let recorder = match builder {
                Ok(b) => b.build_recorder(),
                Err(_) => PrometheusBuilder::new().build_recorder(),
            };
            let handle = recorder.handle();
            // Another recorder may already be installed (embedding); then ours only renders its own.
            let _ = metrics::set_global_recorder(recorder);
            names::describe();
            metrics::gauge!(names::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

/// How often [`upkeep`] folds pending histogram samples into their buckets.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Folds the recorder's pending histogram samples into their buckets every
/// `every`, until `stop` fires.
///
/// The recorder keeps every histogram sample (a request's or a connection's
/// duration) until a scrape renders it or an upkeep runs, and a recorder
/// made with `build_recorder` runs no upkeep of its own: a weir that nobody
/// scraped grew by 20–30 bytes per proxied request, without bound.
pub async fn upkeep(handle: PrometheusHandle, every: Duration, stop: Shutdown) {
    every_until(every, &stop, || handle.run_upkeep()).await;
}

/// Calls `f` every `every` (the first time one period from now) until
/// `stop` fires.
async fn every_until(every: Duration, stop: &Shutdown, mut f: impl FnMut()) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => f(),
            () = stop.wait() => return,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the tracing subscriber. `RUST_LOG` wins over `verbosity`
/// (0 = info, 1 = debug, 2+ = trace).
pub fn init_logging(format: LogFormat, verbosity: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbosity {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn upkeep_runs_every_period_until_stopped() {
        let (trigger, stop) = Shutdown::new();
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&runs);
        let task = tokio::spawn(async move {
            every_until(Duration::from_secs(5), &stop, || {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
            .await;
        });
        let count = || runs.load(std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(4_900)).await;
        assert_eq!(count(), 0, "not before the first period");
        tokio::time::sleep(Duration::from_millis(10_200)).await;
        assert_eq!(count(), 3, "at 5, 10 and 15 s");
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("stops when told")
            .unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(count(), 3, "and runs no more");
    }
}
