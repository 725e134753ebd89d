//! The maintenance subcommands: `rebuild`, `inspect`, `verify`, `export`, `import`, `backup`,
//! `restore`, `query`, and the accounts'. Those that only read (`inspect`, `verify`, `export`,
//! `query`, `backup`) open the log read-only and work beside a running server; those that
//! write (`import`, `rebuild`, `restore`) take the data dir's lock and refuse while a server
//! holds it. `verify`, `export`, `import`, `query`, `migrate` and the account commands work on
//! a PostgreSQL database too ([`Storage::Postgres`]), beside serving processes (an import
//! holds each workspace's push lock; account writes take the accounts' lock).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use tandem_events::ids::DeviceId;
use tandem_store::wire::{from_wire, logged, logged_by};
use tandem_store::{EventLog, Views};

use crate::databases::{now_ms, ACCOUNTS_FILE};
use tandem_accounts::{AccountStore, Accounts};

/// Where a command finds the server's state, as `serve` was told.
#[derive(Debug, Clone)]
pub enum Storage {
    /// A data dir's SQLite databases.
    Dir(PathBuf),
    /// A PostgreSQL database.
    Postgres(crate::config::DatabaseUrl),
}

impl From<&Path> for Storage {
    fn from(dir: &Path) -> Self {
        Self::Dir(dir.to_path_buf())
    }
}

impl From<&PathBuf> for Storage {
    fn from(dir: &PathBuf) -> Self {
        Self::Dir(dir.clone())
    }
}

/// A PostgreSQL database opened for one command, its schema brought to this build's. It has
/// a runtime of its own: the accounts' methods wait on it from the command's thread (never
/// call these from inside another runtime's task; the tests use `spawn_blocking`).
pub struct PgSession {
    central: tandem_pg::PgCentral,
    accounts: tandem_pg::PgAccounts,
    // Last: dropped after what runs on it.
    runtime: tokio::runtime::Runtime,
}

impl PgSession {
    /// Opens the database; `migrate` brings its schema to this build's first (the commands
    /// that make things: `user add`, `import`), otherwise it must be at this build's already
    /// (a command that reads never changes the schema under serving processes, nor makes
    /// Tandem's tables in a database named by mistake).
    pub fn open(url: &crate::config::DatabaseUrl, migrate: bool) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let (central, accounts) = runtime.block_on(async {
            let db = tandem_pg::Database::connect(&url.0, 2)?;
            if migrate {
                db.migrate().await?;
            } else {
                let found = tandem_pg::migrate::current(&**db.client().await?).await?;
                let known = tandem_pg::migrate::latest();
                if found == 0 {
                    anyhow::bail!(
                        "the database holds no Tandem schema (a server serving it, or `server migrate --database`, makes it)"
                    );
                }
                if found != known {
                    anyhow::bail!(
                        "the database is at schema version {found}, this build's is {known}: run the matching build, or `server migrate --database` first"
                    );
                }
            }
            let central = tandem_pg::PgCentral::open(
                db.clone(),
                crate::databases::sync_limits(&crate::config::Limits::default()),
                &uuid::Uuid::new_v4().to_string(),
                Arc::new(now_ms),
            )
            .await?;
            let accounts = tandem_pg::PgAccounts::new(db, tokio::runtime::Handle::current());
            Ok::<_, anyhow::Error>((central, accounts))
        })?;
        Ok(Self {
            central,
            accounts,
            runtime,
        })
    }

    fn wait<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(work)
    }

    /// The workspaces that hold events.
    fn workspaces(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .wait(self.central.heads())?
            .into_iter()
            .map(|(ws, _)| ws.to_string())
            .collect())
    }
}

/// The accounts a command works on.
enum AccountsAt {
    Sqlite(Accounts),
    Postgres(Box<PgSession>),
}

impl std::ops::Deref for AccountsAt {
    type Target = dyn AccountStore;

    fn deref(&self) -> &Self::Target {
        match self {
            Self::Sqlite(accounts) => accounts,
            Self::Postgres(session) => &session.accounts,
        }
    }
}

