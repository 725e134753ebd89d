//! The server's configuration and its precedence (CONTRACT.md): command-line flags, then
//! environment, then Leptos.toml (the runtime config file), then built-in defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything `serve` needs, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// The built site (cargo-leptos's site root: `pkg/`, the worker, static assets).
    pub site_root: PathBuf,
    pub limits: Limits,
    pub access: Access,
    /// A PostgreSQL database to keep everything in instead of the data dir (several
    /// processes may serve one).
    pub database: Option<DatabaseUrl>,
}

/// A PostgreSQL URL; never printed (it may carry a password).
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(pub String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(..)")
    }
}

/// Accounts and the outside world (CONTRACT.md "Serving", "Sign-up").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Access {
    pub site: crate::site::Site,
    pub sign_up: SignUp,
    /// `/metrics` needs `Authorization: Bearer` this, unless asked from loopback with no proxy.
    pub metrics_token: Option<String>,
}

/// Who may make an account (CONTRACT.md "Sign-up").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignUp {
    /// Only with a valid invite token.
    #[default]
    Invite,
    Open,
    Closed,
}

impl std::str::FromStr for SignUp {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "invite" => Ok(Self::Invite),
            "open" => Ok(Self::Open),
            "closed" => Ok(Self::Closed),
            other => Err(format!(
                "sign-up is \"invite\", \"open\" or \"closed\", not {other:?}"
            )),
        }
    }
}

/// Sync limits (CONTRACT.md defaults); enforced by the sync endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    pub push_body_bytes: usize,
    pub events_per_push: usize,
    pub event_data_bytes: usize,
    pub max_clock_drift_ms: u64,
    pub pull_limit_default: usize,
    pub pull_limit_max: usize,
    /// Bytes of events in one pull answer, at most.
    pub pull_bytes: usize,
    /// Read-only connections to the log for pulls and live connects.
    pub read_connections: usize,
    /// Pulls served or waiting at once; more answer BUSY (503).
    pub concurrent_pulls: usize,
    /// Live sockets open at once; more answer BUSY (503).
    pub live_sockets: usize,
    /// How long a client may take to send a request's headers, and a keep-alive connection may
    /// sit idle, in ms.
    pub header_read_timeout_ms: u64,
    /// How long a request may take, body included, in ms (408 past it).
    pub request_timeout_ms: u64,
    /// Password hashes computed at once (each takes ~19 MiB and tens of ms); more wait, and
    /// past eight times this many waiting, BUSY (503).
    pub password_hashes: usize,
    /// Events an account may push per UTC day (0: no quota, the default).
    pub quota_events_per_day: u64,
    /// Bytes of event data an account may have pushed in all (0: no quota, the default).
    pub quota_bytes: u64,
    /// Live sockets one account may hold at once.
    pub live_sockets_per_account: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            push_body_bytes: 4 * 1024 * 1024,
            events_per_push: 1_000,
            event_data_bytes: 64 * 1024,
            max_clock_drift_ms: 60_000,
            pull_limit_default: 500,
            pull_limit_max: 5_000,
            pull_bytes: 4 * 1024 * 1024,
            read_connections: 4,
            concurrent_pulls: 64,
            live_sockets: 10_000,
            header_read_timeout_ms: 15_000,
            request_timeout_ms: 30_000,
            password_hashes: 2,
            quota_events_per_day: 0,
            quota_bytes: 0,
            live_sockets_per_account: 200,
        }
    }
}

pub const DEFAULT_ADDR: &str = "127.0.0.1:3000";
pub const DEFAULT_DATA_DIR: &str = "data";
pub const DEFAULT_SITE_ROOT: &str = "target/site";
pub const DEFAULT_CONFIG_FILE: &str = "Leptos.toml";

/// Leptos.toml as written on disk; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub server: FileServer,
    pub limits: Limits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileServer {
    pub addr: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub site_root: Option<PathBuf>,
    pub public_url: Option<String>,
    pub trusted_proxy: Option<Vec<String>>,
    pub metrics_token: Option<String>,
    pub sign_up: Option<SignUp>,
}

/// What flags and environment gave (clap merges the two: a flag beats its env variable).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub addr: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub site_root: Option<PathBuf>,
    pub limits: LimitOverrides,
    pub public_url: Option<String>,
    pub trusted_proxy: Vec<String>,
    pub metrics_token: Option<String>,
    pub sign_up: Option<SignUp>,
    pub database: Option<String>,
}

/// Limits given by flags or environment (each beats the config file's).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LimitOverrides {
    pub push_body_bytes: Option<usize>,
    pub events_per_push: Option<usize>,
    pub event_data_bytes: Option<usize>,
    pub max_clock_drift_ms: Option<u64>,
    pub pull_limit_default: Option<usize>,
    pub pull_limit_max: Option<usize>,
    pub pull_bytes: Option<usize>,
    pub read_connections: Option<usize>,
    pub concurrent_pulls: Option<usize>,
    pub live_sockets: Option<usize>,
    pub header_read_timeout_ms: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub password_hashes: Option<usize>,
    pub quota_events_per_day: Option<u64>,
    pub quota_bytes: Option<u64>,
    pub live_sockets_per_account: Option<usize>,
}

