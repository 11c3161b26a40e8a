//! Request-log retention: deletes rows older than `request_log_retention_days` (0 keeps them
//! forever). Hourly request statistics are never deleted; hourly token sums follow the same
//! setting but are kept at least [`USAGE_MIN_DAYS`] days, so the 30-day group totals stay whole.
//! Runs on the leader only.

use std::time::Duration;

use gpt_load_actors::cluster::Leadership;
use gpt_load_actors::group_registry::SharedSnapshot;

use crate::db::repo::Repo;

/// How often the cleanup runs (and once at start).
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(2 * 3600);

/// The fewest days of hourly token sums kept, whatever the log retention.
pub const USAGE_MIN_DAYS: i64 = 31;

/// Deletes expired request logs once; returns how many rows went.
pub async fn run_once(repo: &Repo, snapshot: &SharedSnapshot) -> usize {
    let days = snapshot.load().settings.request_log_retention_days();
    if days <= 0 {
        return 0;
    }
    let now = chrono::Utc::now().naive_utc();
    let usage_cutoff = now - chrono::Duration::days(days.max(USAGE_MIN_DAYS));
    if let Err(err) = repo.delete_usage_before(usage_cutoff).await {
        tracing::warn!(error = %err, "Deleting expired token sums failed.");
    }
    let cutoff = now - chrono::Duration::days(days);
    match repo.delete_logs_before(cutoff).await {
        Ok(n) => {
            if n > 0 {
                tracing::info!(deleted = n, days, "Deleted expired request logs.");
            }
            n
        }
        Err(err) => {
            tracing::warn!(error = %err, "Deleting expired request logs failed.");
            0
        }
    }
}

/// While this node leads: runs the cleanup at once and then every [`RETENTION_INTERVAL`].
pub fn spawn(repo: Repo, snapshot: SharedSnapshot, leadership: &Leadership) {
    leadership.spawn_while_leader("log-retention", move |_epoch| {
        let (repo, snapshot) = (repo.clone(), snapshot.clone());
        async move {
            let mut ticker = tokio::time::interval(RETENTION_INTERVAL);
            loop {
                ticker.tick().await;
                run_once(&repo, &snapshot).await;
            }
        }
    });
}
