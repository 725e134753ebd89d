//! Tandem's load harness (`make bench-scale`; `make test` runs `--smoke`). It starts real
//! `server serve` processes on 127.0.0.1 — on SQLite (one process) and on PostgreSQL (one
//! process, then two on one database) — and measures, for each:
//!
//! - **broadcast**: N WebSocket clients in M workspaces on process B (the second, or the only
//!   one), W writers pushing one event at a time through process A; each client does what the
//!   browser's sync driver does with a live message: stores the events it carries when they
//!   continue its cursor exactly and their pushers' names are known, else pulls
//!   (`--pull-always`: every client pulls on every head, the protocol's fallback). The figure
//!   is the time from a write being sent to A to the client holding it on B (p50/p95/p99 over
//!   every client and write; it includes the push's own round trip);
//! - **ingest**: pushers sending 100-event pushes as fast as they are answered, each into a
//!   workspace of its own, spread over the processes: events stored per second;
//! - **idle sockets**: sockets opened on one process and left idle: its RSS;
//! - RSS and CPU of each process during each phase, and every error seen.
//!
//! Each figure is printed beside its goal (ISSUE 19); `--record FILE` appends the table to
//! docs/benchmarks.md with the date and the command.

use std::collections::HashMap;
use std::io::Write as _;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tandem_events::domain::{DomainEvent, ListCreated};
use tandem_events::event::Event;
use tandem_events::hlc::Stamp;
use tandem_events::ids::{AggregateId, DeviceId, EventId, WorkspaceId};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Parser, Clone)]
#[command(about = "Tandem's load harness: real server processes, many clients")]
struct Args {
    /// The server binary [default: TANDEM_SERVER_BIN, else target/release/server]
    #[arg(long, env = "TANDEM_SERVER_BIN")]
    server: Option<String>,
    /// A PostgreSQL cluster to make a database in (postgres://USER@HOST:PORT/postgres);
    /// without it only SQLite is measured
    #[arg(long, env = "TANDEM_TEST_PG")]
    pg: Option<String>,
    /// WebSocket clients in the broadcast phase
    #[arg(long, default_value_t = 1_000)]
    clients: usize,
    /// Workspaces the clients follow
    #[arg(long, default_value_t = 50)]
    workspaces: usize,
    /// Writers, each pushing one event at a time
    #[arg(long, default_value_t = 20)]
    writers: usize,
    /// Pause between a writer's pushes, ms
    #[arg(long, default_value_t = 200)]
    write_every_ms: u64,
    /// Length of the broadcast phase, s
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent pushers in the ingest phase (100 events a push)
    #[arg(long, default_value_t = 8)]
    pushers: usize,
    /// Length of the ingest phase, s
    #[arg(long, default_value_t = 5)]
    ingest_seconds: u64,
    /// Idle sockets opened on one process (0: skip)
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// A short run (what `make test` runs): 100 clients, 10 workspaces, 4 writers, 2 s, 500
    /// idle sockets, 1 s of ingest
    #[arg(long)]
    smoke: bool,
    /// Append the results to this file (docs/benchmarks.md)
    #[arg(long)]
    record: Option<std::path::PathBuf>,
    /// Clients pull on every head instead of storing the events a live message carries
    #[arg(long)]
    pull_always: bool,
    /// Append the servers' standard error (warnings: slow pushes, with where the time went)
    /// to this file
    #[arg(long)]
    server_log: Option<std::path::PathBuf>,
}

const PASSWORD: &str = "load harness password";
const BATCH: usize = 100;

