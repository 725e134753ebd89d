//! `server`: parse the command line, set up tracing, and run.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use server::admin;
use server::cli::{Cli, Command, ServeArgs};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        // Logs go to standard error: standard output is the commands' answer (a token, an
        // export, query rows), which logs would spoil. Colour only on a terminal: journald and
        // log files show escape codes raw.
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let result = match cli.into_command() {
        Command::Serve(args) => serve(*args),
        Command::Rebuild(args) => args
            .resolve()
            .map_err(Into::into)
            .and_then(|dir| admin::rebuild(&dir)),
        Command::Verify(args) => args
            .storage()
            .map_err(Into::into)
            .and_then(admin::verify)
            .map(|n| println!("ok: {n} events, every invariant holds")),
        Command::Migrate(args) => match args.data.storage() {
            Err(e) => Err(e.into()),
            Ok(admin::Storage::Postgres(url)) => {
                admin::migrate_database(&url.0).map(|applied| match applied.as_slice() {
                    [] => println!(
                        "the database is at this build's schema (version {}) already",
                        tandem_pg::migrate::latest()
                    ),
                    versions => println!(
                        "the database is at this build's schema: applied version(s) {versions:?}"
                    ),
                })
            }
            Ok(admin::Storage::Dir(dir)) => admin::migrate(&dir).map(|()| {
                println!(
                    "{} is at this build's schema (events.db, views.db, accounts.db)",
                    dir.display()
                )
            }),
        },
        Command::Inspect(args) => inspect(args),
        Command::Export(args) => export(args),
        Command::Import(args) => import(args),
        Command::Backup(args) => args.data.resolve().map_err(Into::into).and_then(|dir| {
            let (file, n) = match (args.output, args.into) {
                (Some(output), _) => {
                    let n = admin::backup(&dir, &output)?;
                    (output, n)
                }
                (None, Some(into)) => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0);
                    admin::backup_into(&dir, &into, args.keep as usize, now)?
                }
                // clap requires one of the two.
                (None, None) => anyhow::bail!("say where: --output FILE or --into DIR"),
            };
            eprintln!("backed up {n} events to {}", file.display());
            Ok(())
        }),
        Command::Restore(args) => args.data.resolve().map_err(Into::into).and_then(|dir| {
            let n = admin::restore(&dir, &args.input)?;
            eprintln!(
                "restored {n} events into {}; the log has a new log_id: devices will recover",
                dir.display()
            );
            Ok(())
        }),
        Command::User { command } => user(command),
        Command::Token {
            command: server::cli::TokenCommand::Create(args),
        } => args.data.storage().map_err(Into::into).and_then(|at| {
            let (token_id, token) =
                admin::token_create(at, &args.user, &args.name, args.expires_in_s)?;
            eprintln!("token {token_id} for {}; it is shown only now:", args.user);
            println!("{token}");
            Ok(())
        }),
        Command::Doctor(args) => doctor(*args),
        Command::Query(args) => args.data.storage().map_err(Into::into).and_then(|at| {
            let n = admin::query(at, &args.sql, &mut std::io::stdout().lock())?;
            eprintln!("{n} rows");
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    // Rendering a page recurses through its views: 8 MiB stacks leave room (the default 2 MiB
    // is enough in release, not in a debug build).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.addr))?;
        server::run(listener, config, shutdown_signal()).await?;
        Ok(())
    })
}

/// Prints every finding; fails when one is a problem.
fn doctor(args: server::cli::DoctorArgs) -> anyhow::Result<()> {
    use server::doctor::{self, Level};
    let config = args.serve.resolve()?;
    let named = config.site_root != std::path::Path::new(server::config::DEFAULT_SITE_ROOT);
    let mut findings = doctor::offline_checks(&config, named);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    findings.extend(runtime.block_on(doctor::live_checks(&config, args.through.as_deref())));
    for finding in &findings {
        println!("{finding}");
    }
    let problems = findings
        .iter()
        .filter(|f| f.level == Level::Problem)
        .count();
    let warnings = findings.iter().filter(|f| f.level == Level::Warn).count();
    if problems > 0 {
        anyhow::bail!("{problems} problem(s), {warnings} warning(s)");
    }
    println!("no problem found ({warnings} warning(s))");
    Ok(())
}

fn user(command: server::cli::UserCommand) -> anyhow::Result<()> {
    use server::cli::UserCommand;
    match command {
        UserCommand::Add(args) => {
            let at = args.data.storage()?;
            let password = password_from_stdin()?;
            let first = admin::user_add(at, &args.name, &password)?;
            if first {
                eprintln!(
                    "made {} (the first account: admin, owner of the log's workspaces)",
                    args.name
                );
            } else {
                eprintln!("made {}", args.name);
            }
            Ok(())
        }
        UserCommand::List(data) => {
            admin::user_list(data.storage()?, &mut std::io::stdout().lock())?;
            Ok(())
        }
        UserCommand::Disable(args) => {
            admin::user_disable(args.data.storage()?, &args.name, true)?;
            eprintln!("disabled {}: its sessions and tokens ended", args.name);
            Ok(())
        }
        UserCommand::Enable(args) => {
            admin::user_disable(args.data.storage()?, &args.name, false)?;
            eprintln!("enabled {}", args.name);
            Ok(())
        }
        UserCommand::Reset(args) => {
            let at = args.data.storage()?;
            let password = password_from_stdin()?;
            admin::user_reset(at, &args.name, &password)?;
            eprintln!(
                "new password for {}: its sessions and tokens ended",
                args.name
            );
            Ok(())
        }
    }
}

/// One line of standard input, without its line ending (a password is never an argument:
/// arguments show in `ps` and shell history).
fn password_from_stdin() -> anyhow::Result<String> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("password: ");
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        anyhow::bail!("no password on standard input");
    }
    Ok(password)
}

fn inspect(args: server::cli::InspectArgs) -> anyhow::Result<()> {
    let dir = args.data.resolve()?;
    let filter = admin::Filter {
        workspace: args.workspace,
        aggregate: args.aggregate,
        event_type: args.event_type,
        device: args.device,
        after: args.after,
        limit: args.limit,
        tail: args.tail,
    };
    admin::inspect(&dir, &filter, &mut std::io::stdout().lock())?;
    Ok(())
}

fn export(args: server::cli::ExportArgs) -> anyhow::Result<()> {
    let at = args.data.storage()?;
    let written = match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            admin::export(at, &mut std::io::BufWriter::new(file))?
        }
        None => admin::export(at, &mut std::io::stdout().lock())?,
    };
    eprintln!("exported {written} events");
    Ok(())
}

fn import(args: server::cli::ImportArgs) -> anyhow::Result<()> {
    let at = args.data.storage()?;
    let (imported, skipped) = match &args.input {
        Some(path) => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            admin::import(at, std::io::BufReader::new(file), args.owner.as_deref())?
        }
        None => admin::import(at, std::io::stdin().lock(), args.owner.as_deref())?,
    };
    eprintln!("imported {imported} events; {skipped} were already there");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
    // A second signal means "now": exit at once (the log is safe: every acknowledged push was
    // committed with synchronous=FULL; the views are rebuilt from it).
    tokio::spawn(async {
        let again = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            () = again => {}
            () = term => {}
        }
        eprintln!("a second signal: exiting at once");
        std::process::exit(130);
    });
}