/// The accounts at `at`; in a data dir, `create` makes accounts.db when missing (else it
/// must exist).
fn accounts_at(at: &Storage, create: bool) -> anyhow::Result<AccountsAt> {
    Ok(match at {
        Storage::Dir(dir) if create => AccountsAt::Sqlite(open_accounts(dir)?),
        Storage::Dir(dir) => AccountsAt::Sqlite(read_accounts(dir)?),
        Storage::Postgres(url) => AccountsAt::Postgres(Box::new(PgSession::open(url, create)?)),
    })
}

/// Runs `f` on the accounts at `at` (which must exist). Blocks: on PostgreSQL, call it off
/// any async runtime (the command line; `spawn_blocking` in tests).
pub fn with_accounts<T>(
    at: impl Into<Storage>,
    f: impl FnOnce(&dyn AccountStore) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    f(&*accounts_at(&at.into(), false)?)
}

/// The workspaces that hold events at `at`.
fn workspaces_at(at: &Storage, accounts: &AccountsAt) -> anyhow::Result<Vec<String>> {
    match (at, accounts) {
        (_, AccountsAt::Postgres(session)) => session.workspaces(),
        (Storage::Dir(dir), _) => log_workspaces(dir),
        (Storage::Postgres(url), _) => PgSession::open(url, false)?.workspaces(),
    }
}

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

/// `server migrate` on a data dir: opens each of its databases as serve does, which applies
/// what this build's schema adds (the log's migrations, the accounts' tables, the views
/// rebuilt when their projection changed), with the data dir's lock held.
pub fn migrate(data_dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let _lock = crate::lock::lock(data_dir, "migrate")?;
    crate::databases::Databases::open(data_dir, &crate::config::Limits::default())?;
    Ok(())
}

/// `server migrate --database URL`: applies the PostgreSQL schema's versions the database
/// lacks; the versions applied.
pub fn migrate_database(url: &str) -> anyhow::Result<Vec<i32>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let db = tandem_pg::Database::connect(url, 1)?;
        Ok(db.migrate().await?)
    })
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

/// Checks the log's invariants, and that every event's workspace exists (an account made it)
/// and every account an event names exists; the error names the first violation.
pub fn verify(at: impl Into<Storage>) -> anyhow::Result<u64> {
    let at = at.into();
    let (checked, heads, event_users, (workspaces, users)) = match &at {
        Storage::Dir(data_dir) => {
            let log = read_log(data_dir)?;
            let checked = log
                .verify()
                .map_err(|v| anyhow::anyhow!("invariant violated: {v}"))?;
            let known = if data_dir.join(ACCOUNTS_FILE).exists() {
                let accounts = read_accounts(data_dir)?;
                (accounts.workspace_ids()?, accounts.user_ids()?)
            } else {
                Default::default()
            };
            (checked, log.heads()?, log.event_users()?, known)
        }
        Storage::Postgres(url) => {
            let session = PgSession::open(url, false)?;
            let checked = session
                .wait(session.central.verify())
                .map_err(|v| anyhow::anyhow!("invariant violated: {v}"))?;
            let heads = session.wait(session.central.heads())?;
            let users = session.wait(session.central.event_users())?;
            let known = (
                session.accounts.workspace_ids()?,
                session.accounts.user_ids()?,
            );
            (checked, heads, users, known)
        }
    };
    for (workspace, _) in heads {
        if !workspaces.contains(&workspace.to_string()) {
            bail!(
                "invariant violated: workspace {workspace} has events but no owner (a data dir from before accounts: make the first account with `server user add NAME`; after an import: `server import --owner NAME`)"
            );
        }
    }
    for (event, user) in event_users {
        if !users.contains(&user) {
            bail!("invariant violated: event {event} names account {user}, which does not exist");
        }
    }
    Ok(checked)
}

/// accounts.db (it must exist), for reading.
fn read_accounts(data_dir: &Path) -> anyhow::Result<Accounts> {
    let path = data_dir.join(ACCOUNTS_FILE);
    if !path.exists() {
        bail!(
            "{} has no {ACCOUNTS_FILE}: no account was made yet",
            data_dir.display()
        );
    }
    Ok(Accounts::open(path)?)
}

