//! The `gpt-load` binary: `gpt-load` (or `gpt-load serve`) runs the service;
//! `gpt-load migrate-keys` turns at-rest encryption of upstream keys on, off, or changes its key;
//! `gpt-load openapi` prints the admin API's OpenAPI document (the admin UI's types are generated
//! from it).

use clap::{CommandFactory, Parser, Subcommand};
use gpt_load::config::AppConfig;
use gpt_load::migrate_keys::{self, MigrateOptions, DEFAULT_BATCH};

#[derive(Parser)]
#[command(
    name = "gpt-load",
    version,
    about = "A transparent, high-performance multi-key proxy for AI APIs."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy and admin server (the default).
    Serve,
    /// Encrypt (--to), decrypt (--from) or re-encrypt (--from and --to) the stored upstream keys
    /// and request-log keys. Stop every server first and back up the database.
    MigrateKeys(MigrateArgs),
    /// Print the admin API's OpenAPI 3.1 document (what GET /api/openapi.json serves) and exit;
    /// needs no configuration or database.
    Openapi,
}

#[derive(clap::Args)]
struct MigrateArgs {
    /// The ENCRYPTION_KEY the data is encrypted with now (omit when it is plain text).
    #[arg(long, value_name = "OLD")]
    from: Option<String>,
    /// The ENCRYPTION_KEY to encrypt with (omit to store plain text).
    #[arg(long, value_name = "NEW")]
    to: Option<String>,
    /// Check every key and report what would change; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Rows per batch.
    #[arg(long, default_value_t = DEFAULT_BATCH as u64, value_parser = clap::value_parser!(u64).range(1..=5000))]
    batch_size: u64,
    /// Skip rewriting the tables afterwards (VACUUM / table rebuild), which removes replaced
    /// values from the database files but needs time and free disk space on large log tables.
    #[arg(long)]
    no_compact: bool,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        Command::MigrateKeys(args) => migrate(args),
        Command::Openapi => print_openapi(),
    }
}

fn print_openapi() -> std::process::ExitCode {
    match serde_json::to_string_pretty(gpt_load::admin::openapi::document()) {
        Ok(text) => {
            println!("{text}");
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("gpt-load openapi: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn migrate(args: MigrateArgs) -> std::process::ExitCode {
    if args.from.is_none() && args.to.is_none() {
        let mut command = Cli::command();
        // Building propagates the binary name, so the usage line reads `gpt-load migrate-keys`.
        command.build();
        if let Some(sub) = command.find_subcommand_mut("migrate-keys") {
            let _ = sub.print_help();
        }
        return std::process::ExitCode::SUCCESS;
    }
    let database = match AppConfig::database_from_env() {
        Ok(database) => database,
        Err(err) => {
            eprintln!("gpt-load: configuration error: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    let env_key = std::env::var("ENCRYPTION_KEY").unwrap_or_default();
    let mut options = MigrateOptions::new(args.from.as_deref(), args.to.as_deref());
    options.dry_run = args.dry_run;
    options.batch_size = args.batch_size as usize;
    options.compact = !args.no_compact;
    drop(args);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("gpt-load: cannot start the runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let target_matches_env = options
        .to
        .as_deref()
        .map_or(env_key.trim().is_empty(), |to| {
            to.as_str() == env_key.trim()
        });
    let result = runtime.block_on(async move {
        let db = gpt_load::db::Database::connect(&database, 2).await?;
        println!("Database: {} ({database:?})", db.backend());
        let mut print = |line: &str| println!("{line}");
        migrate_keys::run(&db, options, &mut print).await
    });
    match result {
        Ok(report) => {
            let verb = if report.dry_run { "Would" } else { "Did" };
            println!(
                "{verb} {}: {} keys, {} request-log keys ({} log rows without a key left as they are).",
                report.direction.describe(),
                report.keys,
                report.logs,
                report.logs_without_key
            );
            if report.stale_hashes > 0 {
                println!(
                    "{} stored hashes did not match their key; they are recomputed.",
                    report.stale_hashes
                );
            }
            if report.dry_run {
                for holder in &report.live_holders {
                    println!("Note: in use by {holder}; a real run refuses until it stops.");
                }
                println!(
                    "Dry run: nothing was written ({:.1} s).",
                    report.elapsed.as_secs_f64()
                );
            } else {
                println!(
                    "Done in {:.1} s. Every key was read back and verified.",
                    report.elapsed.as_secs_f64()
                );
                if !target_matches_env {
                    println!("Before starting the server, set ENCRYPTION_KEY to the --to value (or unset it after --from alone): the server refuses to start otherwise.");
                }
            }
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("gpt-load migrate-keys: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve() -> std::process::ExitCode {
    let config = match AppConfig::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("gpt-load: configuration error: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    let _log_guard = match gpt_load::logging::init(&config) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("gpt-load: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let result = actix_web::rt::System::new().block_on(async move {
        let app = gpt_load::app::start(config, true)
            .await
            .map_err(|e| e.to_string())?;
        app.wait().await.map_err(|e| e.to_string())?;
        tracing::info!("Server stopped.");
        Ok::<_, String>(())
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "gpt-load failed to start.");
            eprintln!("gpt-load: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
