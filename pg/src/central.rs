//! The central log on PostgreSQL: push, pull, heads, the log's identity, and the notice of a
//! new head to every process (`NOTIFY tandem_heads`, sent on commit, in commit order).

use std::collections::HashMap;

use futures_util::TryStreamExt;
use tandem_events::domain::{DomainEvent, ListCreated};
use tandem_events::event::Event;
use tandem_events::event::StoredEvent;
use tandem_events::hlc::Clock;
use tandem_events::ids::{AggregateId, DeviceId, EventId, WorkspaceId};
use tandem_protocol::sync::{ErrorCode, PullRequest, PullResponse, PushRequest, SyncError};
use tandem_store::central::{
    busy, pull_target, pull_window, PushOutcome, Pusher, SyncLimits, ENVELOPE_BYTES,
};
use tandem_store::log::{EventChecks, LoggedBy};
use tandem_store::push::{self, AppendError, Checked, Push, Read};
use tandem_store::wire::logged_by;
use tandem_store::{PhysicalClock, Violation};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, IsolationLevel, Row};

use crate::{parse, Database, PgError};

/// The channel a new head is announced on: payload `<workspace_id> <head> <appended>
/// <origin>` (see [`crate::listen::parse_notice`]).
pub const HEADS_CHANNEL: &str = "tandem_heads";

/// The columns of an event, in the order [`event_of`] reads them.
pub(crate) const COLUMNS: &str =
    "event_id, workspace_id, aggregate_id, event_type, schema_version, \
                       event_data, hlc_timestamp, device_id, version, created_at";

/// `COLUMNS` of the table aliased `alias`.
pub(crate) fn prefixed(alias: &str) -> String {
    COLUMNS
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A pull in one statement — one snapshot (the head and the events agree: the push that moved
/// the head committed its events with it) and one round trip (through the connection's
/// statement cache): the events after the cursor ($2), at most $3 of them, each row with the
/// head; with none, one row whose event columns are NULL.
static PULL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {}, e.seq, e.user_id, octet_length(e.event_data), h.head \
         FROM (SELECT coalesce((SELECT head FROM heads WHERE workspace_id = $1), 0) AS head) h \
         LEFT JOIN LATERAL (SELECT * FROM events WHERE workspace_id = $1 AND seq > $2 \
         ORDER BY seq LIMIT $3) e ON true",
        prefixed("e")
    )
});

/// How many times a push is tried again after losing a race to another workspace's push
/// (the same event or aggregate appended by both at once) before answering BUSY.
const RACE_RETRIES: usize = 3;

/// The bounds a push's transaction is held to (DESIGN.md rule 22): acknowledged only once
/// durable whatever the role's default; a lock or statement that waits longer is given up
/// (answered BUSY: the client retries). Plans are made for each push's own arrays: a cached
/// statement's generic plan for `= ANY($1)` was measured to fall off the indexes as the log
/// grew (ingest from 34k to 3k events/s), while the cache still spares the parsing. Every
/// read of a push is a lookup by key: a sequential scan is never right, yet the planner picks
/// one while the table's statistics lag its growth (measured under ingest: 604 scans of
/// `events` reading 11.5 M rows in a 50k-event log), so it is priced out.
const PUSH_SETTINGS: &str = "SET LOCAL synchronous_commit = on; \
                             SET LOCAL lock_timeout = '5s'; \
                             SET LOCAL statement_timeout = '30s'; \
                             SET LOCAL plan_cache_mode = force_custom_plan; \
                             SET LOCAL enable_seqscan = off";

/// The central log in a PostgreSQL database (its schema current: [`Database::migrate`]).
#[derive(Clone)]
pub struct PgCentral {
    db: Database,
    limits: SyncLimits,
    log_id: String,
    clock: PhysicalClock,
    /// This process's own clock for the events it authors (a first list), under a node id of
    /// its own: processes never issue the same stamp, and a restarted one needs no saved
    /// state (its node is new).
    stamps: std::sync::Arc<std::sync::Mutex<Clock>>,
    /// This process's name in its pushes' notices (see [`Self::origin`]).
    origin: std::sync::Arc<str>,
}

impl std::fmt::Debug for PgCentral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCentral")
            .field("db", &self.db)
            .field("log_id", &self.log_id)
            .finish()
    }
}

/// Why one try of a push ended without an answer of its own.
enum Try {
    /// The answer (success or refusal) to give.
    Answer(SyncError),
    /// Another workspace's push stored the same event or aggregate meanwhile: try again.
    Race,
}

