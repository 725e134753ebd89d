//! The maintenance subcommands: `rebuild`, `inspect`, `verify`, `export`, `import`, `backup`,
//! `restore`, `query`. Those that only read (`inspect`, `verify`, `export`, `query`, `backup`)
//! open the log read-only and work beside a running server; those that write (`import`,
//! `rebuild`, `restore`) take the data dir's lock and refuse while a server holds it.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use tandem_events::ids::DeviceId;
use tandem_store::wire::{from_wire, logged};
use tandem_store::{EventLog, Views};

use crate::databases::now_ms;

/// The log, read-only (works beside a running server, and on a read-only copy).
fn read_log(data_dir: &Path) -> anyhow::Result<EventLog> {
    if !data_dir.join("events.db").exists() {
        bail!("{} has no events.db", data_dir.display());
    }
    Ok(EventLog::open_reader(data_dir.join("events.db"))?)
}

/// The log for writing, with the data dir's lock held.
fn write_log(data_dir: &Path, what: &str) -> anyhow::Result<(EventLog, crate::lock::DataDirLock)> {
    let lock = crate::lock::lock(data_dir, what)?;
    if !data_dir.join("events.db").exists() {
        bail!("{} has no events.db", data_dir.display());
    }
    let log = EventLog::open(
        data_dir.join("events.db"),
        DeviceId::from_uuid(uuid::Uuid::new_v4()),
        Arc::new(now_ms),
    )?;
    Ok((log, lock))
}

/// Drops the views and replays the log into them.
pub fn rebuild(data_dir: &Path) -> anyhow::Result<()> {
    let (log, _lock) = write_log(data_dir, "rebuild")?;
    let (mut views, rebuilt) = Views::open_current(data_dir.join("views.db"), &log, progress)?;
    if !rebuilt {
        views.rebuild(&log, progress)?;
    }
    eprintln!("rebuilt views.db from {} events", log.len()?);
    Ok(())
}

fn progress(p: tandem_store::Progress) {
    eprintln!("replayed {}/{} events", p.done, p.total);
}

/// Checks the log's invariants; the error names the first violation.
pub fn verify(data_dir: &Path) -> anyhow::Result<u64> {
    let log = read_log(data_dir)?;
    let checked = log
        .verify()
        .map_err(|v| anyhow::anyhow!("invariant violated: {v}"))?;
    Ok(checked)
}

/// What `inspect` shows.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub workspace: Option<String>,
    pub aggregate: Option<String>,
    pub event_type: Option<String>,
    pub device: Option<String>,
    pub after: u64,
    pub limit: usize,
    pub tail: bool,
}

