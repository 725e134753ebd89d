//! `server doctor`: what a new self-hoster gets wrong, said plainly with the fix (CONTRACT.md,
//! docs/self-host.md) — the site's files, the data dir's permissions, the public URL against
//! the address served, and, through a reverse proxy, whether it passes the Host, the WebSocket
//! upgrade and the client's address. The server's side of that last check is `GET
//! /api/doctor`: what this request looked like when it arrived (nothing secret: the caller
//! learns what it sent and which address the server saw).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap};
use axum::Json;
use serde_json::{json, Value};

use crate::auth::Auth;
use crate::config::Config;
use crate::files::{Origin, SiteFiles};
use crate::site::is_loopback_name;

/// `GET /api/doctor`: what the server saw of this request. How it is set up (the peer's
/// address, which proxies it trusts, its public URL) only for a client on this machine (`server
/// doctor`, through the proxy or not); anyone else learns the host it sent and whether the
/// upgrade arrived.
pub async fn seen(State(auth): State<Arc<Auth>>, request: Request) -> Json<Value> {
    let headers = request.headers();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let client = request
        .extensions()
        .get::<crate::guard::ClientIp>()
        .and_then(|c| c.0);
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let trusted = peer.is_some_and(|ip| auth.site.trusted_proxies.iter().any(|n| n.contains(&ip)));
    if !client.is_some_and(|ip| ip.is_loopback()) {
        return Json(json!({
            "build": crate::pwa::served_build(),
            "host": text(header::HOST),
            "upgrade": asks_upgrade(headers),
        }));
    }
    Json(json!({
        "build": crate::pwa::served_build(),
        "host": text(header::HOST),
        "public_url": auth.site.public_url.as_ref().map(|u| u.origin.clone()),
        "peer": peer.map(|ip| ip.to_string()),
        "peer_is_trusted_proxy": trusted,
        "forwarded_for": headers.contains_key("x-forwarded-for"),
        "upgrade": asks_upgrade(headers),
    }))
}

/// Whether `headers` ask for a WebSocket upgrade (what a proxy must pass on).
fn asks_upgrade(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let connection = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    upgrade && connection
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub topic: &'static str,
    pub text: String,
    /// What to do about it.
    pub fix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Note,
    Warn,
    Problem,
}

impl Finding {
    fn new(level: Level, topic: &'static str, text: impl Into<String>) -> Self {
        Self {
            level,
            topic,
            text: text.into(),
            fix: None,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.level {
            Level::Ok => "ok     ",
            Level::Note => "note   ",
            Level::Warn => "warn   ",
            Level::Problem => "PROBLEM",
        };
        write!(f, "{level} {}: {}", self.topic, self.text)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n        fix: {fix}")?;
        }
        Ok(())
    }
}

/// The checks that need no server: the site's files, the data dir, the public URL.
pub fn offline_checks(config: &Config, site_root_named: bool) -> Vec<Finding> {
    let mut out = site(config, site_root_named);
    out.extend(data_dir(&config.data_dir));
    out.extend(public_url(config));
    out
}

fn site(config: &Config, named: bool) -> Vec<Finding> {
    let root = &config.site_root;
    let mut out = Vec::new();
    if named && !root.is_dir() {
        out.push(
            Finding::new(
                Level::Warn,
                "site",
                format!(
                    "the site root {} is named but does not exist: the files built into this binary are served instead",
                    root.display()
                ),
            )
            .fix("drop --site-root / LEPTOS_SITE_ROOT / server.site-root, or point it at a built site"),
        );
    }
    match SiteFiles::load(root) {
        Err(e) => out.push(
            Finding::new(Level::Problem, "site", e.to_string())
                .fix("make the directory readable by the user that serves"),
        ),
        Ok(files) => match files.missing_page(app::OUTPUT_NAME) {
            Some(missing) => out.push(
                Finding::new(Level::Problem, "site", missing.to_string()).fix(
                    "use the release binary from `make build` (it carries the site) or set LEPTOS_SITE_ROOT to target/site",
                ),
            ),
            None => {
                let from = match files.origin() {
                    Origin::Embedded => "built into this binary".to_string(),
                    Origin::Directory(dir) => format!("from {}", dir.display()),
                };
                out.push(Finding::new(
                    Level::Ok,
                    "site",
                    format!("{} files {from}", files.paths().len()),
                ));
            }
        },
    }
    out
}

