//! Starting a real server on 127.0.0.1:0 with a temp data dir, for the integration tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tandem_events::domain::{DomainEvent, ListCreated};
use tandem_events::event::Event;
use tandem_events::hlc::Stamp;
use tandem_events::ids::{AggregateId, DeviceId, EventId, WorkspaceId};
use tandem_store::wire::to_wire;

use server::config::Limits;
use server::Config;
use tokio::sync::oneshot;

pub struct Running {
    pub base: String,
    /// An API token of the account `tester` (made on the data dir when missing), a member of
    /// the default workspace.
    pub token: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), server::ServeError>>,
    pub data_dir: tempfile::TempDir,
}

pub async fn start() -> Running {
    start_with(Limits::default()).await
}

pub async fn start_with(limits: Limits) -> Running {
    start_on(
        "127.0.0.1:0".parse().unwrap(),
        tempfile::tempdir().unwrap(),
        limits,
    )
    .await
}

/// A server whose sign-up is open (anyone may make an account through the API).
pub async fn start_open() -> Running {
    let access = server::config::Access {
        sign_up: server::config::SignUp::Open,
        ..Default::default()
    };
    start_full(
        "127.0.0.1:0".parse().unwrap(),
        tempfile::tempdir().unwrap(),
        Limits::default(),
        access,
    )
    .await
}

/// Signs up `username` (password: its name and " password!") and returns the session's
/// `Cookie` header value.
pub async fn sign_up(base: &str, username: &str) -> String {
    let response = client()
        .post(format!("{base}/api/auth/sign-up"))
        .json(
            &serde_json::json!({"username": username, "password": format!("{username} password!")}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    session_cookie(&response)
}

/// The `name=value` of a response's session cookie.
pub fn session_cookie(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("tandem_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
        .expect("a session cookie")
}

/// A server on `addr` (port 0: any) over `data_dir` (a restart reuses both).
pub async fn start_on(
    addr: std::net::SocketAddr,
    data_dir: tempfile::TempDir,
    limits: Limits,
) -> Running {
    start_full(addr, data_dir, limits, Default::default()).await
}

/// Whether the tests' servers keep their state in PostgreSQL (`TANDEM_TEST_BACKEND=postgres`,
/// on the cluster `TANDEM_TEST_PG` names: `make test` runs the server's tests both ways).
pub fn on_postgres() -> bool {
    match std::env::var("TANDEM_TEST_BACKEND").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("TANDEM_TEST_BACKEND is postgres or sqlite, not {other:?}"),
    }
}

/// The file in a test's data dir that remembers its PostgreSQL database (a restart over the
/// same data dir serves the same database).
const DATABASE_FILE: &str = "test-database-url";

/// Where a test server over `dir` keeps its state: its data dir, or on PostgreSQL the
/// database made for it (made on first use).
pub async fn storage(dir: &std::path::Path) -> server::admin::Storage {
    if !on_postgres() {
        return server::admin::Storage::Dir(dir.to_path_buf());
    }
    let remembered = dir.join(DATABASE_FILE);
    if let Ok(url) = std::fs::read_to_string(&remembered) {
        return server::admin::Storage::Postgres(server::config::DatabaseUrl(url));
    }
    let url = new_pg_database().await;
    std::fs::write(&remembered, &url).unwrap();
    server::admin::Storage::Postgres(server::config::DatabaseUrl(url))
}

/// Runs an accounts or maintenance command on a test server's storage, off the async runtime
/// (on PostgreSQL the commands wait on a runtime of their own).
pub async fn admin<T: Send + 'static>(
    dir: &std::path::Path,
    f: impl FnOnce(server::admin::Storage) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let at = storage(dir).await;
    tokio::task::spawn_blocking(move || f(at)).await.unwrap()
}

pub async fn start_full(
    addr: std::net::SocketAddr,
    data_dir: tempfile::TempDir,
    limits: Limits,
    access: server::config::Access,
) -> Running {
    let database = match storage(data_dir.path()).await {
        server::admin::Storage::Postgres(url) => Some(url),
        server::admin::Storage::Dir(_) => None,
    };
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Config {
        addr,
        data_dir: data_dir.path().to_path_buf(),
        site_root: data_dir.path().join("site"),
        limits,
        access,
        database,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server::run(listener, config, async {
        let _ = stopped.await;
    }));
    let base = format!("http://{addr}");
    // Answered once the server serves (its databases open, a PostgreSQL schema migrated).
    let up = client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 200);
    let token = tester_token(data_dir.path(), &base).await;
    Running {
        base,
        token,
        stop: Some(stop),
        task,
        data_dir,
    }
}

