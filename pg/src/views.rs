//! The server's views on PostgreSQL: projected from the log by whichever process holds the
//! projector's lock, read by every process (ARCHITECTURE.md, "Storage").
//!
//! A pass goes through each workspace's events after its checkpoint, a batch per
//! transaction: every aggregate a batch touches is folded again from all its events in the
//! log (the pure fold of `tandem_events::state`, the same as SQLite's views and the
//! browser's), its rows rewritten, the batch's history lines added, the checkpoint moved. A
//! pass writes nothing that depends on what it wrote before, so a batch applied twice (two
//! processes, a crash between commit and answer) changes nothing; the lock keeps two
//! processes from doing the same work, and makes the later writer fold what the earlier
//! committed.

use std::collections::{BTreeSet, HashMap};

use deadpool_postgres::Transaction;
use tandem_events::event::StoredEvent;
use tandem_events::ids::{AggregateId, WorkspaceId};
use tandem_events::state::{Aggregate, AllRows, HistoryRow, Rows};
use tokio_postgres::{GenericClient, IsolationLevel};

use tandem_protocol::data::{Counts, ListCounts, ListSnapshot};
use tandem_store::views::PROJECTION_VERSION;

use crate::central::{event_of, prefixed, COLUMNS};
use crate::{parse, Database, PgError};

/// The projector's lock (two-key form; a transaction lock, taken without waiting).
const PROJECTOR: (i32, i32) = (0x7a6d_6467, 3);

/// The server's views in a PostgreSQL database (its schema current).
#[derive(Debug, Clone)]
pub struct PgViews {
    db: Database,
}

impl PgViews {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// One projection pass, `batch` events per transaction: the events applied, or `None`
    /// when another process holds the projector's lock (it projects; ask again later).
    pub async fn project(&self, batch: u64) -> Result<Option<u64>, PgError> {
        self.pass(batch, false).await
    }

    /// Catches the views up with the log before they are read: waits (at most 5 s) for a
    /// projector at work in another process to finish its batch, then projects what is left.
    pub async fn catch_up(&self, batch: u64) -> Result<u64, PgError> {
        if self.current().await? {
            return Ok(0);
        }
        Ok(self.pass(batch, true).await?.unwrap_or_default())
    }