fn data_dir(dir: &Path) -> Vec<Finding> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let shown = dir.display();
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = dir
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            return vec![Finding::new(
                Level::Note,
                "data dir",
                format!(
                    "{shown} does not exist yet: `serve` makes it (in {})",
                    parent.display()
                ),
            )];
        }
        Err(e) => {
            return vec![
                Finding::new(Level::Problem, "data dir", format!("{shown}: {e}"))
                    .fix("make it readable and writable by the user that serves"),
            ]
        }
    };
    if !meta.is_dir() {
        return vec![Finding::new(
            Level::Problem,
            "data dir",
            format!("{shown} is not a directory"),
        )];
    }
    let mut out = Vec::new();
    // Writable by this user, and owned by it: a file made here tells both.
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    match std::fs::write(&probe, b"") {
        Ok(()) => {
            let mine = std::fs::metadata(&probe).map(|m| m.uid()).ok();
            let _ = std::fs::remove_file(&probe);
            if mine.is_some_and(|uid| uid != meta.uid()) {
                out.push(
                    Finding::new(
                        Level::Warn,
                        "data dir",
                        format!(
                            "{shown} belongs to uid {}, not to this user (uid {}): a server started as another user may not write it",
                            meta.uid(),
                            mine.unwrap_or_default()
                        ),
                    )
                    .fix("run `server doctor` as the user that serves, and `chown -R` the data dir to it"),
                );
            }
        }
        Err(e) => out.push(
            Finding::new(
                Level::Problem,
                "data dir",
                format!("{shown} is not writable by this user: {e}"),
            )
            .fix(
                "chown it to the user that serves (systemd: the unit's User=, or StateDirectory=)",
            ),
        ),
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        out.push(
            Finding::new(
                Level::Warn,
                "data dir",
                format!("{shown} has mode {mode:03o}: other users of this machine can read everyone's lists"),
            )
            .fix(format!("chmod 700 {shown}")),
        );
    }
    for file in ["events.db", "views.db", crate::databases::ACCOUNTS_FILE] {
        let path = dir.join(file);
        if let Ok(m) = std::fs::metadata(&path) {
            if m.permissions().readonly()
                || std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .is_err()
            {
                out.push(
                    Finding::new(
                        Level::Problem,
                        "data dir",
                        format!("{} is not writable by this user", path.display()),
                    )
                    .fix("chown the data dir and its files to the user that serves"),
                );
            }
        }
    }
    // Whether a server holds the lock, asked without taking it for more than an instant or
    // writing anything (a server starting meanwhile must not find the doctor in its way).
    let running = std::fs::File::open(dir.join(crate::lock::LOCK_FILE))
        .ok()
        .map(|file| match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                false
            }
            Err(_) => true,
        });
    let said = if running == Some(true) {
        Finding::new(
            Level::Ok,
            "data dir",
            format!("{shown}: a server is running on it"),
        )
    } else {
        Finding::new(
            Level::Note,
            "data dir",
            format!("{shown}: no server is running on it"),
        )
    };
    out.push(said);
    if out.iter().all(|f| f.level <= Level::Note) {
        out.insert(
            0,
            Finding::new(
                Level::Ok,
                "data dir",
                format!("{shown} is writable and private"),
            ),
        );
    }
    out
}

