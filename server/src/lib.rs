//! Tandem's server: configuration, the data dir's databases and the Axum router around the
//! Leptos app. `main.rs` only parses the command line and calls [`run`], so tests start a real
//! server on `127.0.0.1:0` in-process.

pub mod admin;
pub mod auth;
pub mod cli;
pub mod config;
pub mod databases;
pub mod doctor;
mod errors;
pub mod files;
mod guard;
pub mod http;
mod json;
pub mod live;
pub mod lock;
mod metrics;
pub mod postgres;
mod pwa;
pub mod rate;
mod routes;
pub mod site;
mod sync_layer;
mod workspaces;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

/// How long in-flight requests may run after a shutdown signal before the server stops anyway.
/// (Then the views' last catch-up and closing the databases get at most a second: the contract
/// wants an exit within 5 s of the signal, also with a request body that never ends.)
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(3_500);

pub use config::Config;
pub use databases::Databases;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error(transparent)]
    Databases(#[from] databases::DatabaseError),
    #[error("the listener failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot set up accounts: {0}")]
    Auth(#[from] auth::AuthError),
    #[error(transparent)]
    Files(#[from] files::FilesError),
}

/// Closes live sockets that lost access (DESIGN.md rule 23: at once, also when the command
/// line took it away while serving): polls accounts.db's revocation counter every 250 ms and
/// re-checks every socket when it moves — and every 30 s anyway, for credentials that
/// expired. Sweeps ended sessions and tokens hourly. Stops with the hub.
fn watch_access(accounts: Arc<dyn tandem_accounts::AccountStore>, hub: Arc<live::Hub>) {
    let hub = Arc::downgrade(&hub);
    tokio::spawn(async move {
        let mut seen = None;
        let mut last_full = std::time::Instant::now();
        let mut last_sweep = std::time::Instant::now() - std::time::Duration::from_secs(3_600);
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            let Some(hub) = hub.upgrade() else { return };
            let accounts = Arc::clone(&accounts);
            let due = last_full.elapsed() >= std::time::Duration::from_secs(30);
            let sweep = last_sweep.elapsed() >= std::time::Duration::from_secs(3_600);
            let previous = seen;
            let checked = tokio::task::spawn_blocking(move || {
                let now = i64::try_from(databases::now_ms()).unwrap_or(i64::MAX);
                if sweep {
                    if let Err(e) = accounts.sweep(now) {
                        tracing::warn!(error = %e, "cannot sweep ended sessions");
                    }
                }
                let count = accounts.revocations().ok();
                if due || (count.is_some() && count != previous) {
                    hub.revalidate(&*accounts, now);
                }
                count
            })
            .await;
            if let Ok(count) = checked {
                if count.is_some() {
                    seen = count;
                }
            }
            if due {
                last_full = std::time::Instant::now();
            }
            if sweep {
                last_sweep = std::time::Instant::now();
            }
        }
    });
}

/// Forgets the rate limits' old tries hourly (those kept in the database; memory forgets as
/// it goes). Stops with the server.
fn sweep_rate_limits(auth: std::sync::Weak<auth::Auth>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(3_600)).await;
            let Some(auth) = auth.upgrade() else { return };
            let now = i64::try_from(databases::now_ms()).unwrap_or(i64::MAX);
            if let Err(e) = auth.limiter.sweep(now).await {
                tracing::warn!(error = %e.0.message, "cannot sweep the rate limits' old tries");
            }
        }
    });
}

