//! The command line (CONTRACT.md): `server serve --addr HOST:PORT --data-dir DIR`. Every flag
//! also reads an environment variable; both beat Leptos.toml, which beats the defaults.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, ConfigError, FileConfig, Overrides, DEFAULT_CONFIG_FILE};
use crate::Config;

#[derive(Debug, Parser)]
#[command(
    name = "server",
    // The build (commit time and hash, protocol/build.rs): what the page and worker compare.
    version = tandem_protocol::BUILD,
    about = "Tandem: a local-first, event-sourced collaborative to-do site",
    long_about = "Tandem's server: serves the site, holds the central event log and answers sync.\n\
                  Configuration precedence: flags, then environment (TANDEM_*), then the runtime \
                  config file (Leptos.toml), then defaults. Without a subcommand, `serve` runs."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the site and the sync API until SIGINT or SIGTERM.
    Serve(Box<ServeArgs>),
    /// Drop the server's views (views.db) and rebuild them by replaying the log.
    Rebuild(DataArgs),
    /// Bring the data dir's databases — or, with --database, a PostgreSQL database — to this
    /// build's schema, then exit (serve does it at start too; this does it ahead of a
    /// deploy). A database of a newer build is refused, untouched. Refuses while a server runs
    /// on the data dir.
    Migrate(MigrateArgs),
    /// Print events of the log as JSON lines, filtered.
    Inspect(InspectArgs),
    /// Check the log's invariants: dense seqs per workspace, dense versions per aggregate,
    /// every event readable and decodable, immutability triggers present. Exit 1 naming the
    /// first violation.
    Verify(DataArgs),
    /// Write every event of the log as JSON lines (by workspace, then seq).
    Export(ExportArgs),
    /// Store events from JSON lines (as export writes them) with their seqs: into an empty
    /// data dir it reproduces the log (with a new log_id); into a non-empty one it only adds
    /// events after the log's, or refuses. Idempotent; all or nothing. Refuses while a server
    /// runs on the data dir.
    Import(ImportArgs),
    /// Copy the log to a file (a consistent SQLite snapshot), safe while the server runs.
    Backup(BackupArgs),
    /// Restore a backup into a stopped, empty data dir; the restored log gets a new log_id,
    /// and devices recover (docs/protocol.md).
    Restore(RestoreArgs),
    /// Run one read-only SQL statement on the log; rows are printed as JSON arrays, the column
    /// names first. A statement that would write is refused.
    Query(QueryArgs),
    /// Say what a self-hoster got wrong: the site's files, the data dir's permissions, the
    /// public URL against the address, and (with --through) the reverse proxy. Takes serve's
    /// flags, so it checks the configuration serve would run with. Exit 1 on a problem.
    Doctor(Box<DoctorArgs>),
    /// Manage accounts (accounts.db). Works while the server runs; changes take effect within
    /// a second (a disabled account's sockets close).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// API tokens for other clients (sent as `Authorization: Bearer TOKEN`).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Make an account; its password is read from standard input (one line). The first account
    /// is the admin and owns the data dir's workspaces from before accounts.
    Add(UserArgs),
    /// List accounts: name, id, state.
    List(DataArgs),
    /// Disable an account: its sessions and tokens end and its sockets close.
    Disable(UserArgs),
    /// Enable a disabled account again.
    Enable(UserArgs),
    /// Set a new password, read from standard input; every session and token of the account ends.
    Reset(UserArgs),
}