impl PgCentral {
    /// The log in `db`, its answers timed by `clock` (ms since the epoch); a log without an
    /// identity takes `candidate` (a new database: the first process to start names it, the
    /// others read that name).
    pub async fn open(
        db: Database,
        limits: SyncLimits,
        candidate: &str,
        clock: PhysicalClock,
    ) -> Result<Self, PgError> {
        let client = db.client().await?;
        client
            .execute(
                "INSERT INTO log_meta (key, value) VALUES ('log_id', $1) ON CONFLICT (key) DO NOTHING",
                &[&candidate],
            )
            .await?;
        let log_id: String = client
            .query_one("SELECT value FROM log_meta WHERE key = 'log_id'", &[])
            .await?
            .get(0);
        Ok(Self {
            db,
            limits,
            log_id,
            clock,
            stamps: std::sync::Arc::new(std::sync::Mutex::new(Clock::new(DeviceId::from_uuid(
                uuid::Uuid::new_v4(),
            )))),
            origin: uuid::Uuid::new_v4().simple().to_string().into(),
        })
    }

    /// A name of this process (of this `PgCentral` and its clones) that its pushes' notices
    /// carry, so its own heads listener can tell the pushes it announced itself.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Makes a workspace's first list when the workspace holds no events yet (a new
    /// account's "Inbox"), authored by this process and recorded as `user`'s; the list's id
    /// when it made one. Two processes doing it at once make one list.
    pub async fn ensure_first_list(
        &self,
        workspace: WorkspaceId,
        name: &str,
        list_id: AggregateId,
        event_id: EventId,
        user: Option<&str>,
    ) -> Result<Option<AggregateId>, SyncError> {
        let now = self.now();
        let internal =
            |e: &dyn std::fmt::Display| SyncError::new(ErrorCode::Internal, e.to_string()).at(now);
        if self.head(workspace).await.map_err(|e| internal(&e))? > 0 {
            return Ok(None);
        }
        let (hlc, node) = {
            let mut clock = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
            let stamp = clock
                .tick(u64::try_from(now).unwrap_or(0))
                .map_err(|e| internal(&e))?;
            (stamp, stamp.node)
        };
        let event = Event {
            event_id,
            workspace_id: workspace,
            aggregate_id: list_id,
            hlc,
            device_id: node,
            version: 1,
            created_at: now,
            body: DomainEvent::ListCreated(ListCreated {
                name: name.to_string(),
            }),
        };
        let request = PushRequest {
            device_id: node.to_string(),
            workspace_id: workspace.to_string(),
            cursor: 0,
            events: vec![tandem_store::wire::to_wire(&event.to_stored())],
        };
        match self.push_as(&request, &Pusher { user, quota: None }).await {
            Ok(_) => Ok(Some(list_id)),
            // Another process (or device) wrote first: the workspace has its events.
            Err(e) if e.code == ErrorCode::PullRequired => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn now(&self) -> i64 {
        i64::try_from((self.clock)()).unwrap_or(i64::MAX)
    }

    pub fn log_id(&self) -> &str {
        &self.log_id
    }

    pub fn limits(&self) -> SyncLimits {
        self.limits
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Handles a push by an account (its access checked), as the SQLite log does
    /// (`tandem_store::push`): one transaction holding the workspace's lock from its first
    /// read to its commit, acknowledged only once committed. On any error nothing is stored.
    pub async fn push_as(
        &self,
        request: &PushRequest,
        pusher: &Pusher<'_>,
    ) -> Result<PushOutcome, SyncError> {
        for _ in 0..RACE_RETRIES {
            match self.try_push(request, pusher).await {
                Ok(outcome) => return Ok(outcome),
                Err(Try::Answer(e)) => return Err(e),
                Err(Try::Race) => continue,
            }
        }
        Err(busy(
            "other pushes kept storing the same events; try again",
            self.now(),
        ))
    }

    async fn try_push(
        &self,
        request: &PushRequest,
        pusher: &Pusher<'_>,
    ) -> Result<PushOutcome, Try> {
        let mut push =
            push::begin(request, &self.limits, &self.log_id, self.now()).map_err(Try::Answer)?;
        let workspace = push.workspace();
        let failed = |e: PgError| Try::Answer(answer_for(e, self.now()));
        let mut client = self.db.client().await.map_err(failed)?;
        let sql = |e: tokio_postgres::Error| failed(PgError::Sql(e));
        // READ COMMITTED whatever the database's default: the reads after the lock see every
        // push that held it before.
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()
            .await
            .map_err(sql)?;
        tx.batch_execute(PUSH_SETTINGS).await.map_err(sql)?;
        // Every statement of a push through the connection's statement cache: one round trip
        // each, parsed and planned once per connection.
        let lock = tx
            .prepare_cached("SELECT pg_advisory_xact_lock($1)")
            .await
            .map_err(sql)?;
        tx.execute(&lock, &[&lock_key(workspace)])
            .await
            .map_err(sql)?;
        // The answer's time is the time the push was handled, after the waits.
        push.retime(self.now());
        let (read, versions) = read(&tx, &push).await.map_err(failed)?;
        let head = read.head;
        match push.check(read, pusher).map_err(Try::Answer)? {
            Checked::Stored(outcome) => {
                tx.rollback().await.map_err(sql)?;
                Ok(outcome)
            }
            Checked::Append(appending) => {
                let users = vec![pusher.user.map(str::to_string); appending.events().len()];
                let result = append(&tx, appending.events(), &users, head, versions).await;
                let result = match result {
                    Err(Appended::Race) => return Err(Try::Race),
                    Err(Appended::Refused(e)) => Err(e),
                    Ok(seqs) => Ok(seqs),
                };
                let outcome = appending.finish(result).map_err(Try::Answer)?;
                let notice = format!(
                    "{workspace} {} {} {}",
                    outcome.response.head,
                    outcome.appended.len(),
                    self.origin
                );
                let notify = tx
                    .prepare_cached("SELECT pg_notify($1, $2)")
                    .await
                    .map_err(sql)?;
                tx.execute(&notify, &[&HEADS_CHANNEL, &notice])
                    .await
                    .map_err(sql)?;
                tx.commit().await.map_err(sql)?;
                Ok(outcome)
            }
        }
    }

    /// Answers a pull: events with `seq > cursor`, at most the limit and
    /// [`SyncLimits::pull_bytes`] of them (always one, when there is one), the head and the
    /// events read in one snapshot.
    pub async fn pull(&self, request: &PullRequest) -> Result<PullResponse, SyncError> {
        let now = self.now();
        let workspace = pull_target(request, now)?;
        let failed = |e: PgError| answer_for(e, now);
        // The limit (the cursor is checked against the head once it is read).
        let limit = pull_window(&self.limits, request, u64::MAX, now)?;
        let client = self.db.client().await.map_err(failed)?;
        let statement = client
            .prepare_cached(&PULL)
            .await
            .map_err(|e| failed(e.into()))?;
        let (workspace_id, cursor, rows) = (
            workspace.to_string(),
            as_i64(request.cursor),
            as_i64(limit.saturating_add(1)),
        );
        let params: [&(dyn ToSql + Sync); 3] = [&workspace_id, &cursor, &rows];
        // Row by row: the byte budget stops the reading, as SQLite's does.
        let stream = client
            .query_raw(&statement, params)
            .await
            .map_err(|e| failed(e.into()))?;
        let mut stream = Box::pin(stream);
        let mut head = None;
        let mut events = Vec::new();
        let mut used = 0usize;
        let mut has_more = false;
        while let Some(row) = stream.try_next().await.map_err(|e| failed(e.into()))? {
            head.get_or_insert(seq_of(row.get(13)));
            // No event after the cursor: one row, its event columns NULL.
            let Some(bytes) = row.get::<_, Option<i32>>(12) else {
                break;
            };
            let size = usize::try_from(bytes).unwrap_or(0) + ENVELOPE_BYTES;
            if events.len() as u64 == limit
                || (!events.is_empty() && used.saturating_add(size) > self.limits.pull_bytes)
            {
                has_more = true;
                break;
            }
            used = used.saturating_add(size);
            let event = event_of(&row).map_err(failed)?;
            events.push(logged_by(seq_of(row.get(10)), &event, row.get(11)));
        }
        drop(stream);
        let head = head.unwrap_or(0);
        pull_window(&self.limits, request, head, now)?;
        Ok(PullResponse {
            people: vec![],
            events,
            head,
            has_more,
            server_time_ms: now,
            log_id: self.log_id.clone(),
        })
    }

    /// A workspace's head (0: no events).
    pub async fn head(&self, workspace: WorkspaceId) -> Result<u64, PgError> {
        let client = self.db.client().await?;
        head_in(&**client, workspace).await
    }

    /// Each account that pushed events, with one of its events (`server verify`: every
    /// account an event names must exist).
    pub async fn event_users(&self) -> Result<Vec<(EventId, String)>, PgError> {
        let client = self.db.client().await?;
        let rows = client
            .query(
                "SELECT min(event_id), user_id FROM events WHERE user_id IS NOT NULL \
                 GROUP BY user_id ORDER BY user_id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((parse(r.get::<_, &str>(0), "event_id")?, r.get(1))))
            .collect()
    }

    /// Every workspace's head.
    pub async fn heads(&self) -> Result<Vec<(WorkspaceId, u64)>, PgError> {
        let client = self.db.client().await?;
        let rows = client
            .query(
                "SELECT workspace_id, head FROM heads ORDER BY workspace_id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    parse(r.get::<_, &str>(0), "workspace_id")?,
                    seq_of(r.get(1)),
                ))
            })
            .collect()
    }

    /// Up to `limit` events of `workspace` after `after`, with their seqs and the accounts
    /// that pushed them (export, the projector, tests).
    pub async fn events_after(
        &self,
        workspace: WorkspaceId,
        after: u64,
        limit: u64,
    ) -> Result<Vec<(u64, StoredEvent, Option<String>)>, PgError> {
        let client = self.db.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS}, seq, user_id FROM events \
                     WHERE workspace_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                ),
                &[&workspace.to_string(), &as_i64(after), &as_i64(limit)],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((seq_of(r.get(10)), event_of(r)?, r.get(11))))
            .collect()
    }
}

