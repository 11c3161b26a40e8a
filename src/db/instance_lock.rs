//! Keeps a running server and `migrate-keys` apart: each writes a row in `instance_locks` when it
//! starts, refreshes its heartbeat while it runs and deletes the row when it stops. A row whose
//! heartbeat is fresh means "someone is using this database now".
//!
//! Why rows with a heartbeat rather than an advisory lock: SQLite has none, and PostgreSQL's and
//! MySQL's are tied to one session, which a connection pool recycles. The trade-off: a process that
//! dies without cleaning up leaves a row that blocks the other side until its heartbeat is
//! [`LockTiming::stale_after`] old. Heartbeats use the database's clock (every backend session
//! runs in UTC), so hosts with skewed clocks still agree on freshness.
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
        with_conn!(db, conn => {
            diesel::insert_into(instance_locks::table)
                .values((
                    instance_locks::id.eq(&id),
                    instance_locks::kind.eq(kind.as_str()),
                    instance_locks::holder.eq(&holder),
                    instance_locks::started_at.eq(diesel::dsl::now),
                    instance_locks::heartbeat_at.eq(diesel::dsl::now),
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
        let holders = match fresh_holders(db, timing.stale_after).await {
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

/// id, kind, holder, started_at, heartbeat_at.
type LockRow = (String, String, String, NaiveDateTime, NaiveDateTime);

/// Processes with a fresh heartbeat, by row id (this process included). Rows gone stale are
/// left alone: they only tell an operator that something crashed.
pub async fn fresh_holders(
    db: &Database,
    stale_after: Duration,
) -> Result<Vec<(String, Holder)>, DbError> {
    let (now, rows): (NaiveDateTime, Vec<LockRow>) = with_conn!(db, conn => {
        let now: NaiveDateTime = diesel::select(diesel::dsl::now).get_result(conn).await?;
        let rows = instance_locks::table
            .select((
                instance_locks::id,
                instance_locks::kind,
                instance_locks::holder,
                instance_locks::started_at,
                instance_locks::heartbeat_at,
            ))
            .load(conn)
            .await?;
        (now, rows)
    });
    let stale = stale_after.as_secs() as i64;
    Ok(rows
        .into_iter()
        .filter_map(|(id, kind, holder, started_at, heartbeat_at)| {
            let age = (now - heartbeat_at).num_seconds();
            (age < stale).then_some((
                id,
                Holder {
                    kind,
                    holder,
                    started_at,
                    heartbeat_age_secs: age.max(0),
                },
            ))
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
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "unknown host".to_string());
    format!("{host}, pid {}", std::process::id())
        .chars()
        .take(255)
        .collect()
}
