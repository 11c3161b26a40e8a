//! Logging setup: `LOG_LEVEL`, `LOG_FORMAT` (text or JSON), and an optional copy to a file.

use std::fs::OpenOptions;
use std::sync::Mutex;

use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::EnvFilter;

use crate::config::{AppConfig, LogFormat};

/// Installs the global subscriber. A second call (tests) keeps the first one.
pub fn init(config: &AppConfig) -> Result<(), String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{},actix_server=warn,actix_web=warn",
            config.log_level
        ))
    });
    let file = if config.log_enable_file {
        let path = std::path::Path::new(&config.log_file_path);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("LOG_FILE_PATH: cannot create {}: {e}", parent.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("LOG_FILE_PATH: cannot open {}: {e}", path.display()))?;
        Some(Mutex::new(file))
    } else {
        None
    };
    // Colour codes only for a terminal: they would litter files and log collectors.
    let ansi = file.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi);
    let result = match (config.log_format, file) {
        (LogFormat::Text, None) => builder.with_writer(std::io::stdout).try_init(),
        (LogFormat::Text, Some(f)) => builder.with_writer(std::io::stdout.and(f)).try_init(),
        (LogFormat::Json, None) => builder.json().with_writer(std::io::stdout).try_init(),
        (LogFormat::Json, Some(f)) => builder
            .json()
            .with_writer(std::io::stdout.and(f))
            .try_init(),
    };
    let _ = result;
    Ok(())
}
