//! The `server` binary's maintenance subcommands on real data dirs.

mod common;

use std::process::Command;
use tandem_accounts::AccountStore as _;

use common::start;
use serde_json::json;
use tandem_events::testkit::workload;
use tandem_store::wire::to_wire;

fn server(args: &[&str]) -> (bool, String, String) {
    server_with_input(args, "")
}

/// Runs the binary with `input` on its standard input.
fn server_with_input(args: &[&str], input: &str) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    command
        .args(args)
        .env_remove("TANDEM_DATA_DIR")
        .env_remove("TANDEM_CONFIG")
        .env_remove("TANDEM_DATABASE_URL");
    common::output_of(command, input)
}

#[test]
fn version_names_the_build() {
    let (ok, out, _) = server(&["--version"]);
    assert!(ok);
    assert_eq!(out.trim(), format!("server {}", tandem_protocol::BUILD));
    let (time, hash) = tandem_protocol::BUILD.split_once('-').unwrap();
    assert!(time.parse::<u64>().is_ok() && !hash.is_empty(), "{out}");
}

#[test]
fn help_describes_every_subcommand_and_flag() {
    let (ok, out, _) = server(&["--help"]);
    assert!(ok);
    for word in ["serve", "rebuild", "inspect", "verify", "export", "import"] {
        assert!(out.contains(word), "{word} in {out}");
    }
    let (ok, out, _) = server(&["serve", "--help"]);
    assert!(ok);
    for flag in [
        "--addr",
        "--data-dir",
        "--site-root",
        "--config",
        "TANDEM_ADDR",
        "TANDEM_DATA_DIR",
    ] {
        assert!(out.contains(flag), "{flag} in {out}");
    }
    let (ok, _, err) = server(&["serve", "--port", "1"]);
    assert!(!ok);
    assert!(err.contains("--port"), "{err}");
}

