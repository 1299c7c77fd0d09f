//! The whole application: bind everything, then serve until shutdown and drain.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use weir_common::pool::{PoolRuntime, PoolSpec};
use weir_common::shutdown::{Drain, Shutdown};
use weir_common::workers::Workers;
use weir_config::Config;
use weir_config::Protocol;
use weir_l4::TcpService;
use weir_l4::udp::{UdpService, UdpSettings, default_max_flows};

use crate::{admin, telemetry};

/// Why start-up failed. Nothing is left bound or running.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not bind.
    #[error(transparent)]
    Bind(#[from] weir_l4::BindError),
    /// An HTTP listener could not start.
    #[cfg(feature = "l7")]
    #[error(transparent)]
    Http(#[from] weir_l7::HttpStartError),
    /// A JWT provider's keys could not be loaded.
    #[cfg(feature = "l7")]
    #[error(transparent)]
    Auth(#[from] weir_l7::auth::AuthStartError),
    /// The configuration has HTTP listeners but this build has no L7 engine.
    #[error("listener {0:?} is an http listener, but this weir was built without the l7 feature")]
    NoL7(String),
    /// A TCP or UDP listener without a pool (validation prevents this).
    #[error("listener {0:?} has no pool")]
    NoPool(String),
    /// The admin listener could not bind.
    #[error("admin listener: cannot bind {addr}: {source}")]
    Admin {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
}

/// Loads what start-up loads from files the configuration names but does
/// not parse itself — today the JWT providers' keys — without binding or
/// starting anything, and returns every failure (one line each) as `run`
/// would report the first. `weir check` uses it, so a key file that is
/// there but unusable fails the check, not the deployment.
pub fn check_files(config: &Config) -> Vec<String> {
    #[cfg(feature = "l7")]
    {
        config
            .jwt_providers
            .iter()
            .filter_map(|p| weir_l7::auth::Provider::new(p).err())
            .map(|e| e.to_string())
            .collect()
    }
    #[cfg(not(feature = "l7"))]
    {
        let _ = config;
        Vec::new()
    }
}

/// A bound listener of either protocol.
#[derive(Debug)]
enum Service {
    Tcp(Box<TcpService>),
    Udp(UdpService),
    #[cfg(feature = "l7")]
    Http(weir_l7::HttpService),
}

impl Service {
    fn name(&self) -> &str {
        match self {
            Self::Tcp(s) => s.name(),
            Self::Udp(s) => s.name(),
            #[cfg(feature = "l7")]
            Self::Http(s) => s.name(),
        }
    }

    fn local_addrs(&self) -> Vec<SocketAddr> {
        match self {
            Self::Tcp(s) => s.local_addrs(),
            Self::Udp(s) => s.local_addrs(),
            #[cfg(feature = "l7")]
            Self::Http(s) => s.local_addrs(),
        }
    }
}

/// Reloads the TLS certificates of every https listener. Cloneable: a
/// signal handler keeps one while [`App::run`] serves.
#[derive(Debug, Clone, Default)]
pub struct TlsReloader {
    #[cfg(feature = "l7")]
    listeners: Vec<Arc<weir_l7::tls::ServerTls>>,
}

impl TlsReloader {
    /// How many https listeners there are.
    pub fn len(&self) -> usize {
        #[cfg(feature = "l7")]
        let n = self.listeners.len();
        #[cfg(not(feature = "l7"))]
        let n = 0;
        n
    }

    /// True when there is no https listener.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Re-reads every https listener's certificate files. Each listener
    /// swaps to its new certificates for new handshakes only if all of its
    /// files load; otherwise it keeps its previous ones. Every outcome is
    /// logged and counted (`weir_tls_reloads_total`). `Ok` with the number
    /// of listeners reloaded, or `Err` with one line per listener that kept
    /// its previous certificates (the others did reload).
    pub fn reload(&self) -> Result<usize, Vec<String>> {
        #[cfg(feature = "l7")]
        {
            let failures: Vec<String> = self
                .listeners
                .iter()
                .filter_map(|tls| {
                    tls.reload()
                        .err()
                        .map(|e| format!("listener {:?}: {e}", tls.listener()))
                })
                .collect();
            if failures.is_empty() {
                Ok(self.listeners.len())
            } else {
                Err(failures)
            }
        }
        #[cfg(not(feature = "l7"))]
        Ok(0)
    }
}

/// A configured, fully bound weir that has not started serving.
#[derive(Debug)]
pub struct App {
    config: Config,
    /// Worker threads to serve on (`runtime.worker_threads`).
    workers: usize,
    pools: Vec<Arc<PoolRuntime>>,
    services: Vec<Service>,
    admin: Option<std::net::TcpListener>,
    /// JWT providers shared by every HTTP listener.
    #[cfg(feature = "l7")]
    auth: Arc<weir_l7::auth::Auth>,
}

/// The runtime description of a validated pool.
fn pool_spec(p: &weir_config::Pool) -> PoolSpec {
    PoolSpec {
        name: p.name.clone(),
        algorithm: p.algorithm.clone(),
        hash_key: p.hash_key,
        backends: p
            .backends
            .iter()
            .map(|b| (b.name.clone(), b.addr, b.weight))
            .collect(),
        health_check: p.health_check.clone(),
        passive: p.passive,
        fail_timeout: p.fail_timeout,
        thresholds: p.thresholds(),
    }
}

/// Builds a UDP listener's runtime settings; `udp_listeners` share the
/// default flow budget; one socket per worker unless configured.
fn udp_settings(l: &weir_config::Listener, udp_listeners: usize, workers: usize) -> UdpSettings {
    let o = l.udp.clone().unwrap_or(weir_config::UdpOptions {
        responses: None,
        max_flows: None,
        max_datagram_size: weir_l4::udp::MAX_DATAGRAM,
        sockets: None,
    });
    UdpSettings {
        name: l.name.clone(),
        bind: l.bind.clone(),
        sockets_per_address: o.sockets.unwrap_or(workers),
        idle_timeout: l.idle_timeout,
        responses: o.responses,
        max_flows: o
            .max_flows
            .unwrap_or_else(|| (default_max_flows() / udp_listeners.max(1)).max(16)),
        max_datagram_size: o.max_datagram_size,
    }
}

impl App {
    /// Binds every listener and the admin listener. On any failure, every
    /// socket bound so far is closed and the error names the address.
    pub fn bind(config: Config) -> Result<Self, StartError> {
        let workers = config
            .runtime
            .worker_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        let pools: Vec<Arc<PoolRuntime>> = config
            .pools
            .iter()
            .map(|p| Arc::new(PoolRuntime::new(pool_spec(p))))
            .collect();
        let admin = match config.admin {
            Some(addr) => Some(
                weir_common::listener::bind_tcp(addr, 128)
                    .map_err(|source| StartError::Admin { addr, source })?,
            ),
            None => None,
        };
        #[cfg(feature = "l7")]
        let outliers = {
            let configs: Vec<_> = config
                .pools
                .iter()
                .map(|p| p.outlier_detection.clone())
                .collect();
            Arc::new(weir_l7::outlier::Outliers::new(&pools, &configs))
        };
        #[cfg(feature = "l7")]
        let auth = Arc::new(weir_l7::auth::Auth::new(&config.jwt_providers)?);
        #[cfg(feature = "l7")]
        let rate_limits = Arc::new(weir_l7::ratelimit::RateLimits::new(
            &config.rate_limits,
            config.redis.as_ref(),
        ));
        let udp_listeners = config
            .listeners
            .iter()
            .filter(|l| l.protocol == Protocol::Udp)
            .count();
        let services = config
            .listeners
            .iter()
            .map(|l| {
                let pool = || {
                    l.pool
                        .and_then(|i| pools.get(i))
                        .map(Arc::clone)
                        .ok_or_else(|| StartError::NoPool(l.name.clone()))
                };
                Ok(match l.protocol {
                    Protocol::Tcp => Service::Tcp(Box::new(TcpService::bind(l, pool()?, workers)?)),
                    Protocol::Udp => Service::Udp(UdpService::bind(
                        &udp_settings(l, udp_listeners, workers),
                        pool()?,
                    )?),
                    #[cfg(feature = "l7")]
                    Protocol::Http | Protocol::Https => Service::Http(weir_l7::HttpService::bind(
                        l,
                        pools.clone(),
                        &config.pools,
                        Arc::clone(&outliers),
                        Arc::clone(&auth),
                        Arc::clone(&rate_limits),
                        workers,
                    )?),
                    #[cfg(not(feature = "l7"))]
                    Protocol::Http | Protocol::Https => {
                        return Err(StartError::NoL7(l.name.clone()));
                    }
                })
            })
            .collect::<Result<Vec<_>, StartError>>()?;
        Ok(Self {
            config,
            workers,
            pools,
            services,
            admin,
            #[cfg(feature = "l7")]
            auth,
        })
    }

    /// Bound addresses of the listener named `name`.
    pub fn listener_addrs(&self, name: &str) -> Vec<SocketAddr> {
        self.services
            .iter()
            .filter(|s| s.name() == name)
            .flat_map(Service::local_addrs)
            .collect()
    }

    /// A handle that reloads the certificates of every https listener (on
    /// SIGHUP); take it before [`App::run`] consumes the app.
    pub fn tls_reloader(&self) -> TlsReloader {
        TlsReloader {
            #[cfg(feature = "l7")]
            listeners: self
                .services
                .iter()
                .filter_map(|s| match s {
                    Service::Http(h) => h.tls(),
                    _ => None,
                })
                .collect(),
        }
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
    /// rest and returns. Traffic is served on worker threads of weir's own
    /// ([`Workers`]); health checks, the admin listener and key refreshes run
    /// on the caller's runtime.
    pub async fn run(self, shutdown: Shutdown) -> io::Result<()> {
        let workers = Workers::start(self.workers).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot start {} worker threads: {e}", self.workers),
            )
        })?;
        let (hard_trigger, hard_stop) = Shutdown::new();
        let (tasks_trigger, tasks_stop) = Shutdown::new();
        let drain = Drain::new();
        let mut background = Vec::new();
        for pool in &self.pools {
            background.extend(pool.spawn_health(tasks_stop.clone()));
        }
        #[cfg(feature = "l7")]
        background.extend(self.auth.spawn_refresh(&tasks_stop));
        background.push(tokio::spawn(telemetry::upkeep(
            telemetry::metrics_handle(),
            telemetry::UPKEEP_EVERY,
            tasks_stop.clone(),
        )));
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
            let on = workers.handles().to_vec();
            match service {
                Service::Tcp(s) => {
                    servers.spawn(s.serve(shutdown.clone(), hard_stop.clone(), drain.clone(), on))
                }
                Service::Udp(s) => servers.spawn(s.serve(shutdown.clone(), on)),
                #[cfg(feature = "l7")]
                Service::Http(s) => {
                    servers.spawn(s.serve(shutdown.clone(), hard_stop.clone(), drain.clone(), on))
                }
            };
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
        workers.stop().await;
        tracing::info!("weir stopped");
        Ok(())
    }
}