impl LimitOverrides {
    fn over(self, mut limits: Limits) -> Limits {
        macro_rules! take {
            ($($field:ident),*) => {
                $(if let Some(v) = self.$field { limits.$field = v; })*
            };
        }
        take!(
            push_body_bytes,
            events_per_push,
            event_data_bytes,
            max_clock_drift_ms,
            pull_limit_default,
            pull_limit_max,
            pull_bytes,
            read_connections,
            concurrent_pulls,
            live_sockets,
            header_read_timeout_ms,
            request_timeout_ms,
            password_hashes,
            quota_events_per_day,
            quota_bytes,
            live_sockets_per_account
        );
        limits
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: toml::de::Error,
    },
    #[error(
        "invalid address {value:?} (from {origin}): expected HOST:PORT such as 127.0.0.1:3000"
    )]
    Addr { value: String, origin: &'static str },
    #[error("invalid limit in {path}: {message}")]
    Limit { path: String, message: String },
    #[error("invalid {what} {value:?}: {message}")]
    Access {
        what: &'static str,
        value: String,
        message: String,
    },
    #[error(
        "this command works on a data dir, and --database / TANDEM_DATABASE_URL names a PostgreSQL database: there, back up with pg_dump and restore with pg_restore (docs/self-host.md), look at events with `server query`; the serving processes keep the views up to date"
    )]
    DataDirOnly,
}

impl FileConfig {
    /// Reads the config file. A missing file is only an error when it was asked for by name.
    pub fn load(path: &Path, required: bool) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Self::default())
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: shown,
                    source,
                })
            }
        };
        let mut file: Self = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: shown.clone(),
            source,
        })?;
        file.limits.check(&shown)?;
        // Relative paths in the file are relative to the file, not to where the server runs.
        let base = path.parent().unwrap_or(Path::new(""));
        for dir in [&mut file.server.data_dir, &mut file.server.site_root]
            .into_iter()
            .flatten()
        {
            if dir.is_relative() {
                *dir = base.join(&*dir);
            }
        }
        Ok(file)
    }
}

impl Limits {
    pub fn check(&self, path: &str) -> Result<(), ConfigError> {
        let fail = |message: &str| {
            Err(ConfigError::Limit {
                path: path.to_string(),
                message: message.to_string(),
            })
        };
        if self.push_body_bytes == 0 || self.events_per_push == 0 || self.event_data_bytes == 0 {
            return fail("push-body-bytes, events-per-push and event-data-bytes must be above 0");
        }
        if self.pull_bytes == 0
            || self.read_connections == 0
            || self.concurrent_pulls == 0
            || self.live_sockets == 0
            || self.header_read_timeout_ms == 0
            || self.request_timeout_ms == 0
            || self.password_hashes == 0
            || self.live_sockets_per_account == 0
        {
            return fail(
                "pull-bytes, read-connections, concurrent-pulls, live-sockets, live-sockets-per-account, password-hashes and the timeouts must be above 0",
            );
        }
        if self.pull_limit_default == 0 || self.pull_limit_default > self.pull_limit_max {
            return fail("pull-limit-default must be between 1 and pull-limit-max");
        }
        Ok(())
    }
}

/// Resolves flags/env over the file over the defaults. `leptos_env` carries cargo-leptos's
/// LEPTOS_SITE_ADDR / LEPTOS_SITE_ROOT, which rank just below Tandem's own variables.
pub fn resolve(
    overrides: Overrides,
    leptos_env: Overrides,
    file: FileConfig,
) -> Result<Config, ConfigError> {
    let (addr_text, origin) = if let Some(a) = overrides.addr {
        (a, "--addr / TANDEM_ADDR")
    } else if let Some(a) = leptos_env.addr {
        (a, "LEPTOS_SITE_ADDR")
    } else if let Some(a) = file.server.addr {
        (a, "the config file")
    } else {
        (DEFAULT_ADDR.to_string(), "the default")
    };
    let addr = addr_text.parse().map_err(|_| ConfigError::Addr {
        value: addr_text.clone(),
        origin,
    })?;
    Ok(Config {
        addr,
        data_dir: overrides
            .data_dir
            .or(file.server.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        site_root: overrides
            .site_root
            .or(leptos_env.site_root)
            .or(file.server.site_root)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SITE_ROOT)),
        limits: {
            let limits = overrides.limits.over(file.limits);
            limits.check("the flags or environment")?;
            limits
        },
        access: resolve_access(
            overrides.public_url,
            overrides.trusted_proxy,
            overrides.metrics_token,
            overrides.sign_up,
            FileAccess {
                public_url: file.server.public_url,
                trusted_proxy: file.server.trusted_proxy,
                metrics_token: file.server.metrics_token,
                sign_up: file.server.sign_up,
            },
        )?,
        database: overrides
            .database
            .filter(|url| !url.is_empty())
            .map(DatabaseUrl),
    })
}

/// The access settings of the config file.
struct FileAccess {
    public_url: Option<String>,
    trusted_proxy: Option<Vec<String>>,
    metrics_token: Option<String>,
    sign_up: Option<SignUp>,
}

