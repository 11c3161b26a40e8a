//! Stand-alone mock upstream for benchmarks: prints `LISTENING http://127.0.0.1:PORT` and serves until signalled.

use std::io::{self, Write};
use std::time::Duration;

use clap::Parser;
use gpt_load_mock_upstream::{MockOptions, MockUpstream};

/// Command line of the mock upstream.
#[derive(Parser, Debug)]
#[command(
    name = "gpt-load-mock-upstream",
    about = "Mock OpenAI / Anthropic / Gemini upstream"
)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Accepted keys, comma separated.
    #[arg(long, value_delimiter = ',')]
    keys: Vec<String>,
    /// Accept any non-empty key.
    #[arg(long)]
    any_key: bool,
    /// Artificial latency before each answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Number of worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Content chunks per streamed reply.
    #[arg(long, default_value_t = 5)]
    stream_chunks: usize,
    /// Delay between streamed content chunks, in milliseconds.
    #[arg(long, default_value_t = 0)]
    stream_interval_ms: u64,
    /// Do not store request copies (counters still work).
    #[arg(long)]
    no_record: bool,
}

#[actix_web::main]
async fn main() -> io::Result<()> {
    let args = Args::parse();
    let keys: Vec<String> = args
        .keys
        .iter()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .collect();
    if keys.is_empty() && !args.any_key {
        eprintln!("warning: no --keys and no --any-key: every request will be rejected");
    }
    let mock = MockUpstream::start_lean(MockOptions {
        keys,
        accept_any_key: args.any_key,
        latency: Duration::from_millis(args.latency_ms),
        workers: args.workers,
        port: args.port,
    })
    .await?;
    mock.set_stream(
        args.stream_chunks,
        Duration::from_millis(args.stream_interval_ms),
    );
    mock.set_recording(!args.no_record);

    {
        let mut out = io::stdout().lock();
        writeln!(out, "LISTENING {}", mock.base_url())?;
        out.flush()?;
    }

    wait_for_signal().await?;
    mock.stop().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_signal() -> io::Result<()> {
    tokio::signal::ctrl_c().await
}