impl PgCentral {
    /// A notice's events (as [`Self::events_after`]) and the names of the accounts that
    /// pushed them, in one statement (the live message carries both).
    #[allow(clippy::type_complexity)]
    pub async fn announced(
        &self,
        workspace: WorkspaceId,
        after: u64,
        limit: u64,
    ) -> Result<
        (
            Vec<(u64, StoredEvent, Option<String>)>,
            Vec<(String, String)>,
        ),
        PgError,
    > {
        let client = self.db.client().await?;
        let columns = prefixed("e");
        let statement = client
            .prepare_cached(&format!(
                "SELECT {columns}, e.seq, e.user_id, u.username FROM events e \
                 LEFT JOIN users u ON u.user_id = e.user_id \
                 WHERE e.workspace_id = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3"
            ))
            .await?;
        let rows = client
            .query(
                &statement,
                &[&workspace.to_string(), &as_i64(after), &as_i64(limit)],
            )
            .await?;
        let mut events = Vec::with_capacity(rows.len());
        let mut people: Vec<(String, String)> = vec![];
        for r in &rows {
            let user: Option<String> = r.get(11);
            let name: Option<String> = r.get(12);
            if let (Some(user), Some(name)) = (&user, name) {
                if !people.iter().any(|(u, _)| u == user) {
                    people.push((user.clone(), name));
                }
            }
            events.push((seq_of(r.get(10)), event_of(r)?, user));
        }
        Ok((events, people))
    }

