//! The accounts commands against a running `server` process (CONTRACT.md: they take no data-dir
//! lock and bite within a second), the first-account rule on a data dir from before accounts,
//! and that no password, cookie or token reaches the log, even at debug level.

mod common;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::free_port;
use futures_util::StreamExt;
use serde_json::{json, Value};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_server"));
    for var in [
        "TANDEM_DATA_DIR",
        "TANDEM_CONFIG",
        "TANDEM_ADDR",
        "LEPTOS_SITE_ADDR",
        "RUST_LOG",
    ] {
        c.env_remove(var);
    }
    c
}

/// Runs a command with `input` on standard input.
fn run(args: &[&str], input: &str) -> (bool, String, String) {
    let mut command = bin();
    command.args(args);
    common::output_of(command, input)
}

/// A server process, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn sign_in(port: u16, username: &str, password: &str) -> Result<String, u16> {
    let r = http()
        .post(format!("http://127.0.0.1:{port}/api/auth/sign-in"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .unwrap();
    if !r.status().is_success() {
        return Err(r.status().as_u16());
    }
    Ok(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string())
}

fn me(port: u16, cookie: &str) -> (u16, Value) {
    let r = http()
        .get(format!("http://127.0.0.1:{port}/api/auth/me"))
        .header("cookie", cookie)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_manages_accounts_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let port = free_port();
    let mut child = bin()
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            &data,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // (Blocking HTTP off the async runtime.)
    let child = tokio::task::spawn_blocking(move || {
        common::wait_healthy(&mut child, port, 20);
        child
    })
    .await
    .unwrap();
    let _server = Proc(child);
    // While serving: add (the first account: admin), list.
    let (ok, _, err) = run(
        &["user", "add", "ann", "--data-dir", &data],
        "ann's password\n",
    );
    assert!(ok, "{err}");
    assert!(err.contains("admin"), "{err}");
    let (ok, _, err) = run(
        &["user", "add", "ann", "--data-dir", &data],
        "another password\n",
    );
    assert!(!ok && err.contains("taken"), "{err}");
    let (ok, _, err) = run(&["user", "add", "bob", "--data-dir", &data], "short\n");
    assert!(!ok && err.contains("10 characters"), "{err}");
    let (ok, out, _) = run(&["user", "list", "--data-dir", &data], "");
    assert!(
        ok && out.contains("ann") && out.contains("active admin"),
        "{out}"
    );
    let cookie = tokio::task::spawn_blocking(move || sign_in(port, "ann", "ann's password"))
        .await
        .unwrap()
        .unwrap();
    let (status, who) = {
        let cookie = cookie.clone();
        tokio::task::spawn_blocking(move || me(port, &cookie))
            .await
            .unwrap()
    };
    assert_eq!(status, 200);
    let ws = who["workspaces"][0]["workspace_id"]
        .as_str()
        .unwrap()
        .to_string();
    // A socket of Ann's; disabling her closes it within a second.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://127.0.0.1:{port}/api/sync/live?workspace_id={ws}")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let (ok, _, err) = run(&["user", "disable", "ann", "--data-dir", &data], "");
    assert!(ok, "{err}");
    let started = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(message)) = socket.next().await {
            if let tokio_tungstenite::tungstenite::Message::Close(frame) = message {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .expect("the socket closes");
    assert_eq!(closed, Some(4401));
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        started.elapsed()
    );
    let status = {
        let cookie = cookie.clone();
        tokio::task::spawn_blocking(move || me(port, &cookie).0)
            .await
            .unwrap()
    };
    assert_eq!(status, 401, "disabled: its sessions ended");
    assert_eq!(
        tokio::task::spawn_blocking(move || sign_in(port, "ann", "ann's password"))
            .await
            .unwrap(),
        Err(401)
    );
    // Enabled again; a reset password replaces the old one.
    assert!(run(&["user", "enable", "ann", "--data-dir", &data], "").0);
    assert!(
        run(
            &["user", "reset", "ann", "--data-dir", &data],
            "a new password\n"
        )
        .0
    );
    let (old, new) = tokio::task::spawn_blocking(move || {
        (
            sign_in(port, "ann", "ann's password"),
            sign_in(port, "ann", "a new password"),
        )
    })
    .await
    .unwrap();
    assert_eq!(old, Err(401));
    assert!(new.is_ok());
    // A token from the command line works at once.
    let (ok, token, err) = run(
        &["token", "create", "--user", "ann", "--data-dir", &data],
        "",
    );
    assert!(ok, "{err}");
    let token = token.trim().to_string();
    assert!(token.starts_with("tdm_"), "{token}");
    let status = tokio::task::spawn_blocking(move || {
        http()
            .get(format!("http://127.0.0.1:{port}/api/auth/me"))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .status()
            .as_u16()
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
}

#[test]
fn the_first_account_of_a_data_dir_from_before_accounts_needs_the_setup_link() {
    // A data dir from before accounts: events of a workspace, no accounts.db.
    let dir = tempfile::tempdir().unwrap();
    let events = tandem_events::testkit::workload(7, 1, 2, 2);
    let old_ws = events[0].workspace_id.to_string();
    {
        let mut log = tandem_store::EventLog::open(
            dir.path().join("events.db"),
            events[0].device_id,
            std::sync::Arc::new(common::wall_ms),
        )
        .unwrap();
        log.append_batch(&events).unwrap();
        log.set_log_id("old-log").unwrap();
    }
    let data = dir.path().to_str().unwrap().to_string();
    let (ok, _, err) = run(&["verify", "--data-dir", &data], "");
    assert!(!ok && err.contains("no owner"), "{err}");
    let port = free_port();
    let mut child = bin()
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            &data,
            "--sign-up",
            "open",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The setup link, printed once at start.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    common::wait_healthy(&mut child, port, 20);
    let _server = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    let link = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a setup link");
        if let Some(at) = line.find("/setup/") {
            break line[at + "/setup/".len()..].trim().to_string();
        }
        assert!(Instant::now() < deadline);
    };
    // The page's sign-up is closed to the first account here (the data dir has workspaces),
    // even with sign-up open.
    let up = |body: Value| {
        let r = http()
            .post(format!("http://127.0.0.1:{port}/api/auth/sign-up"))
            .json(&body)
            .send()
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<Value>().unwrap_or(Value::Null),
        )
    };
    let (status, body) = up(json!({"username": "eve", "password": "eve's password"}));
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("SIGN_UP_CLOSED")),
        "{body}"
    );
    let (status, body) =
        up(json!({"username": "ann", "password": "ann's password", "invite": link}));
    assert_eq!(status, 201, "{body}");
    // The first account owns the workspace from before accounts, with its events.
    let cookie = sign_in(port, "ann", "ann's password").unwrap();
    let (_, who) = me(port, &cookie);
    assert!(who["workspaces"].to_string().contains(&old_ws), "{who}");
    let r = http()
        .post(format!("http://127.0.0.1:{port}/api/sync/pull"))
        .header("cookie", &cookie)
        .json(&json!({"device_id": uuid::Uuid::from_u128(9).to_string(), "workspace_id": old_ws, "cursor": 0}))
        .send()
        .unwrap();
    let pulled: Value = r.json().unwrap();
    assert_eq!(pulled["events"].as_array().unwrap().len(), events.len());
    assert!(
        pulled["events"][0]["user_id"].is_null(),
        "events from before accounts"
    );
    // The setup link was for one account only.
    let (status, _) =
        up(json!({"username": "mallory", "password": "mallory's password", "invite": link}));
    assert_ne!(status, 201);
    let (ok, _, err) = run(&["verify", "--data-dir", &data], "");
    assert!(ok, "{err}");
}