/// Prints matching events as JSON lines (the wire form with `seq`), in seq order.
pub fn inspect(data_dir: &Path, filter: &Filter, out: &mut impl Write) -> anyhow::Result<usize> {
    let log = read_log(data_dir)?;
    let mut sql = String::from(
        "SELECT seq, event_id FROM events WHERE seq > ?1 \
         AND (?2 IS NULL OR workspace_id = ?2) AND (?3 IS NULL OR aggregate_id = ?3) \
         AND (?4 IS NULL OR event_type = ?4) AND (?5 IS NULL OR device_id = ?5)",
    );
    sql.push_str(if filter.tail {
        " ORDER BY workspace_id DESC, seq DESC LIMIT ?6"
    } else {
        " ORDER BY workspace_id, seq LIMIT ?6"
    });
    let mut stmt = log.connection().prepare(&sql)?;
    let mut ids: Vec<(i64, String)> = stmt
        .query_map(
            tandem_store::rusqlite::params![
                filter.after as i64,
                filter.workspace,
                filter.aggregate,
                filter.event_type,
                filter.device,
                filter.limit as i64
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .collect::<Result<_, _>>()?;
    if filter.tail {
        ids.reverse();
    }
    for (seq, id) in &ids {
        let (_, event) = log
            .find(id.parse()?)?
            .with_context(|| format!("event {id} vanished while reading"))?;
        writeln!(
            out,
            "{}",
            serde_json::to_string(&logged(*seq as u64, &event))?
        )?;
    }
    Ok(ids.len())
}

/// Writes every event as JSON lines, by workspace then seq.
pub fn export(data_dir: &Path, out: &mut impl Write) -> anyhow::Result<u64> {
    let log = read_log(data_dir)?;
    let mut written = 0;
    for (workspace, head) in log.heads()? {
        let mut after = 0;
        while after < head {
            let page = log.events_after(workspace, after, 5_000)?;
            let Some((last, _)) = page.last() else { break };
            after = *last;
            for (seq, event) in &page {
                writeln!(out, "{}", serde_json::to_string(&logged(*seq, event))?)?;
                written += 1;
            }
        }
    }
    out.flush()?;
    Ok(written)
}

/// Reads JSON lines (as `export` writes them) and stores them with their exported seqs: into
/// an empty data dir it reproduces every workspace's seqs exactly (a new `log_id`); into a
/// non-empty one it only adds — every event already there must be in the import with the same
/// seq and content, and new ones must follow each workspace's head densely — or it refuses.
/// Idempotent, all or nothing. Returns `(imported, skipped)`.
pub fn import(data_dir: &Path, input: impl BufRead) -> anyhow::Result<(usize, usize)> {
    let lock = crate::lock::lock(data_dir, "import")?;
    let fresh = !data_dir.join("events.db").exists();
    let mut log = EventLog::open(
        data_dir.join("events.db"),
        DeviceId::from_uuid(uuid::Uuid::new_v4()),
        Arc::new(now_ms),
    )?;
    let mut events = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read line {}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let logged: tandem_protocol::sync::LoggedEvent = serde_json::from_str(&line)
            .with_context(|| format!("line {}: not an exported event", n + 1))?;
        let event =
            from_wire(&logged.event).with_context(|| format!("line {}: invalid event", n + 1))?;
        event
            .decode()
            .with_context(|| format!("line {}: event {} does not decode", n + 1, event.event_id))?;
        events.push((logged.seq, event));
    }
    let counts = log.import_logged(&events)?;
    if fresh || log.log_id()?.is_none() {
        log.set_log_id(&uuid::Uuid::new_v4().to_string())?;
    }
    let (mut views, _) = Views::open_current(data_dir.join("views.db"), &log, progress)?;
    views.catch_up(&log, 1_000)?;
    drop(views);
    drop(log);
    drop(lock);
    Ok(counts)
}

/// Copies the log to `output` (SQLite's `VACUUM INTO`: a consistent snapshot, safe while the
/// server runs; the views are not copied — they are rebuilt from the log). Returns the number
/// of events in the copy.
pub fn backup(data_dir: &Path, output: &Path) -> anyhow::Result<u64> {
    if output.exists() {
        bail!(
            "{} already exists; backup never overwrites",
            output.display()
        );
    }
    let log = read_log(data_dir)?;
    log.connection()
        .execute("VACUUM INTO ?1", [output.to_string_lossy()])
        .with_context(|| format!("cannot write the backup to {}", output.display()))?;
    let copy = EventLog::open_reader(output)?;
    copy.verify()
        .map_err(|v| anyhow::anyhow!("the backup does not verify: {v}"))
}

/// Restores a backup into a stopped, empty data dir: the log is copied, checked, given a new
/// `log_id` (devices then know the log was restored: docs/protocol.md) and its views built.
pub fn restore(data_dir: &Path, input: &Path) -> anyhow::Result<u64> {
    let _lock = crate::lock::lock(data_dir, "restore")?;
    for name in ["events.db", "views.db"] {
        if data_dir.join(name).exists() {
            bail!(
                "{} already holds {name}: restore only into an empty data dir",
                data_dir.display()
            );
        }
    }
    let source = EventLog::open_reader(input)
        .with_context(|| format!("{} is not a Tandem events.db", input.display()))?;
    let checked = source
        .verify()
        .map_err(|v| anyhow::anyhow!("{} does not verify: {v}", input.display()))?;
    let target = data_dir.join("events.db");
    source
        .connection()
        .execute("VACUUM INTO ?1", [target.to_string_lossy()])
        .with_context(|| format!("cannot write {}", target.display()))?;
    drop(source);
    let log = EventLog::open(
        &target,
        DeviceId::from_uuid(uuid::Uuid::new_v4()),
        Arc::new(now_ms),
    )?;
    log.set_log_id(&uuid::Uuid::new_v4().to_string())?;
    let (mut views, _) = Views::open_current(data_dir.join("views.db"), &log, progress)?;
    views.catch_up(&log, 1_000)?;
    Ok(checked)
}

/// Runs one read-only SQL statement on the log and prints its rows as JSON arrays (one per
/// line, the column names first). A statement that would write is refused before it runs.
pub fn query(data_dir: &Path, sql: &str, out: &mut impl Write) -> anyhow::Result<usize> {
    let log = read_log(data_dir)?;
    let conn = log.connection();
    conn.pragma_update(None, "query_only", true)?;
    let mut stmt = conn
        .prepare(sql)
        .with_context(|| "the query does not parse")?;
    if !stmt.readonly() {
        bail!("server query only reads: this statement would write");
    }
    let names: Vec<String> = stmt.column_names().map(str::to_string).collect();
    writeln!(out, "{}", serde_json::to_string(&names)?)?;
    let columns = names.len();
    let mut rows = stmt.query([])?;
    let mut n = 0;
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(columns);
        for i in 0..columns {
            use tandem_store::rusqlite::types::ValueRef;
            values.push(match row.get_ref(i)? {
                ValueRef::Null => serde_json::Value::Null,
                ValueRef::Integer(v) => v.into(),
                ValueRef::Real(v) => v.into(),
                ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
                ValueRef::Blob(b) => format!("<{} bytes>", b.len()).into(),
            });
        }
        writeln!(out, "{}", serde_json::Value::Array(values))?;
        n += 1;
    }
    Ok(n)
}