fn public_url(config: &Config) -> Vec<Finding> {
    let site = &config.access.site;
    let loopback = config.addr.ip().is_loopback();
    let mut out = Vec::new();
    match &site.public_url {
        None if loopback => out.push(
            Finding::new(
                Level::Note,
                "public URL",
                format!("none set: only this machine can use Tandem (http://{})", config.addr),
            )
            .fix("behind a reverse proxy, set --public-url https://your.name (docs/self-host.md)"),
        ),
        None => out.push(
            Finding::new(
                Level::Problem,
                "public URL",
                format!(
                    "{} is open to other machines but no --public-url is set: a browser reaching it by name gets 421, cookies are not Secure and invite links name this address",
                    config.addr
                ),
            )
            .fix("set --public-url (TANDEM_PUBLIC_URL) to the URL people open"),
        ),
        Some(url) => {
            out.push(Finding::new(Level::Ok, "public URL", url.origin.clone()));
            if !url.https && !is_loopback_name(&url.host) {
                out.push(
                    Finding::new(
                        Level::Warn,
                        "public URL",
                        format!("{} is plain http: passwords and session cookies cross the network readable", url.origin),
                    )
                    .fix("serve https at the proxy (Caddy does it by itself; nginx with certbot) and use an https public URL"),
                );
            }
            if url.https && !loopback {
                out.push(
                    Finding::new(
                        Level::Warn,
                        "address",
                        format!("{} is reachable from other machines around the https proxy", config.addr),
                    )
                    .fix("serve on 127.0.0.1 and let the proxy be the only way in"),
                );
            }
            if site.trusted_proxies.is_empty() && loopback {
                out.push(
                    Finding::new(
                        Level::Warn,
                        "proxy",
                        "no --trusted-proxy: behind a proxy every request seems to come from it, so one person's failed sign-ins lock everyone out",
                    )
                    .fix("--trusted-proxy 127.0.0.1 (the proxy's address) when it runs on this machine"),
                );
            }
        }
    }
    out
}

/// The checks of a running server: at the address it serves, and through `through` (the URL
/// people open, when it is http: this binary carries no TLS client).
pub async fn live_checks(config: &Config, through: Option<&str>) -> Vec<Finding> {
    let mut out = Vec::new();
    let host = config
        .access
        .site
        .public_url
        .as_ref()
        .map(|u| u.host.clone())
        .unwrap_or_else(|| config.addr.ip().to_string());
    let local = connect_addr(config.addr);
    match get(&local, &host, "/healthz", false).await {
        Err(e) => out.push(Finding::new(
            Level::Note,
            "server",
            format!("nothing answers at {local} ({e}): start it to check it and its proxy"),
        )),
        Ok(answer) => out.extend(local_answer(&local, &host, &answer)),
    }
    let Some(through) = through else {
        return out;
    };
    let url = match url::Url::parse(through) {
        Ok(url) => url,
        Err(e) => {
            out.push(Finding::new(
                Level::Problem,
                "proxy",
                format!("{through:?} is not a URL: {e}"),
            ));
            return out;
        }
    };
    if url.scheme() != "http" {
        out.push(
            Finding::new(
                Level::Note,
                "proxy",
                format!("{through} is not checked from here (no TLS client in this binary)"),
            )
            .fix(format!(
                "open {}/api/doctor in a browser: \"host\" must be the public host and \"public_url\" yours",
                through.trim_end_matches('/')
            )),
        );
        return out;
    }
    let (Some(name), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        out.push(Finding::new(
            Level::Problem,
            "proxy",
            format!("{through} names no host"),
        ));
        return out;
    };
    let authority = match url.port() {
        Some(p) => format!("{name}:{p}"),
        None => name.to_string(),
    };
    match get(&format!("{name}:{port}"), &authority, "/api/doctor", true).await {
        Err(e) => out.push(Finding::new(
            Level::Problem,
            "proxy",
            format!("{through}: {e}"),
        )),
        Ok(answer) => out.extend(proxy_answer(through, &authority, &answer)),
    }
    out
}

/// Where to reach a server listening on `addr` (an unspecified address: its loopback).
fn connect_addr(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        if addr.is_ipv6() {
            "[::1]".to_string()
        } else {
            "127.0.0.1".to_string()
        }
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    format!("{ip}:{}", addr.port())
}

/// An HTTP answer, as far as the checks need it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub build: Option<String>,
    pub body: Vec<u8>,
}