    /// Imports exported events with their seqs (`server import`), all or nothing, as
    /// `EventLog::import_logged` does on SQLite: every event already in the log must be in the
    /// import with the same seq and content (an import only adds: it never shifts a seq); the
    /// others must continue their workspace's seqs densely. Runs beside serving processes:
    /// it holds each workspace's push lock, and notifies each new head as a push does.
    /// `(imported, skipped)`.
    pub async fn import(&self, events: &[LoggedBy]) -> Result<(usize, usize), PgError> {
        let refused = |why: String| Err(PgError::Import(why));
        let mut sorted: Vec<&LoggedBy> = events.iter().collect();
        sorted.sort_by_key(|(seq, e, _)| (e.workspace_id, *seq));
        let mut client = self.db.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()
            .await?;
        // A push's bounds; the whole log is counted below, so sequential scans stay priced in.
        tx.batch_execute(PUSH_SETTINGS).await?;
        tx.batch_execute("SET LOCAL enable_seqscan = on").await?;
        let mut workspaces: Vec<WorkspaceId> =
            sorted.iter().map(|(_, e, _)| e.workspace_id).collect();
        workspaces.dedup();
        // In one order, so that two imports never wait for each other in a circle.
        let mut keys: Vec<i64> = workspaces.iter().map(|w| lock_key(*w)).collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&key])
                .await?;
        }
        let stored: i64 = tx
            .query_one("SELECT count(*) FROM events", &[])
            .await?
            .get(0);
        let ids: Vec<String> = sorted
            .iter()
            .map(|(_, e, _)| e.event_id.to_string())
            .collect();
        let found: HashMap<String, (u64, StoredEvent)> = tx
            .query(
                &format!("SELECT {COLUMNS}, seq FROM events WHERE event_id = ANY($1)"),
                &[&ids],
            )
            .await?
            .iter()
            .map(|r| Ok((r.get::<_, String>(0), (seq_of(r.get(10)), event_of(r)?))))
            .collect::<Result<_, PgError>>()?;
        let mut skipped = 0usize;
        let mut fresh: Vec<(WorkspaceId, u64, &StoredEvent, Option<String>)> = Vec::new();
        let mut heads: HashMap<WorkspaceId, u64> = HashMap::new();
        for (seq, e, user) in sorted {
            if let Some((at, stored)) = found.get(&e.event_id.to_string()) {
                if !stored.same_content(e) {
                    return refused(format!(
                        "event {} is stored here with other content",
                        e.event_id
                    ));
                }
                if at != seq {
                    return refused(format!(
                        "event {} is at seq {at} here but at seq {seq} in the import",
                        e.event_id
                    ));
                }
                skipped += 1;
                continue;
            }
            let head = match heads.get(&e.workspace_id) {
                Some(h) => *h,
                None => head_in(&*tx, e.workspace_id).await?,
            };
            if *seq != head + 1 {
                return refused(format!(
                    "event {} has seq {seq} but workspace {} is at seq {head} here (an import only adds events after the log's)",
                    e.event_id, e.workspace_id
                ));
            }
            heads.insert(e.workspace_id, *seq);
            fresh.push((e.workspace_id, *seq, e, user.clone()));
        }
        if (skipped as i64) < stored {
            return refused(format!(
                "the database holds {stored} events but only {skipped} of them are in the import: an import into a non-empty database only adds"
            ));
        }
        let imported = fresh.len();
        for workspace in workspaces {
            let (events, users): (Vec<StoredEvent>, Vec<Option<String>>) = fresh
                .iter()
                .filter(|(w, _, _, _)| *w == workspace)
                .map(|(_, _, e, u)| ((*e).clone(), u.clone()))
                .unzip();
            let Some(first) = fresh.iter().find(|(w, _, _, _)| *w == workspace) else {
                continue;
            };
            let aggregates: Vec<String> =
                events.iter().map(|e| e.aggregate_id.to_string()).collect();
            let versions: Versions = tx
                .query(
                    "SELECT aggregate_id, max(version) FROM events WHERE aggregate_id = ANY($1) \
                     GROUP BY aggregate_id",
                    &[&aggregates],
                )
                .await?
                .iter()
                .map(|r| Ok((parse(r.get(0), "aggregate_id")?, seq_of(r.get(1)))))
                .collect::<Result<_, PgError>>()?;
            match append(&tx, &events, &users, first.1 - 1, versions).await {
                Ok(_) => {}
                Err(Appended::Race) => {
                    return refused("another push stored one of these events meanwhile".into())
                }
                Err(Appended::Refused(e)) => return refused(e.to_string()),
            }
        }
        // Serving processes hear the new heads as they hear a push's (on commit): their
        // sockets get the events now, not at their next periodic pull.
        for (workspace, head) in &heads {
            let appended = fresh.iter().filter(|(w, _, _, _)| w == workspace).count();
            let notice = format!("{workspace} {head} {appended} {}", self.origin);
            tx.execute("SELECT pg_notify($1, $2)", &[&HEADS_CHANNEL, &notice])
                .await?;
        }
        tx.commit().await?;
        Ok((imported, skipped))
    }

    /// Checks the log's invariants as `EventLog::verify` does on SQLite: seqs dense from 1 per
    /// workspace, versions dense from 1 per aggregate, every event readable and decodable and
    /// of its aggregate's kind, the heads agreeing with the log, an aggregate (and a todo's
    /// list) in one workspace (rule 21), the immutability triggers present. The events
    /// checked, or the first violation.
    pub async fn verify(&self) -> Result<u64, Violation> {
        let failed = |e: &dyn std::fmt::Display| Violation(format!("cannot read the log: {e}"));
        let mut client = self.db.client().await.map_err(|e| failed(&e))?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| failed(&crate::describe(&e)))?;
        let sql = |e: tokio_postgres::Error| failed(&crate::describe(&e));
        let stream = tx
            .query_raw(
                &format!("SELECT {COLUMNS}, seq FROM events ORDER BY workspace_id, seq"),
                std::iter::empty::<&(dyn ToSql + Sync)>(),
            )
            .await
            .map_err(sql)?;
        let mut stream = Box::pin(stream);
        let mut checks = EventChecks::default();
        while let Some(row) = stream.try_next().await.map_err(sql)? {
            let seq: i64 = row.get(10);
            let event = event_of(&row)
                .map_err(|e| Violation(format!("event at seq {seq} is unreadable: {e}")))?;
            checks.check(seq, &event)?;
        }
        drop(stream);
        let first = |query: &'static str| {
            let tx = &tx;
            async move { tx.query_opt(query, &[]).await.map_err(sql) }
        };
        if let Some(r) = first(
            "SELECT aggregate_id, count(*), min(version), max(version) FROM events \
             GROUP BY aggregate_id HAVING min(version) <> 1 OR max(version) <> count(*) LIMIT 1",
        )
        .await?
        {
            let (aggregate, count, min, max): (String, i64, i64, i64) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            return Err(Violation(format!(
                "aggregate {aggregate}: {count} events with versions {min}..={max} (versions must be dense from 1)"
            )));
        }
        if let Some(r) = first(
            "SELECT coalesce(w.workspace_id, h.workspace_id) FROM \
             (SELECT workspace_id, max(seq) AS top FROM events GROUP BY workspace_id) w \
             FULL JOIN heads h ON h.workspace_id = w.workspace_id \
             WHERE h.head IS DISTINCT FROM w.top LIMIT 1",
        )
        .await?
        {
            let workspace: String = r.get(0);
            return Err(Violation(format!(
                "workspace {workspace}: the heads table disagrees with the log's greatest seq"
            )));
        }
        if let Some(r) = first(
            "SELECT aggregate_id FROM events GROUP BY aggregate_id \
             HAVING count(DISTINCT workspace_id) > 1 LIMIT 1",
        )
        .await?
        {
            let aggregate: String = r.get(0);
            return Err(Violation(format!(
                "aggregate {aggregate} has events in more than one workspace (an aggregate belongs to one workspace)"
            )));
        }
        if let Some(r) = first(
            "SELECT t.event_id, l.workspace_id FROM events t \
             JOIN events l ON l.aggregate_id = (t.event_data::jsonb ->> 'list_id') \
             WHERE t.event_type IN ('TodoCreated', 'TodoListChanged') \
             AND l.workspace_id <> t.workspace_id LIMIT 1",
        )
        .await?
        {
            let (event, workspace): (String, String) = (r.get(0), r.get(1));
            return Err(Violation(format!(
                "todo event {event} names a list of workspace {workspace}, another workspace (rule 21)"
            )));
        }
        for trigger in ["events_no_update_or_delete", "events_no_truncate"] {
            let present: bool = tx
                .query_one(
                    "SELECT count(*) = 1 FROM pg_trigger WHERE tgname = $1 \
                     AND tgrelid = 'events'::regclass AND tgenabled <> 'D'",
                    &[&trigger],
                )
                .await
                .map_err(sql)?
                .get(0);
            if !present {
                return Err(Violation(format!(
                    "the immutability trigger {trigger} is missing or disabled"
                )));
            }
        }
        tx.commit().await.map_err(sql)?;
        Ok(checks.checked())
    }
}

