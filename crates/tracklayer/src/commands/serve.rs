//! `tracklayer serve`: the tracking and admin APIs and the background workers, in one process.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tracklayer_core::deliver::service::{run_worker, DeliveryConfig};
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::dsr::service::{DsrConfig, DsrService};
use tracklayer_core::ingest::IngestConfig;
use tracklayer_core::key_expiry::KeyExpiryNotifier;
use tracklayer_core::keys::verifier::VerifierConfig;
use tracklayer_core::ports::Egress;
use tracklayer_core::ports::EventEraser;
use tracklayer_core::services::{Services, ServicesConfig};
use tracklayer_core::workspace::{Region, WorkspaceId};
use tracklayer_http::{tracking_router, TrackingConfig, TrackingState};
use tracklayer_local::DataDir;

use super::init::{bootstrap, print_local_bootstrap, print_sign_in_link};
use crate::cli::ServeArgs;
use crate::stack::LocalStack;

pub(super) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let tls = args.tls().context("cannot use --tls-cert/--tls-key")?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (stack, region, created) = open_or_create(&args).await?;
    let stack = stack.with_delivery_attempts(args.delivery.max_attempts.max(1));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr()?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| console_url(scheme, local));
    let wired = wire(&stack, region, &args, &public_url)?;
    if let Some(ws) = created {
        print_sign_in_link(&wired.services.admin, &ws, false).await?;
    }
    println!(
        "TrackLayer listening on {scheme}://{local} (region {region}, data {})",
        stack.dir.root().display()
    );
    println!("Console: {public_url}/sign-in");
    tracing::info!(%local, %region, tls = tls.is_some(), "listening");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let background = spawn_background(&stack, &args, &wired, &stop_rx);

    let limits = args.server_limits();
    tracklayer_http::server::serve(listener, wired.app, limits, tls, shutdown_signal())
        .await
        .context("the HTTP server failed")?;

    // In-flight requests have finished: every accepted event is in the database. Workers
    // finish the deliveries they started and record their outcomes.
    let _ = stop_tx.send(true);
    for task in background {
        let _ = task.await;
    }
    stack.db.checkpoint().await?;
    tracing::info!("stopped");
    Ok(())
}

/// The data directory, initialized with a first workspace if it is empty; the region served,
/// and the workspace if it was created now.
async fn open_or_create(
    args: &ServeArgs,
) -> anyhow::Result<(LocalStack, Region, Option<WorkspaceId>)> {
    let dir = DataDir::new(args.dir.data_dir.clone());
    let (stack, created) = if dir.is_initialized() {
        (LocalStack::open(dir)?, None)
    } else {
        let (stack, boot) = bootstrap(dir.clone(), args.region, "Default workspace", None).await?;
        print_local_bootstrap(&boot, &dir, false);
        (stack, Some(boot.workspace.id))
    };
    let region = stack
        .workspace(None)
        .await
        .map(|w| w.region)
        .unwrap_or(args.region);
    if args.allow_private_egress {
        tracing::warn!(
            "private egress allowed: destinations may reach loopback and private addresses"
        );
    }
    Ok((stack, region, created))
}

/// What the HTTP server and the background workers of one process share.
struct Wired {
    app: axum::Router,
    services: Services,
}

/// The use cases over the stack ([`Services`]: one key verifier, one invalidation bus), and
/// the tracking and admin routers over them.
fn wire(
    stack: &LocalStack,
    region: Region,
    args: &ServeArgs,
    public_url: &str,
) -> anyhow::Result<Wired> {
    let ports = stack.ports(args.allow_private_egress);
    let egress: Arc<dyn Egress> = Arc::new(tracklayer_egress::HttpEgress::new(
        tracklayer_egress::EgressConfig {
            timeout: Duration::from_millis(args.delivery.egress_timeout_ms.max(1)),
            policy: tracklayer_egress::EgressPolicy {
                allow_private: args.allow_private_egress,
            },
            ..Default::default()
        },
    )?);
    let mut config = services_config(region, args);
    config.public_url = public_url.to_owned();
    let services = Services::new(&ports, egress.clone(), config);
    let tracking = TrackingState::new(
        services.ingest.clone(),
        TrackingConfig {
            rate_limit_per_key: args.rate_limit,
            rate_limit_per_ip: args.rate_limit_per_ip,
            gzip_max_ratio: usize::try_from(args.gzip_max_ratio).unwrap_or(usize::MAX),
            trusted_proxies: args.trusted_proxies(),
            ..TrackingConfig::default()
        },
    );
    let admin = tracklayer_http::AdminState::new(
        services.admin.clone(),
        tracklayer_http::admin::DestinationTester::new(&ports, egress),
        tracklayer_http::AdminConfig {
            endpoints: endpoints(region, public_url),
        },
    )
    .with_dsr(services.dsr.clone());
    let console =
        tracklayer_http::console_router(tracklayer_http::ConsoleState::new(admin.clone()));
    let app = tracking_router(tracking)
        .merge(tracklayer_http::scim_router(admin.clone()))
        .merge(tracklayer_http::admin_router(admin))
        .merge(console);
    Ok(Wired { app, services })
}

