//! Logging setup: `LOG_LEVEL`, `LOG_FORMAT` (text or JSON), and an optional copy to a file.

use std::fs::OpenOptions;

use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::EnvFilter;

use crate::config::{AppConfig, LogFormat};
use crate::log_writer::{batched, FlushGuard};

/// Keeps the background log writers alive; dropping it writes out what is still queued. Hold
/// it until the process ends.
#[must_use = "dropping the guard stops the background log writers"]
pub struct LogGuard {
    _writers: Vec<FlushGuard>,
}

/// Installs the global subscriber. A second call (tests) keeps the first one.
///
/// Lines are formatted on the calling thread and gathered in memory; a background thread writes
/// them out in batches ([`crate::log_writer`]), so a request never waits on a `write(2)` to
/// stdout or the log file. Nothing is dropped: if the writer falls far behind, callers wait.
pub fn init(config: &AppConfig) -> Result<LogGuard, String> {
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
        Some(file)
    } else {
        None
    };
    // Colour codes only for a terminal: they would litter files and log collectors.
    let ansi = file.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi);
    let start = |e: std::io::Error| format!("cannot start the log writer thread: {e}");
    let (stdout, stdout_guard) = batched(std::io::stdout()).map_err(start)?;
    let mut guards = vec![stdout_guard];
    let result = match (config.log_format, file) {
        (LogFormat::Text, None) => builder.with_writer(stdout).try_init(),
        (LogFormat::Text, Some(f)) => {
            let (file, guard) = batched(f).map_err(start)?;
            guards.push(guard);
            builder.with_writer(stdout.and(file)).try_init()
        }
        (LogFormat::Json, None) => builder.json().with_writer(stdout).try_init(),
        (LogFormat::Json, Some(f)) => {
            let (file, guard) = batched(f).map_err(start)?;
            guards.push(guard);
            builder.json().with_writer(stdout.and(file)).try_init()
        }
    };
    let _ = result;
    Ok(LogGuard { _writers: guards })
}