    /// Whether the views are this build's and hold every event — read without the
    /// projector's lock (a page render that finds them current takes no lock at all).
    async fn current(&self) -> Result<bool, PgError> {
        let client = self.db.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT (SELECT version FROM view_meta WHERE name = 'server') \
                 IS NOT DISTINCT FROM $1 AND NOT EXISTS (SELECT 1 FROM heads h \
                 LEFT JOIN view_checkpoints c ON c.workspace_id = h.workspace_id \
                 WHERE h.head > coalesce(c.seq, 0))",
            )
            .await?;
        Ok(client
            .query_one(&statement, &[&PROJECTION_VERSION])
            .await?
            .get(0))
    }

    async fn pass(&self, batch: u64, wait: bool) -> Result<Option<u64>, PgError> {
        let mut client = self.db.client().await?;
        if !self.made_by_this_build(&mut client, wait).await? {
            return Ok(None);
        }
        let heads = client
            .query(
                "SELECT h.workspace_id, h.head, coalesce(c.seq, 0) FROM heads h \
                 LEFT JOIN view_checkpoints c ON c.workspace_id = h.workspace_id \
                 WHERE h.head > coalesce(c.seq, 0) ORDER BY h.workspace_id",
                &[],
            )
            .await?;
        let mut applied = 0;
        for row in &heads {
            let workspace: WorkspaceId = parse(row.get(0), "workspace_id")?;
            let head = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
            loop {
                let Some(tx) = locked(&mut client, wait).await? else {
                    return Ok(None);
                };
                // Read under the lock: what another projector committed is seen.
                let from = checkpoint_in(&*tx, workspace).await?;
                if from >= head {
                    break;
                }
                let done = apply_batch(&tx, workspace, from, batch.max(1)).await?;
                tx.commit().await?;
                if done == 0 {
                    // A head beyond the log's last event (never written so by a push): what
                    // there is has been applied.
                    break;
                }
                applied += done;
            }
        }
        Ok(Some(applied))
    }

    /// Empties the views when this build's fold would make them otherwise — another
    /// projection version, or an event they skip as unknown that this build decodes — so the
    /// pass projects them again from the start (as SQLite's views are rebuilt). `false` when
    /// another process holds the projector's lock.
    async fn made_by_this_build(
        &self,
        client: &mut deadpool_postgres::Object,
        wait: bool,
    ) -> Result<bool, PgError> {
        let Some(tx) = locked(client, wait).await? else {
            return Ok(false);
        };
        let version: Option<i64> = tx
            .query_opt("SELECT version FROM view_meta WHERE name = 'server'", &[])
            .await?
            .map(|r| r.get(0));
        let mut stale = version != Some(PROJECTION_VERSION);
        if !stale {
            let unknown = tx
                .query(
                    &format!(
                        "SELECT {} FROM view_skipped_events s JOIN events e \
                         ON e.event_id = s.event_id WHERE s.unknown",
                        prefixed("e")
                    ),
                    &[],
                )
                .await?;
            for row in &unknown {
                stale |= event_of(row)?.decode().is_ok();
            }
        }
        if stale {
            tracing::info!(
                ?version,
                current = PROJECTION_VERSION,
                "projecting the server's views again from the start"
            );
            tx.batch_execute(
                "DELETE FROM view_lists; DELETE FROM view_todos; DELETE FROM view_devices; \
                 DELETE FROM view_conflicts; DELETE FROM view_history; \
                 DELETE FROM view_skipped_events; DELETE FROM view_checkpoints;",
            )
            .await?;
            tx.execute(
                "INSERT INTO view_meta (name, version) VALUES ('server', $1) \
                 ON CONFLICT (name) DO UPDATE SET version = excluded.version",
                &[&PROJECTION_VERSION],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// A workspace's checkpoint: the greatest log seq its views hold (0: none).
    pub async fn checkpoint(&self, workspace: WorkspaceId) -> Result<u64, PgError> {
        let client = self.db.client().await?;
        checkpoint_in(&**client, workspace).await
    }

    /// The workspace a list lives in, by the views (none for an unknown list).
    pub async fn list_workspace(&self, list_id: &str) -> Result<Option<String>, PgError> {
        let client = self.db.client().await?;
        Ok(client
            .query_opt(
                "SELECT workspace_id FROM view_lists WHERE list_id = $1",
                &[&list_id],
            )
            .await?
            .map(|r| r.get(0)))
    }

    /// What a server-rendered page shows (as `tandem_store::changes::snapshot` reads it from
    /// SQLite): the workspace's live lists oldest first with their counts, and the live todos
    /// of `list_id` (or the first list) in display order — with the checkpoint they are at,
    /// all read in one snapshot.
    pub async fn snapshot(
        &self,
        workspace: WorkspaceId,
        list_id: Option<String>,
    ) -> Result<(ListSnapshot, u64), PgError> {
        let mut client = self.db.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let ws = workspace.to_string();
        let lists: Vec<tandem_protocol::data::ListRow> = tx
            .query(
                "SELECT l.list_id, l.name, l.name_hlc, l.created_hlc, \
                 (SELECT count(DISTINCT c.field) FROM view_conflicts c \
                  WHERE c.aggregate_id = l.list_id) \
                 FROM view_lists l WHERE l.workspace_id = $1 AND NOT l.deleted \
                 ORDER BY l.created_hlc, l.list_id",
                &[&ws],
            )
            .await?
            .iter()
            .map(|r| tandem_protocol::data::ListRow {
                id: r.get(0),
                name: r.get(1),
                name_hlc: r.get(2),
                created_hlc: r.get(3),
                conflicts: count(r.get(4)),
            })
            .collect();
        let mut counts: HashMap<String, Counts> = tx
            .query(
                "SELECT list_id, count(*) FILTER (WHERE NOT completed), \
                 count(*) FILTER (WHERE completed) FROM view_todos \
                 WHERE workspace_id = $1 AND NOT deleted GROUP BY list_id",
                &[&ws],
            )
            .await?
            .iter()
            .map(|r| {
                let counts = Counts {
                    active: count(r.get(1)),
                    completed: count(r.get(2)),
                };
                (r.get(0), counts)
            })
            .collect();
        let list_counts = lists
            .iter()
            .map(|l| ListCounts {
                list_id: l.id.clone(),
                counts: counts.remove(&l.id).unwrap_or_default(),
            })
            .collect();
        let list_id = list_id.or_else(|| lists.first().map(|l| l.id.clone()));
        let list_known = list_id
            .as_ref()
            .is_some_and(|id| lists.iter().any(|l| &l.id == id));
        let todos = match (&list_id, list_known) {
            (Some(id), true) => tx
                .query(
                    "SELECT t.todo_id, t.list_id, t.title, t.title_hlc, t.notes, t.notes_hlc, \
                     t.completed, t.completed_hlc, t.due_date, t.due_date_hlc, t.position, \
                     (SELECT count(DISTINCT c.field) FROM view_conflicts c \
                      WHERE c.aggregate_id = t.todo_id AND c.field <> 'position') \
                     FROM view_todos t WHERE t.list_id = $1 AND NOT t.deleted \
                     ORDER BY t.position, t.todo_id",
                    &[id],
                )
                .await?
                .iter()
                .map(|r| tandem_protocol::data::TodoRow {
                    id: r.get(0),
                    list_id: r.get(1),
                    title: r.get(2),
                    title_hlc: r.get(3),
                    notes: r.get(4),
                    notes_hlc: r.get(5),
                    completed: r.get(6),
                    completed_hlc: r.get(7),
                    due_date: r.get(8),
                    due_date_hlc: r.get(9),
                    position: r.get(10),
                    conflicts: count(r.get(11)),
                    // Its list is live: the todo is shown.
                    deleted: false,
                })
                .collect(),
            _ => vec![],
        };
        let checkpoint = checkpoint_in(&*tx, workspace).await?;
        tx.commit().await?;
        Ok((
            ListSnapshot {
                lists,
                list_counts,
                list_id,
                list_known,
                todos,
            },
            checkpoint,
        ))
    }

    /// Every row of the views, sorted as [`tandem_events::state::Model::rows`] sorts them (the
    /// canonical dump of DESIGN.md rule 20: tests compare it with the fold of the log).
    pub async fn all_rows(&self) -> Result<AllRows, PgError> {
        let client = self.db.client().await?;
        let stamp = |r: &tokio_postgres::Row, i: usize| parse(r.get::<_, &str>(i), "stamp");
        let mut all = AllRows::default();
        for r in client
            .query(
                "SELECT list_id, workspace_id, name, name_hlc, created_hlc, created_at, deleted \
                 FROM view_lists ORDER BY list_id",
                &[],
            )
            .await?
        {
            all.lists.push(tandem_events::state::ListRow {
                list_id: parse(r.get(0), "list_id")?,
                workspace_id: parse(r.get(1), "workspace_id")?,
                name: r.get(2),
                name_hlc: stamp(&r, 3)?,
                created_hlc: stamp(&r, 4)?,
                created_at: r.get(5),
                deleted: r.get(6),
            });
        }
        for r in client
            .query(
                "SELECT todo_id, workspace_id, list_id, title, notes, due_date, completed, \
                 position, created_hlc, created_at, title_hlc, notes_hlc, due_date_hlc, \
                 completed_hlc, position_hlc, list_hlc, deleted FROM view_todos ORDER BY todo_id",
                &[],
            )
            .await?
        {
            all.todos.push(tandem_events::state::TodoRow {
                todo_id: parse(r.get(0), "todo_id")?,
                workspace_id: parse(r.get(1), "workspace_id")?,
                list_id: parse(r.get(2), "list_id")?,
                title: r.get(3),
                notes: r.get(4),
                due_date: r.get(5),
                completed: r.get(6),
                position: r.get(7),
                created_hlc: stamp(&r, 8)?,
                created_at: r.get(9),
                title_hlc: stamp(&r, 10)?,
                notes_hlc: stamp(&r, 11)?,
                due_date_hlc: stamp(&r, 12)?,
                completed_hlc: stamp(&r, 13)?,
                position_hlc: stamp(&r, 14)?,
                list_hlc: stamp(&r, 15)?,
                deleted: r.get(16),
            });
        }
        for r in client
            .query(
                "SELECT aggregate_id, device_id, workspace_id, name, name_hlc FROM view_devices \
                 ORDER BY aggregate_id",
                &[],
            )
            .await?
        {
            all.devices.push(tandem_events::state::DeviceRow {
                aggregate_id: parse(r.get(0), "aggregate_id")?,
                device_id: parse(r.get(1), "device_id")?,
                workspace_id: parse(r.get(2), "workspace_id")?,
                name: r.get(3),
                name_hlc: stamp(&r, 4)?,
            });
        }
        for r in client
            .query(
                "SELECT aggregate_id, field, hlc, event_id, device_id, value FROM view_conflicts \
                 ORDER BY aggregate_id, field, hlc, event_id",
                &[],
            )
            .await?
        {
            all.conflicts.push(tandem_events::state::ConflictRow {
                aggregate_id: parse(r.get(0), "aggregate_id")?,
                field: field_name(r.get(1))?,
                hlc: stamp(&r, 2)?,
                event_id: parse(r.get(3), "event_id")?,
                device_id: parse(r.get(4), "device_id")?,
                value: r.get(5),
            });
        }
        // As the fold lists them: by aggregate, then field in the fold's order.
        all.conflicts.sort_by_key(|c| {
            let field = tandem_events::state::CONFLICT_FIELDS
                .iter()
                .position(|f| *f == c.field);
            (c.aggregate_id, field, c.hlc, c.event_id)
        });
        for r in client
            .query(
                "SELECT aggregate_id, hlc, event_id, event_type, device_id, created_at, data \
                 FROM view_history ORDER BY aggregate_id, hlc, event_id",
                &[],
            )
            .await?
        {
            all.history.push(HistoryRow {
                aggregate_id: parse(r.get(0), "aggregate_id")?,
                hlc: stamp(&r, 1)?,
                event_id: parse(r.get(2), "event_id")?,
                event_type: event_type_name(r.get(3))?,
                device_id: parse(r.get(4), "device_id")?,
                created_at: r.get(5),
                data: r.get(6),
            });
        }
        Ok(all)
    }
}

/// A SQL count as the protocol holds it.
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The `&'static str` a conflict row's field is (the fold names fields by constants).
fn field_name(field: &str) -> Result<&'static str, PgError> {
    tandem_events::state::CONFLICT_FIELDS
        .iter()
        .find(|f| **f == field)
        .copied()
        .ok_or_else(|| PgError::Corrupt(format!("conflict field {field:?}")))
}

/// The `&'static str` a history row's event type is.
fn event_type_name(event_type: &str) -> Result<&'static str, PgError> {
    tandem_events::domain::EVENT_TYPES
        .iter()
        .map(|(name, _)| *name)
        .find(|name| *name == event_type)
        .ok_or_else(|| PgError::Corrupt(format!("event type {event_type:?}")))
}