/// accounts.db, created if missing (with the data dir): the account commands work beside a
/// running server (WAL; no data-dir lock) and take effect at its next request.
fn open_accounts(data_dir: &Path) -> anyhow::Result<Accounts> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    Ok(Accounts::open(data_dir.join(ACCOUNTS_FILE))?)
}

/// The workspaces of the log (none without one).
fn log_workspaces(data_dir: &Path) -> anyhow::Result<Vec<String>> {
    if !data_dir.join("events.db").exists() {
        return Ok(vec![]);
    }
    Ok(read_log(data_dir)?
        .heads()?
        .into_iter()
        .map(|(ws, _)| ws.to_string())
        .collect())
}

/// `server user add NAME`: makes an account with its own workspace (its "Inbox" list is
/// written by the server at the first sign-in). The first account is the admin and owns the
/// log's workspaces from before accounts. Returns whether it is the first.
pub fn user_add(at: impl Into<Storage>, username: &str, password: &str) -> anyhow::Result<bool> {
    let at = at.into();
    tandem_accounts::names::username(username)?;
    tandem_accounts::names::password(password)?;
    let accounts = accounts_at(&at, true)?;
    if accounts.user_by_name(username)?.is_some() {
        bail!("the username {username:?} is taken");
    }
    let hash = tandem_accounts::password::hash(password)?;
    let adopt = workspaces_at(&at, &accounts)?;
    let user_id = uuid::Uuid::new_v4().to_string();
    let workspace_id = uuid::Uuid::new_v4().to_string();
    let record = accounts.create_account(&tandem_accounts::NewAccount {
        user_id: &user_id,
        username,
        password_hash: &hash,
        must_be_first: false,
        invite: None,
        workspace_id: &workspace_id,
        workspace_name: "Personal",
        adopt: &adopt,
        now: now(),
    })?;
    Ok(record.is_admin)
}

/// `server user list`: name, id, and state, one account a line.
pub fn user_list(at: impl Into<Storage>, out: &mut impl Write) -> anyhow::Result<usize> {
    let accounts = accounts_at(&at.into(), false)?;
    let users = accounts.users()?;
    for u in &users {
        let state = if u.deleted {
            "deleted"
        } else if u.disabled {
            "disabled"
        } else {
            "active"
        };
        let admin = if u.is_admin { " admin" } else { "" };
        writeln!(
            out,
            "{}\t{}\t{state}{admin}",
            u.user.username, u.user.user_id
        )?;
    }
    Ok(users.len())
}

/// `server user disable NAME` (or enable): a disabled account's sessions and tokens end and
/// its sockets close within a second.
pub fn user_disable(at: impl Into<Storage>, username: &str, disabled: bool) -> anyhow::Result<()> {
    accounts_at(&at.into(), false)?.set_disabled(username, disabled)?;
    Ok(())
}

/// `server user reset NAME`: a new password; every session and token of the account ends.
pub fn user_reset(at: impl Into<Storage>, username: &str, password: &str) -> anyhow::Result<()> {
    tandem_accounts::names::password(password)?;
    let accounts = accounts_at(&at.into(), false)?;
    let user = accounts
        .user_by_name(username)?
        .filter(|u| !u.deleted)
        .with_context(|| format!("no account {username:?}"))?;
    let hash = tandem_accounts::password::hash(password)?;
    accounts.set_password(&user.user.user_id, &hash)?;
    Ok(())
}

/// `server token create --user NAME`: an API token (printed once).
pub fn token_create(
    at: impl Into<Storage>,
    username: &str,
    name: &str,
    expires_in_s: Option<u64>,
) -> anyhow::Result<(String, String)> {
    let accounts = accounts_at(&at.into(), false)?;
    let user = accounts
        .user_by_name(username)?
        .filter(|u| !u.deleted && !u.disabled)
        .with_context(|| format!("no active account {username:?}"))?;
    crate::auth::make_token(&*accounts, &user.user.user_id, name, expires_in_s)
        .map_err(|e| anyhow::anyhow!("{}", e.0.message))
}

