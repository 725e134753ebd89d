//! Several server processes on one PostgreSQL database (the cluster `TANDEM_TEST_PG` names;
//! `make test` starts one): real `server serve --database` processes, each with a data dir of
//! its own that holds nothing. A push through one is live and pulled on the other; the rate
//! limits count the tries made on both; an account disabled from the command line loses its
//! sockets on both; a process killed with SIGKILL under push load loses nothing it
//! acknowledged, and the other keeps serving.
//!
//! `TANDEM_SERVER_BIN` runs another build of the server (`make test` uses the release one
//! for the crash test; this one runs the test build unless told otherwise).

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use tandem_events::ids::WorkspaceId;
use tandem_events::testkit::Rng;

fn server_bin() -> String {
    std::env::var("TANDEM_SERVER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_server").into())
}

/// A `server serve` process on the database.
struct Process {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Process {
    fn start(url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = common::free_port();
        let mut child = Command::new(server_bin())
            .args([
                "serve",
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir.path())
            .env("TANDEM_DATABASE_URL", url)
            .env_remove("TANDEM_CONFIG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap())
            .spawn()
            .unwrap();
        common::wait_healthy(&mut child, port, 60);
        Self { child, port, dir }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the process has logged so far (its standard error).
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command-line subcommand on the database (`stdin` as its standard input); its
/// standard output. Fails the test when it fails.
fn cli(url: &str, args: &[&str], stdin: &str) -> String {
    let mut command = Command::new(server_bin());
    command
        .args(args)
        .env("TANDEM_DATABASE_URL", url)
        .env_remove("TANDEM_CONFIG")
        .env_remove("TANDEM_DATA_DIR");
    let (ok, out, err) = common::output_of(command, stdin);
    assert!(ok, "server {args:?}: {err}");
    out
}

fn blocking_client(token: &str) -> reqwest::blocking::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .default_headers(headers)
        .build()
        .unwrap()
}

fn pull(process: &Process, token: &str, workspace: WorkspaceId, cursor: u64) -> Value {
    let response = blocking_client(token)
        .post(format!("{}/api/sync/pull", process.base()))
        .json(&json!({
            "device_id": uuid::Uuid::from_u128(0xb0b).to_string(),
            "workspace_id": workspace.to_string(),
            "cursor": cursor,
            "limit": 1000,
        }))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().unwrap()
}

/// Every event id in the workspace, read through `process` page by page.
fn pulled_ids(process: &Process, token: &str, workspace: WorkspaceId) -> Vec<String> {
    let (mut ids, mut cursor) = (vec![], 0);
    loop {
        let page = pull(process, token, workspace, cursor);
        for e in page["events"].as_array().unwrap() {
            ids.push(e["event_id"].as_str().unwrap().to_string());
        }
        cursor = page["head"].as_u64().unwrap();
        if !page["has_more"].as_bool().unwrap() {
            return ids;
        }
    }
}

/// The next JSON text message of a socket (within 10 s), or `None` when it closed.
async fn next_message<S>(socket: &mut S) -> Option<Value>
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("a message within 10 s")
        {
            Some(Ok(Message::Text(text))) => return Some(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

#[test]
fn processes_on_one_database_share_the_log_live_updates_limits_and_access() {
    let seed = common::seed_from_env("PROCESSES_SEED", 20_261_203);
    println!("processes test: seed {seed} (PROCESSES_SEED replays)");
    let mut rng = Rng::new(seed);
    let url = common::fresh_pg_url();
    // The first account and its token, made by the command line on the database.
    cli(&url, &["user", "add", "ann"], "ann's password\n");
    let token = cli(
        &url,
        &["token", "create", "--user", "ann", "--name", "t"],
        "",
    )
    .trim()
    .to_string();
    let (a, b) = (Process::start(&url), Process::start(&url));
    let workspace = WorkspaceId::from_uuid(uuid::Uuid::from_u128(0x5eed));
    let made = blocking_client(&token)
        .post(format!("{}/api/workspaces", a.base()))
        .json(&json!({"name": "Shared", "workspace_id": workspace.to_string()}))
        .send()
        .unwrap();
    assert_eq!(made.status(), 201);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // A push through A is announced on B's socket with its events, then pulled through B.
    let (mut on_b, _) = runtime
        .block_on(tokio_tungstenite::connect_async(common::live_request(
            &b.base(),
            &token,
            &workspace.to_string(),
        )))
        .unwrap();
    let first = runtime.block_on(next_message(&mut on_b)).unwrap();
    assert_eq!(first["head"], 0);
    let pushed_at = Instant::now();
    let acked = common::push_lists(
        a.port,
        &token,
        workspace,
        0x1,
        Arc::new(Mutex::new(0)),
        Arc::new(AtomicBool::new(false)),
        1,
    );
    assert_eq!(acked.len(), 1);
    let heard = runtime.block_on(next_message(&mut on_b)).unwrap();
    let live_after = pushed_at.elapsed();
    assert_eq!(heard["head"], 1, "{heard}");
    assert_eq!(
        heard["events"][0]["event_id"], acked[0],
        "the push's events ride along: {heard}"
    );
    assert_eq!(
        heard["people"][0]["username"], "ann",
        "and their pusher's name: {heard}"
    );
    assert_eq!(heard["people"][0]["user_id"], heard["events"][0]["user_id"]);
    assert!(
        live_after < Duration::from_secs(2),
        "live on the other process after {live_after:?}"
    );
    assert_eq!(pulled_ids(&b, &token, workspace), acked);
    println!("a push through A was live on B after {live_after:?}");

    // The failed sign-ins of one account from one address count on both processes: ten
    // spread over A and B, and the next is refused by either.
    let sign_in = |process: &Process, password: &str| {
        reqwest::blocking::Client::new()
            .post(format!("{}/api/auth/sign-in", process.base()))
            .json(&json!({"username": "ann", "password": password}))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    for i in 0..10 {
        let process = if i % 2 == 0 { &a } else { &b };
        assert_eq!(sign_in(process, "wrong password!"), 401, "try {i}");
    }
    assert_eq!(sign_in(&a, "wrong password!"), 429);
    assert_eq!(
        sign_in(&b, "ann's password"),
        429,
        "blocked on B too, even with the right password"
    );

    // A is killed with SIGKILL under push load: everything it acknowledged is in the log
    // once, B keeps serving and pulls it all, and the log verifies.
    let counter = Arc::new(Mutex::new(1_000));
    let dead = Arc::new(AtomicBool::new(false));
    let pushers: Vec<_> = (0..4u128)
        .map(|d| {
            let (token, counter, dead) = (token.clone(), Arc::clone(&counter), Arc::clone(&dead));
            let port = a.port;
            std::thread::spawn(move || {
                common::push_lists(
                    port,
                    &token,
                    workspace,
                    0x100 + d,
                    counter,
                    dead,
                    usize::MAX,
                )
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300 + rng.below(700) as u64));
    let mut a = a;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    dead.store(true, Ordering::SeqCst);
    let mut acked = acked;
    for p in pushers {
        acked.extend(p.join().unwrap());
    }
    assert!(acked.len() > 1, "the load ran");
    let stored = pulled_ids(&b, &token, workspace);
    let mut once = std::collections::HashMap::<&str, usize>::new();
    for id in &stored {
        *once.entry(id).or_default() += 1;
    }
    for id in &acked {
        assert_eq!(
            once.get(id.as_str()),
            Some(&1),
            "seed {seed}: acknowledged {id} is stored once"
        );
    }
    println!(
        "{} pushes acknowledged by A before SIGKILL; {} events pulled through B",
        acked.len(),
        stored.len()
    );
    let verified = cli(&url, &["verify"], "");
    assert!(
        verified.contains(&format!("{} events", stored.len())),
        "{verified}"
    );
    let exported = cli(&url, &["export"], "");
    assert_eq!(exported.lines().count(), stored.len());

    // Disabling the account from the command line closes its sockets on every process.
    let a = Process::start(&url);
    let mut sockets = vec![];
    for process in [&a, &b] {
        let (mut socket, _) = runtime
            .block_on(tokio_tungstenite::connect_async(common::live_request(
                &process.base(),
                &token,
                &workspace.to_string(),
            )))
            .unwrap();
        assert!(runtime.block_on(next_message(&mut socket)).is_some());
        sockets.push(socket);
    }
    let disabled_at = Instant::now();
    cli(&url, &["user", "disable", "ann"], "");
    for socket in &mut sockets {
        // Heads may still come first (another process's last pushes); then it closes.
        while let Some(message) = runtime.block_on(next_message(socket)) {
            assert_eq!(message["type"], "head", "{message}");
        }
    }
    assert!(disabled_at.elapsed() < Duration::from_secs(5));
    println!(
        "a disabled account's sockets on both processes closed after {:?}",
        disabled_at.elapsed()
    );
}

/// `/healthz` of a process whose database is gone: 503 in the contract's shape, saying only
/// that the databases do not answer — anyone may ask, so the database's own words (its name,
/// its role, its host) go to the server's log alone.
#[test]
fn a_process_whose_database_is_gone_says_so_and_logs_why() {
    let url = common::fresh_pg_url();
    let process = Process::start(&url);
    let health = || reqwest::blocking::get(format!("{}/healthz", process.base())).unwrap();
    assert_eq!(health().status(), 200);
    let (cluster, name) = url.rsplit_once('/').unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let admin = tandem_pg::Database::connect(&format!("{cluster}/postgres"), 1).unwrap();
            let client = admin.client().await.unwrap();
            client
                .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .await
                .unwrap();
        });
    let answer = health();
    assert_eq!(answer.status(), 503);
    let body: Value = answer.json().unwrap();
    assert_eq!(
        body,
        json!({
            "code": "UNAVAILABLE",
            "message": "the databases are not available; the server's log says why",
        })
    );
    // Anyone's credentials, which cannot be checked now: BUSY, in the same few words.
    let anyone = reqwest::blocking::Client::new()
        .get(format!("{}/api/auth/me", process.base()))
        .bearer_auth("A".repeat(43))
        .send()
        .unwrap();
    assert_eq!(anyone.status(), 503);
    let body: Value = anyone.json().unwrap();
    assert_eq!(body["code"], "BUSY");
    assert_eq!(body["message"], "the accounts are not available; try again");
    // The log says why, in the database's words (a check may first meet a connection the
    // drop cut; the next ones connect anew and are told the database does not exist).
    let deadline = Instant::now() + Duration::from_secs(10);
    let why = format!("database \"{name}\" does not exist");
    let logged = |log: String| {
        log.lines()
            .any(|line| line.contains("the health check failed") && line.contains(&why))
    };
    while !logged(process.log()) {
        assert!(Instant::now() < deadline, "logged: {}", process.log());
        assert_eq!(health().status(), 503);
        std::thread::sleep(Duration::from_millis(20));
    }
}