/// The answer for a database failure: BUSY (retry later) when the database is out of reach,
/// a wait ran out or a deadlock was broken; INTERNAL for anything else.
fn answer_for(e: PgError, now: i64) -> SyncError {
    let transient = match &e {
        PgError::Pool(_) | PgError::Unanswered(_) => true,
        PgError::Sql(e) => {
            e.is_closed()
                || e.as_db_error().is_none()
                || e.code().is_some_and(|c| {
                    [
                        SqlState::LOCK_NOT_AVAILABLE,
                        SqlState::QUERY_CANCELED,
                        SqlState::T_R_DEADLOCK_DETECTED,
                        SqlState::T_R_SERIALIZATION_FAILURE,
                        SqlState::TOO_MANY_CONNECTIONS,
                        SqlState::ADMIN_SHUTDOWN,
                        SqlState::CANNOT_CONNECT_NOW,
                    ]
                    .contains(c)
                })
        }
        _ => false,
    };
    if transient {
        tracing::warn!(error = %e, "the central log's database is busy or out of reach");
        busy("the database is busy or out of reach; try again", now)
    } else {
        SyncError::new(ErrorCode::Internal, e.to_string()).at(now)
    }
}

/// The workspace's key among advisory locks (one-key form; the migrations' lock uses the
/// two-key form, which never meets it). Two workspaces sharing a key only wait for each
/// other.
pub fn lock_key(workspace: WorkspaceId) -> i64 {
    let bytes = workspace.as_uuid().as_u128().to_be_bytes();
    let mut high = [0u8; 8];
    high.copy_from_slice(&bytes[8..]);
    i64::from_be_bytes(high)
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn seq_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

async fn head_in(
    client: &(impl GenericClient + Sync),
    workspace: WorkspaceId,
) -> Result<u64, PgError> {
    let row = client
        .query_opt(
            "SELECT head FROM heads WHERE workspace_id = $1",
            &[&workspace.to_string()],
        )
        .await?;
    Ok(row.map_or(0, |r| seq_of(r.get(0))))
}

/// Each named aggregate's current version.
type Versions = HashMap<AggregateId, u64>;

/// What the push's checks need, in two queries sent together (one round trip). Each
/// aggregate's home and current version come from one statement, so they agree: an
/// aggregate another workspace made meanwhile is either seen with its home (refused as
/// that workspace's) or not at all (its version 1 then collides with the other's).
async fn read(
    tx: &deadpool_postgres::Transaction<'_>,
    push: &Push<'_>,
) -> Result<(Read, Versions), PgError> {
    let named: Vec<String> = push.named().iter().map(ToString::to_string).collect();
    let ids: Vec<String> = push.event_ids().iter().map(ToString::to_string).collect();
    let aggregates_query = "SELECT aggregate_id, min(workspace_id) FILTER (WHERE version = 1), \
                            max(version) FROM events WHERE aggregate_id = ANY($1) \
                            GROUP BY aggregate_id";
    let stored_query = format!("SELECT {COLUMNS}, seq FROM events WHERE event_id = ANY($1)");
    let head_query = "SELECT head FROM heads WHERE workspace_id = $1";
    let (aggregates_query, stored_query, head_query) = tokio::try_join!(
        tx.prepare_cached(aggregates_query),
        tx.prepare_cached(&stored_query),
        tx.prepare_cached(head_query),
    )?;
    let workspace = push.workspace().to_string();
    // The parameters outlive the joined futures that borrow them.
    let by_aggregate: [&(dyn ToSql + Sync); 1] = [&named];
    let by_id: [&(dyn ToSql + Sync); 1] = [&ids];
    let by_workspace: [&(dyn ToSql + Sync); 1] = [&workspace];
    let (aggregates, stored, head) = tokio::try_join!(
        tx.query(&aggregates_query, &by_aggregate),
        tx.query(&stored_query, &by_id),
        tx.query_opt(&head_query, &by_workspace),
    )?;
    let head = head.map_or(0, |r| seq_of(r.get(0)));
    let mut homes = HashMap::new();
    let mut versions = HashMap::new();
    for r in &aggregates {
        let aggregate: AggregateId = parse(r.get(0), "aggregate_id")?;
        if let Some(home) = r.get::<_, Option<&str>>(1) {
            homes.insert(aggregate, parse(home, "workspace_id")?);
        }
        versions.insert(aggregate, seq_of(r.get(2)));
    }
    let read = Read {
        homes,
        stored: stored
            .iter()
            .map(|r| {
                let event = event_of(r)?;
                Ok((event.event_id, (seq_of(r.get(10)), event)))
            })
            .collect::<Result<HashMap<_, _>, PgError>>()?,
        head,
    };
    Ok((read, versions))
}

/// How an append ended without seqs.
enum Appended {
    /// Refused by the versions read: the answer's reason.
    Refused(AppendError),
    /// Another workspace's push stored one of these events or aggregates meanwhile (a
    /// unique key said so, or a deadlock between the two was broken).
    Race,
}

/// Appends checked events of one workspace after `head` (the workspace locked): each after
/// its aggregate's version as read with the checks, seqs `head + 1…`, the head moved.
async fn append(
    tx: &deadpool_postgres::Transaction<'_>,
    events: &[StoredEvent],
    users: &[Option<String>],
    head: u64,
    mut versions: Versions,
) -> Result<Vec<u64>, Appended> {
    let failed = |e: tokio_postgres::Error| {
        if is_race(&e) {
            Appended::Race
        } else {
            Appended::Refused(AppendError::Failed(Box::new(e)))
        }
    };
    let Some(first) = events.first() else {
        return Ok(vec![]);
    };
    for e in events {
        let current = versions.entry(e.aggregate_id).or_insert(0);
        if e.version != *current + 1 {
            return Err(Appended::Refused(AppendError::VersionConflict {
                aggregate: e.aggregate_id,
                expected: e.version.saturating_sub(1),
                actual: *current,
            }));
        }
        *current = e.version;
    }
    let seqs: Vec<u64> = (1..=events.len() as u64).map(|i| head + i).collect();
    let column = |f: &dyn Fn(&StoredEvent) -> String| events.iter().map(f).collect::<Vec<_>>();
    let event_ids = column(&|e| e.event_id.to_string());
    let workspaces = column(&|e| e.workspace_id.to_string());
    let aggregate_ids = column(&|e| e.aggregate_id.to_string());
    let types = column(&|e| e.event_type.clone());
    let data = column(&|e| e.event_data.clone());
    let stamps = column(&|e| e.hlc_timestamp.to_string());
    let devices = column(&|e| e.device_id.to_string());
    let seq_column: Vec<i64> = seqs.iter().map(|s| as_i64(*s)).collect();
    let version_column: Vec<i64> = events.iter().map(|e| as_i64(e.version)).collect();
    let schema_versions: Vec<i32> = events
        .iter()
        .map(|e| i32::try_from(e.schema_version).unwrap_or(i32::MAX))
        .collect();
    let created: Vec<i64> = events.iter().map(|e| e.created_at).collect();
    let users: Vec<Option<&str>> = (0..events.len())
        .map(|i| users.get(i).and_then(|u| u.as_deref()))
        .collect();
    let (insert, set_head) = tokio::try_join!(
        tx.prepare_cached(
            "INSERT INTO events (event_id, workspace_id, seq, aggregate_id, version, event_type, \
             schema_version, event_data, hlc_timestamp, device_id, created_at, user_id) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[], \
             $6::text[], $7::int4[], $8::text[], $9::text[], $10::text[], $11::int8[], $12::text[])"
        ),
        tx.prepare_cached(
            "INSERT INTO heads (workspace_id, head) VALUES ($1, $2) \
             ON CONFLICT (workspace_id) DO UPDATE SET head = excluded.head"
        ),
    )
    .map_err(failed)?;
    tx.execute(
        &insert,
        &[
            &event_ids,
            &workspaces,
            &seq_column,
            &aggregate_ids,
            &version_column,
            &types,
            &schema_versions,
            &data,
            &stamps,
            &devices,
            &created,
            &users,
        ],
    )
    .await
    .map_err(failed)?;
    let last = seqs.last().copied().unwrap_or(head);
    tx.execute(&set_head, &[&first.workspace_id.to_string(), &as_i64(last)])
        .await
        .map_err(failed)?;
    Ok(seqs)
}

/// Whether a failed statement lost a race with another workspace's push: a unique key (the
/// same event id, or the same version of an aggregate) or a broken deadlock between the two.
/// Under the workspace's lock nothing else races this push, so the push is tried again and
/// its checks then see what the other stored.
fn is_race(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == SqlState::UNIQUE_VIOLATION
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

/// The event in a row's first ten columns ([`COLUMNS`]).
pub(crate) fn event_of(r: &Row) -> Result<StoredEvent, PgError> {
    let version: i64 = r.get(8);
    let schema_version: i32 = r.get(4);
    Ok(StoredEvent {
        event_id: parse(r.get(0), "event_id")?,
        workspace_id: parse(r.get(1), "workspace_id")?,
        aggregate_id: parse(r.get(2), "aggregate_id")?,
        event_type: r.get(3),
        schema_version: u32::try_from(schema_version)
            .map_err(|_| PgError::Corrupt(format!("schema_version {schema_version}")))?,
        event_data: r.get(5),
        hlc_timestamp: parse(r.get(6), "hlc_timestamp")?,
        device_id: parse(r.get(7), "device_id")?,
        version: u64::try_from(version)
            .map_err(|_| PgError::Corrupt(format!("version {version}")))?,
        created_at: r.get(9),
    })
}