fn now() -> i64 {
    i64::try_from(now_ms()).unwrap_or(i64::MAX)
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
pub fn export(at: impl Into<Storage>, out: &mut impl Write) -> anyhow::Result<u64> {
    let at = at.into();
    let log = match &at {
        Storage::Dir(dir) => Ok(read_log(dir)?),
        Storage::Postgres(url) => Err(PgSession::open(url, false)?),
    };
    let heads = match &log {
        Ok(log) => log.heads()?,
        Err(session) => session.wait(session.central.heads())?,
    };
    let mut written = 0;
    for (workspace, head) in heads {
        let mut after = 0;
        while after < head {
            let page = match &log {
                Ok(log) => log.events_after_by(workspace, after, 5_000)?,
                Err(session) => {
                    session.wait(session.central.events_after(workspace, after, 5_000))?
                }
            };
            let Some((last, _, _)) = page.last() else {
                break;
            };
            after = *last;
            for (seq, event, user) in &page {
                let line = logged_by(*seq, event, user.clone());
                writeln!(out, "{}", serde_json::to_string(&line)?)?;
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
pub fn import(
    at: impl Into<Storage>,
    input: impl BufRead,
    owner: Option<&str>,
) -> anyhow::Result<(usize, usize)> {
    match at.into() {
        Storage::Dir(dir) => import_dir(&dir, input, owner),
        Storage::Postgres(url) => {
            let session = PgSession::open(&url, true)?;
            let owner_id = match owner {
                Some(name) => Some(owner_of(&session.accounts, name)?),
                None => None,
            };
            let events = read_export(input, &session.accounts.user_ids()?)?;
            let counts = session.wait(session.central.import(&events))?;
            if let Some(owner) = &owner_id {
                let adopted = session
                    .accounts
                    .adopt(owner, &session.workspaces()?, now())?;
                eprintln!("{adopted} workspaces now belong to the owner");
            }
            Ok(counts)
        }
    }
}

/// The account that is to own imported workspaces.
fn owner_of(accounts: &dyn AccountStore, name: &str) -> anyhow::Result<String> {
    Ok(accounts
        .user_by_name(name)?
        .filter(|u| !u.deleted)
        .with_context(|| format!("no account {name:?} to own the imported workspaces"))?
        .user
        .user_id)
}

/// Reads exported JSON lines: each event checked and decodable; an account this server does
/// not have is not kept (the event's content is; who pushed it is not part of it).
fn read_export(
    input: impl BufRead,
    known_users: &std::collections::HashSet<String>,
) -> anyhow::Result<Vec<tandem_store::log::LoggedBy>> {
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
        let user = logged.user_id.filter(|u| known_users.contains(u));
        events.push((logged.seq, event, user));
    }
    Ok(events)
}

fn import_dir(
    data_dir: &Path,
    input: impl BufRead,
    owner: Option<&str>,
) -> anyhow::Result<(usize, usize)> {
    let lock = crate::lock::lock(data_dir, "import")?;
    let accounts = match owner {
        Some(_) => Some(open_accounts(data_dir)?),
        None if data_dir.join(ACCOUNTS_FILE).exists() => Some(read_accounts(data_dir)?),
        None => None,
    };
    let owner_id = match (owner, &accounts) {
        (Some(name), Some(accounts)) => Some(owner_of(accounts, name)?),
        _ => None,
    };
    let known_users = match &accounts {
        Some(a) => a.user_ids()?,
        None => Default::default(),
    };
    let fresh = !data_dir.join("events.db").exists();
    let mut log = EventLog::open(
        data_dir.join("events.db"),
        DeviceId::from_uuid(uuid::Uuid::new_v4()),
        Arc::new(now_ms),
    )?;
    let events = read_export(input, &known_users)?;
    let counts = log.import_logged(&events)?;
    if let (Some(owner), Some(accounts)) = (&owner_id, &accounts) {
        let workspaces: Vec<String> = log
            .heads()?
            .into_iter()
            .map(|(ws, _)| ws.to_string())
            .collect();
        let adopted = accounts.adopt(owner, &workspaces, now())?;
        eprintln!("{adopted} workspaces now belong to the owner");
    }
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

/// The tables of accounts.db a backup holds (in an order that keeps references valid).
const BACKED_UP_ACCOUNTS: [&str; 7] = [
    "users",
    "workspaces",
    "members",
    "invites",
    "invite_claims",
    "devices",
    "usage",
];

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
    // Written beside under a name of this run's own and moved into place once it verifies: a
    // backup cut short (a full disk, a kill) never sits where a good one is expected. It holds
    // password hashes and everyone's lists: readable by its owner only, from the start.
    let mut partial = output.as_os_str().to_owned();
    partial.push(format!(".{}.partial", std::process::id()));
    let partial = PathBuf::from(partial);
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .with_context(|| format!("cannot write the backup to {}", partial.display()))?;
    }
    let placed = write_backup(data_dir, &partial).and_then(|events| {
        // A link fails when the name is taken (by a run that finished meanwhile): nothing is
        // ever replaced.
        std::fs::hard_link(&partial, output).with_context(|| {
            format!("cannot move the backup into place at {}", output.display())
        })?;
        Ok(events)
    });
    let _ = std::fs::remove_file(&partial);
    placed
}

/// A backup named after the time (`tandem-20261203T071500Z.backup`) in `dir`, then only the
/// newest `keep` of them are kept. Returns the new file and the number of events in it.
pub fn backup_into(
    data_dir: &Path,
    dir: &Path,
    keep: usize,
    now_unix_s: u64,
) -> anyhow::Result<(PathBuf, u64)> {
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot make the backup directory {}", dir.display()))?;
    }
    let output = dir.join(backup_name(now_unix_s));
    let events = backup(data_dir, &output)?;
    let mut backups: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_backup_name)
        })
        .collect();
    // The names sort by time; the new one is kept whatever the clock said (one slow clock must
    // not delete the backup just made, then report it made).
    backups.retain(|path| path != &output);
    backups.sort();
    let old = (backups.len() + 1).saturating_sub(keep);
    for path in &backups[..old.min(backups.len())] {
        match std::fs::remove_file(path) {
            // Another run removed it first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => {
                other.with_context(|| format!("cannot remove the old backup {}", path.display()))?
            }
        }
    }
    Ok((output, events))
}