fn resolve_access(
    public_url: Option<String>,
    trusted_proxy: Vec<String>,
    metrics_token: Option<String>,
    sign_up: Option<SignUp>,
    file: FileAccess,
) -> Result<Access, ConfigError> {
    let public_url = match public_url.or(file.public_url).filter(|u| !u.is_empty()) {
        Some(text) => Some(text.parse().map_err(|message| ConfigError::Access {
            what: "public URL",
            value: text.clone(),
            message,
        })?),
        None => None,
    };
    let proxies = if trusted_proxy.is_empty() {
        file.trusted_proxy.unwrap_or_default()
    } else {
        trusted_proxy
    };
    let trusted_proxies = proxies
        .iter()
        .flat_map(|p| p.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|e| ConfigError::Access {
                    what: "trusted proxy",
                    value: p.to_string(),
                    message: format!("expected a CIDR such as 10.0.0.0/8 or an address: {e}"),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Access {
        site: crate::site::Site {
            public_url,
            trusted_proxies,
        },
        sign_up: sign_up.or(file.sign_up).unwrap_or_default(),
        metrics_token: metrics_token
            .or(file.metrics_token)
            .filter(|t| !t.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> FileConfig {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Leptos.toml");
        std::fs::write(&path, text).unwrap();
        FileConfig::load(&path, true).unwrap()
    }

    #[test]
    fn defaults_apply_without_file_or_overrides() {
        let config = resolve(
            Overrides::default(),
            Overrides::default(),
            FileConfig::default(),
        )
        .unwrap();
        assert_eq!(config.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(config.data_dir, PathBuf::from("data"));
        assert_eq!(config.site_root, PathBuf::from("target/site"));
        assert_eq!(config.limits, Limits::default());
    }

    #[test]
    fn flags_beat_leptos_env_which_beats_the_file() {
        let f = || file("[server]\naddr = \"127.0.0.1:4000\"\ndata-dir = \"/srv/tandem\"\n");
        let flags = Overrides {
            addr: Some("127.0.0.1:5000".into()),
            ..Overrides::default()
        };
        let leptos = Overrides {
            addr: Some("127.0.0.1:6000".into()),
            ..Overrides::default()
        };
        let c = resolve(flags, leptos.clone(), f()).unwrap();
        assert_eq!(c.addr.port(), 5000);
        assert_eq!(c.data_dir, PathBuf::from("/srv/tandem"));
        let c = resolve(Overrides::default(), leptos, f()).unwrap();
        assert_eq!(c.addr.port(), 6000);
        let c = resolve(Overrides::default(), Overrides::default(), f()).unwrap();
        assert_eq!(c.addr.port(), 4000);
    }

    #[test]
    fn limit_flags_beat_the_file_and_relative_paths_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf").join("Leptos.toml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            "[server]\ndata-dir = \"data\"\n[limits]\nmax-clock-drift-ms = 5000\nevents-per-push = 10\n",
        )
        .unwrap();
        let f = FileConfig::load(&path, true).unwrap();
        assert_eq!(
            f.server.data_dir,
            Some(dir.path().join("conf").join("data"))
        );
        let flags = Overrides {
            limits: LimitOverrides {
                max_clock_drift_ms: Some(90_000),
                ..LimitOverrides::default()
            },
            ..Overrides::default()
        };
        let c = resolve(flags, Overrides::default(), f).unwrap();
        assert_eq!(c.limits.max_clock_drift_ms, 90_000, "the flag wins");
        assert_eq!(c.limits.events_per_push, 10, "the file's stays");
        let bad = Overrides {
            limits: LimitOverrides {
                pull_limit_default: Some(0),
                ..LimitOverrides::default()
            },
            ..Overrides::default()
        };
        let err = resolve(bad, Overrides::default(), FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("pull-limit-default"), "{err}");
    }

    #[test]
    fn the_repository_leptos_toml_parses_to_the_contract_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Leptos.toml");
        let f = FileConfig::load(&path, true).unwrap();
        assert_eq!(f.limits, Limits::default());
        assert_eq!(f.server.addr.as_deref(), Some(DEFAULT_ADDR));
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let err = resolve(
            Overrides {
                addr: Some("localhost".into()),
                ..Overrides::default()
            },
            Overrides::default(),
            FileConfig::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"localhost\""), "{err}");
        assert!(err.to_string().contains("TANDEM_ADDR"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Leptos.toml");
        std::fs::write(&path, "[server]\nport = 1\n").unwrap();
        let err = FileConfig::load(&path, true).unwrap_err();
        assert!(err.to_string().contains("unknown field `port`"), "{err}");

        std::fs::write(&path, "[limits]\npull-limit-default = 9000\n").unwrap();
        let err = FileConfig::load(&path, true).unwrap_err();
        assert!(err.to_string().contains("pull-limit-default"), "{err}");

        assert!(FileConfig::load(&dir.path().join("absent.toml"), true).is_err());
        assert!(FileConfig::load(&dir.path().join("absent.toml"), false).is_ok());
    }
}