/// The public URL of each region for the admin API: this server's own for its region (the
/// SAML entity id and ACS URL of its workspaces name it: an IdP posts its responses here), the
/// hosted endpoint for the other region (where a 421 sends that region's requests).
fn endpoints(region: Region, public_url: &str) -> tracklayer_http::RegionEndpoints {
    let mut endpoints = tracklayer_http::RegionEndpoints::default();
    match region {
        Region::Us => endpoints.us = public_url.to_owned(),
        Region::Eu => endpoints.eu = public_url.to_owned(),
    }
    endpoints
}

/// The console's address as a browser on this machine reaches it (an unspecified listening
/// address is reached on loopback).
fn console_url(scheme: &str, local: std::net::SocketAddr) -> String {
    let ip = match local.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("{scheme}://{}", std::net::SocketAddr::new(ip, local.port()))
}

/// The flags of `serve` as the use cases' configuration.
fn services_config(region: Region, args: &ServeArgs) -> ServicesConfig {
    let d = &args.delivery;
    let defaults = ServicesConfig::new(region);
    // Never shorter than twice ingest's settings cache, which holds the suppression list.
    let floor = defaults.ingest.settings_ttl * 2;
    let propagation = time::Duration::milliseconds(
        i64::try_from(args.dsr_propagation_ms).unwrap_or(i64::MAX / 2),
    )
    .max(floor);
    ServicesConfig {
        verifier: VerifierConfig {
            max_failures: args.auth_failure_limit,
            ..defaults.verifier
        },
        delivery: DeliveryConfig {
            max_attempts: d.max_attempts.max(1),
            backoff_base: Duration::from_millis(d.retry_base_ms),
            backoff_cap: Duration::from_millis(d.retry_cap_ms.max(d.retry_base_ms)),
            breaker_cooldown: Duration::from_millis(d.breaker_cooldown_ms),
            batch_window: Duration::from_millis(d.batch_window_ms),
            paused_recheck: Duration::from_millis(d.paused_recheck_ms),
            visibility: Duration::from_millis(d.visibility_ms),
            ..defaults.delivery
        },
        dsr: DsrConfig {
            suppression_propagation: propagation,
            ..defaults.dsr
        },
        ingest: IngestConfig {
            max_in_flight: usize::try_from(args.max_batches_in_flight).unwrap_or(usize::MAX),
            ..defaults.ingest
        },
        ..defaults
    }
}

/// The sweeper, the key expiry check, the DSR processor and one delivery worker per
/// destination kind, until `stop` changes.
fn spawn_background(
    stack: &LocalStack,
    args: &ServeArgs,
    wired: &Wired,
    stop_rx: &tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let sweeper = tokio::spawn(sweep_loop(
        stack.clone_for_sweep(),
        (
            stack.control.clone(),
            stack.audit.clone(),
            stack.sessions.clone(),
        ),
        stack.clock.clone(),
        Duration::from_secs(args.sweep_interval_secs.max(1)),
        stop_rx.clone(),
    ));
    let key_expiry = tokio::spawn(key_expiry_loop(
        KeyExpiryNotifier::new(stack.control.clone(), stack.mailer.clone()),
        stack.clock.clone(),
        Duration::from_secs(args.key_expiry_check_secs.max(1)),
        stop_rx.clone(),
    ));
    let dsr_worker = tokio::spawn(dsr_loop(
        wired.services.dsr.clone(),
        stack.dsr.clone(),
        stack.db.clone(),
        stack.clock.clone(),
        Duration::from_millis(args.dsr_interval_ms.max(10)),
        stop_rx.clone(),
    ));
    let mut tasks: Vec<_> = DestinationKind::ALL
        .into_iter()
        .map(|kind| {
            tokio::spawn(run_worker(
                wired.services.delivery.clone(),
                stack.queue.clone(),
                kind,
                stop_rx.clone(),
            ))
        })
        .collect();
    tasks.extend([sweeper, key_expiry, dsr_worker]);
    tasks
}