#[derive(Debug, Args)]
pub struct UserArgs {
    /// The username
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make an API token for an account; it is printed once, on standard output.
    Create(TokenArgs),
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The account the token acts as
    #[arg(long, value_name = "NAME")]
    pub user: String,
    /// What the token is for (shown in the account's settings)
    #[arg(long, default_value = "command line", value_name = "TEXT")]
    pub name: String,
    /// Seconds until it expires [default: never]
    #[arg(long, value_name = "SECONDS")]
    pub expires_in_s: Option<u64>,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The backup file to write (must not exist)
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "into",
        conflicts_with = "into"
    )]
    pub output: Option<PathBuf>,
    /// Write tandem-<UTC time>.backup into this directory (made if missing) and keep only the
    /// newest --keep of them: for a timer (docs/self-host.md)
    #[arg(long, value_name = "DIR")]
    pub into: Option<PathBuf>,
    /// How many backups --into keeps (older ones are deleted after the new one verifies)
    #[arg(long, default_value_t = 7, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The backup file to read
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// The URL people open (through the reverse proxy), to check what the proxy passes on:
    /// the Host, the WebSocket upgrade, the client's address (http only: this binary has no
    /// TLS client; for https it says what to open in a browser)
    #[arg(long, value_name = "URL")]
    pub through: Option<String>,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The SQL, e.g. "SELECT event_type, count(*) FROM events GROUP BY 1"
    #[arg(value_name = "SQL")]
    pub sql: String,
}

/// Where the data dir is (same precedence as `serve`).
#[derive(Debug, Default, Args)]
pub struct DataArgs {
    /// Directory holding events.db and views.db [default: ./data, or server.data-dir in the
    /// config file]
    #[arg(long, env = "TANDEM_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Runtime config file [default: ./Leptos.toml when present]
    #[arg(long, env = "TANDEM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A PostgreSQL database instead of the data dir (as `serve --database`):
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE
    #[arg(
        long,
        env = "TANDEM_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database: Option<String>,
}

impl DataArgs {
    /// The data dir, for the commands that only work on one (refused with `--database`).
    pub fn resolve(self) -> Result<PathBuf, ConfigError> {
        if self.database.as_deref().is_some_and(|url| !url.is_empty()) {
            return Err(ConfigError::DataDirOnly);
        }
        let serve = ServeArgs {
            data_dir: self.data_dir,
            config: self.config,
            ..ServeArgs::default()
        };
        Ok(serve.resolve()?.data_dir)
    }

    /// Where the command works: the PostgreSQL database when one is named, else the data dir.
    pub fn storage(mut self) -> Result<crate::admin::Storage, ConfigError> {
        match self.database.take().filter(|url| !url.is_empty()) {
            Some(url) => Ok(crate::admin::Storage::Postgres(crate::config::DatabaseUrl(
                url,
            ))),
            None => self.resolve().map(crate::admin::Storage::Dir),
        }
    }
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Only this workspace
    #[arg(long, value_name = "UUID")]
    pub workspace: Option<String>,
    /// Only this aggregate (a list or a todo)
    #[arg(long, value_name = "UUID")]
    pub aggregate: Option<String>,
    /// Only this event type, e.g. TodoTitleEdited
    #[arg(long = "type", value_name = "TYPE")]
    pub event_type: Option<String>,
    /// Only events authored by this device
    #[arg(long, value_name = "UUID")]
    pub device: Option<String>,
    /// Only events with a seq above this
    #[arg(long, default_value_t = 0, value_name = "SEQ")]
    pub after: u64,
    /// At most this many events
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub limit: usize,
    /// The last events instead of the first
    #[arg(long)]
    pub tail: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// File to write [default: standard output]
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// File to read [default: standard input]
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// The account that owns the imported workspaces that have no owner here
    #[arg(long, value_name = "NAME")]
    pub owner: Option<String>,
}

