//! The server on PostgreSQL (`serve --database URL`): the log, its views, the accounts and
//! the rate limits in one database that any number of server processes share
//! (ARCHITECTURE.md, "Storage"). Each process announces the pushes it stores to its own
//! sockets at once and hears every process's through LISTEN ([`listen_heads`]); the views
//! are projected by whichever process holds the projector's lock, and read by all.
//!
//! The trait methods block (as SQLite's do): each waits for its queries on the server's
//! runtime, so they are called on blocking threads, as the server calls SQLite.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::sync::ssr::Backend;
use tandem_events::ids::{AggregateId, EventId, WorkspaceId};
use tandem_pg::{Database, PgAccounts, PgCentral, PgError, PgViews};
use tandem_protocol::data::ListSnapshot;
use tandem_protocol::sync::{ErrorCode, PullRequest, PullResponse, PushRequest, SyncError};
use tandem_store::{PushOutcome, Pusher, SyncLimits};
use tokio::runtime::Handle;

use crate::config::Limits;
use crate::databases::{now_ms, sync_limits};

/// Events applied per projection transaction.
const PROJECTION_BATCH: u64 = 500;

/// Connections besides the pulls' for pushes, accounts and the projector.
const OTHER_CONNECTIONS: usize = 8;

/// The shared database, as this process uses it.
#[derive(Clone)]
pub struct Postgres {
    db: Database,
    central: PgCentral,
    views: PgViews,
    accounts: Arc<PgAccounts>,
    handle: Handle,
    read_slots: usize,
}

fn internal(e: impl std::fmt::Display) -> SyncError {
    SyncError::new(ErrorCode::Internal, e.to_string())
}

impl Postgres {
    /// Connects to `url`, bringing the schema to this build's (under the migrations' lock:
    /// processes starting together apply each version once). Call inside the runtime that
    /// serves.
    pub async fn connect(url: &str, limits: &Limits) -> Result<Self, PgError> {
        let read_slots = limits.read_connections.max(1);
        let db = Database::connect(url, read_slots + OTHER_CONNECTIONS)?;
        let applied = db.migrate().await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "PostgreSQL schema versions applied");
        }
        let central = PgCentral::open(
            db.clone(),
            sync_limits(limits),
            &uuid::Uuid::new_v4().to_string(),
            Arc::new(now_ms),
        )
        .await?;
        tracing::info!(log_id = %central.log_id(), "the log (PostgreSQL)");
        let handle = Handle::current();
        Ok(Self {
            views: PgViews::new(db.clone()),
            accounts: Arc::new(PgAccounts::new(db.clone(), handle.clone())),
            db,
            central,
            handle,
            read_slots,
        })
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    pub fn accounts(&self) -> Arc<dyn tandem_accounts::AccountStore> {
        Arc::clone(&self.accounts) as Arc<dyn tandem_accounts::AccountStore>
    }

    /// The views caught up with the log, waiting for another process's projector if need be.
    fn catch_up(&self) -> Result<u64, SyncError> {
        self.wait(self.views.catch_up(PROJECTION_BATCH))
            .map_err(internal)
    }

    /// Waits for `work` on the server's runtime (from a blocking thread).
    fn wait<T>(&self, work: impl Future<Output = T>) -> T {
        self.handle.block_on(work)
    }
}

impl Backend for Postgres {
    fn limits(&self) -> SyncLimits {
        self.central.limits()
    }

    fn log_id(&self) -> String {
        self.central.log_id().to_string()
    }

    fn read_slots(&self) -> usize {
        self.read_slots
    }

    fn push_as(
        &self,
        request: &PushRequest,
        pusher: &Pusher<'_>,
    ) -> Result<PushOutcome, SyncError> {
        self.wait(self.central.push_as(request, pusher))
    }

    fn pull(&self, request: &PullRequest, _now: i64) -> Result<PullResponse, SyncError> {
        self.wait(self.central.pull(request))
    }

    fn head(&self, workspace: WorkspaceId, now: i64) -> Result<u64, SyncError> {
        self.wait(self.central.head(workspace))
            .map_err(|e| internal(e).at(now))
    }