/// A transaction holding the projector's lock, or `None` when another process holds it. READ
/// COMMITTED whatever the database's default: its reads see what the projector before
/// committed.
/// A transaction holding the projector's lock; `None` when another holds it and `wait` is
/// false (with `wait`, it waits at most 5 s, then fails).
async fn locked(
    client: &mut deadpool_postgres::Object,
    wait: bool,
) -> Result<Option<deadpool_postgres::Transaction<'_>>, PgError> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await?;
    // The projector reads and rewrites rows by key, as a push does.
    tx.batch_execute(
        "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL enable_seqscan = off",
    )
    .await?;
    if wait {
        tx.batch_execute("SET LOCAL lock_timeout = '5s'").await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&PROJECTOR.0, &PROJECTOR.1],
        )
        .await?;
        return Ok(Some(tx));
    }
    let locked: bool = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock($1, $2)",
            &[&PROJECTOR.0, &PROJECTOR.1],
        )
        .await?
        .get(0);
    Ok(locked.then_some(tx))
}

async fn checkpoint_in(
    client: &(impl GenericClient + Sync),
    workspace: WorkspaceId,
) -> Result<u64, PgError> {
    let row = client
        .query_opt(
            "SELECT seq FROM view_checkpoints WHERE workspace_id = $1",
            &[&workspace.to_string()],
        )
        .await?;
    Ok(row.map_or(0, |r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0)))
}

