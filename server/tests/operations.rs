//! Operating the `server` binary: environment, the data dir's lock, bounded shutdown, and the
//! backup / restore / import / query commands (CONTRACT.md, README "Operations").

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tandem_accounts::AccountStore as _;

use common::free_port;
use serde_json::json;
use tandem_events::testkit::workload;
use tandem_store::wire::to_wire;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_server"));
    for var in [
        "TANDEM_DATA_DIR",
        "TANDEM_CONFIG",
        "TANDEM_ADDR",
        "LEPTOS_SITE_ADDR",
    ] {
        c.env_remove(var);
    }
    c
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = bin().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A server process, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.0.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }

    /// Waits for the exit, at most `limit`; its status code.
    fn exit_within(&mut self, limit: Duration) -> (Duration, Option<i32>) {
        let begun = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return (begun.elapsed(), status.code());
            }
            assert!(begun.elapsed() < limit, "still running after {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Starts `server` with `args` and `env`, waiting until /healthz answers on `port`.
fn spawn(args: &[&str], env: &[(&str, &str)], port: u16) -> Proc {
    let mut c = bin();
    c.args(args).stdout(Stdio::null()).stderr(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = Proc(c.spawn().unwrap());
    common::wait_healthy(&mut child.0, port, 20);
    child
}

fn dir_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_bare_server_honours_the_environment_limits_included() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = spawn(
        &[],
        &[
            ("TANDEM_ADDR", &addr),
            ("TANDEM_DATA_DIR", dir_str(dir.path())),
            ("TANDEM_MAX_CLOCK_DRIFT_MS", "600000"),
        ],
        port,
    );
    assert!(
        dir.path().join("events.db").exists(),
        "TANDEM_DATA_DIR used"
    );
    // A stamp 5 minutes ahead: over the default 60 s, within the 10 minutes set by env.
    let mut events = workload(3, 1, 0, 0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    events[0].hlc_timestamp.ms = now + 300_000;
    let body = json!({
        "device_id": events[0].device_id.to_string(),
        "workspace_id": events[0].workspace_id.to_string(),
        "cursor": 0,
        "events": [to_wire(&events[0])],
    });
    // An account made by the command line's code while the server runs, and its token.
    server::admin::user_add(dir.path(), "ops", "ops password!").unwrap();
    let (_, token) = server::admin::token_create(dir.path(), "ops", "test", None).unwrap();
    let http = reqwest::blocking::Client::new();
    let claimed = http
        .post(format!("http://{addr}/api/workspaces"))
        .bearer_auth(&token)
        .json(&json!({"name": "W", "workspace_id": events[0].workspace_id.to_string()}))
        .send()
        .unwrap();
    assert_eq!(claimed.status(), 201);
    let response = http
        .post(format!("http://{addr}/api/sync/push"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().unwrap());
    server.signal("TERM");
    let (_, code) = server.exit_within(Duration::from_secs(5));
    assert_eq!(code, Some(0));
}

#[test]
fn a_live_data_dir_refuses_a_second_server_and_write_commands_but_not_reads() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir_str(dir.path());
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = spawn(&["serve", "--addr", &addr, "--data-dir", data], &[], port);
    let other = format!("127.0.0.1:{}", free_port());
    let (ok, _, err) = run(&["serve", "--addr", &other, "--data-dir", data]);
    assert!(!ok);
    assert!(err.contains("in use by another Tandem process"), "{err}");
    assert!(err.contains("server, pid"), "{err}");
    let export = dir.path().join("export.jsonl");
    let (ok, _, err) = run(&["export", "--data-dir", data, "--output", dir_str(&export)]);
    assert!(ok, "export reads beside the server: {err}");
    for args in [
        vec!["import", "--data-dir", data, "--input", dir_str(&export)],
        vec!["rebuild", "--data-dir", data],
        vec!["restore", "--data-dir", data, "--input", dir_str(&export)],
    ] {
        let (ok, _, err) = run(&args);
        assert!(!ok, "{args:?}");
        assert!(
            err.contains("in use by another Tandem process"),
            "{args:?}: {err}"
        );
    }
    for args in [
        vec!["verify", "--data-dir", data],
        vec!["inspect", "--data-dir", data],
        vec![
            "query",
            "--data-dir",
            data,
            "SELECT count(*) AS n FROM events",
        ],
    ] {
        let (ok, out, err) = run(&args);
        assert!(ok, "{args:?}: {err}");
        if args[0] == "query" {
            assert_eq!(out, "[\"n\"]\n[0]\n", "no list is made on first run");
        }
    }
    let backup = dir.path().join("backup.db");
    let (ok, _, err) = run(&["backup", "--data-dir", data, "--output", dir_str(&backup)]);
    assert!(ok, "backup while serving: {err}");
    server.signal("TERM");
    assert_eq!(server.exit_within(Duration::from_secs(5)).1, Some(0));
    // Once stopped, the write commands work.
    let (ok, _, err) = run(&["rebuild", "--data-dir", data]);
    assert!(ok, "{err}");
}

/// Waits for an answer from /healthz on a new connection: connections are accepted in order,
/// so one opened before it has been accepted by then.
fn served_after(port: u16) {
    let r = reqwest::blocking::get(format!("http://127.0.0.1:{port}/healthz")).unwrap();
    assert_eq!(r.status(), 200);
}

/// Opens a request whose body never finishes.
fn stall(port: u16) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(
        b"POST /api/sync/push HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"device_id\":",
    )
    .unwrap();
    s
}

#[test]
fn shutdown_is_bounded_with_a_stalled_body_and_a_second_signal_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir_str(dir.path());
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = spawn(&["serve", "--addr", &addr, "--data-dir", data], &[], port);
    let _stalled = stall(port);
    served_after(port); // the stalled request was accepted before this one was answered
    server.signal("TERM");
    let (took, code) = server.exit_within(Duration::from_secs(6));
    assert!(took < Duration::from_secs(5), "exit took {took:?}");
    assert_eq!(code, Some(0));
    // Again, and a second signal does not wait for the grace period.
    let mut server = spawn(&["serve", "--addr", &addr, "--data-dir", data], &[], port);
    let _stalled = stall(port);
    served_after(port);
    server.signal("TERM");
    // The first signal is being handled once the server stops accepting connections.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting 5 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    server.signal("INT");
    let (took, code) = server.exit_within(Duration::from_secs(6));
    assert!(
        took < Duration::from_secs(1),
        "the second signal exits at once: {took:?}"
    );
    assert_eq!(code, Some(130));
    // The data dir is fine after both.
    let (ok, _, err) = run(&["verify", "--data-dir", data]);
    assert!(ok, "{err}");
}