/// The goals of issue 19 on this 2-core machine.
const GOAL_P50_MS: f64 = 50.0;
const GOAL_P99_MS: f64 = 150.0;
const GOAL_IDLE_MB: f64 = 200.0;
const GOAL_INGEST: f64 = 20_000.0;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.clients = 100;
        args.workspaces = 10;
        args.writers = 4;
        args.seconds = 2;
        args.idle = 500;
        args.ingest_seconds = 1;
        args.pushers = 4;
    }
    raise_file_limit()?;
    let bin = args
        .server
        .clone()
        .unwrap_or_else(|| "target/release/server".into());
    if !std::path::Path::new(&bin).exists() {
        bail!("no server binary at {bin} (make build, or --server)");
    }
    let mut runs = vec![];
    runs.push(run(&args, &bin, Storage::Sqlite, 1).await?);
    match &args.pg {
        Some(cluster) => {
            runs.push(run(&args, &bin, Storage::Postgres(cluster.clone()), 1).await?);
            runs.push(run(&args, &bin, Storage::Postgres(cluster.clone()), 2).await?);
        }
        None if args.smoke => bail!("the smoke run measures PostgreSQL too: --pg / TANDEM_TEST_PG"),
        None => println!("no --pg / TANDEM_TEST_PG: PostgreSQL not measured"),
    }
    let table = report(&args, &runs);
    println!("\n{table}");
    if let Some(path) = &args.record {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("cannot append to {}", path.display()))?;
        writeln!(file, "\n{table}")?;
        println!("appended to {}", path.display());
    }
    let errors: u64 = runs.iter().map(|r| r.errors).sum();
    if args.smoke && errors > 0 {
        bail!("{errors} errors during the smoke run");
    }
    // A smoke that measured nothing proves nothing: every run wrote, and its writes reached
    // the clients (on the other process, with two).
    for run in &runs {
        if args.smoke && (run.writes == 0 || run.deliveries < run.writes) {
            bail!(
                "{}: {} writes, {} deliveries: the clients did not get the writes",
                run.name,
                run.writes,
                run.deliveries
            );
        }
    }
    Ok(())
}

/// Many sockets: the harness and the servers it starts (which inherit it) may open as many
/// files as the hard limit allows.
fn raise_file_limit() -> anyhow::Result<()> {
    // SAFETY: getrlimit/setrlimit only read and write the struct given.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            bail!("getrlimit failed");
        }
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            bail!("setrlimit failed");
        }
    }
    Ok(())
}

#[derive(Clone)]
enum Storage {
    Sqlite,
    /// The cluster's URL (a database is made in it for the run).
    Postgres(String),
}

/// One configuration's figures.
struct Run {
    name: String,
    processes: usize,
    p50: f64,
    p95: f64,
    p99: f64,
    deliveries: usize,
    /// Deliveries a pull made (the others came in the live message).
    by_pull: usize,
    writes: usize,
    /// Pulls answered 503 BUSY in the broadcast phase (waited out and tried again).
    busy: u64,
    ingest: f64,
    idle_rss_mb: f64,
    idle_sockets: usize,
    /// Per process: (peak RSS MB, CPU % of one core) in the broadcast and ingest phases.
    usage: Vec<(f64, f64, f64, f64)>,
    /// The share of the machine's CPU time the hypervisor kept (%), broadcast and ingest.
    steal: (Option<f64>, Option<f64>),
    errors: u64,
}

struct Server {
    child: tokio::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `server ARGS` against the storage; its standard output.
async fn cli(bin: &str, at: &[String], args: &[&str], stdin: &str) -> anyhow::Result<String> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(bin)
        .args(args)
        .args(at)
        .env_remove("TANDEM_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!(
            "server {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

async fn start_server(
    bin: &str,
    at: &[String],
    sockets: usize,
    log: Option<&std::path::Path>,
) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let limit = (sockets + 1_000).to_string();
    let mut command = tokio::process::Command::new(bin);
    command
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .args([
            "--live-sockets",
            &limit,
            "--live-sockets-per-account",
            &limit,
        ])
        .args(at)
        .env_remove("TANDEM_CONFIG")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(match log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
            None => Stdio::null(),
        })
        .kill_on_drop(true);
    if at.is_empty() {
        command.arg("--data-dir").arg(dir.path());
    }
    let mut child = command.spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let http = reqwest::Client::new();
    loop {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
        {
            if r.status() == 200 {
                break;
            }
        }
        if let Some(status) = child.try_wait()? {
            bail!("the server exited: {status}");
        }
        if Instant::now() > deadline {
            bail!("the server did not answer /healthz within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Server {
        child,
        port,
        _dir: dir,
    })
}

/// A new database in the cluster; its URL.
async fn new_database(cluster: &str) -> anyhow::Result<String> {
    let db = tandem_pg::Database::connect(cluster, 1)?;
    let name = format!("load_{}", uuid::Uuid::new_v4().simple());
    db.client()
        .await?
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let (base, _) = cluster
        .rsplit_once('/')
        .context("the cluster URL names a database")?;
    Ok(format!("{base}/{name}"))
}

/// Resident memory (MB) and CPU time (s) of a process, from /proc.
fn usage_of(pid: u32) -> (f64, f64) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0;
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces): utime is 14th, stime 15th.
            let rest = &s[s.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks =
                fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0);
    (rss, cpu)
}

