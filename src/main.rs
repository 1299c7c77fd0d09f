//! The `weir` command: parse arguments, load config, install telemetry,
//! handle signals. Everything else lives in the library.

// The CLI edge is where output to the terminal belongs.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use weir::telemetry::{self, LogFormat};
use weir::{App, TlsReloader, demo};
use weir_common::shutdown::{Shutdown, ShutdownTrigger};

/// weir: an L4 TCP load balancer with health checks and Prometheus metrics.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run with a configuration file.
    Run {
        /// The TOML configuration file.
        #[arg(short, long, env = "WEIR_CONFIG")]
        config: PathBuf,
    },
    /// Validate a configuration file and print a summary; exit 2 on errors.
    Check {
        /// The TOML configuration file.
        #[arg(short, long, env = "WEIR_CONFIG")]
        config: PathBuf,
    },
    /// Run a self-contained demo: built-in backends behind an L4 listener.
    Demo {
        /// Where the demo listener accepts.
        #[arg(long, default_value = "127.0.0.1:7070")]
        listen: std::net::SocketAddr,
        /// Where metrics are served.
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: std::net::SocketAddr,
    },
}

/// Exit code for configuration and start-up errors.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_logging(cli.log_format, cli.verbose);
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Run { config } => match weir_config::load(&config) {
            Ok(v) => {
                for w in &v.warnings {
                    tracing::warn!("{}: warning: {w}", config.display());
                }
                serve(v.config, None)
            }
            Err(e) => config_error(&config.display().to_string(), &e),
        },
        Command::Demo { listen, admin } => demo_main(listen, admin),
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match weir_config::load(path) {
        Ok(v) => {
            for w in &v.warnings {
                eprintln!("{}: warning: {w}", path.display());
            }
            let errors = weir::check_files(&v.config);
            if !errors.is_empty() {
                for e in &errors {
                    eprintln!("{}: error: {e}", path.display());
                }
                return ExitCode::from(EXIT_CONFIG);
            }
            print!("{}", v.config.summary());
            println!("{}: configuration is valid", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => config_error(&path.display().to_string(), &e),
    }
}

fn config_error(origin: &str, e: &weir_config::LoadError) -> ExitCode {
    let lines = e.lines();
    for line in &lines {
        match e {
            // Already `file:line:column: message`.
            weir_config::LoadError::Syntax(_) => eprintln!("error: {line}"),
            _ => eprintln!("{origin}: error: {line}"),
        }
    }
    if let weir_config::LoadError::Invalid(_) = e {
        eprintln!("{origin}: {} error(s); nothing started", lines.len());
    }
    ExitCode::from(EXIT_CONFIG)
}

/// The control thread's runtime: start-up, signals, health checks, the
/// admin listener. Traffic is served on `runtime.worker_threads` worker
/// threads that [`App::run`] starts, each with a runtime of its own.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Binds everything, then serves until a signal. `banner` is printed once bound.
fn serve(config: weir_config::Config, banner: Option<String>) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let _ = telemetry::metrics_handle();
        let app = match App::bind(config) {
            Ok(app) => app,
            Err(e) => {
                eprintln!("error: {e}; nothing started");
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        if let Some(text) = banner {
            print!("{text}");
        }
        let (trigger, shutdown) = Shutdown::new();
        tokio::spawn(on_signals(trigger));
        tokio::spawn(on_sighup(app.tls_reloader()));
        match app.run(shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn on_signals(trigger: ShutdownTrigger) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down gracefully"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down gracefully"),
    }
    trigger.trigger();
    // A second signal means "now".
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::warn!("second signal: exiting without draining");
    std::process::exit(1);
}

/// SIGHUP: reload the certificates of every https listener (systemd's
/// `ExecReload=kill -HUP $MAINPID`). Installed even without https listeners,
/// so a stray SIGHUP never kills weir.
async fn on_sighup(reloader: TlsReloader) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot install the SIGHUP handler");
        return;
    };
    while hup.recv().await.is_some() {
        if reloader.is_empty() {
            tracing::info!("SIGHUP: no https listener, nothing to reload");
            continue;
        }
        tracing::info!(
            listeners = reloader.len(),
            "SIGHUP: reloading tls certificates"
        );
        match reloader.reload() {
            Ok(n) => tracing::info!(listeners = n, "SIGHUP: tls certificates reloaded"),
            // Each failure is logged with its cause by the listener itself.
            Err(failures) => tracing::warn!(
                failed = failures.len(),
                "SIGHUP: some https listeners kept their previous certificates"
            ),
        }
    }
}

fn demo_main(listen: std::net::SocketAddr, admin: std::net::SocketAddr) -> ExitCode {
    // The demo backends run on a thread of their own while `serve` blocks
    // this one.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the demo backends' runtime");
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let backends = rt.block_on(async {
        let mut addrs = Vec::new();
        for name in demo::BACKENDS {
            addrs.push(demo::spawn_backend(name).await?);
        }
        Ok::<_, std::io::Error>(addrs)
    });
    let backends = match backends {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot start demo backends: {e}");
            return ExitCode::FAILURE;
        }
    };
    let text = demo::config_text(listen, admin, &backends);
    let config = match weir_config::parse(&text, "demo") {
        Ok(v) => v.config,
        Err(e) => return config_error("demo", &e),
    };
    let banner = demo::banner(listen, admin, &backends);
    // The demo backends keep running on `rt`'s thread; weir gets its own runtime.
    let code = serve(config, Some(banner));
    drop(rt);
    code
}