/// On PostgreSQL, a second server on `running`'s database (another process, as far as the
/// server can tell: its own pools, hub, limits and turns); `None` on SQLite, where one data
/// dir serves one process.
pub async fn beside(
    running: &Running,
    limits: Limits,
    access: server::config::Access,
) -> Option<Running> {
    if !on_postgres() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        running.data_dir.path().join(DATABASE_FILE),
        dir.path().join(DATABASE_FILE),
    )
    .unwrap();
    Some(start_full("127.0.0.1:0".parse().unwrap(), dir, limits, access).await)
}

/// The tests' account.
pub const TESTER: &str = "tester";
pub const TESTER_PASSWORD: &str = "tester's password";

/// A token of [`TESTER`] on the server at `base` over `dir` (the account is made with the
/// command line's code when missing — no "Inbox" is written for it: it never signs in), which
/// is made a member of the default workspace the older tests sync.
pub async fn tester_token(dir: &std::path::Path, base: &str) -> String {
    let (_, token) = admin(dir, |at| {
        let exists = match server::admin::with_accounts(at.clone(), |a| {
            Ok(a.user_by_name(TESTER)?.is_some())
        }) {
            Ok(exists) => exists,
            // A data dir without accounts.db yet.
            Err(_) if matches!(at, server::admin::Storage::Dir(_)) => false,
            Err(e) => return Err(e),
        };
        if !exists {
            server::admin::user_add(at.clone(), TESTER, TESTER_PASSWORD)?;
        }
        server::admin::token_create(at, TESTER, "tests", None)
    })
    .await
    .unwrap();
    let response = client()
        .post(format!("{base}/api/workspaces"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "name": "Default",
            "workspace_id": tandem_events::ids::WorkspaceId::DEFAULT.to_string(),
        }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    // 201 made, 200 already ours, 403 when the default workspace predates accounts and the
    // tester adopted it (then it is ours too).
    assert!(
        [200, 201, 403].contains(&status),
        "{status}: {}",
        response.text().await.unwrap()
    );
    token
}

impl Running {
    /// Makes `workspace` the tester's (a workspace exists once an account creates it).
    pub async fn claim(&self, workspace: &str) {
        claim_with(&self.base, &self.token, workspace).await;
    }

    /// An HTTP client that sends the tester's token.
    pub fn client(&self) -> reqwest::Client {
        authorized(&self.token)
    }

    pub async fn stop(mut self) -> (Duration, tempfile::TempDir) {
        let begun = Instant::now();
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .expect("the server stops within 5 s")
            .unwrap()
            .unwrap();
        (begun.elapsed(), self.data_dir)
    }
}

/// Makes `workspace` the token's account's (201, or 200 when it was already).
pub async fn claim_with(base: &str, token: &str, workspace: &str) {
    let response = authorized(token)
        .post(format!("{base}/api/workspaces"))
        .json(&serde_json::json!({"name": "Test", "workspace_id": workspace}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert!(
        status == 200 || status == 201,
        "claiming {workspace}: {status} {}",
        response.text().await.unwrap()
    );
}

/// A client that sends `token` as a Bearer token on every request.
pub fn authorized(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .default_headers(headers)
        .build()
        .unwrap()
}

/// A client without credentials.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A native client's transport: the documented JSON over HTTP (reqwest), with an off switch.
pub struct HttpTransport {
    pub base: String,
    pub http: reqwest::Client,
    pub online: bool,
}

impl HttpTransport {
    /// The transport of a device of the tester's on `server`.
    pub fn new(server: &Running) -> Self {
        Self::with_token(&server.base, &server.token)
    }

    pub fn with_token(base: &str, token: &str) -> Self {
        Self {
            base: base.to_string(),
            http: authorized(token),
            online: true,
        }
    }

    async fn call<Req: serde::Serialize, Res: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        request: &Req,
    ) -> Result<Res, tandem_store::driver::TransportError> {
        use tandem_store::driver::TransportError;
        if !self.online {
            return Err(TransportError::Unreachable("offline".into()));
        }
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(request)
            .send()
            .await
            .map_err(|e| TransportError::Unreachable(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| TransportError::Unreachable(e.to_string()))?;
        if status.is_success() {
            serde_json::from_slice(&bytes)
                .map_err(|e| TransportError::Unreachable(format!("bad answer: {e}")))
        } else if status.is_client_error() {
            match serde_json::from_slice(&bytes) {
                Ok(e) => Err(TransportError::Refused(e)),
                Err(e) => Err(TransportError::Unreachable(format!(
                    "{status} without an error body: {e}"
                ))),
            }
        } else {
            Err(TransportError::Unreachable(format!("{status}")))
        }
    }
}

impl tandem_store::driver::Transport for HttpTransport {
    async fn push(
        &mut self,
        request: &tandem_protocol::sync::PushRequest,
    ) -> Result<tandem_protocol::sync::PushResponse, tandem_store::driver::TransportError> {
        self.call("/api/sync/push", request).await
    }

    async fn pull(
        &mut self,
        request: &tandem_protocol::sync::PullRequest,
    ) -> Result<tandem_protocol::sync::PullResponse, tandem_store::driver::TransportError> {
        self.call("/api/sync/pull", request).await
    }
}

pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Runs a client's sync until it is idle, sleeping when it asks to wait; fails after 20 s.
pub async fn sync_until_idle(
    client: &mut tandem_store::driver::SyncClient<HttpTransport>,
    seed: &mut u64,
) {
    use tandem_events::engine::Action;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let action = client
            .run(wall_ms, || {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                *seed
            })
            .await;
        match action {
            Action::Idle => return,
            Action::Wait { until_ms } => {
                assert!(Instant::now() < deadline, "sync did not settle in 20 s");
                let ms = until_ms.saturating_sub(wall_ms()).min(1_000);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            other => panic!("run returned {other:?}"),
        }
    }
}

/// A native device's replica in `dir`, device id `n`, ids counting up from `n << 64`, the
/// wall clock as its physical clock.
pub fn open_replica(dir: &std::path::Path, n: u128) -> tandem_store::Replica {
    open_replica_from(dir, n, n << 64)
}

/// As [`open_replica`], with ids counting up from `first_id` (a second replica of the same
/// device must not mint the first one's ids again).
pub fn open_replica_from(dir: &std::path::Path, n: u128, first_id: u128) -> tandem_store::Replica {
    let mut next = first_id;
    tandem_store::Replica::open(
        dir.join("events.db"),
        dir.join("views.db"),
        tandem_events::ids::DeviceId::from_uuid(uuid::Uuid::from_u128(n)),
        std::sync::Arc::new(wall_ms),
        Box::new(move || {
            next += 1;
            uuid::Uuid::from_u128(next)
        }),
        |_| {},
    )
    .unwrap()
}

/// A native client's live connection: follows `/api/sync/live`, reconnecting with the engine's
/// jittered backoff whenever the socket fails or closes, and forwards every announced head.
pub struct Live {
    pub heads: tokio::sync::mpsc::UnboundedReceiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn follow(server: &Running, workspace: &str) -> Live {
    follow_with(&server.base, &server.token, workspace)
}

/// A WebSocket request to `/api/sync/live` with a Bearer token.
pub fn live_request(
    base: &str,
    token: &str,
    workspace: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!(
        "{}/api/sync/live?workspace_id={workspace}",
        base.replace("http", "ws")
    );
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

pub fn follow_with(base: &str, token: &str, workspace: &str) -> Live {
    use futures_util::StreamExt;
    let (base, token, workspace) = (base.to_string(), token.to_string(), workspace.to_string());
    let (tx, heads) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let settings = tandem_events::engine::Settings::default();
        let mut attempt = 0u32;
        let mut random = 0x9e37_79b9_7f4a_7c15u64;
        loop {
            let request = live_request(&base, &token, &workspace);
            if let Ok((mut socket, _)) = tokio_tungstenite::connect_async(request).await {
                attempt = 0;
                while let Some(Ok(message)) = socket.next().await {
                    let Ok(text) = message.to_text() else {
                        continue;
                    };
                    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
                        continue;
                    };
                    if let Some(head) = value["head"].as_u64() {
                        if tx.send(head).is_err() {
                            return;
                        }
                    }
                }
            }
            attempt += 1;
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            let wait = tandem_events::engine::backoff_ms(&settings, attempt, random);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    });
    Live { heads, task }
}

/// A free port on 127.0.0.1 (for a server process that must be told its address).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (at most `seconds`) until the server process `child` answers `GET /healthz` on
/// `port`; fails at once if it exits.
pub fn wait_healthy(child: &mut std::process::Child, port: u16, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Ok(r) = reqwest::blocking::get(format!("http://127.0.0.1:{port}/healthz")) {
            if r.status() == 200 {
                return;
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the server exited: {status}");
        }
        assert!(Instant::now() < deadline, "no /healthz within {seconds} s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The seed in the environment variable `var` (another run, or a replay), else `fixed`: the
/// same schedule in every `make test`. The caller prints it.
pub fn seed_from_env(var: &str, fixed: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(fixed)
}

/// A gauge or counter of `GET /metrics` (its sample line `name value`).
pub async fn metric(base: &str, name: &str) -> i64 {
    // Loopback: /metrics needs no token.
    let text = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

/// A new, empty database in the PostgreSQL cluster `TANDEM_TEST_PG` names (`make test` starts
/// a throwaway one: scripts/pg-cluster.sh); its URL.
pub fn fresh_pg_url() -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(new_pg_database())
}

/// [`fresh_pg_url`] inside a runtime.
pub async fn new_pg_database() -> String {
    let cluster = std::env::var("TANDEM_TEST_PG").unwrap_or_else(|_| {
        panic!(
            "TANDEM_TEST_PG names the PostgreSQL the tests run on; start a throwaway one with \
             `eval \"$(scripts/pg-cluster.sh start)\"` (make test does)"
        )
    });
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let db = tandem_pg::Database::connect(&cluster, 1).unwrap();
    let client = db.client().await.expect("the test cluster answers");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (base, _) = cluster.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{name}")
}

/// One device pushing new lists into `workspace`, one event per push, until the server dies
/// (or `dead` is set, or `most` pushes were acknowledged). Returns the ids it saw acknowledged.
pub fn push_lists(
    port: u16,
    token: &str,
    workspace: WorkspaceId,
    device: u128,
    counter: std::sync::Arc<std::sync::Mutex<u64>>,
    dead: std::sync::Arc<std::sync::atomic::AtomicBool>,
    most: usize,
) -> Vec<String> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .default_headers(headers)
        .build()
        .unwrap();
    let node = DeviceId::from_uuid(uuid::Uuid::from_u128(device));
    let mut acked = vec![];
    let mut cursor = 0u64;
    let mut pending: Option<Value> = None;
    while !dead.load(std::sync::atomic::Ordering::SeqCst) && acked.len() < most {
        let body = match pending.take() {
            Some(body) => body,
            None => {
                let n = {
                    let mut c = counter.lock().unwrap();
                    *c += 1;
                    *c
                };
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as u64;
                let event = Event {
                    event_id: EventId::from_uuid(uuid::Uuid::from_u128((device << 64) + n as u128)),
                    workspace_id: workspace,
                    aggregate_id: AggregateId::from_uuid(uuid::Uuid::from_u128(
                        (device << 64) + (1 << 40) + n as u128,
                    )),
                    hlc: Stamp {
                        ms: now,
                        counter: (n % 1_000_000) as u32,
                        node,
                    },
                    device_id: node,
                    version: 1,
                    created_at: now as i64,
                    body: DomainEvent::ListCreated(ListCreated {
                        name: format!("list {n}"),
                    }),
                }
                .to_stored();
                json!({
                    "device_id": node.to_string(),
                    "workspace_id": workspace.to_string(),
                    "cursor": cursor,
                    "events": [to_wire(&event)],
                })
            }
        };
        let mut body = body;
        body["cursor"] = json!(cursor);
        let answer = http
            .post(format!("http://127.0.0.1:{port}/api/sync/push"))
            .json(&body)
            .send();
        let Ok(answer) = answer else { return acked };
        let status = answer.status().as_u16();
        let Ok(reply) = answer.json::<Value>() else {
            return acked;
        };
        match status {
            200 => {
                acked.push(body["events"][0]["event_id"].as_str().unwrap().to_string());
                cursor = reply["head"].as_u64().unwrap();
            }
            409 if reply["code"] == "PULL_REQUIRED" => {
                cursor = reply["head"].as_u64().unwrap();
                pending = Some(body);
            }
            other => panic!("push answered {other}: {reply}"),
        }
    }
    acked
}

/// Runs `command` (a server subcommand) with `input` on its standard input: whether it
/// succeeded, its standard output and its standard error.
pub fn output_of(mut command: std::process::Command, input: &str) -> (bool, String, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