fn local_answer(local: &str, host: &str, answer: &Answer) -> Vec<Finding> {
    let mut out = Vec::new();
    match answer.status {
        200 => out.push(Finding::new(Level::Ok, "server", format!("{local} answers for {host}"))),
        421 => out.push(
            Finding::new(
                Level::Problem,
                "server",
                format!("the server at {local} refuses the host {host} (421): it runs with another --public-url"),
            )
            .fix("restart it with the same configuration as this check"),
        ),
        503 => out.push(Finding::new(
            Level::Problem,
            "server",
            format!("{local}/healthz says the databases are not available"),
        )
        .fix("the server's log says why (\"the health check failed\")")),
        other => out.push(Finding::new(
            Level::Problem,
            "server",
            format!("{local}/healthz answered {other}: is something else listening there?"),
        )),
    }
    match answer.build.as_deref() {
        Some(build) if build != crate::pwa::served_build() => out.push(
            Finding::new(
                Level::Warn,
                "server",
                format!(
                    "the running server is build {build}; this binary is {}",
                    crate::pwa::served_build()
                ),
            )
            .fix("restart the service after an upgrade (systemctl restart tandem)"),
        ),
        Some(_) => {}
        None if answer.status == 200 => out.push(Finding::new(
            Level::Problem,
            "server",
            format!("{local} is not a Tandem server (no X-Tandem-Build)"),
        )),
        None => {}
    }
    out
}

/// What `/api/doctor` through the proxy says.
fn proxy_answer(through: &str, authority: &str, answer: &Answer) -> Vec<Finding> {
    let mut out = Vec::new();
    if answer.status == 421 {
        out.push(
            Finding::new(
                Level::Problem,
                "proxy",
                format!("through {through} the server refuses the Host (421): the proxy does not pass the name people use, or --public-url names another"),
            )
            .fix("nginx: proxy_set_header Host $host; and --public-url with that same name"),
        );
        return out;
    }
    if (300..400).contains(&answer.status) {
        out.push(
            Finding::new(
                Level::Note,
                "proxy",
                format!(
                    "{through} redirects (status {}): to https, as it should be",
                    answer.status
                ),
            )
            .fix("check the https URL in a browser: /api/doctor shows what the server saw"),
        );
        return out;
    }
    let seen: Option<Value> = serde_json::from_slice(&answer.body).ok();
    let Some(seen) = seen.filter(|_| answer.status == 200 && answer.build.is_some()) else {
        out.push(Finding::new(
            Level::Problem,
            "proxy",
            format!("{through}/api/doctor answered {} without Tandem's answer: the proxy sends it elsewhere", answer.status),
        ));
        return out;
    };
    out.push(Finding::new(
        Level::Ok,
        "proxy",
        format!("{through} reaches this Tandem"),
    ));
    // By name: nginx's `$host` drops the port people typed, and that is fine.
    let host = seen["host"].as_str().unwrap_or("");
    if crate::site::host_name(host) != crate::site::host_name(authority) {
        out.push(
            Finding::new(
                Level::Warn,
                "proxy",
                format!("the proxy sends Host {host:?} for {authority:?}: the server cannot tell which name people used"),
            )
            .fix("nginx: proxy_set_header Host $host;"),
        );
    }
    if seen["upgrade"] != json!(true) {
        out.push(
            Finding::new(
                Level::Problem,
                "proxy",
                "the WebSocket upgrade is dropped on the way: live updates cannot reach browsers",
            )
            .fix("nginx: proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;"),
        );
    } else {
        out.push(Finding::new(
            Level::Ok,
            "proxy",
            "passes the WebSocket upgrade",
        ));
    }
    let peer = seen["peer"].as_str().unwrap_or("?");
    let forwarded = seen["forwarded_for"] == json!(true);
    let trusted = seen["peer_is_trusted_proxy"] == json!(true);
    match (forwarded, trusted) {
        (true, true) => out.push(Finding::new(Level::Ok, "proxy", format!("{peer} is trusted to name the client"))),
        (true, false) => out.push(
            Finding::new(
                Level::Warn,
                "proxy",
                format!("the proxy at {peer} names the client (X-Forwarded-For) but is not trusted: every request seems to come from it"),
            )
            .fix(format!("--trusted-proxy {peer}")),
        ),
        (false, true) => out.push(
            Finding::new(Level::Warn, "proxy", format!("{peer} is trusted but sends no X-Forwarded-For"))
                .fix("nginx: proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;"),
        ),
        (false, false) => out.push(Finding::new(
            Level::Note,
            "proxy",
            format!("{through} reaches the server directly (no proxy named a client)"),
        )),
    }
    out
}