#[tokio::test]
async fn backup_restore_import_and_query() {
    let running = common::start().await;
    let events = workload(21, 2, 6, 14);
    running.claim(&events[0].workspace_id.to_string()).await;
    let body = json!({
        "device_id": events[0].device_id.to_string(),
        "workspace_id": events[0].workspace_id.to_string(),
        "cursor": 0,
        "events": events.iter().map(to_wire).collect::<Vec<_>>(),
    });
    let response = running
        .client()
        .post(format!("{}/api/sync/push", running.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, dir) = running.stop().await;
    let data = dir_str(dir.path()).to_string();
    let work = tempfile::tempdir().unwrap();
    // query: rows as JSON; a writing statement refused, the log untouched.
    let (ok, out, err) = run(&[
        "query",
        "--data-dir",
        &data,
        "SELECT workspace_id, max(seq) FROM events GROUP BY 1 ORDER BY 2",
    ]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[1].ends_with(",22]"), "{out}");
    for sql in [
        "DELETE FROM events",
        "INSERT INTO heads VALUES ('x', 1)",
        "DROP TABLE events",
    ] {
        let (ok, _, err) = run(&["query", "--data-dir", &data, sql]);
        assert!(!ok, "{sql}");
        assert!(
            err.contains("only reads") || err.contains("readonly"),
            "{sql}: {err}"
        );
    }
    let export = |dir: &str| {
        let (ok, out, err) = run(&["export", "--data-dir", dir]);
        assert!(ok, "{err}");
        out
    };
    let original = export(&data);
    assert_eq!(original.lines().count(), 22);
    // The same lines without who pushed them (an import into a data dir without those
    // accounts keeps the events, not the names of strangers).
    let anonymous = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["user_id"] = serde_json::Value::Null;
                v
            })
            .collect()
    };
    // backup -> restore into an empty dir: the same log, a new log_id.
    let backup = work.path().join("tandem.backup");
    let (ok, _, err) = run(&["backup", "--data-dir", &data, "--output", dir_str(&backup)]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&["backup", "--data-dir", &data, "--output", dir_str(&backup)]);
    assert!(!ok && err.contains("already exists"), "{err}");
    // Backups on a schedule: into a directory, the newest two kept, nothing else touched.
    let shelf = work.path().join("shelf");
    std::fs::create_dir_all(&shelf).unwrap();
    std::fs::write(shelf.join("notes.txt"), "mine").unwrap();
    for day in 0..3 {
        let at = 1_000_000_000 + day * 86_400;
        let (file, n) =
            server::admin::backup_into(std::path::Path::new(&data), &shelf, 2, at).unwrap();
        assert_eq!(n, 22);
        assert!(file.exists());
    }
    let names = |dir: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(&shelf),
        [
            "notes.txt",
            "tandem-20010910T014640Z.backup",
            "tandem-20010911T014640Z.backup"
        ]
    );
    let (ok, _, err) = run(&[
        "backup",
        "--data-dir",
        &data,
        "--into",
        dir_str(&shelf),
        "--keep",
        "2",
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("backed up 22 events"), "{err}");
    let now = names(&shelf);
    assert_eq!(now.len(), 3, "{now:?}");
    assert_eq!(now[1], "tandem-20010911T014640Z.backup");
    assert!(now[2] > now[1] && now[2].ends_with("Z.backup"), "{now:?}");
    // A clock behind the newest backup: the one just made is kept all the same, readable by
    // its owner only (it holds password hashes); the oldest other one goes.
    let (behind, _) =
        server::admin::backup_into(std::path::Path::new(&data), &shelf, 2, 999_913_600).unwrap();
    let after = names(&shelf);
    assert_eq!(
        after,
        [
            "notes.txt".to_string(),
            "tandem-20010908T014640Z.backup".to_string(),
            now[2].clone()
        ]
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&behind).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let fresh = work.path().join("fresh-shelf");
    server::admin::backup_into(std::path::Path::new(&data), &fresh, 1, 1_000_000_000).unwrap();
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let restored = work.path().join("restored");
    let (ok, _, err) = run(&[
        "restore",
        "--data-dir",
        dir_str(&restored),
        "--input",
        dir_str(&backup),
    ]);
    assert!(ok, "{err}");
    assert_eq!(export(dir_str(&restored)), original);
    // The accounts came along; every session and token ended; the restored dir verifies.
    let (ok, out, err) = run(&["user", "list", "--data-dir", dir_str(&restored)]);
    assert!(ok && out.contains(common::TESTER), "{out}{err}");
    let accounts = tandem_accounts::Accounts::open(restored.join("accounts.db")).unwrap();
    let tester = accounts
        .user_by_name(common::TESTER)
        .unwrap()
        .unwrap()
        .user
        .user_id;
    assert!(accounts.tokens(&tester).unwrap().is_empty(), "tokens ended");
    assert!(
        accounts.sessions(&tester, 0).unwrap().is_empty(),
        "sessions ended"
    );
    let (ok, _, err) = run(&["verify", "--data-dir", dir_str(&restored)]);
    assert!(ok, "{err}");
    let log_id = |dir: &str| {
        let (ok, out, err) = run(&["query", "--data-dir", dir, "SELECT log_id FROM log_meta"]);
        assert!(ok, "{err}");
        out
    };
    assert_ne!(
        log_id(&data),
        log_id(dir_str(&restored)),
        "a restored log is a new log"
    );
    let (ok, _, err) = run(&[
        "restore",
        "--data-dir",
        dir_str(&restored),
        "--input",
        dir_str(&backup),
    ]);
    assert!(!ok && err.contains("only into an empty data dir"), "{err}");
    // export -> import into an empty dir reproduces every seq, the server's own list included.
    let file = work.path().join("export.jsonl");
    std::fs::write(&file, &original).unwrap();
    let empty = work.path().join("imported");
    let (ok, _, err) = run(&[
        "import",
        "--data-dir",
        dir_str(&empty),
        "--input",
        dir_str(&file),
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        anonymous(&export(dir_str(&empty))),
        anonymous(&original),
        "seqs reproduced exactly"
    );
    let (ok, _, err) = run(&[
        "import",
        "--data-dir",
        dir_str(&empty),
        "--input",
        dir_str(&file),
    ]);
    assert!(ok, "idempotent: {err}");
    // Into a dir whose log holds other events first: refused, nothing changed.
    let served = common::start().await;
    let mine = workload(22, 1, 0, 0);
    served.claim(&mine[0].workspace_id.to_string()).await;
    let response = served
        .client()
        .post(format!("{}/api/sync/push", served.base))
        .json(&json!({
            "device_id": mine[0].device_id.to_string(),
            "workspace_id": mine[0].workspace_id.to_string(),
            "cursor": 0,
            "events": [to_wire(&mine[0])],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, other) = served.stop().await;
    let before = export(dir_str(other.path()));
    let (ok, _, err) = run(&[
        "import",
        "--data-dir",
        dir_str(other.path()),
        "--input",
        dir_str(&file),
    ]);
    assert!(!ok);
    assert!(err.contains("only adds") || err.contains("seq"), "{err}");
    assert_eq!(export(dir_str(other.path())), before);
}

#[test]
fn the_log_has_no_colour_codes_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut c = bin();
    let mut child = c
        .args(["serve", "--addr", &addr, "--data-dir", dir_str(dir.path())])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_healthy(&mut child, port, 20);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("Tandem is serving"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "escape codes in a piped log: {log:?}"
    );
}