/// `tandem-YYYYMMDDTHHMMSSZ.backup` for a time in seconds since 1970 (UTC).
fn backup_name(unix_s: u64) -> String {
    let day = app::quick_add::Day::from_days((unix_s / 86_400) as i64);
    let secs = unix_s % 86_400;
    format!(
        "tandem-{}T{:02}{:02}{:02}Z.backup",
        day.iso().replace('-', ""),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Whether `name` is one [`backup_name`] makes (no other file of the directory is touched).
fn is_backup_name(name: &str) -> bool {
    let Some(stamp) = name
        .strip_prefix("tandem-")
        .and_then(|n| n.strip_suffix("Z.backup"))
    else {
        return false;
    };
    let bytes = stamp.as_bytes();
    bytes.len() == 15
        && bytes[8] == b'T'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 8 || b.is_ascii_digit())
}

fn write_backup(data_dir: &Path, output: &Path) -> anyhow::Result<u64> {
    let log = read_log(data_dir)?;
    log.connection()
        .execute("VACUUM INTO ?1", [output.to_string_lossy()])
        .with_context(|| format!("cannot write the backup to {}", output.display()))?;
    drop(log);
    // Then the accounts (after the log: workspaces and accounts are never removed, so every
    // event of the copy has its rows). Sessions and tokens are not kept: a restore ends them.
    if data_dir.join(ACCOUNTS_FILE).exists() {
        let copy = tandem_store::rusqlite::Connection::open(output)?;
        copy.execute(
            "ATTACH DATABASE ?1 AS acc",
            [format!(
                "file:{}?mode=ro",
                data_dir.join(ACCOUNTS_FILE).display()
            )],
        )
        .or_else(|_| {
            copy.execute(
                "ATTACH DATABASE ?1 AS acc",
                [data_dir.join(ACCOUNTS_FILE).to_string_lossy()],
            )
        })?;
        let tx = copy.unchecked_transaction()?;
        for table in BACKED_UP_ACCOUNTS {
            tx.execute_batch(&format!(
                "CREATE TABLE backup_{table} AS SELECT * FROM acc.{table}"
            ))?;
        }
        tx.commit()?;
        copy.execute_batch("DETACH DATABASE acc")?;
    }
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
    // The accounts the backup holds; every session and token ends (none are restored).
    let has_accounts: bool = log.connection().query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE name = 'backup_users'",
        [],
        |r| r.get(0),
    )?;
    if has_accounts {
        drop(Accounts::open(data_dir.join(ACCOUNTS_FILE))?);
        let conn = tandem_store::rusqlite::Connection::open(data_dir.join(ACCOUNTS_FILE))?;
        conn.execute("ATTACH DATABASE ?1 AS bk", [target.to_string_lossy()])?;
        let tx = conn.unchecked_transaction()?;
        for table in BACKED_UP_ACCOUNTS {
            tx.execute_batch(&format!(
                "INSERT INTO main.{table} SELECT * FROM bk.backup_{table}"
            ))?;
        }
        tx.commit()?;
        conn.execute_batch("DETACH DATABASE bk")?;
        for table in BACKED_UP_ACCOUNTS {
            log.connection()
                .execute_batch(&format!("DROP TABLE IF EXISTS backup_{table}"))?;
        }
    }
    let (mut views, _) = Views::open_current(data_dir.join("views.db"), &log, progress)?;
    views.catch_up(&log, 1_000)?;
    Ok(checked)
}