/// A GET of `path` at `addr` with `Host: host` (hyper's HTTP/1.1 client, 5 s at most);
/// `upgrade` adds the WebSocket upgrade headers a browser sends.
async fn get(addr: &str, host: &str, path: &str, upgrade: bool) -> Result<Answer, String> {
    use http_body_util::BodyExt;
    let fetch = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let mut request = axum::http::Request::get(path).header(header::HOST, host);
        if upgrade {
            request = request
                .header(header::CONNECTION, "upgrade")
                .header(header::UPGRADE, "websocket");
        }
        let request = request
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let build = response
            .headers()
            .get("x-tandem-build")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = http_body_util::Limited::new(response.into_body(), 64 * 1024)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes()
            .to_vec();
        Ok(Answer {
            status,
            build,
            body,
        })
    };
    tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .map_err(|_| "no answer within 5 s".to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: Value) -> Answer {
        Answer {
            status,
            build: Some(crate::pwa::served_build().into()),
            body: body.to_string().into_bytes(),
        }
    }

    fn worst(findings: &[Finding]) -> Level {
        findings.iter().map(|f| f.level).max().unwrap_or(Level::Ok)
    }

    #[test]
    fn a_proxy_that_drops_the_upgrade_or_the_host_is_a_problem_with_its_fix() {
        let good = json!({"host": "x", "upgrade": true, "forwarded_for": true, "peer_is_trusted_proxy": true, "peer": "127.0.0.1"});
        assert_eq!(
            worst(&proxy_answer("http://x", "x", &answer(200, good))),
            Level::Ok
        );
        let no_upgrade = json!({"host": "x", "upgrade": false, "forwarded_for": true, "peer_is_trusted_proxy": true, "peer": "127.0.0.1"});
        let found = proxy_answer("http://x", "x", &answer(200, no_upgrade));
        assert_eq!(worst(&found), Level::Problem);
        assert!(found
            .iter()
            .any(|f| f.fix.as_deref().is_some_and(|x| x.contains("Upgrade"))));
        let found = proxy_answer("http://x", "x", &answer(421, json!({})));
        assert!(
            found[0].to_string().contains("proxy_set_header Host"),
            "{}",
            found[0]
        );
        let untrusted = json!({"host": "x", "upgrade": true, "forwarded_for": true, "peer_is_trusted_proxy": false, "peer": "10.0.0.2"});
        let found = proxy_answer("http://x", "x", &answer(200, untrusted));
        assert_eq!(worst(&found), Level::Warn);
        assert!(found
            .iter()
            .any(|f| f.fix.as_deref() == Some("--trusted-proxy 10.0.0.2")));
        let port_dropped = json!({"host": "x", "upgrade": true, "forwarded_for": true, "peer_is_trusted_proxy": true, "peer": "127.0.0.1"});
        let found = proxy_answer("http://x:8080", "x:8080", &answer(200, port_dropped));
        assert_eq!(worst(&found), Level::Ok, "{found:?}");
        let redirect = Answer {
            status: 301,
            build: None,
            body: vec![],
        };
        assert_eq!(
            worst(&proxy_answer("http://x", "x", &redirect)),
            Level::Note
        );
        let renamed = json!({"host": "127.0.0.1:3000", "upgrade": true, "forwarded_for": true, "peer_is_trusted_proxy": true, "peer": "127.0.0.1"});
        let found = proxy_answer("http://x", "x", &answer(200, renamed));
        assert!(found
            .iter()
            .any(|f| f.level == Level::Warn && f.text.contains("127.0.0.1:3000")));
        let elsewhere = Answer {
            status: 404,
            build: None,
            body: b"nginx".to_vec(),
        };
        assert_eq!(
            worst(&proxy_answer("http://x", "x", &elsewhere)),
            Level::Problem
        );
    }

    #[test]
    fn upgrade_needs_both_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, "WebSocket".parse().unwrap());
        assert!(!asks_upgrade(&h));
        h.insert(header::CONNECTION, "keep-alive, Upgrade".parse().unwrap());
        assert!(asks_upgrade(&h));
    }

    #[test]
    fn connect_addr_reaches_an_unspecified_address_on_loopback() {
        assert_eq!(connect_addr("0.0.0.0:80".parse().unwrap()), "127.0.0.1:80");
        assert_eq!(connect_addr("[::]:80".parse().unwrap()), "[::1]:80");
        assert_eq!(connect_addr("10.1.2.3:8".parse().unwrap()), "10.1.2.3:8");
    }
}