#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:3000, or server.addr in the config file]
    #[arg(long, env = "TANDEM_ADDR", value_name = "HOST:PORT")]
    pub addr: Option<String>,
    /// Directory holding events.db and views.db; created if missing [default: ./data]
    #[arg(long, env = "TANDEM_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The built site to serve (/pkg, the worker, assets) [default: LEPTOS_SITE_ROOT, or
    /// server.site-root in the config file, or ./target/site]
    #[arg(long, env = "TANDEM_SITE_ROOT", value_name = "DIR")]
    pub site_root: Option<PathBuf>,
    /// Runtime config file [default: ./Leptos.toml when present]
    #[arg(long, env = "TANDEM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The URL people open, e.g. https://todo.example.org: the only Host served besides
    /// loopback names, the origin of invite links, and https makes cookies Secure
    #[arg(long, env = "TANDEM_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// A reverse proxy's address or CIDR (repeatable, or comma-separated): only requests from
    /// it may name the client in X-Forwarded-For (rate limits, logs)
    #[arg(
        long,
        env = "TANDEM_TRUSTED_PROXY",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub trusted_proxy: Vec<String>,
    /// A secret /metrics asks for (Authorization: Bearer ...) unless the request comes from
    /// loopback with no proxy trusted
    #[arg(
        long,
        env = "TANDEM_METRICS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
    /// Who may make an account: invite (with an invite link, the default), open or closed
    #[arg(long, env = "TANDEM_SIGN_UP", value_name = "POLICY")]
    pub sign_up: Option<crate::config::SignUp>,
    /// Keep everything in this PostgreSQL database instead of the data dir, so that several
    /// server processes can serve it: postgres://USER:PASSWORD@HOST:PORT/DATABASE
    #[arg(
        long,
        env = "TANDEM_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// The limits of Leptos.toml's `[limits]`, as flags and variables (they beat the file).
#[derive(Debug, Default, Clone, Args)]
pub struct LimitArgs {
    /// Largest push body, bytes [default: 4194304]
    #[arg(long, env = "TANDEM_PUSH_BODY_BYTES", value_name = "BYTES")]
    pub push_body_bytes: Option<usize>,
    /// Most events in one push [default: 1000]
    #[arg(long, env = "TANDEM_EVENTS_PER_PUSH", value_name = "N")]
    pub events_per_push: Option<usize>,
    /// Largest event_data (canonical JSON), bytes [default: 65536]
    #[arg(long, env = "TANDEM_EVENT_DATA_BYTES", value_name = "BYTES")]
    pub event_data_bytes: Option<usize>,
    /// How far ahead of the server's clock a stamp may be, ms [default: 60000]
    #[arg(long, env = "TANDEM_MAX_CLOCK_DRIFT_MS", value_name = "MS")]
    pub max_clock_drift_ms: Option<u64>,
    /// Events per pull when the client names no limit [default: 500]
    #[arg(long, env = "TANDEM_PULL_LIMIT_DEFAULT", value_name = "N")]
    pub pull_limit_default: Option<usize>,
    /// Most events per pull [default: 5000]
    #[arg(long, env = "TANDEM_PULL_LIMIT_MAX", value_name = "N")]
    pub pull_limit_max: Option<usize>,
    /// Most bytes of events in one pull answer [default: 4194304]
    #[arg(long, env = "TANDEM_PULL_BYTES", value_name = "BYTES")]
    pub pull_bytes: Option<usize>,
    /// Read-only connections for pulls and live connects [default: 4]
    #[arg(long, env = "TANDEM_READ_CONNECTIONS", value_name = "N")]
    pub read_connections: Option<usize>,
    /// Pulls served or waiting at once; more answer 503 BUSY [default: 64]
    #[arg(long, env = "TANDEM_CONCURRENT_PULLS", value_name = "N")]
    pub concurrent_pulls: Option<usize>,
    /// Live sockets at once; more answer 503 BUSY [default: 10000]
    #[arg(long, env = "TANDEM_LIVE_SOCKETS", value_name = "N")]
    pub live_sockets: Option<usize>,
    /// Time to send a request's headers, and to sit idle between requests, ms [default: 15000]
    #[arg(long, env = "TANDEM_HEADER_READ_TIMEOUT_MS", value_name = "MS")]
    pub header_read_timeout_ms: Option<u64>,
    /// Time for a whole request, body included, ms; 408 past it [default: 30000]
    #[arg(long, env = "TANDEM_REQUEST_TIMEOUT_MS", value_name = "MS")]
    pub request_timeout_ms: Option<u64>,
    /// Password hashes computed at once; more wait, and past 8x that many, 503 [default: 2]
    #[arg(long, env = "TANDEM_PASSWORD_HASHES", value_name = "N")]
    pub password_hashes: Option<usize>,
    /// Events one account may push per UTC day; 0 for no quota [default: 0]
    #[arg(long, env = "TANDEM_QUOTA_EVENTS_PER_DAY", value_name = "N")]
    pub quota_events_per_day: Option<u64>,
    /// Bytes of event data one account may push in all; 0 for no quota [default: 0]
    #[arg(long, env = "TANDEM_QUOTA_BYTES", value_name = "BYTES")]
    pub quota_bytes: Option<u64>,
    /// Live sockets one account may hold at once [default: 200]
    #[arg(long, env = "TANDEM_LIVE_SOCKETS_PER_ACCOUNT", value_name = "N")]
    pub live_sockets_per_account: Option<usize>,
}

