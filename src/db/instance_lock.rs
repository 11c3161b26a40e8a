//! Keeps a running server and `migrate-keys` apart: each writes a row in `instance_locks` when it
//! starts, refreshes its heartbeat while it runs and deletes the row when it stops. A row whose
//! heartbeat is fresh means "someone is using this database now".
//!
//! Why rows with a heartbeat rather than an advisory lock: SQLite has none, and PostgreSQL's and
//! MySQL's are tied to one session, which a connection pool recycles. The trade-off: a process that
//! dies without cleaning up leaves a row that blocks the other side until its heartbeat is
//! [`LockTiming::stale_after`] old — except on its own host: each row names its host (host name,
//! kernel boot and pid namespace, so a process id means the same thing) and process id, and a row
//! of this host whose process is gone is taken over at once. Heartbeats use the database's clock
//! (every backend session runs in UTC), so hosts with skewed clocks still agree on freshness.
//!
//! Acquiring is "insert my row, then look for conflicting fresh rows; if any, delete mine and
//! refuse". Two processes racing can both refuse, but they can never both proceed.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::instance_locks;
use super::{Database, DbError};
use crate::with_conn;

/// What holds a lock row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// A serving process (any number may run together).
    Server,
    /// A `gpt-load migrate-keys` run (must run alone).
    MigrateKeys,
}

impl LockKind {
    fn as_str(self) -> &'static str {
        match self {
            LockKind::Server => "server",
            LockKind::MigrateKeys => "migrate-keys",
        }
    }

    fn conflicts_with(self, other: &str) -> bool {
        match self {
            LockKind::Server => other == LockKind::MigrateKeys.as_str(),
            LockKind::MigrateKeys => true,
        }
    }
}

/// Heartbeat period and the age after which a row counts as abandoned.
#[derive(Clone, Copy, Debug)]
pub struct LockTiming {
    pub heartbeat: Duration,
    pub stale_after: Duration,
}

impl Default for LockTiming {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(10),
            stale_after: Duration::from_secs(30),
        }
    }
}

/// Another process that holds the database.
#[derive(Clone, Debug)]
pub struct Holder {
    pub kind: String,
    /// Host name and process id, for the operator.
    pub holder: String,
    pub started_at: NaiveDateTime,
    /// Seconds since its last heartbeat.
    pub heartbeat_age_secs: i64,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, started {} UTC, last heartbeat {} s ago)",
            self.kind,
            self.holder,
            self.started_at.format("%Y-%m-%d %H:%M:%S"),
            self.heartbeat_age_secs
        )
    }
}

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{}", busy_message(*.wanted, .holders, *.stale_after_secs))]
    Busy {
        wanted: LockKind,
        holders: Vec<Holder>,
        stale_after_secs: u64,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

fn busy_message(wanted: LockKind, holders: &[Holder], stale_after_secs: u64) -> String {
    let list = holders
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    match wanted {
        LockKind::Server => format!(
            "a `gpt-load migrate-keys` run is using this database: {list}. Start the server after it finishes (a run that crashed stops blocking {stale_after_secs} s after its last heartbeat)."
        ),
        LockKind::MigrateKeys => format!(
            "this database is in use: {list}. Stop every gpt-load server using it before running migrate-keys (a process that crashed stops blocking {stale_after_secs} s after its last heartbeat)."
        ),
    }
}

/// A held lock row. Call [`InstanceLock::release`] when done; a process that exits without it
/// leaves a row that goes stale on its own.
pub struct InstanceLock {
    db: Database,
    id: String,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl InstanceLock {
    /// Inserts this process's row, then refuses (removing it again) if a conflicting process
    /// has a fresh heartbeat. Starts the heartbeat task on success.
    pub async fn acquire(
        db: &Database,
        kind: LockKind,
        timing: LockTiming,
    ) -> Result<Self, LockError> {
        let id = uuid::Uuid::new_v4().to_string();
        let holder = holder_name();
        let host = process::host_identity();
        let pid = i64::from(std::process::id());
        with_conn!(db, conn => {
            diesel::insert_into(instance_locks::table)
                .values((
                    instance_locks::id.eq(&id),
                    instance_locks::kind.eq(kind.as_str()),
                    instance_locks::holder.eq(&holder),
                    instance_locks::started_at.eq(diesel::dsl::now),
                    instance_locks::heartbeat_at.eq(diesel::dsl::now),
                    instance_locks::host.eq(&host),
                    instance_locks::pid.eq(Some(pid)),
                ))
                .execute(conn)
                .await
                .map_err(DbError::from)?
        });
        let mut lock = Self {
            db: db.clone(),
            id,
            heartbeat: None,
        };
        let holders = match take_over_dead_rows(db, timing.stale_after).await {
            Ok(rows) => rows,
            Err(err) => {
                lock.release().await;
                return Err(err.into());
            }
        };
        let conflicts: Vec<Holder> = holders
            .into_iter()
            .filter(|(row_id, h)| *row_id != lock.id && kind.conflicts_with(&h.kind))
            .map(|(_, h)| h)
            .collect();
        if !conflicts.is_empty() {
            lock.release().await;
            return Err(LockError::Busy {
                wanted: kind,
                holders: conflicts,
                stale_after_secs: timing.stale_after.as_secs(),
            });
        }
        lock.heartbeat = Some(tokio::spawn(beat(
            db.clone(),
            lock.id.clone(),
            timing.heartbeat,
        )));
        Ok(lock)
    }

    /// Stops the heartbeat and deletes the row.
    pub async fn release(mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
        // A busy database must not leave the row behind (it would block migrate-keys until it
        // goes stale), so the delete is retried a few times before giving up.
        let mut last_err = None;
        for attempt in 0..5u32 {
            let result: Result<usize, DbError> = async {
                Ok(with_conn!(&self.db, conn => {
                    diesel::delete(instance_locks::table.find(&self.id)).execute(conn).await?
                }))
            }
            .await;
            match result {
                Ok(_) => return,
                Err(err) => last_err = Some(err),
            }
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt + 1))).await;
        }
        if let Some(err) = last_err {
            tracing::warn!(error = %err, "Could not remove this process's instance lock row; it goes stale on its own.");
        }
    }
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
    }
}