/// Applies the workspace's next `batch` events after `from`; how many.
async fn apply_batch(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    from: u64,
    batch: u64,
) -> Result<u64, PgError> {
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let rows = tx
        .query(
            &format!(
                "SELECT {COLUMNS}, seq FROM events WHERE workspace_id = $1 AND seq > $2 \
                 ORDER BY seq LIMIT $3"
            ),
            &[&workspace.to_string(), &as_i64(from), &as_i64(batch)],
        )
        .await?;
    let Some(last) = rows
        .last()
        .map(|r| u64::try_from(r.get::<_, i64>(10)).unwrap_or(0))
    else {
        return Ok(0);
    };
    let events: Vec<StoredEvent> = rows.iter().map(event_of).collect::<Result<_, _>>()?;
    let touched: BTreeSet<AggregateId> = events.iter().map(|e| e.aggregate_id).collect();
    // Each touched aggregate folded again from all its events (a batch applied twice, or
    // after another projector's, comes out the same).
    let ids: Vec<String> = touched.iter().map(ToString::to_string).collect();
    let history = tx
        .query(
            &format!(
                "SELECT {COLUMNS} FROM events WHERE aggregate_id = ANY($1) \
                 ORDER BY aggregate_id, version"
            ),
            &[&ids],
        )
        .await?;
    let mut states: HashMap<AggregateId, Aggregate> = HashMap::new();
    for row in &history {
        let stored = event_of(row)?;
        if let Ok(event) = stored.decode() {
            states.entry(stored.aggregate_id).or_default().apply(&event);
        }
    }
    // The touched aggregates' old rows go in one statement per table; their new rows and the
    // history lines through the connection's statement cache (parsed once per connection).
    for table in [
        "view_lists WHERE list_id",
        "view_todos WHERE todo_id",
        "view_conflicts WHERE aggregate_id",
        "view_devices WHERE aggregate_id",
    ] {
        let delete = tx
            .prepare_cached(&format!("DELETE FROM {table} = ANY($1)"))
            .await?;
        tx.execute(&delete, &[&ids]).await?;
    }
    for id in &touched {
        let rows = states.get(id).map(|s| s.rows(*id)).unwrap_or_default();
        write_aggregate(tx, &rows).await?;
    }
    for stored in &events {
        match stored.decode() {
            Ok(event) => write_history(tx, &HistoryRow::of(stored, &event)).await?,
            Err(err) => {
                let unknown = matches!(
                    err,
                    tandem_events::event::DecodeError::UnknownType { .. }
                        | tandem_events::event::DecodeError::UnknownVersion { .. }
                );
                tx.execute(
                    "INSERT INTO view_skipped_events (event_id, aggregate_id, event_type, \
                     schema_version, unknown, reason) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (event_id) DO UPDATE SET unknown = excluded.unknown, \
                     reason = excluded.reason",
                    &[
                        &stored.event_id.to_string(),
                        &stored.aggregate_id.to_string(),
                        &stored.event_type,
                        &i32::try_from(stored.schema_version).unwrap_or(i32::MAX),
                        &unknown,
                        &err.to_string(),
                    ],
                )
                .await?;
            }
        }
    }
    tx.execute(
        "INSERT INTO view_checkpoints (workspace_id, seq) VALUES ($1, $2) \
         ON CONFLICT (workspace_id) DO UPDATE \
         SET seq = GREATEST(view_checkpoints.seq, excluded.seq)",
        &[&workspace.to_string(), &as_i64(last)],
    )
    .await?;
    Ok(events.len() as u64)
}