#[tokio::test]
async fn verify_export_import_inspect_and_rebuild() {
    // A data dir with events in it, made through the real push endpoint.
    let running = start().await;
    let events = workload(11, 2, 5, 12);
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
    let (_, source) = running.stop().await;
    let src = source.path().to_str().unwrap().to_string();
    // The pushed events (no list is made on first run; the tester's own workspace gets its
    // "Inbox" at its first sign-in, which never came).
    let n = events.len();
    let ws = events[0].workspace_id.to_string();

    let (ok, out, err) = server(&["verify", "--data-dir", &src]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("ok: {n} events")), "{out}");

    let (ok, out, _) = server(&[
        "inspect",
        "--data-dir",
        &src,
        "--type",
        "TodoCreated",
        "--limit",
        "2",
    ]);
    assert!(ok);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l["event_type"] == "TodoCreated"));
    let (_, out, _) = server(&[
        "inspect",
        "--data-dir",
        &src,
        "--workspace",
        &ws,
        "--tail",
        "--limit",
        "1",
    ]);
    let last: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(last["seq"], events.len());
    assert_eq!(
        last["event_id"],
        events.last().unwrap().event_id.to_string()
    );

    let dump = source.path().join("export.jsonl");
    let (ok, _, err) = server(&[
        "export",
        "--data-dir",
        &src,
        "--output",
        dump.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let exported = std::fs::read_to_string(&dump).unwrap();
    assert_eq!(exported.lines().count(), n);
    // Every line names the account that pushed it.
    let tester = tandem_accounts::Accounts::open(source.path().join("accounts.db"))
        .unwrap()
        .user_by_name(common::TESTER)
        .unwrap()
        .unwrap()
        .user
        .user_id;
    for line in exported.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["user_id"], tester.as_str(), "{line}");
    }

    // Imported into an empty data dir, the workspaces have no owner until one is named.
    let target = tempfile::tempdir().unwrap();
    let dst = target.path().to_str().unwrap();
    let (ok, _, err) = server(&[
        "import",
        "--data-dir",
        dst,
        "--input",
        dump.to_str().unwrap(),
        "--owner",
        "ann",
    ]);
    assert!(!ok, "no account ann yet");
    assert!(err.contains("no account \"ann\""), "{err}");
    let (ok, _, err) = server(&[
        "import",
        "--data-dir",
        dst,
        "--input",
        dump.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = server(&["verify", "--data-dir", dst]);
    assert!(!ok, "a workspace without an owner");
    assert!(
        err.contains(&format!("workspace {ws} has events but no owner")),
        "{err}"
    );
    let (ok, _, err) = server_with_input(
        &["user", "add", "ann", "--data-dir", dst],
        "ann's password\n",
    );
    assert!(ok, "{err}");
    assert!(err.contains("the first account"), "{err}");
    let (ok, _, err) = server(&[
        "import",
        "--data-dir",
        dst,
        "--input",
        dump.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!("imported 0 events; {n} were already there")),
        "import is idempotent: {err}"
    );
    let (ok, out, err) = server(&["verify", "--data-dir", dst]);
    assert!(ok, "the first account owns the imported workspaces: {err}");
    assert!(out.contains(&format!("ok: {n} events")), "{out}");
    let (ok, _, err) = server(&["rebuild", "--data-dir", dst]);
    assert!(ok, "{err}");
    let views = |dir: &std::path::Path| {
        let conn = tandem_store::rusqlite::Connection::open(dir.join("views.db")).unwrap();
        tandem_store::views::dump(&conn).unwrap()
    };
    assert_eq!(
        views(source.path()),
        views(target.path()),
        "same events, same views"
    );

    // A malformed line: nothing is imported.
    let bad = target.path().join("bad.jsonl");
    let mut text = std::fs::read_to_string(&dump).unwrap();
    text.push_str("{\"seq\": 99, \"oops\": true}\n");
    std::fs::write(&bad, text).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let (ok, _, err) = server(&[
        "import",
        "--data-dir",
        fresh.path().to_str().unwrap(),
        "--input",
        bad.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains(&format!("line {}", n + 1)), "{err}");
    let (ok, out, _) = server(&["inspect", "--data-dir", fresh.path().to_str().unwrap()]);
    assert!(ok && out.is_empty(), "nothing imported: {out}");
}

/// `server migrate` brings a new data dir, and a new PostgreSQL database, to this build's
/// schema; a second run has nothing to do; a database it cannot reach, or a URL that is not
/// one, is refused with what is wrong. (A database of a newer build: pg/tests/central.rs.)
#[test]
fn migrate_brings_a_data_dir_or_a_postgres_database_to_this_builds_schema() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, out, err) = server(&["migrate", "--data-dir", data.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("at this build's schema"), "{out}");
    for file in ["events.db", "views.db", "accounts.db"] {
        assert!(data.join(file).exists(), "{file}");
    }
    let url = common::fresh_pg_url();
    let (ok, out, err) = server(&["migrate", "--database", &url]);
    assert!(ok, "{err}");
    assert!(out.contains("applied version(s) [1, 2, 3, 4]"), "{out}");
    let (ok, out, err) = server(&["migrate", "--database", &url]);
    assert!(ok, "{err}");
    assert!(out.contains("already"), "{out}");
    // The URL may carry a password: never echoed into --help.
    let (ok, help, _) = server(&["migrate", "--help"]);
    assert!(ok && help.contains("TANDEM_DATABASE_URL"), "{help}");
    let (ok, _, err) = server(&[
        "migrate",
        "--database",
        "postgres://nobody@127.0.0.1:1/none",
    ]);
    assert!(!ok);
    assert!(err.contains("cannot reach the database"), "{err}");
    let (ok, _, err) = server(&["migrate", "--database", "not a url"]);
    assert!(!ok);
    assert!(err.contains("database URL"), "{err}");
}

/// The maintenance commands on PostgreSQL: a data dir's export imported into a database
/// (all of it once, nothing again), exported from there byte for byte as it came, verified,
/// queried read-only; backup, restore and rebuild refuse and say what to use instead.
#[test]
fn export_import_verify_and_query_work_on_a_postgres_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let events = workload(31, 2, 4, 6);
    {
        let mut log = tandem_store::EventLog::open(
            data.join("events.db"),
            events[0].device_id,
            std::sync::Arc::new(|| 1_800_000_000_000),
        )
        .unwrap();
        log.append_batch(&events).unwrap();
    }
    let export = dir.path().join("export.jsonl");
    let (ok, _, err) = server(&[
        "export",
        "--data-dir",
        data.to_str().unwrap(),
        "--output",
        export.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let url = common::fresh_pg_url();
    let (ok, _, err) = server_with_input(
        &["user", "add", "ann", "--database", &url],
        "ann's password\n",
    );
    assert!(ok, "{err}");
    let import = |what: &str| {
        let (ok, _, err) = server(&[
            "import",
            "--database",
            &url,
            "--input",
            export.to_str().unwrap(),
            "--owner",
            "ann",
        ]);
        assert!(ok, "{what}: {err}");
        err
    };
    let n = events.len();
    assert!(import("first").contains(&format!("imported {n} events; 0 were already there")));
    assert!(import("again").contains(&format!("imported 0 events; {n} were already there")));
    let (ok, out, err) = server(&["export", "--database", &url]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        std::fs::read_to_string(&export).unwrap(),
        "the same lines"
    );
    let (ok, out, err) = server(&["verify", "--database", &url]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("ok: {n} events")), "{out}");
    let (ok, out, err) = server(&[
        "query",
        "--database",
        &url,
        "SELECT event_type, count(*) FROM events GROUP BY 1 ORDER BY 1",
    ]);
    assert!(ok, "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(r#"["event_type","count"]"#));
    let counted: i64 = lines
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()[1]
                .as_i64()
                .unwrap()
        })
        .sum();
    assert_eq!(counted as usize, n);
    let (ok, _, err) = server(&["query", "--database", &url, "DELETE FROM events"]);
    assert!(!ok);
    assert!(err.contains("read-only transaction"), "{err}");
    // Several statements are refused: the second could end the read-only transaction.
    for sql in ["COMMIT; DELETE FROM events", "SELECT 1; SELECT 2"] {
        let (ok, _, err) = server(&["query", "--database", &url, sql]);
        assert!(!ok, "{sql}");
        assert!(err.contains("multiple commands"), "{sql}: {err}");
    }
    // A command that reads never makes or changes a schema.
    let empty = common::fresh_pg_url();
    let (ok, _, err) = server(&["export", "--database", &empty]);
    assert!(!ok);
    assert!(err.contains("holds no Tandem schema"), "{err}");
    for command in [
        vec!["backup", "--output", "/tmp/never.backup"],
        vec!["restore", "--input", "/tmp/never.backup"],
        vec!["rebuild"],
    ] {
        let mut args = command.clone();
        args.extend(["--database", &url]);
        let (ok, _, err) = server(&args);
        assert!(!ok, "{command:?}");
        assert!(err.contains("pg_dump"), "{command:?}: {err}");
    }
    let (ok, out, _) = server(&["export", "--database", &url]);
    assert!(ok && out.lines().count() == n, "nothing changed");
}