/// Samples the processes' RSS every 100 ms while `work` runs: (peak RSS MB, CPU % of a core).
async fn measured<T>(
    pids: &[u32],
    work: impl std::future::Future<Output = T>,
) -> (T, Vec<(f64, f64)>, Option<f64>) {
    let began = Instant::now();
    let machine = cpu_times();
    let cpu0: Vec<f64> = pids.iter().map(|p| usage_of(*p).1).collect();
    let peaks = Arc::new(Mutex::new(vec![0.0f64; pids.len()]));
    let sampler = {
        let (pids, peaks) = (pids.to_vec(), Arc::clone(&peaks));
        tokio::spawn(async move {
            loop {
                for (i, pid) in pids.iter().enumerate() {
                    let rss = usage_of(*pid).0;
                    let mut peaks = peaks.lock().unwrap_or_else(|p| p.into_inner());
                    peaks[i] = peaks[i].max(rss);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let out = work.await;
    sampler.abort();
    let wall = began.elapsed().as_secs_f64().max(0.001);
    let peaks = peaks.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let usage = pids
        .iter()
        .enumerate()
        .map(|(i, pid)| (peaks[i], 100.0 * (usage_of(*pid).1 - cpu0[i]) / wall))
        .collect();
    (out, usage, steal_since(machine))
}

fn client(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(value) = format!("Bearer {token}").parse() {
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

fn workspace(i: usize) -> WorkspaceId {
    WorkspaceId::from_uuid(uuid::Uuid::from_u128(0x10ad_0000 + i as u128))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `n` new lists by `device` (numbered from `first`), in the wire form.
fn lists(ws: WorkspaceId, device: u128, first: u64, n: usize) -> Vec<Value> {
    let node = DeviceId::from_uuid(uuid::Uuid::from_u128(device));
    let now = now_ms();
    (0..n as u64)
        .map(|k| {
            let i = first + k;
            let event = Event {
                event_id: EventId::from_uuid(uuid::Uuid::from_u128((device << 64) + i as u128)),
                workspace_id: ws,
                aggregate_id: AggregateId::from_uuid(uuid::Uuid::from_u128(
                    (device << 64) + (1 << 40) + i as u128,
                )),
                hlc: Stamp {
                    ms: now,
                    counter: (i % 1_000_000) as u32,
                    node,
                },
                device_id: node,
                version: 1,
                created_at: now as i64,
                body: DomainEvent::ListCreated(ListCreated {
                    name: format!("list {i}"),
                }),
            };
            serde_json::to_value(tandem_store::wire::to_wire(&event.to_stored()))
                .unwrap_or(Value::Null)
        })
        .collect()
}

/// Pushes `events` (retrying PULL_REQUIRED at the head it names); the new cursor, or `None`
/// on an error.
async fn push(
    http: &reqwest::Client,
    base: &str,
    ws: WorkspaceId,
    device: u128,
    cursor: &mut u64,
    events: &[Value],
) -> Option<()> {
    for _ in 0..20 {
        let body = json!({
            "device_id": uuid::Uuid::from_u128(device).to_string(),
            "workspace_id": ws.to_string(),
            "cursor": *cursor,
            "events": events,
        });
        let response = http
            .post(format!("{base}/api/sync/push"))
            .json(&body)
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        let reply: Value = response.json().await.ok()?;
        match status {
            200 => {
                *cursor = reply["head"].as_u64()?;
                return Some(());
            }
            409 if reply["code"] == "PULL_REQUIRED" => *cursor = reply["head"].as_u64()?,
            503 => tokio::time::sleep(Duration::from_millis(50)).await,
            _ => return None,
        }
    }
    None
}

async fn run(args: &Args, bin: &str, storage: Storage, processes: usize) -> anyhow::Result<Run> {
    let (name, at) = match &storage {
        Storage::Sqlite => ("SQLite".to_string(), vec![]),
        Storage::Postgres(cluster) => (
            format!(
                "PostgreSQL, {processes} process{}",
                if processes > 1 { "es" } else { "" }
            ),
            vec!["--database".to_string(), new_database(cluster).await?],
        ),
    };
    println!("\n== {name} ==");
    let sockets = args.clients.max(args.idle);
    // The first process makes the data dir (SQLite), or the schema (PostgreSQL).
    let mut servers = vec![start_server(bin, &at, sockets, args.server_log.as_deref()).await?];
    let at_cli = match &storage {
        Storage::Sqlite => vec![
            "--data-dir".to_string(),
            servers[0]._dir.path().display().to_string(),
        ],
        Storage::Postgres(_) => at.clone(),
    };
    cli(
        bin,
        &at_cli,
        &["user", "add", "load"],
        &format!("{PASSWORD}\n"),
    )
    .await?;
    let token = cli(
        bin,
        &at_cli,
        &["token", "create", "--user", "load", "--name", "load"],
        "",
    )
    .await?
    .trim()
    .to_string();
    for _ in 1..processes {
        servers.push(start_server(bin, &at, sockets, args.server_log.as_deref()).await?);
    }
    let http = client(&token);
    let a = servers[0].base();
    let b = servers[servers.len() - 1].base();
    let spaces = args.workspaces.max(args.pushers * processes);
    for i in 0..spaces {
        let r = http
            .post(format!("{a}/api/workspaces"))
            .json(&json!({"name": format!("W{i}"), "workspace_id": workspace(i).to_string()}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("making a workspace: {} {}", r.status(), r.text().await?);
        }
    }
    let pids: Vec<u32> = servers.iter().map(Server::pid).collect();
    let errors = Arc::new(AtomicU64::new(0));
    let busy = Arc::new(AtomicU64::new(0));

    // Idle sockets on the first process, first: what a process holding them takes (the
    // later phases leave their own memory behind).
    let (idle_rss, idle_open) = if args.idle > 0 {
        let before = usage_of(pids[0]).0;
        let (open, held) = idle(args.idle, &a, &token, spaces, Arc::clone(&errors)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = usage_of(pids[0]).0;
        drop(held);
        println!(
            "idle: {open} sockets open on one process: RSS {after:.0} MB ({before:.0} MB before)"
        );
        (after, open)
    } else {
        (0.0, 0)
    };
    // Broadcast: clients on B, writers through A.
    let ((latencies, writes, by_pull), broadcast_usage, broadcast_steal) = measured(
        &pids,
        broadcast(
            args,
            &http,
            &a,
            &b,
            &token,
            Arc::clone(&errors),
            Arc::clone(&busy),
        ),
    )
    .await;
    let busy = busy.load(Ordering::Relaxed);
    let (p50, p95, p99) = percentiles(&latencies);
    println!(
        "broadcast: {} clients in {} workspaces, {writes} writes through the first process, {} deliveries on the {} ({by_pull} by a pull): p50 {p50:.1} ms, p95 {p95:.1} ms, p99 {p99:.1} ms; {busy} pulls answered BUSY (retried)",
        args.clients,
        args.workspaces,
        latencies.len(),
        if processes > 1 { "second" } else { "same one" }
    );

    // Ingest: pushers spread over the processes.
    let bases: Vec<String> = servers.iter().map(Server::base).collect();
    let (ingested, ingest_usage, ingest_steal) =
        measured(&pids, ingest(args, &http, &bases, Arc::clone(&errors))).await;
    let ingest_rate = ingested as f64 / args.ingest_seconds as f64;
    println!(
        "ingest: {ingested} events in {} s by {} pushers of {BATCH}: {ingest_rate:.0} events/s",
        args.ingest_seconds,
        args.pushers * processes
    );

    let usage = broadcast_usage
        .iter()
        .zip(&ingest_usage)
        .map(|(b, i)| (b.0, b.1, i.0, i.1))
        .collect::<Vec<_>>();
    for (i, (rss_b, cpu_b, rss_i, cpu_i)) in usage.iter().enumerate() {
        println!(
            "process {}: broadcast {rss_b:.0} MB, {cpu_b:.0}% CPU; ingest {rss_i:.0} MB, {cpu_i:.0}% CPU",
            i + 1
        );
    }
    let errors = errors.load(Ordering::Relaxed);
    println!("errors: {errors}");
    for mut server in servers {
        let _ = server.child.kill().await;
        let _ = server.child.wait().await;
    }
    // The run's database goes with it (runs after it start on an equal footing).
    if let (Storage::Postgres(cluster), Some(url)) = (&storage, at.get(1)) {
        if let Some((_, name)) = url.rsplit_once('/') {
            let db = tandem_pg::Database::connect(cluster, 1)?;
            db.client()
                .await?
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await?;
        }
    }
    Ok(Run {
        name,
        processes,
        p50,
        p95,
        p99,
        deliveries: latencies.len(),
        by_pull,
        writes,
        busy,
        ingest: ingest_rate,
        idle_rss_mb: idle_rss,
        idle_sockets: idle_open,
        usage,
        steal: (broadcast_steal, ingest_steal),
        errors,
    })
}

fn percentiles(values: &[f64]) -> (f64, f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    (at(0.50), at(0.95), at(0.99))
}

/// The broadcast phase: the latencies (ms) from each write's acknowledgement to each client
/// of its workspace holding it, the writes made, and how many deliveries a pull made.
async fn broadcast(
    args: &Args,
    http: &reqwest::Client,
    a: &str,
    b: &str,
    token: &str,
    errors: Arc<AtomicU64>,
    busy: Arc<AtomicU64>,
) -> (Vec<f64>, usize, usize) {
    let origin = Instant::now();
    // event id → (when its write was sent, when the push's answer came)
    let acked: Arc<Mutex<HashMap<String, (f64, f64)>>> = Arc::default();
    // (event id, when the client held it, whether by a pull)
    let pulled: Arc<Mutex<Vec<(String, f64, bool)>>> = Arc::default();
    // A flag, not a notice: a client busy pulling when the phase ends sees it afterwards.
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let ready = Arc::new(tokio::sync::Semaphore::new(0));
    let mut clients = vec![];
    let connecting = Arc::new(tokio::sync::Semaphore::new(64));
    for i in 0..args.clients {
        let ws = workspace(i % args.workspaces);
        let (b, token, http) = (b.to_string(), token.to_string(), http.clone());
        let pull_always = args.pull_always;
        let (pulled, mut stop, ready, errors, connecting, busy) = (
            Arc::clone(&pulled),
            stop.clone(),
            Arc::clone(&ready),
            Arc::clone(&errors),
            Arc::clone(&connecting),
            Arc::clone(&busy),
        );
        clients.push(tokio::spawn(async move {
            let socket = {
                let _turn = connecting.acquire().await;
                connect(&b, &token, ws).await
            };
            ready.add_permits(1);
            let Some(mut socket) = socket else {
                errors.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let device = 0xc000_0000 + i as u128;
            let mut cursor = None::<u64>;
            // The accounts whose names this client learnt (from its pulls).
            let mut people = std::collections::HashSet::<String>::new();
            loop {
                let message = tokio::select! {
                    m = socket.next() => m,
                    _ = stop.wait_for(|stopped| *stopped) => break,
                };
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Ping(p))) => {
                        let _ = socket.send(Message::Pong(p)).await;
                        continue;
                    }
                    Some(Ok(_)) => continue,
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                };
                let Ok(message) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                let Some(head) = message["head"].as_u64() else {
                    continue;
                };
                let Some(from) = cursor else {
                    // The first message: where the client starts.
                    cursor = Some(head);
                    continue;
                };
                if head <= from {
                    continue;
                }
                if !pull_always {
                    // The names the message carries are noted first (as the driver does).
                    for p in message["people"].as_array().into_iter().flatten() {
                        if let Some(user) = p["user_id"].as_str() {
                            people.insert(user.to_string());
                        }
                    }
                    if let Some(ids) = carried(&message, from, head, &people) {
                        let at = origin.elapsed().as_secs_f64() * 1_000.0;
                        let mut pulled = pulled.lock().unwrap_or_else(|p| p.into_inner());
                        pulled.extend(ids.into_iter().map(|id| (id, at, false)));
                        cursor = Some(head);
                        continue;
                    }
                }
                match pull(&http, &b, ws, device, from, &busy).await {
                    Some((ids, new_head, names)) => {
                        let at = origin.elapsed().as_secs_f64() * 1_000.0;
                        let mut pulled = pulled.lock().unwrap_or_else(|p| p.into_inner());
                        pulled.extend(ids.into_iter().map(|id| (id, at, true)));
                        cursor = Some(new_head);
                        people.extend(names);
                    }
                    None => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    // Every client connected before the writes begin.
    let _ = ready.acquire_many(args.clients as u32).await;
    let steal_before = cpu_times();
    let harness_before = usage_of(std::process::id()).1;
    let began = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut writers = vec![];
    for w in 0..args.writers {
        let ws = workspace(w % args.workspaces);
        let (a, http, acked, errors) = (
            a.to_string(),
            http.clone(),
            Arc::clone(&acked),
            Arc::clone(&errors),
        );
        let every = Duration::from_millis(args.write_every_ms);
        let spread = u32::try_from(args.writers).unwrap_or(u32::MAX).max(1);
        writers.push(tokio::spawn(async move {
            let device = 0xa000_0000 + w as u128;
            let mut cursor = 0;
            let mut n = 0u64;
            // Spread the writers' starts over one interval.
            tokio::time::sleep(every * w as u32 / spread).await;
            while Instant::now() < deadline {
                let events = lists(ws, device, n, 1);
                let id = events[0]["event_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                n += 1;
                // From the moment the write leaves: its acceptance is within the push's
                // round trip, and a live message may reach B before the answer reaches A's
                // writer (so this bounds "accepted → held" from above).
                let at = origin.elapsed().as_secs_f64() * 1_000.0;
                if push(&http, &a, ws, device, &mut cursor, &events)
                    .await
                    .is_some()
                {
                    let answered = origin.elapsed().as_secs_f64() * 1_000.0;
                    acked
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id, (at, answered));
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(every).await;
            }
        }));
    }
    for w in writers {
        let _ = w.await;
    }
    // Let the last writes arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop_tx.send(true);
    for c in clients {
        let _ = c.await;
    }
    let acked = acked.lock().unwrap_or_else(|p| p.into_inner());
    let pulled = pulled.lock().unwrap_or_else(|p| p.into_inner());
    let latencies: Vec<f64> = pulled
        .iter()
        .filter_map(|(id, at, _)| acked.get(id).map(|(sent, _)| (at - sent).max(0.0)))
        .collect();
    explain_tail(
        &acked,
        &pulled,
        steal_before,
        harness_before,
        (origin, began),
    );
    let by_pull = pulled.iter().filter(|(_, _, by_pull)| *by_pull).count();
    (latencies, acked.len(), by_pull)
}

/// Where the slow deliveries' time went, printed beside the figures: the pushes' round trips
/// (a slow one is the writing process's or the database's), the deliveries over the p99 goal
/// whose push alone took most of it, and the phase's share of the machine's time the
/// hypervisor kept (steal) and the harness itself used (a stall of the whole machine shows
/// in both sides).
fn explain_tail(
    acked: &HashMap<String, (f64, f64)>,
    held: &[(String, f64, bool)],
    before: Option<(u64, u64)>,
    harness_before: f64,
    (origin, began): (Instant, Instant),
) {
    let round_trips: Vec<f64> = acked
        .values()
        .map(|(sent, answered)| answered - sent)
        .collect();
    let (rt50, _, rt99) = percentiles(&round_trips);
    // (total, the push's round trip, when sent)
    let slow: Vec<(f64, f64, f64)> = held
        .iter()
        .filter_map(|(id, at, _)| {
            acked
                .get(id)
                .map(|(sent, answered)| (at - sent, answered - sent, *sent))
        })
        .filter(|(total, _, _)| *total > GOAL_P99_MS)
        .collect();
    let by_push = slow
        .iter()
        .filter(|(total, push, _)| *push > total / 2.0)
        .count();
    // Slow deliveries bunched in a few moments are a stall, spread ones a steady cost.
    let moments: std::collections::BTreeSet<i64> = slow
        .iter()
        .map(|(_, _, sent)| (sent / 250.0).floor() as i64)
        .collect();
    let steal = steal_since(before).map_or("unknown".into(), |s| format!("{s:.1}%"));
    let wall = began.elapsed().as_secs_f64().max(0.001);
    let phase_began = (began - origin).as_secs_f64();
    let harness = 100.0 * (usage_of(std::process::id()).1 - harness_before) / wall;
    println!(
        "  tail: push round trip p50 {rt50:.1} ms, p99 {rt99:.1} ms; {} deliveries over {GOAL_P99_MS} ms (of writes sent in {} quarter-seconds: {:?} s into the phase), {by_push} of them mostly the push's round trip; steal {steal}; the harness {harness:.0}% CPU",
        slow.len(),
        moments.len(),
        moments
            .iter()
            .take(8)
            .map(|m| *m as f64 / 4.0 - phase_began)
            .collect::<Vec<_>>()
    );
}

/// The share (%) of the machine's CPU time since `before` (from [`cpu_times`]) that the
/// hypervisor kept.
fn steal_since(before: Option<(u64, u64)>) -> Option<f64> {
    let (steal0, total0) = before?;
    let (steal1, total1) = cpu_times()?;
    (total1 > total0)
        .then(|| 100.0 * steal1.saturating_sub(steal0) as f64 / (total1 - total0) as f64)
}

/// The machine's CPU time the hypervisor kept (steal) and all of it, in clock ticks, from
/// /proc/stat (None where it cannot be read).
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    Some((*ticks.get(7)?, ticks.iter().take(8).sum()))
}

/// The event ids a live message carries when the client may store them as they are (the
/// rule of `tandem_store::driver`): they continue `cursor` exactly up to `head`, and every
/// pusher's name is known. `None`: pull.
fn carried(
    message: &Value,
    cursor: u64,
    head: u64,
    people: &std::collections::HashSet<String>,
) -> Option<Vec<String>> {
    let events = message["events"].as_array()?;
    let fresh: Vec<&Value> = events
        .iter()
        .filter(|e| e["seq"].as_u64().is_some_and(|seq| seq > cursor))
        .collect();
    if fresh.is_empty() || cursor + fresh.len() as u64 != head {
        return None;
    }
    let mut ids = Vec::with_capacity(fresh.len());
    for (i, e) in fresh.iter().enumerate() {
        if e["seq"].as_u64()? != cursor + 1 + i as u64 {
            return None;
        }
        if let Some(user) = e["user_id"].as_str() {
            if !people.contains(user) {
                return None;
            }
        }
        ids.push(e["event_id"].as_str()?.to_string());
    }
    Some(ids)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(base: &str, token: &str, ws: WorkspaceId) -> Option<Socket> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!(
        "{}/api/sync/live?workspace_id={ws}",
        base.replace("http", "ws")
    );
    let mut request = url.into_client_request().ok()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().ok()?);
    tokio::time::timeout(
        Duration::from_secs(30),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .ok()?
    .ok()
    .map(|(s, _)| s)
}

/// Pulls everything after `cursor`: the event ids, the new head and the accounts named. A 503
/// BUSY is waited out as a client does (its Retry-After) and counted in `busy`.
async fn pull(
    http: &reqwest::Client,
    base: &str,
    ws: WorkspaceId,
    device: u128,
    mut cursor: u64,
    busy: &AtomicU64,
) -> Option<(Vec<String>, u64, Vec<String>)> {
    let mut ids = vec![];
    let mut names = vec![];
    let mut tries = 0;
    loop {
        let response = http
            .post(format!("{base}/api/sync/pull"))
            .json(&json!({
                "device_id": uuid::Uuid::from_u128(device).to_string(),
                "workspace_id": ws.to_string(),
                "cursor": cursor,
            }))
            .send()
            .await
            .ok()?;
        if response.status() == 503 && tries < 10 {
            tries += 1;
            busy.fetch_add(1, Ordering::Relaxed);
            let wait = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        if response.status() != 200 {
            return None;
        }
        let page: Value = response.json().await.ok()?;
        for e in page["events"].as_array()? {
            ids.push(e["event_id"].as_str()?.to_string());
        }
        for p in page["people"].as_array().into_iter().flatten() {
            names.push(p["user_id"].as_str()?.to_string());
        }
        cursor = page["head"].as_u64()?;
        if !page["has_more"].as_bool()? {
            return Some((ids, cursor, names));
        }
    }
}

/// The ingest phase: pushers (per process) pushing 100 new lists a push into workspaces of
/// their own, as fast as answered; the events stored.
async fn ingest(
    args: &Args,
    http: &reqwest::Client,
    bases: &[String],
    errors: Arc<AtomicU64>,
) -> u64 {
    let stored = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.ingest_seconds);
    let mut tasks = vec![];
    for (p, base) in bases.iter().enumerate() {
        for k in 0..args.pushers {
            let index = p * args.pushers + k;
            let ws = workspace(index);
            let (base, http, stored, errors) = (
                base.clone(),
                http.clone(),
                Arc::clone(&stored),
                Arc::clone(&errors),
            );
            tasks.push(tokio::spawn(async move {
                let device = 0xe000_0000 + index as u128;
                let (mut cursor, mut n) = (0, 0u64);
                while Instant::now() < deadline {
                    let events = lists(ws, device, n, BATCH);
                    n += BATCH as u64;
                    if push(&http, &base, ws, device, &mut cursor, &events)
                        .await
                        .is_some()
                    {
                        stored.fetch_add(BATCH as u64, Ordering::Relaxed);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    stored.load(Ordering::Relaxed)
}

/// Opens `n` sockets (200 at a time) and keeps them; how many opened, and the sockets.
async fn idle(
    n: usize,
    base: &str,
    token: &str,
    spaces: usize,
    errors: Arc<AtomicU64>,
) -> (usize, Vec<Socket>) {
    let opening = Arc::new(tokio::sync::Semaphore::new(200));
    let mut tasks = vec![];
    for i in 0..n {
        let (base, token, opening) = (base.to_string(), token.to_string(), Arc::clone(&opening));
        tasks.push(tokio::spawn(async move {
            let _turn = opening.acquire().await;
            let mut socket = connect(&base, &token, workspace(i % spaces)).await?;
            // Open once the first head arrived.
            match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
                Ok(Some(Ok(Message::Text(_)))) => Some(socket),
                _ => None,
            }
        }));
    }
    let mut sockets = vec![];
    for t in tasks {
        match t.await {
            Ok(Some(socket)) => sockets.push(socket),
            _ => {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    (sockets.len(), sockets)
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**not met**"
    }
}

/// The results as a Markdown section: each figure beside its goal.
fn report(args: &Args, runs: &[Run]) -> String {
    let mut out = String::new();
    let date = std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    out.push_str(&format!(
        "### Scale ({date}, `{}`)\n\n{} clients in {} workspaces, {} writers (one event each {} ms, {} s), {} pushers of {BATCH} per process ({} s), {} idle sockets; all on 127.0.0.1, this 2-core machine.\n\n",
        std::env::args().collect::<Vec<_>>().join(" "),
        args.clients,
        args.workspaces,
        args.writers,
        args.write_every_ms,
        args.seconds,
        args.pushers,
        args.ingest_seconds,
        args.idle
    ));
    out.push_str("| figure | ");
    out.push_str(
        &runs
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(" | "),
    );
    out.push_str(" | goal |\n|---|");
    out.push_str(&"---|".repeat(runs.len() + 1));
    out.push('\n');
    let row = |label: &str, cells: Vec<String>, goal: &str| {
        format!("| {label} | {} | {goal} |\n", cells.join(" | "))
    };
    out.push_str(&row(
        if args.pull_always {
            "write sent to A → pulled on B, p50"
        } else {
            "write sent to A → held on B (live message or pull), p50"
        },
        runs.iter()
            .map(|r| format!("{:.1} ms, {}", r.p50, verdict(r.p50 < GOAL_P50_MS)))
            .collect(),
        "< 50 ms",
    ));
    out.push_str(&row(
        "… p95",
        runs.iter().map(|r| format!("{:.1} ms", r.p95)).collect(),
        "",
    ));
    out.push_str(&row(
        "… p99",
        runs.iter()
            .map(|r| format!("{:.1} ms, {}", r.p99, verdict(r.p99 < GOAL_P99_MS)))
            .collect(),
        "< 150 ms",
    ));
    out.push_str(&row(
        "writes / deliveries measured (by a pull) / pulls answered BUSY",
        runs.iter()
            .map(|r| {
                format!(
                    "{} / {} ({}) / {}",
                    r.writes, r.deliveries, r.by_pull, r.busy
                )
            })
            .collect(),
        "",
    ));
    let sqlite = runs.first().map_or(0.0, |r| r.ingest);
    let pg1 = runs
        .iter()
        .find(|r| r.name.starts_with("PostgreSQL") && r.processes == 1)
        .map(|r| r.ingest);
    out.push_str(&row(
        "push ingest",
        runs.iter()
            .map(|r| {
                let goal = if r.name == "SQLite" {
                    verdict(r.ingest >= GOAL_INGEST).to_string()
                } else if r.processes == 1 {
                    format!(
                        "{:.2}× SQLite, {}",
                        r.ingest / sqlite,
                        verdict(r.ingest >= 0.5 * sqlite)
                    )
                } else {
                    let one = pg1.unwrap_or(f64::NAN);
                    format!(
                        "{:.2}× one process, {}",
                        r.ingest / one,
                        verdict(r.ingest >= 1.5 * one)
                    )
                };
                format!("{:.0} ev/s, {goal}", r.ingest)
            })
            .collect(),
        "SQLite ≥ 20k/s; PostgreSQL ≥ 0.5× SQLite; 2 processes ≥ 1.5× 1",
    ));
    out.push_str(&row(
        "idle sockets on one process: RSS",
        runs.iter()
            .map(|r| {
                format!(
                    "{} sockets, {:.0} MB, {}",
                    r.idle_sockets,
                    r.idle_rss_mb,
                    verdict(r.idle_sockets >= args.idle && r.idle_rss_mb < GOAL_IDLE_MB)
                )
            })
            .collect(),
        "10,000 sockets < 200 MB",
    ));
    out.push_str(&row(
        "CPU time the hypervisor kept (steal: broadcast; ingest)",
        runs.iter()
            .map(|r| {
                let pct = |s: Option<f64>| s.map_or("?".into(), |s| format!("{s:.1}%"));
                format!("{}; {}", pct(r.steal.0), pct(r.steal.1))
            })
            .collect(),
        "",
    ));
    out.push_str(&row(
        "per process: peak RSS, CPU (broadcast; ingest)",
        runs.iter()
            .map(|r| {
                r.usage
                    .iter()
                    .map(|(rb, cb, ri, ci)| format!("{rb:.0} MB {cb:.0}%; {ri:.0} MB {ci:.0}%"))
                    .collect::<Vec<_>>()
                    .join(" / ")
            })
            .collect(),
        "",
    ));
    out.push_str(&row(
        "errors",
        runs.iter().map(|r| r.errors.to_string()).collect(),
        "0",
    ));
    out
}