    fn heads(&self) -> Result<Vec<(WorkspaceId, u64)>, SyncError> {
        self.wait(self.central.heads()).map_err(internal)
    }

    fn ensure_first_list(
        &self,
        workspace: WorkspaceId,
        name: &str,
        list_id: AggregateId,
        event_id: EventId,
        user: Option<&str>,
    ) -> Result<Option<AggregateId>, SyncError> {
        self.wait(
            self.central
                .ensure_first_list(workspace, name, list_id, event_id, user),
        )
    }

    fn list_workspace(&self, list_id: &str) -> Result<Option<String>, SyncError> {
        self.catch_up()?;
        self.wait(self.views.list_workspace(list_id))
            .map_err(internal)
    }

    /// The views caught up with the log first (reads never see stale views).
    fn snapshot(
        &self,
        workspace: WorkspaceId,
        list_id: Option<String>,
    ) -> Result<(ListSnapshot, u64), SyncError> {
        self.catch_up()?;
        self.wait(self.views.snapshot(workspace, list_id))
            .map_err(internal)
    }

    /// One pass when this process gets the projector's lock; 0 when another has it.
    fn project(&self) -> Result<u64, SyncError> {
        self.wait(self.views.project(PROJECTION_BATCH))
            .map(Option::unwrap_or_default)
            .map_err(internal)
    }

    fn check(&self) -> Result<(), String> {
        self.wait(async {
            let client = self.db.client().await?;
            client.query_one("SELECT 1", &[]).await?;
            Ok::<_, PgError>(())
        })
        .map_err(|e| format!("PostgreSQL: {e}"))
    }
}

/// Hands every process's new heads to this process's sockets, and wakes the projector.
pub struct HubListener {
    hub: Arc<crate::live::Hub>,
    postgres: Postgres,
    projector: Arc<tokio::sync::Notify>,
    /// Other processes' notices whose events are to be read, in the order heard (read one at
    /// a time, so a workspace's messages go out in order and the reading holds one pooled
    /// connection at most; bounded: past it a head goes out alone and its sockets pull —
    /// DESIGN.md rule 22).
    fetching: tokio::sync::mpsc::Sender<(Instant, tandem_pg::listen::Notice)>,
    /// This process's own notices, checked after [`OWN_GRACE`]: a push whose answer did not
    /// announce its head (its request failed after the commit, or a path that announces
    /// nothing, such as a new account's Inbox) is announced then, the head alone.
    own: tokio::sync::mpsc::Sender<(Instant, tandem_pg::listen::Notice)>,
}

/// Notices waiting for their events to be read, at most.
const FETCH_QUEUE: usize = 1_024;

/// How long reading a notice's events may take before its head goes out alone.
const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// A notice that waited this long in the queue goes out as its head alone (its sockets pull):
/// a backlog of reads must not hold heads back past the broadcast goal (docs/benchmarks.md).
const FETCH_STALE: Duration = Duration::from_millis(200);

/// How long a push's own answer has to announce its head before its notice does.
const OWN_GRACE: Duration = Duration::from_secs(1);

impl HubListener {
    /// Starts the reader of notices' events (on the current runtime).
    pub fn new(
        hub: Arc<crate::live::Hub>,
        postgres: Postgres,
        projector: Arc<tokio::sync::Notify>,
    ) -> Self {
        let (fetching, notices) = tokio::sync::mpsc::channel(FETCH_QUEUE);
        tokio::spawn(announce_notices(
            Arc::clone(&hub),
            postgres.central.clone(),
            notices,
        ));
        let (own, own_notices) = tokio::sync::mpsc::channel(FETCH_QUEUE);
        tokio::spawn(announce_unannounced(Arc::clone(&hub), own_notices));
        Self {
            hub,
            postgres,
            projector,
            fetching,
            own,
        }
    }
}