/// Processes data-subject requests and sweeps expired exports and the DSR records of closed
/// workspaces whose account data ended; after an erasure, rebuilds the database file so that no
/// erased byte survives in free pages, b-tree interior pages or the WAL.
async fn dsr_loop(
    dsr: Arc<DsrService>,
    store: Arc<tracklayer_local::SqliteDsrStore>,
    db: tracklayer_local::Db,
    clock: Arc<dyn tracklayer_core::clock::Clock>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use tracklayer_core::ports::DsrStore;
    loop {
        let report = dsr.run().await;
        if !report.completed.is_empty() || report.pages > 0 {
            tracing::info!(
                pages = report.pages,
                completed = report.completed.len(),
                reminders = report.reminders,
                failed = report.failed,
                "data-subject requests processed"
            );
        }
        if report.erasures_completed > 0 {
            if let Err(e) = db.compact().await {
                tracing::warn!(error = %e, "compacting after an erasure failed; retried after the next one");
            }
        }
        if let Err(e) = store.sweep(clock.now()).await {
            tracing::warn!(error = %e, "sweeping expired exports and data-subject records failed");
        }
        // More work waiting: go on soon, but let other writers in between pages.
        let pause = if report.more && report.failed == 0 {
            Duration::from_millis(50).min(every)
        } else {
            every
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Deletes what expired: events, IP/UA, dedup markers, delivery log, audit entries older
/// than a year, API key records 90 days past their end, stats buckets after 8 days, ended
/// console sessions, used-up links and failed sign-in counters.
async fn sweep_loop(
    (events, log, stats): (
        Arc<tracklayer_local::SqliteEventStore>,
        Arc<tracklayer_local::SqliteDeliveryLog>,
        Arc<tracklayer_local::SqliteStats>,
    ),
    (control, audit, sessions): (
        Arc<tracklayer_local::SqliteControlStore>,
        Arc<tracklayer_local::SqliteAuditLog>,
        Arc<tracklayer_local::SqliteSessionStore>,
    ),
    clock: Arc<dyn tracklayer_core::clock::Clock>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use tracklayer_core::ports::{DeliveryLog, SessionStore};
    loop {
        let now = clock.now();
        let swept = [
            events.sweep(now).await,
            log.sweep(now).await,
            audit.sweep(now).await,
            control.sweep(now).await,
            stats.sweep(now).await,
            sessions.sweep(now).await,
        ];
        let mut rows = 0;
        for r in swept {
            match r {
                Ok(n) => rows += n,
                Err(e) => tracing::warn!(error = %e, "sweep failed; will retry"),
            }
        }
        if rows > 0 {
            tracing::info!(rows, "expired rows deleted");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Mails the admins of keys about to expire, 14 and 3 days ahead (once per key and warning).
async fn key_expiry_loop(
    notifier: KeyExpiryNotifier,
    clock: Arc<dyn tracklayer_core::clock::Clock>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = notifier.run(clock.now()).await {
            tracing::warn!(error = %e, "key expiry check failed; will retry");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn serve_args(extra: &[&str]) -> Result<ServeArgs, clap::Error> {
        let mut argv = vec!["tracklayer", "serve"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv)?.command {
            Command::Serve(args) => Ok(args),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn batches_in_flight_are_six_unless_set_and_bounded() {
        let default = services_config(Region::Us, &serve_args(&[]).unwrap());
        assert_eq!(default.ingest.max_in_flight, 6);
        let set = serve_args(&["--max-batches-in-flight", "10"]).unwrap();
        assert_eq!(services_config(Region::Us, &set).ingest.max_in_flight, 10);
        for bad in ["0", "1025", "-1", "six"] {
            assert!(
                serve_args(&["--max-batches-in-flight", bad]).is_err(),
                "{bad}"
            );
        }
    }
}