/// id, kind, holder, started_at, heartbeat_at, host, pid.
type LockRow = (
    String,
    String,
    String,
    NaiveDateTime,
    NaiveDateTime,
    String,
    Option<i64>,
);

/// A row with a fresh heartbeat, and whether its process is known to be gone.
struct FreshRow {
    id: String,
    holder: Holder,
    dead: bool,
}

/// Processes with a fresh heartbeat that are still alive, by row id (this process included).
/// Rows gone stale, or of a process of this host that is gone, are left alone: they only tell
/// an operator that something crashed.
pub async fn fresh_holders(
    db: &Database,
    stale_after: Duration,
) -> Result<Vec<(String, Holder)>, DbError> {
    Ok(fresh_rows(db, stale_after)
        .await?
        .into_iter()
        .filter(|row| !row.dead)
        .map(|row| (row.id, row.holder))
        .collect())
}

/// [`fresh_holders`], after deleting the fresh rows of processes of this host that are gone
/// (killed, crashed): they must not block anyone for the rest of their heartbeat.
async fn take_over_dead_rows(
    db: &Database,
    stale_after: Duration,
) -> Result<Vec<(String, Holder)>, DbError> {
    let mut live = Vec::new();
    for row in fresh_rows(db, stale_after).await? {
        if !row.dead {
            live.push((row.id, row.holder));
            continue;
        }
        with_conn!(db, conn => {
            diesel::delete(instance_locks::table.find(&row.id)).execute(conn).await?
        });
        tracing::warn!(
            holder = %row.holder,
            "Took over the instance lock of a process of this host that is gone."
        );
    }
    Ok(live)
}

