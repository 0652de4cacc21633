//! What each subcommand does.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use secrecy::ExposeSecret;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tracklayer_core::admin::Principal;
use tracklayer_core::bootstrap::Bootstrapped;
use tracklayer_core::deliver::service::{
    run_worker, DeliveryConfig, DeliveryPorts, DeliveryService,
};
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::destination::{Destination, DestinationId, DestinationSpec};
use tracklayer_core::dsr::service::{DsrConfig, DsrPorts, DsrService};
use tracklayer_core::ingest::{IngestConfig, IngestPorts, IngestService};
use tracklayer_core::invalidation::Invalidations;
use tracklayer_core::key_expiry::KeyExpiryNotifier;
use tracklayer_core::keys::verifier::{KeyVerifier, VerifierConfig};
use tracklayer_core::ports::{ControlReader, DeliveryQueue, EventStore, ReplayFilter};
use tracklayer_core::workspace::Region;
use tracklayer_http::{tracking_router, TrackingConfig, TrackingState};
use tracklayer_local::DataDir;

use crate::cli::{Backend, Cli, Command, DeliveryArgs, DestinationsCommand, InitArgs, ServeArgs};
use crate::stack::LocalStack;

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.backend == Backend::Aws {
        return match cli.command {
            Command::Init(args) => {
                let target = crate::aws::Target::resolve(cli.aws_region, cli.stack, args.region)?;
                crate::aws::init(&target, &args.name, args.json).await
            }
            _ => bail!(
                "--backend aws supports `init` only; manage a deployed stack through its admin API"
            ),
        };
    }
    if cli.aws_region.is_some() || cli.stack.is_some() {
        bail!("--region and --stack before the command name a deployed stack: add --backend aws");
    }
    match cli.command {
        Command::Init(args) => init(args).await,
        Command::Serve(args) => serve(args).await,
        Command::Destinations(cmd) => destinations(cmd).await,
        Command::Keys(cmd) => crate::operator::keys(cmd).await,
        Command::Users(cmd) => crate::operator::users(cmd).await,
    }
}

async fn bootstrap(
    dir: DataDir,
    region: Region,
    name: &str,
) -> anyhow::Result<(LocalStack, Bootstrapped)> {
    let stack = LocalStack::create(dir)?;
    let boot = stack.control().bootstrap(region, name).await?;
    Ok((stack, boot))
}

fn print_bootstrap(boot: &Bootstrapped, dir: &DataDir, as_json: bool) {
    if as_json {
        println!(
            "{}",
            json!({
                "workspace_id": boot.workspace.id,
                "region": boot.workspace.region,
                "admin_token": boot.admin_token.expose_secret(),
                "write_key": boot.write_key.expose_secret(),
                "data_dir": dir.root().display().to_string(),
            })
        );
    } else {
        println!(
            "Created workspace {} (region {}) in {}",
            boot.workspace.id,
            boot.workspace.region,
            dir.root().display()
        );
        println!("These secrets are shown once; store them now:");
        println!("  admin token: {}", boot.admin_token.expose_secret());
        println!("  write key:   {}", boot.write_key.expose_secret());
    }
}

