//! The whole application: bind everything, then serve until shutdown and drain.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use weir_common::shutdown::{Drain, Shutdown};
use weir_config::Config;
use weir_l4::{PoolRuntime, TcpService};

use crate::{admin, telemetry};

/// Why start-up failed. Nothing is left bound or running.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not bind.
    #[error(transparent)]
    Bind(#[from] weir_l4::BindError),
    /// The admin listener could not bind.
    #[error("admin listener: cannot bind {addr}: {source}")]
    Admin {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
}

/// A configured, fully bound weir that has not started serving.
#[derive(Debug)]
pub struct App {
    config: Config,
    pools: Vec<Arc<PoolRuntime>>,
    services: Vec<TcpService>,
    admin: Option<std::net::TcpListener>,
}

impl App {
    /// Binds every listener and the admin listener. On any failure, every
    /// socket bound so far is closed and the error names the address.
    pub fn bind(config: Config) -> Result<Self, StartError> {
        let pools: Vec<Arc<PoolRuntime>> = config
            .pools
            .iter()
            .map(|p| Arc::new(PoolRuntime::new(p)))
            .collect();
        let admin = match config.admin {
            Some(addr) => Some(
                weir_common::listener::bind_tcp(addr, 128)
                    .map_err(|source| StartError::Admin { addr, source })?,
            ),
            None => None,
        };
        let services = config
            .listeners
            .iter()
            .map(|l| TcpService::bind(l, Arc::clone(&pools[l.pool])))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            config,
            pools,
            services,
            admin,
        })
    }

    /// Bound addresses of the listener named `name`.
    pub fn listener_addrs(&self, name: &str) -> Vec<SocketAddr> {
        self.services
            .iter()
            .filter(|s| s.name() == name)
            .flat_map(TcpService::local_addrs)
            .collect()
    }

    /// The admin listener's bound address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|a| a.local_addr().ok())
    }

    /// The running pool named `name` (tests and diagnostics).
    pub fn pool(&self, name: &str) -> Option<Arc<PoolRuntime>> {
        self.pools.iter().find(|p| &*p.name == name).cloned()
    }

    /// Serves until `shutdown` fires; then stops accepting, lets open
    /// connections finish for up to the configured grace period, closes the
    /// rest and returns.
    pub async fn run(self, shutdown: Shutdown) -> io::Result<()> {
        let (hard_trigger, hard_stop) = Shutdown::new();
        let (tasks_trigger, tasks_stop) = Shutdown::new();
        let drain = Drain::new();
        let mut background = Vec::new();
        for pool in &self.pools {
            background.extend(pool.spawn_health(tasks_stop.clone()));
        }
        if let Some(admin) = self.admin {
            let listener = tokio::net::TcpListener::from_std(admin)?;
            background.push(tokio::spawn(admin::serve(
                listener,
                telemetry::metrics_handle(),
                tasks_stop.clone(),
            )));
        }
        let mut servers = tokio::task::JoinSet::new();
        for service in self.services {
            servers.spawn(service.serve(shutdown.clone(), hard_stop.clone(), drain.clone()));
        }
        tracing::info!(
            listeners = self.config.listeners.len(),
            pools = self.config.pools.len(),
            "weir is serving"
        );
        while let Some(result) = servers.join_next().await {
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "listener failed"),
                Err(e) => tracing::error!(error = %e, "listener task ended abnormally"),
            }
        }
        let grace = self.config.runtime.shutdown_grace;
        let live = drain.live();
        if live > 0 {
            tracing::info!(connections = live, grace = ?grace, "draining open connections");
        }
        if tokio::time::timeout(grace, drain.idle()).await.is_err() {
            tracing::warn!(
                connections = drain.live(),
                "grace period over; closing remaining connections"
            );
        }
        hard_trigger.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(5), drain.idle()).await;
        tasks_trigger.trigger();
        for task in background {
            let _ = task.await;
        }
        tracing::info!("weir stopped");
        Ok(())
    }
}