/// Inserts an aggregate's rows (its old ones deleted by the caller).
async fn write_aggregate(tx: &Transaction<'_>, rows: &Rows) -> Result<(), PgError> {
    if let Some(l) = &rows.list {
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO view_lists (list_id, workspace_id, name, name_hlc, created_hlc, \
             created_at, deleted) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .await?,
            &[
                &l.list_id.to_string(),
                &l.workspace_id.to_string(),
                &l.name,
                &l.name_hlc.encode(),
                &l.created_hlc.encode(),
                &l.created_at,
                &l.deleted,
            ],
        )
        .await?;
    }
    if let Some(t) = &rows.todo {
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO view_todos (todo_id, workspace_id, list_id, title, notes, due_date, \
             completed, position, created_hlc, created_at, title_hlc, notes_hlc, due_date_hlc, \
             completed_hlc, position_hlc, list_hlc, deleted) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            )
            .await?,
            &[
                &t.todo_id.to_string(),
                &t.workspace_id.to_string(),
                &t.list_id.to_string(),
                &t.title,
                &t.notes,
                &t.due_date,
                &t.completed,
                &t.position,
                &t.created_hlc.encode(),
                &t.created_at,
                &t.title_hlc.encode(),
                &t.notes_hlc.encode(),
                &t.due_date_hlc.encode(),
                &t.completed_hlc.encode(),
                &t.position_hlc.encode(),
                &t.list_hlc.encode(),
                &t.deleted,
            ],
        )
        .await?;
    }
    for c in &rows.conflicts {
        tx.execute(
            &tx.prepare_cached("INSERT INTO view_conflicts (aggregate_id, field, hlc, event_id, device_id, value) \
             VALUES ($1, $2, $3, $4, $5, $6)").await?,
            &[
                &c.aggregate_id.to_string(),
                &c.field,
                &c.hlc.encode(),
                &c.event_id.to_string(),
                &c.device_id.to_string(),
                &c.value,
            ],
        )
        .await?;
    }
    if let Some(d) = &rows.device {
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO view_devices (aggregate_id, device_id, workspace_id, name, name_hlc) \
             VALUES ($1, $2, $3, $4, $5)",
            )
            .await?,
            &[
                &d.aggregate_id.to_string(),
                &d.device_id.to_string(),
                &d.workspace_id.to_string(),
                &d.name,
                &d.name_hlc.encode(),
            ],
        )
        .await?;
    }
    Ok(())
}

async fn write_history(tx: &Transaction<'_>, h: &HistoryRow) -> Result<(), PgError> {
    tx.execute(
        &tx.prepare_cached(
            "INSERT INTO view_history (aggregate_id, hlc, event_id, event_type, device_id, \
         created_at, data) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .await?,
        &[
            &h.aggregate_id.to_string(),
            &h.hlc.encode(),
            &h.event_id.to_string(),
            &h.event_type,
            &h.device_id.to_string(),
            &h.created_at,
            &h.data,
        ],
    )
    .await?;
    Ok(())
}