/// Reads each queued notice's events and their pushers' names (once for all of this
/// process's sockets on the workspace, so none of them has to pull) and announces them.
async fn announce_notices(
    hub: Arc<crate::live::Hub>,
    central: PgCentral,
    mut notices: tokio::sync::mpsc::Receiver<(Instant, tandem_pg::listen::Notice)>,
) {
    while let Some((heard, notice)) = notices.recv().await {
        let (workspace, head) = (notice.workspace, notice.head);
        if heard.elapsed() > FETCH_STALE {
            hub.publish(workspace, head, &[], &[]);
            continue;
        }
        let read = tokio::time::timeout(
            FETCH_TIMEOUT,
            central.announced(workspace, head - notice.appended, notice.appended),
        )
        .await;
        let (events, people) = match read {
            Ok(Ok((events, people))) => (
                events
                    .iter()
                    .map(|(seq, event, user)| {
                        tandem_store::wire::logged_by(*seq, event, user.clone())
                    })
                    .collect(),
                people
                    .into_iter()
                    .map(|(user_id, username)| tandem_protocol::sync::Person { user_id, username })
                    .collect(),
            ),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read a notice's events; announcing the head alone");
                (vec![], vec![])
            }
            Err(_) => {
                tracing::warn!(
                    "reading a notice's events took too long; announcing the head alone"
                );
                (vec![], vec![])
            }
        };
        hub.publish(workspace, head, &events, &people);
    }
}

/// Announces each of this process's own notices whose head its sockets have not been told of
/// [`OWN_GRACE`] after it was heard (in the order heard, so one wait at a time).
async fn announce_unannounced(
    hub: Arc<crate::live::Hub>,
    mut notices: tokio::sync::mpsc::Receiver<(Instant, tandem_pg::listen::Notice)>,
) {
    while let Some((heard, notice)) = notices.recv().await {
        tokio::time::sleep_until((heard + OWN_GRACE).into()).await;
        if needs_announcing(hub.announced(notice.workspace), notice.head) {
            hub.publish(notice.workspace, notice.head, &[], &[]);
        }
    }
}

/// Whether a head must still be announced to a workspace's sockets, given the greatest head
/// announced to them (None: no socket follows it).
fn needs_announcing(announced: Option<u64>, head: u64) -> bool {
    announced.is_some_and(|announced| announced < head)
}

impl tandem_pg::listen::HeadsListener for HubListener {
    /// Another process's push: its head goes out with its events (queued for
    /// [`announce_notices`]). This process's own pushes are announced by their answers (with
    /// their events); their notices are checked for one that was not.
    fn head(&self, notice: tandem_pg::listen::Notice) {
        self.projector.notify_one();
        if !self.hub.follows(notice.workspace) {
            return;
        }
        if notice.origin.as_deref() == Some(self.postgres.central.origin()) {
            // Full: a thousand of this process's pushes in a second, announced by their
            // answers; a head missed meanwhile comes with the sockets' periodic pull.
            let _ = self.own.try_send((Instant::now(), notice));
            return;
        }
        let fits = (1..=crate::live::MAX_EVENTS_PER_MESSAGE as u64).contains(&notice.appended);
        if !fits {
            self.hub.publish(notice.workspace, notice.head, &[], &[]);
            return;
        }
        if let Err(full) = self.fetching.try_send((Instant::now(), notice)) {
            let (_, notice) = full.into_inner();
            self.hub.publish(notice.workspace, notice.head, &[], &[]);
        }
    }

    /// Notices sent while not listening are lost: every workspace's head is announced again
    /// (a socket behind pulls; one at the head skips it).
    fn connected(&self) {
        let backend = self.postgres.clone();
        let hub = Arc::clone(&self.hub);
        self.projector.notify_one();
        tokio::task::spawn_blocking(move || match backend.heads() {
            Ok(heads) => {
                for (workspace, head) in heads {
                    hub.publish(workspace, head, &[], &[]);
                }
            }
            Err(e) => tracing::warn!(error = %e.message, "cannot read the heads to heal"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::needs_announcing;

    #[test]
    fn an_own_head_is_announced_only_to_followers_not_told_of_it() {
        assert!(!needs_announcing(None, 5), "nobody follows");
        assert!(
            needs_announcing(Some(4), 5),
            "the answer never announced it"
        );
        assert!(!needs_announcing(Some(5), 5), "announced by the answer");
        assert!(!needs_announcing(Some(9), 5), "a later head was");
    }
}