/// Serves Tandem on `listener` until `shutdown` resolves, then finishes in-flight requests and
/// closes the databases.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // On PostgreSQL the data dir holds nothing of the server's: no lock (several processes
    // share the database; its own locks keep them apart).
    let (lock, databases) = match &config.database {
        None => (
            Some(lock::lock(&config.data_dir, "server")?),
            Databases::open(&config.data_dir, &config.limits)?,
        ),
        Some(url) => (None, Databases::connect(&url.0, &config.limits).await?),
    };
    let hub = live::Hub::new(config.limits.live_sockets);
    let local_addr = listener.local_addr()?;
    let auth = Arc::new(auth::Auth::new(
        Arc::clone(&databases.accounts),
        auth::AuthSettings {
            limiter: match &databases.postgres {
                Some(postgres) => rate::Limiter::shared(postgres.database()),
                None => rate::Limiter::default(),
            },
            site: config.access.site.clone(),
            sign_up: config.access.sign_up,
            metrics_token: config.access.metrics_token.clone(),
            loopback: local_addr.ip().is_loopback(),
            password_hashes: config.limits.password_hashes,
            quota_events_per_day: config.limits.quota_events_per_day,
            quota_bytes: config.limits.quota_bytes,
        },
        Arc::clone(&databases.backend),
        Arc::clone(&hub),
    )?);
    let setup = tokio::task::spawn_blocking({
        let auth = Arc::clone(&auth);
        move || auth.mint_setup_token()
    })
    .await
    .map_err(|e| std::io::Error::other(format!("the setup check failed: {e}")))?;
    if let Some(token) = setup? {
        // Shown to the operator once, on purpose, outside the log (no token is ever logged).
        let base = config
            .access
            .site
            .public_url
            .as_ref()
            .map_or_else(|| format!("http://{local_addr}"), |u| u.origin.clone());
        eprintln!(
            "Tandem has no account yet. Make the first (admin) account with `server user add NAME`,\n\
             or open this one-time link: {base}/setup/{token}"
        );
    }
    watch_access(Arc::clone(&databases.accounts), Arc::clone(&hub));
    sweep_rate_limits(Arc::downgrade(&auth));
    let files = files::SiteFiles::load(&config.site_root)?;
    if let Some(missing) = files.missing_page(app::OUTPUT_NAME) {
        tracing::warn!("{missing}");
    }
    let site = files.origin().to_string();
    let projector = routes::Projector::start(&databases.backend);
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    if let Some(postgres) = &databases.postgres {
        tokio::spawn(tandem_pg::listen::listen_heads(
            postgres.database().clone(),
            postgres::HubListener::new(Arc::clone(&hub), postgres.clone(), projector.waker()),
            tandem_pg::listen::Heartbeat::default(),
            stopping.clone(),
        ));
    }
    let router = routes::router(
        &config,
        databases.clone(),
        Arc::clone(&hub),
        auth,
        files,
        projector,
    );
    tracing::info!(
        addr = %listener.local_addr()?,
        storage = if databases.postgres.is_some() { "PostgreSQL" } else { "SQLite" },
        data_dir = %config.data_dir.display(),
        site = %site,
        "Tandem is serving"
    );
    let signalled = async move {
        shutdown.await;
        // Open WebSockets would hold the graceful shutdown forever: close them first.
        hub.shutdown();
        let _ = stopping_tx.send(true);
    };
    let serving = http::serve(
        listener,
        router,
        std::time::Duration::from_millis(config.limits.header_read_timeout_ms),
        signalled,
    );
    // In-flight requests get a grace period; the contract wants an exit within 5 s.
    let grace_over = async move {
        if stopping.wait_for(|stopping| *stopping).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        served = serving => served?,
        () = grace_over => tracing::warn!(
            "requests still open {} s after the shutdown signal; closing anyway",
            SHUTDOWN_GRACE.as_secs()
        ),
    }
    // Leave the views caught up with everything acknowledged, if that is quick (otherwise
    // they catch up at the next start: they are rebuilt from the log anyway).
    let caught_up = tokio::time::timeout(
        std::time::Duration::from_millis(700),
        tokio::task::spawn_blocking({
            let databases = databases.clone();
            move || databases.project_views()
        }),
    )
    .await;
    match caught_up {
        Ok(Ok(Ok(_))) => {}
        Ok(Ok(Err(e))) => {
            tracing::error!(error = %e, "cannot bring the views up to date at shutdown")
        }
        Ok(Err(e)) => tracing::error!(error = %e, "the last catch-up of the views crashed"),
        Err(_) => {
            tracing::warn!("the views' last catch-up is slow; they catch up at the next start")
        }
    }
    // The projector may still hold the views for a moment (a catch-up in flight): waited
    // for, so that the read connections close before the writer, which then removes the WAL.
    // (The router and its clones of the databases are gone once serving ends.)
    databases.close(std::time::Duration::from_millis(300)).await;
    drop(lock);
    tracing::info!("Tandem stopped");
    Ok(())
}