/// Runs one read-only SQL statement on the log and prints its rows as JSON arrays (one per
/// line, the column names first). A statement that would write is refused before it runs.
pub fn query(at: impl Into<Storage>, sql: &str, out: &mut impl Write) -> anyhow::Result<usize> {
    let data_dir = match at.into() {
        Storage::Dir(dir) => dir,
        Storage::Postgres(url) => return query_postgres(&url, sql, out),
    };
    let log = read_log(&data_dir)?;
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

/// `query` on PostgreSQL: the statement runs in a READ ONLY transaction (the database refuses
/// any write) that is rolled back; values are printed as the database writes them as text,
/// numbers as JSON numbers.
fn query_postgres(
    url: &crate::config::DatabaseUrl,
    sql: &str,
    out: &mut impl Write,
) -> anyhow::Result<usize> {
    use tandem_pg::tokio_postgres::SimpleQueryMessage;
    let session = PgSession::open(url, false)?;
    let messages = session.wait(async {
        let mut client = session.central.database().client().await?;
        let tx = client.build_transaction().read_only(true).start().await?;
        // One statement: preparing it refuses several (the simple protocol below would run
        // "COMMIT; DELETE …" past the read-only transaction).
        tx.prepare(sql)
            .await
            .map_err(|e| anyhow::anyhow!("{}", tandem_pg::describe(&e)))?;
        let messages = tx
            .simple_query(sql)
            .await
            .map_err(|e| anyhow::anyhow!("{}", tandem_pg::describe(&e)))?;
        tx.rollback().await?;
        Ok::<_, anyhow::Error>(messages)
    })?;
    let mut n = 0;
    for message in &messages {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                let names: Vec<&str> = columns.iter().map(|c| c.name()).collect();
                writeln!(out, "{}", serde_json::to_string(&names)?)?;
            }
            SimpleQueryMessage::Row(row) => {
                let values: Vec<serde_json::Value> = (0..row.len())
                    .map(|i| match row.get(i) {
                        None => serde_json::Value::Null,
                        Some(text) => text
                            .parse::<i64>()
                            .map(Into::into)
                            .unwrap_or_else(|_| text.into()),
                    })
                    .collect();
                writeln!(out, "{}", serde_json::Value::Array(values))?;
                n += 1;
            }
            _ => {}
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_names_sort_by_time_and_only_they_are_recognised() {
        assert_eq!(backup_name(0), "tandem-19700101T000000Z.backup");
        assert_eq!(backup_name(1_796_282_115), "tandem-20261203T071515Z.backup");
        assert!(backup_name(1_000) < backup_name(86_400 * 400));
        assert!(is_backup_name(&backup_name(1_796_282_115)));
        for other in [
            "notes.txt",
            "tandem-20261203T072155Z.backup.partial",
            "tandem-2026120xT072155Z.backup",
            "tandem-20261203-072155Z.backup",
            "tandem-.backup",
        ] {
            assert!(!is_backup_name(other), "{other}");
        }
    }
}
