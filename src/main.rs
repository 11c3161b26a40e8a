//! The `gpt-load` binary: `gpt-load` (or `gpt-load serve`) runs the service.

use clap::{Parser, Subcommand};
use gpt_load::config::AppConfig;

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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
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
    if let Err(err) = gpt_load::logging::init(&config) {
        eprintln!("gpt-load: {err}");
        return std::process::ExitCode::from(2);
    }
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