async fn init(args: InitArgs) -> anyhow::Result<()> {
    let dir = DataDir::new(args.dir.data_dir);
    let region = args.region.unwrap_or(Region::Us);
    let (_, boot) = bootstrap(dir.clone(), region, &args.name).await?;
    print_bootstrap(&boot, &dir, args.json);
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let dir = DataDir::new(args.dir.data_dir.clone());
    let stack = if dir.is_initialized() {
        LocalStack::open(dir)?
    } else {
        let (stack, boot) = bootstrap(dir.clone(), args.region, "Default workspace").await?;
        print_bootstrap(&boot, &dir, false);
        stack
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

    // One process: the admin API's changes reach ingest's and delivery's caches at once,
    // and both APIs share one key verifier (its failure counters and verified keys).
    let invalidations = Invalidations::new();
    let verifier = Arc::new(KeyVerifier::new(
        VerifierConfig {
            max_failures: args.auth_failure_limit,
            ..VerifierConfig::new(region)
        },
        stack.clock.clone(),
    ));
    let dsr_store = Arc::new(tracklayer_local::SqliteDsrStore::new(stack.db.clone()));
    let ingest = Arc::new(
        IngestService::new(
            IngestPorts {
                control: stack.control.clone(),
                events: stack.events.clone(),
                queue: stack.queue.clone(),
                keyring: stack.keyring.clone(),
                clock: stack.clock.clone(),
                ids: stack.ids.clone(),
            },
            IngestConfig::new(region),
        )
        .with_suppressions(dsr_store.clone())
        .with_verifier(verifier.clone()),
    );
    invalidations.subscribe(ingest.clone());
    // An erasure suppresses its subject when it is submitted; ingest drops its cached list
    // at once, so the subject's next event is dropped.
    let dsr = Arc::new(
        dsr_service(&stack, dsr_store.clone(), &args).with_invalidations(invalidations.clone()),
    );
    let tracking = TrackingState::new(
        ingest,
        TrackingConfig {
            rate_limit_per_key: args.rate_limit,
            trusted_proxies: args.trusted_proxies(),
            ..TrackingConfig::default()
        },
    );
    let admin = tracklayer_http::AdminState::new(
        Arc::new(
            stack
                .admin_service(region, args.allow_private_egress)
                .with_verifier(verifier)
                .with_invalidations(invalidations.clone()),
        ),
        tracklayer_http::admin::DestinationTester::new(tracklayer_http::admin::TestPorts {
            control: stack.control.clone(),
            keyring: stack.keyring.clone(),
            egress: Arc::new(tracklayer_egress::HttpEgress::new(
                tracklayer_egress::EgressConfig {
                    timeout: Duration::from_millis(args.delivery.egress_timeout_ms.max(1)),
                    policy: tracklayer_egress::EgressPolicy {
                        allow_private: args.allow_private_egress,
                    },
                    ..Default::default()
                },
            )?),
            clock: stack.clock.clone(),
            ids: stack.ids.clone(),
        }),
        tracklayer_http::AdminConfig::default(),
    )
    .with_dsr(dsr.clone());
    let app = tracking_router(tracking).merge(tracklayer_http::admin_router(admin));

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr()?;
    println!(
        "TrackLayer listening on http://{local} (region {region}, data {})",
        stack.dir.root().display()
    );
    tracing::info!(%local, %region, "listening");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sweeper = tokio::spawn(sweep_loop(
        stack.clone_for_sweep(),
        (stack.control.clone(), stack.audit.clone()),
        stack.clock.clone(),
        Duration::from_secs(args.sweep_interval_secs.max(1)),
        stop_rx.clone(),
    ));
    let key_expiry = tokio::spawn(key_expiry_loop(
        KeyExpiryNotifier::new(
            stack.control.clone(),
            Arc::new(tracklayer_local::OutboxMailer::new(
                stack.dir.outbox(),
                "TrackLayer <noreply@tracklayer.invalid>".into(),
                stack.clock.clone(),
                stack.ids.clone(),
            )),
        ),
        stack.clock.clone(),
        Duration::from_secs(args.key_expiry_check_secs.max(1)),
        stop_rx.clone(),
    ));
    let delivery = Arc::new(delivery_service(
        &stack,
        &args.delivery,
        args.allow_private_egress,
    )?);
    invalidations.subscribe(delivery.clone());
    let dsr_worker = tokio::spawn(dsr_loop(
        dsr,
        dsr_store,
        stack.db.clone(),
        stack.clock.clone(),
        Duration::from_millis(args.dsr_interval_ms.max(10)),
        stop_rx.clone(),
    ));
    let workers: Vec<_> = DestinationKind::ALL
        .into_iter()
        .map(|kind| {
            tokio::spawn(run_worker(
                delivery.clone(),
                stack.queue.clone(),
                kind,
                stop_rx.clone(),
            ))
        })
        .collect();

    tracklayer_http::server::serve(listener, app, args.server_limits(), shutdown_signal())
        .await
        .context("the HTTP server failed")?;

    // In-flight requests have finished: every accepted event is in the database. Workers
    // finish the deliveries they started and record their outcomes.
    let _ = stop_tx.send(true);
    for w in workers {
        let _ = w.await;
    }
    let _ = sweeper.await;
    let _ = key_expiry.await;
    let _ = dsr_worker.await;
    stack.db.checkpoint().await?;
    tracing::info!("stopped");
    Ok(())
}

fn delivery_service(
    stack: &LocalStack,
    args: &DeliveryArgs,
    allow_private: bool,
) -> anyhow::Result<DeliveryService> {
    let egress = tracklayer_egress::HttpEgress::new(tracklayer_egress::EgressConfig {
        timeout: Duration::from_millis(args.egress_timeout_ms.max(1)),
        policy: tracklayer_egress::EgressPolicy { allow_private },
        ..Default::default()
    })?;
    Ok(DeliveryService::new(
        DeliveryPorts {
            control: stack.control.clone(),
            queue: stack.queue.clone(),
            log: stack.delivery_log.clone(),
            keyring: stack.keyring.clone(),
            egress: Arc::new(egress),
            clock: stack.clock.clone(),
            ids: stack.ids.clone(),
            connectors: tracklayer_connectors::connector,
            base_urls: tracklayer_connectors::default_base_url,
        },
        DeliveryConfig {
            max_attempts: args.max_attempts.max(1),
            backoff_base: Duration::from_millis(args.retry_base_ms),
            backoff_cap: Duration::from_millis(args.retry_cap_ms.max(args.retry_base_ms)),
            breaker_cooldown: Duration::from_millis(args.breaker_cooldown_ms),
            batch_window: Duration::from_millis(args.batch_window_ms),
            paused_recheck: Duration::from_millis(args.paused_recheck_ms),
            ..DeliveryConfig::default()
        },
    )
    .with_suppressions(Arc::new(tracklayer_local::SqliteDsrStore::new(
        stack.db.clone(),
    ))))
}

fn dsr_service(
    stack: &LocalStack,
    store: Arc<tracklayer_local::SqliteDsrStore>,
    args: &ServeArgs,
) -> DsrService {
    let mailer = tracklayer_local::OutboxMailer::new(
        stack.dir.outbox(),
        "TrackLayer <noreply@tracklayer.local>".into(),
        stack.clock.clone(),
        stack.ids.clone(),
    );
    // Never shorter than twice ingest's settings cache, which holds the suppression list.
    let floor = IngestConfig::new(Region::Us).settings_ttl * 2;
    let propagation = time::Duration::milliseconds(
        i64::try_from(args.dsr_propagation_ms).unwrap_or(i64::MAX / 2),
    )
    .max(floor);
    DsrService::new(
        DsrPorts {
            control: stack.control.clone(),
            dsr: store,
            events: stack.events.clone(),
            log: stack.delivery_log.clone(),
            queue: stack.queue.clone(),
            keyring: stack.keyring.clone(),
            mailer: Arc::new(mailer),
            audit: stack.audit.clone(),
            clock: stack.clock.clone(),
            ids: stack.ids.clone(),
            connectors: tracklayer_connectors::connector,
        },
        DsrConfig {
            suppression_propagation: propagation,
            ..DsrConfig::default()
        },
    )
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
/// than a year, API key records 90 days past their end.
async fn sweep_loop(
    (events, log): (
        Arc<tracklayer_local::SqliteEventStore>,
        Arc<tracklayer_local::SqliteDeliveryLog>,
    ),
    (control, audit): (
        Arc<tracklayer_local::SqliteControlStore>,
        Arc<tracklayer_local::SqliteAuditLog>,
    ),
    clock: Arc<dyn tracklayer_core::clock::Clock>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use tracklayer_core::ports::DeliveryLog;
    loop {
        let now = clock.now();
        let swept = [
            events.sweep(now).await,
            log.sweep(now).await,
            audit.sweep(now).await,
            control.sweep(now).await,
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

fn show(d: &Destination) -> serde_json::Value {
    json!({
        "id": d.id,
        "name": d.name,
        "kind": d.kind,
        "config": d.config,
        "secrets": d.secret_hints,
        "consent_purposes": d.consent_purposes,
        "events": d.events,
        "endpoint": d.endpoint,
        "paused": d.paused,
        "created_at": d.created_at.format(&Rfc3339).unwrap_or_default(),
    })
}

fn parse_time(flag: &str, v: Option<&str>) -> anyhow::Result<Option<OffsetDateTime>> {
    v.map(|s| {
        OffsetDateTime::parse(s, &Rfc3339)
            .with_context(|| format!("{flag} must be an RFC 3339 time"))
    })
    .transpose()
}

async fn destinations(cmd: DestinationsCommand) -> anyhow::Result<()> {
    match cmd {
        DestinationsCommand::Add(args) => {
            let stack = LocalStack::open(DataDir::new(args.ws.dir.data_dir))?;
            let ws = stack.workspace(args.ws.workspace.as_deref()).await?;
            let text = if args.json == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                args.json
            };
            let spec: DestinationSpec =
                serde_json::from_str(&text).context("the destination definition is not valid")?;
            // Through the control plane: the egress guard checks its URLs, and it is audited.
            let admin = stack.admin_service(ws.region, args.allow_private_egress);
            let d = admin
                .create_destination(&Principal::operator(&ws.id), spec)
                .await
                .map_err(|e| anyhow::anyhow!("cannot add the destination: {e}"))?;
            println!("{}", serde_json::to_string_pretty(&d)?);
        }
        DestinationsCommand::List(args) => {
            let stack = LocalStack::open(DataDir::new(args.dir.data_dir))?;
            let ws = stack.workspace(args.workspace.as_deref()).await?;
            let all: Vec<_> = stack
                .control
                .destinations(&ws.id)
                .await?
                .iter()
                .map(show)
                .collect();
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
        DestinationsCommand::Pause(args) => set_paused(args, true).await?,
        DestinationsCommand::Resume(args) => set_paused(args, false).await?,
        DestinationsCommand::Replay(args) => {
            let stack = LocalStack::open(DataDir::new(args.ws.dir.data_dir))?;
            let ws = stack.workspace(args.ws.workspace.as_deref()).await?;
            let id = DestinationId::parse(&args.id)?;
            let Some(d) = stack.control.destination(&ws.id, &id).await? else {
                bail!("no destination {id} in workspace {}", ws.id);
            };
            let filter = ReplayFilter {
                destination_id: Some(id),
                since: parse_time("--since", args.since.as_deref())?,
                until: parse_time("--until", args.until.as_deref())?,
            };
            let moved = stack.queue.replay(d.kind, &filter).await?;
            println!(
                "{}",
                json!({"destination_id": d.id, "replayed_messages": moved})
            );
        }
    }
    Ok(())
}

async fn set_paused(args: crate::cli::DestinationArgs, paused: bool) -> anyhow::Result<()> {
    let stack = LocalStack::open(DataDir::new(args.ws.dir.data_dir))?;
    let ws = stack.workspace(args.ws.workspace.as_deref()).await?;
    let id = DestinationId::parse(&args.id)?;
    let d = stack.control().set_paused(&ws.id, &id, paused).await?;
    println!("{}", serde_json::to_string_pretty(&show(&d))?);
    Ok(())
}