#[test]
fn nothing_secret_reaches_the_log_at_debug_level() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let password = "pw-SENTINEL-0123456789";
    assert!(
        run(
            &["user", "add", "ann", "--data-dir", &data],
            &format!("{password}\n")
        )
        .0
    );
    let port = free_port();
    let log = dir.path().join("server.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = bin()
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            &data,
            "--sign-up",
            "open",
        ])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap();
    common::wait_healthy(&mut child, port, 20);
    let server = Proc(child);
    let base = format!("http://127.0.0.1:{port}");
    let cookie = sign_in(port, "ann", password).unwrap();
    let c = http();
    // A wrong password too.
    let _ = c
        .post(format!("{base}/api/auth/sign-in"))
        .json(&json!({"username": "ann", "password": "wrong-SENTINEL-pw"}))
        .send()
        .unwrap();
    let token: Value = c
        .post(format!("{base}/api/auth/tokens"))
        .header("cookie", &cookie)
        .json(&json!({"name": "t"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let (_, who) = me(port, &cookie);
    let ws = who["workspaces"][0]["workspace_id"]
        .as_str()
        .unwrap()
        .to_string();
    let invite: Value = c
        .post(format!("{base}/api/workspaces/{ws}/invites"))
        .header("cookie", &cookie)
        .json(&json!({"role": "member"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let invite = invite["token"].as_str().unwrap().to_string();
    // The invite page, the invite's info, a sign-up with it and its acceptance.
    let _ = c.get(format!("{base}/invite/{invite}")).send().unwrap();
    let _ = c
        .get(format!("{base}/api/invites/{invite}"))
        .send()
        .unwrap();
    let bob_password = "bob-SENTINEL-password";
    let r = c
        .post(format!("{base}/api/auth/sign-up"))
        .json(&json!({"username": "bob", "password": bob_password, "invite": invite}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let bob = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let r = c
        .post(format!("{base}/api/invites/{invite}/accept"))
        .header("cookie", &bob)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = c
        .post(format!("{base}/api/sync/pull"))
        .bearer_auth(&token)
        .json(&json!({"device_id": uuid::Uuid::from_u128(1).to_string(), "workspace_id": ws, "cursor": 0}))
        .send()
        .unwrap();
    let _ = c
        .get(format!("{base}/"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    let _ = c
        .post(format!("{base}/api/auth/sign-out"))
        .header("cookie", &bob)
        .send()
        .unwrap();
    drop(server);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("DEBUG"), "the log is at debug level: {text}");
    let cookie_value = cookie.split_once('=').unwrap().1;
    let bob_value = bob.split_once('=').unwrap().1;
    for (what, secret) in [
        ("a password", password),
        ("a wrong password", "wrong-SENTINEL-pw"),
        ("a new account's password", bob_password),
        ("a session cookie", cookie_value),
        ("another session cookie", bob_value),
        ("an API token", token.as_str()),
        ("an invite token", invite.as_str()),
    ] {
        assert!(!text.contains(secret), "{what} in the log:\n{text}");
    }
}