#[test]
fn verify_names_the_first_violation() {
    let dir = tempfile::tempdir().unwrap();
    let events = workload(12, 1, 2, 3);
    {
        let mut log = tandem_store::EventLog::open(
            dir.path().join("events.db"),
            events[0].device_id,
            std::sync::Arc::new(|| 1_800_000_000_000),
        )
        .unwrap();
        log.append_batch(&events).unwrap();
        // Someone bypasses the triggers and breaks the seqs.
        log.connection()
            .execute_batch(
                "DROP TRIGGER events_no_update; UPDATE events SET seq = seq + 10 WHERE seq = 3;",
            )
            .unwrap();
    }
    let (ok, _, err) = server(&["verify", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("seq 4 follows seq 2"), "{err}");
    let (ok, _, err) = server(&["verify", "--data-dir", "/nonexistent/tandem"]);
    assert!(!ok);
    assert!(err.contains("has no events.db"), "{err}");
}

#[test]
fn doctor_says_what_a_self_hoster_got_wrong_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = data.to_str().unwrap();
    // A built site (a debug build carries none inside it).
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("pkg")).unwrap();
    std::fs::write(site.join("pkg/tandem.wasm"), b"\0asm").unwrap();
    let site = site.to_str().unwrap();
    // Open to other machines with no public URL, and a data dir others can read.
    let (ok, out, err) = server(&[
        "doctor",
        "--data-dir",
        data,
        "--site-root",
        site,
        "--addr",
        "0.0.0.0:1",
    ]);
    assert!(!ok, "{out}");
    assert!(err.contains("1 problem(s)"), "{err}");
    assert!(out.contains("PROBLEM public URL"), "{out}");
    assert!(out.contains("fix: set --public-url"), "{out}");
    assert!(out.contains("has mode 755"), "{out}");
    assert!(out.contains(&format!("fix: chmod 700 {data}")), "{out}");
    assert!(out.contains("nothing answers at 127.0.0.1:1"), "{out}");
    // Put right: loopback behind a proxy with an https name, a private data dir.
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (ok, out, err) = server(&[
        "doctor",
        "--data-dir",
        data,
        "--site-root",
        site,
        "--addr",
        "127.0.0.1:1",
        "--public-url",
        "https://todo.example.org",
        "--trusted-proxy",
        "127.0.0.1",
        "--through",
        "https://todo.example.org",
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("ok      public URL: https://todo.example.org"),
        "{out}"
    );
    assert!(out.contains("is writable and private"), "{out}");
    assert!(out.contains("ok      site: 1 files from"), "{out}");
    assert!(out.contains("https://todo.example.org/api/doctor"), "{out}");
    assert!(out.contains("no problem found (0 warning(s))"), "{out}");
    // A site root that is named but missing: said, and the built-in files (none in a debug
    // build) are what would be served.
    let (ok, out, _) = server(&[
        "doctor",
        "--data-dir",
        data,
        "--site-root",
        "/nonexistent/site",
    ]);
    assert!(!ok);
    assert!(
        out.contains("the site root /nonexistent/site is named but does not exist"),
        "{out}"
    );
    assert!(out.contains("PROBLEM site"), "{out}");
}