async fn fresh_rows(db: &Database, stale_after: Duration) -> Result<Vec<FreshRow>, DbError> {
    let (now, rows): (NaiveDateTime, Vec<LockRow>) = with_conn!(db, conn => {
        let now: NaiveDateTime = diesel::select(diesel::dsl::now).get_result(conn).await?;
        let rows = instance_locks::table
            .select((
                instance_locks::id,
                instance_locks::kind,
                instance_locks::holder,
                instance_locks::started_at,
                instance_locks::heartbeat_at,
                instance_locks::host,
                instance_locks::pid,
            ))
            .load(conn)
            .await?;
        (now, rows)
    });
    let stale = stale_after.as_secs() as i64;
    let here = process::host_identity();
    Ok(rows
        .into_iter()
        .filter_map(|(id, kind, holder, started_at, heartbeat_at, host, pid)| {
            let age = (now - heartbeat_at).num_seconds();
            (age < stale).then(|| FreshRow {
                id,
                dead: process::is_gone(&here, &host, pid),
                holder: Holder {
                    kind,
                    holder,
                    started_at,
                    heartbeat_age_secs: age.max(0),
                },
            })
        })
        .collect())
}

async fn beat(db: Database, id: String, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let result: Result<usize, DbError> = async {
            Ok(with_conn!(&db, conn => {
                diesel::update(instance_locks::table.find(&id))
                    .set(instance_locks::heartbeat_at.eq(diesel::dsl::now))
                    .execute(conn)
                    .await?
            }))
        }
        .await;
        if let Err(err) = result {
            tracing::warn!(error = %err, "Could not refresh the instance lock heartbeat.");
        }
    }
}

fn holder_name() -> String {
    let host = process::host_name().unwrap_or_else(|| "unknown host".to_string());
    format!("{host}, pid {}", std::process::id())
        .chars()
        .take(255)
        .collect()
}

/// This host as lock rows name it: host name, kernel boot id and pid namespace (empty where
/// unknown). A row carrying it was written by a process whose id this process can check.
pub fn host_identity() -> String {
    process::host_identity()
}

/// Whether a lock row's process still runs, judged only where a process id means something.
mod process {
    use std::path::Path;

    pub(super) fn host_name() -> Option<String> {
        std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| read_trimmed("/etc/hostname"))
    }

    /// Host name, kernel boot id and pid namespace: two processes with the same identity see
    /// the same process ids. Empty when any part is unknown (no `/proc`): such rows are only
    /// ever judged by their heartbeat.
    pub(super) fn host_identity() -> String {
        let parts = (
            host_name(),
            read_trimmed("/proc/sys/kernel/random/boot_id"),
            std::fs::read_link("/proc/self/ns/pid")
                .ok()
                .map(|p| p.display().to_string()),
        );
        match parts {
            (Some(host), Some(boot), Some(ns)) => {
                format!("{host} {boot} {ns}").chars().take(255).collect()
            }
            _ => String::new(),
        }
    }

    /// True only when the row is of this host and its process is certainly gone (no such
    /// process, or a zombie waiting to be reaped). A reused pid keeps the row: it then waits
    /// for its heartbeat to go stale, the safe side.
    pub(super) fn is_gone(here: &str, host: &str, pid: Option<i64>) -> bool {
        let Some(pid) = pid else { return false };
        if here.is_empty() || host != here || pid == i64::from(std::process::id()) || pid <= 0 {
            return false;
        }
        let dir = format!("/proc/{pid}");
        if !Path::new(&dir).exists() {
            return true;
        }
        // The state follows the command name, which may itself hold spaces or parentheses.
        std::fs::read_to_string(format!("{dir}/stat"))
            .ok()
            .and_then(|stat| {
                let rest = &stat[stat.rfind(')')? + 1..];
                rest.split_whitespace().next().map(|state| state == "Z")
            })
            .unwrap_or(false)
    }

    fn read_trimmed(path: &str) -> Option<String> {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn only_a_gone_process_of_this_host_is_gone() {
            let here = host_identity();
            assert!(!here.is_empty(), "this test runs on Linux with /proc");
            let me = i64::from(std::process::id());
            assert!(!is_gone(&here, &here, Some(me)));
            // pid 1 always runs; an id above the kernel's maximum never does.
            assert!(!is_gone(&here, &here, Some(1)));
            assert!(is_gone(&here, &here, Some(1 << 30)));
            assert!(!is_gone(&here, "another host", Some(1 << 30)));
            assert!(!is_gone(&here, &here, None));
            assert!(!is_gone("", "", Some(1 << 30)));
        }
    }
}