impl LimitArgs {
    fn overrides(&self) -> config::LimitOverrides {
        config::LimitOverrides {
            push_body_bytes: self.push_body_bytes,
            events_per_push: self.events_per_push,
            event_data_bytes: self.event_data_bytes,
            max_clock_drift_ms: self.max_clock_drift_ms,
            pull_limit_default: self.pull_limit_default,
            pull_limit_max: self.pull_limit_max,
            pull_bytes: self.pull_bytes,
            read_connections: self.read_connections,
            concurrent_pulls: self.concurrent_pulls,
            live_sockets: self.live_sockets,
            header_read_timeout_ms: self.header_read_timeout_ms,
            request_timeout_ms: self.request_timeout_ms,
            password_hashes: self.password_hashes,
            quota_events_per_day: self.quota_events_per_day,
            quota_bytes: self.quota_bytes,
            live_sockets_per_account: self.live_sockets_per_account,
        }
    }
}

impl Cli {
    /// The command to run: a bare `server` is `server serve`, flags and environment included.
    pub fn into_command(self) -> Command {
        match self.command {
            Some(command) => command,
            None => match Cli::try_parse_from(["server", "serve"]) {
                Ok(Cli {
                    command: Some(command),
                }) => command,
                _ => Command::Serve(Box::default()),
            },
        }
    }
}

impl ServeArgs {
    /// Resolves these flags over the environment cargo-leptos sets, the config file and the
    /// defaults.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            Some(path) => FileConfig::load(path, true)?,
            None => FileConfig::load(std::path::Path::new(DEFAULT_CONFIG_FILE), false)?,
        };
        let leptos_env = Overrides {
            addr: std::env::var("LEPTOS_SITE_ADDR").ok(),
            site_root: std::env::var_os("LEPTOS_SITE_ROOT").map(PathBuf::from),
            ..Overrides::default()
        };
        config::resolve(
            Overrides {
                addr: self.addr,
                data_dir: self.data_dir,
                site_root: self.site_root,
                limits: self.limits.overrides(),
                public_url: self.public_url,
                trusted_proxy: self.trusted_proxy,
                metrics_token: self.metrics_token,
                sign_up: self.sign_up,
                database: self.database,
            },
            leptos_env,
            file,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_takes_the_contract_flags() {
        let cli = Cli::try_parse_from([
            "server",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            "/tmp/x",
        ])
        .unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("expected serve");
        };
        assert_eq!(args.addr.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(args.data_dir, Some(PathBuf::from("/tmp/x")));
    }

    #[test]
    fn backup_takes_a_file_or_a_directory_with_how_many_to_keep() {
        let cli = Cli::try_parse_from(["server", "backup", "--into", "/b", "--keep", "3"]).unwrap();
        let Some(Command::Backup(args)) = cli.command else {
            panic!("expected backup");
        };
        assert_eq!((args.into, args.keep), (Some(PathBuf::from("/b")), 3));
        assert!(Cli::try_parse_from(["server", "backup"]).is_err());
        assert!(
            Cli::try_parse_from(["server", "backup", "--into", "/b", "--output", "/f"]).is_err()
        );
        assert!(Cli::try_parse_from(["server", "backup", "--into", "/b", "--keep", "0"]).is_err());
    }

    #[test]
    fn unknown_flags_are_refused() {
        let err = Cli::try_parse_from(["server", "serve", "--port", "1"]).unwrap_err();
        assert!(err.to_string().contains("--port"), "{err}");
    }
}
