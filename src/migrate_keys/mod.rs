//! `gpt-load migrate-keys`: turn at-rest encryption on (`--to`), off (`--from`) or change its key
//! (`--from` and `--to`) on a populated database without losing a key.
//!
//! Every step that can refuse runs before anything is written, and the live tables change in
//! exactly one transaction:
//! 1. take the migrate-keys lock (refused while a server or another run is alive);
//! 2. check the data is in the state the flags claim: plain text for `--to` alone, encrypted with
//!    the `--from` key otherwise;
//! 3. read every `api_keys` and `request_logs` value with the source key (`--dry-run` stops here);
//! 4. write the re-encrypted values and new hashes into staging tables, batch by batch;
//! 5. read the staging tables back and compare every value with its original;
//! 6. in one transaction: check row counts, copy staged values into both live tables, and
//!    replace the `key_encryption` record;
//! 7. read everything back with the target key, drop the staging tables, and compact the tables
//!    so replaced values do not linger in free pages.
//!
//! An interruption before step 6 leaves the live data untouched (only staging tables, which the
//! next run drops); during step 6 the database rolls the transaction back.

pub mod tables;

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use zeroize::Zeroizing;

use crate::crypto::gptload;
use crate::crypto::{EncodeError, KdfError, KdfSpec, KeyCodec};
use crate::db::instance_lock::{
    fresh_holders, Holder, InstanceLock, LockError, LockKind, LockTiming,
};
use crate::db::key_encryption::{kdf_record, stored_key_sample, KdfRecord, RECORD_ID};
use crate::db::repo::now;
use crate::db::schema::{api_keys, key_encryption, request_logs};
use crate::db::{Database, DbError};
use crate::key_encryption::startup::is_gptload_sample;
use crate::key_encryption::SAMPLE_SIZE;
use crate::with_conn;
use tables::{KeyTable, Keys, Logs};

/// Rows per batch by default, and the most accepted (three bound values per staged row stay far
/// below every backend's parameter limit).
pub const DEFAULT_BATCH: usize = 1000;
const MAX_BATCH: usize = 5000;
/// Unreadable row ids listed in an error.
const LISTED_IDS: usize = 10;

/// What to do. Keys are zeroed when dropped.
pub struct MigrateOptions {
    /// The key the data is encrypted with now (`None` = plain text).
    pub from: Option<Zeroizing<String>>,
    /// The key to encrypt with (`None` = store plain text).
    pub to: Option<Zeroizing<String>>,
    /// Check everything and report, write nothing.
    pub dry_run: bool,
    pub batch_size: usize,
    /// Rewrite the tables afterwards so old values leave the database files.
    pub compact: bool,
    pub lock_timing: LockTiming,
    /// A failure to inject, for tests of interruption safety.
    #[doc(hidden)]
    pub fault: Option<Fault>,
}

impl MigrateOptions {
    /// A real run from `from` to `to` with default batch size, compaction and lock timing.
    pub fn new(from: Option<&str>, to: Option<&str>) -> Self {
        Self {
            from: from.map(|k| Zeroizing::new(k.to_string())),
            to: to.map(|k| Zeroizing::new(k.to_string())),
            dry_run: false,
            batch_size: DEFAULT_BATCH,
            compact: true,
            lock_timing: LockTiming::default(),
            fault: None,
        }
    }
}

/// Where a test makes the run fail.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// After this many staging batches have been written.
    StagingBatch(usize),
    /// Inside the swap transaction, after `api_keys` was updated and before `request_logs`.
    SwapAfterKeys,
}

/// Which way the data moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Enable,
    Disable,
    Rotate,
}

impl Direction {
    /// For the summary line.
    pub fn describe(self) -> &'static str {
        match self {
            Direction::Enable => "encrypt plain-text keys",
            Direction::Disable => "decrypt keys to plain text",
            Direction::Rotate => "re-encrypt keys under a new key",
        }
    }
}

/// What a run did (or, with `--dry-run`, would do).
#[derive(Clone, Debug)]
pub struct Report {
    pub direction: Direction,
    pub dry_run: bool,
    /// `api_keys` rows rewritten.
    pub keys: u64,
    /// `request_logs` rows rewritten (those that used a key).
    pub logs: u64,
    /// `request_logs` rows without a key (left empty).
    pub logs_without_key: u64,
    /// Rows whose stored hash did not match their key (recomputed).
    pub stale_hashes: u64,
    /// The new key derivation, when encrypting.
    pub kdf_id: Option<String>,
    /// Processes using the database during a dry run (a real run refuses instead).
    pub live_holders: Vec<Holder>,
    pub elapsed: Duration,
}

/// Why a run stopped. Messages name states and flags, never key values.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{0}")]
    Usage(String),
    #[error("refused: {0}")]
    Busy(#[source] LockError),
    #[error("refused, nothing was changed: {0}")]
    WrongState(String),
    #[error("refused, nothing was changed: {count} row(s) of {table} cannot be read {with} (ids: {ids}). Restore them from a backup or delete them, then run again.")]
    Unreadable {
        table: &'static str,
        count: u64,
        with: &'static str,
        ids: String,
    },
    #[error("stopped, nothing was changed: the data changed during the run ({0}); make sure every server is stopped and run again")]
    Changed(String),
    #[error("verification failed: {0}")]
    Verification(String),
    #[error("stopped, nothing was changed: injected failure ({0})")]
    Injected(&'static str),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Kdf(#[from] KdfError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl From<diesel::result::Error> for MigrateError {
    fn from(err: diesel::result::Error) -> Self {
        MigrateError::Db(DbError::from(err))
    }
}

/// Runs the migration described by `options` on `db`, reporting progress lines to `progress`.
pub async fn run(
    db: &Database,
    options: MigrateOptions,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<Report, MigrateError> {
    let started = Instant::now();
    let direction = direction(&options)?;
    let mut progress = Progress::new(progress);
    let (lock, live_holders) = if options.dry_run {
        let holders = fresh_holders(db, options.lock_timing.stale_after)
            .await?
            .into_iter()
            .map(|(_, holder)| holder)
            .collect();
        (None, holders)
    } else {
        let lock = InstanceLock::acquire(db, LockKind::MigrateKeys, options.lock_timing)
            .await
            .map_err(MigrateError::Busy)?;
        (Some(lock), Vec::new())
    };
    let result = migrate(db, &options, direction, &mut progress).await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    let mut report = result?;
    report.live_holders = live_holders;
    report.elapsed = started.elapsed();
    Ok(report)
}

fn direction(options: &MigrateOptions) -> Result<Direction, MigrateError> {
    let empty = |k: &Option<Zeroizing<String>>| k.as_ref().is_some_and(|k| k.is_empty());
    if empty(&options.from) || empty(&options.to) {
        return Err(MigrateError::Usage(
            "--from and --to must not be empty".into(),
        ));
    }
    match (&options.from, &options.to) {
        (None, None) => Err(MigrateError::Usage(
            "pass --to <key> to encrypt, --from <key> to decrypt, or both to change the key".into(),
        )),
        (None, Some(_)) => Ok(Direction::Enable),
        (Some(_), None) => Ok(Direction::Disable),
        // The same key is refused later unless the data is in GPT-Load's format (then this
        // converts it to ours under the same key).
        (Some(_), Some(_)) => Ok(Direction::Rotate),
    }
}

async fn migrate(
    db: &Database,
    options: &MigrateOptions,
    direction: Direction,
    progress: &mut Progress<'_>,
) -> Result<Report, MigrateError> {
    let batch = options.batch_size.clamp(1, MAX_BATCH) as i64;
    let record = kdf_record(db).await?;
    let sample = stored_key_sample(db, SAMPLE_SIZE).await?;
    let gptload_data = record.as_ref().map_or_else(
        || is_gptload_sample(&sample),
        |r| r.kdf_id == gptload::KDF_ID,
    );
    if options.from.is_some() && options.from == options.to && !gptload_data {
        return Err(MigrateError::Usage(
            "--from and --to are the same key: there is nothing to change".into(),
        ));
    }
    let source = if record.is_none() && gptload_data {
        gptload_source(options, &sample).await?
    } else {
        source_codec(options, record.as_ref()).await?
    };
    let source_name = if source.is_encrypting() {
        "with the --from key"
    } else {
        "as plain text"
    };
    progress.line("Checking that every stored key can be read…");
    let keys = verify::<Keys>(db, &source, batch, source_name, progress).await?;
    let logs = verify::<Logs>(db, &source, batch, source_name, progress).await?;
    let mut report = Report {
        direction,
        dry_run: options.dry_run,
        keys: keys.rows,
        logs: logs.rows - logs.without_key,
        logs_without_key: logs.without_key,
        stale_hashes: keys.stale_hashes + logs.stale_hashes,
        kdf_id: None,
        live_holders: Vec::new(),
        elapsed: Duration::ZERO,
    };
    if options.dry_run {
        return Ok(report);
    }

    let target = match &options.to {
        Some(to) => derive(to, KdfSpec::generate()?).await?,
        None => KeyCodec::plaintext(),
    };
    report.kdf_id = target.kdf_id().map(str::to_string);
    tables::create_staging(db).await?;
    let swapped = stage_check_swap(
        db,
        options,
        &source,
        &target,
        batch,
        (&keys, &logs),
        progress,
    )
    .await;
    if let Err(err) = swapped {
        if let Err(drop_err) = tables::drop_staging(db).await {
            tracing::warn!(error = %drop_err, "Could not drop the staging tables; the next run drops them.");
        }
        return Err(err);
    }

    progress.line("Reading every key back with the new settings…");
    let target_name = if target.is_encrypting() {
        "with the --to key"
    } else {
        "as plain text"
    };
    let after_keys = verify::<Keys>(db, &target, batch, target_name, progress).await;
    let after_logs = verify::<Logs>(db, &target, batch, target_name, progress).await;
    match (after_keys, after_logs) {
        (Ok(k), Ok(l)) if k.rows == keys.rows && l.rows == logs.rows && k.stale_hashes + l.stale_hashes == 0 => {}
        (Ok(k), Ok(l)) => {
            return Err(MigrateError::Verification(format!(
                "after the swap {} keys / {} logs were found ({} / {} expected) and {} hashes do not match; the staging tables were kept for inspection",
                k.rows, l.rows, keys.rows, logs.rows, k.stale_hashes + l.stale_hashes
            )))
        }
        (Err(err), _) | (_, Err(err)) => {
            return Err(MigrateError::Verification(format!(
                "after the swap: {err}; the staging tables were kept for inspection"
            )))
        }
    }
    tables::drop_staging(db).await?;
    if options.compact {
        progress.line("Compacting the tables so replaced values leave the database files…");
        tables::compact(db).await?;
    }
    Ok(report)
}

/// The codec that reads the data now, after checking the data is in the state the flags claim.
async fn source_codec(
    options: &MigrateOptions,
    record: Option<&KdfRecord>,
) -> Result<KeyCodec, MigrateError> {
    match (&options.from, record) {
        (None, None) => Ok(KeyCodec::plaintext()),
        (None, Some(record)) => {
            if let Some(to) = &options.to {
                if matches_record(to, record).await? {
                    return Err(MigrateError::WrongState(
                        "the stored keys are already encrypted with the --to key: there is nothing to do.".into(),
                    ));
                }
            }
            Err(MigrateError::WrongState(format!(
                "the stored keys are already encrypted ({}). To change the key pass --from <current key> --to <new key>; to decrypt them pass only --from <current key>.",
                describe(record)
            )))
        }
        (Some(_), None) => Err(MigrateError::WrongState(
            "the stored keys are in plain text (there is no key_encryption record), so there is nothing to decrypt with --from. To encrypt them pass only --to <key>.".into(),
        )),
        (Some(from), Some(record)) => {
            let codec = derive_recorded(from, &record.kdf_id).await?;
            if codec.verifier() == Some(record.verifier.as_str()) {
                return Ok(codec);
            }
            if let Some(to) = &options.to {
                if matches_record(to, record).await? {
                    return Err(MigrateError::WrongState(
                        "the stored keys are encrypted with the --to key, not the --from key: the change of key seems to have been done already.".into(),
                    ));
                }
            }
            Err(MigrateError::WrongState(format!(
                "--from is not the key the stored keys are encrypted with ({}).",
                describe(record)
            )))
        }
    }
}

fn describe(record: &KdfRecord) -> String {
    // The id without its salt: enough for an operator, shorter in a terminal.
    let params = record
        .kdf_id
        .rsplit_once('.')
        .map_or(record.kdf_id.as_str(), |(head, _)| head);
    format!(
        "key derivation {params}, recorded {} UTC",
        record.created_at.format("%Y-%m-%d %H:%M:%S")
    )
}

/// Keys GPT-Load encrypted, on a database no server of ours has started on with the key yet:
/// `--from` must be GPT-Load's `ENCRYPTION_KEY`.
async fn gptload_source(
    options: &MigrateOptions,
    sample: &[(String, String)],
) -> Result<KeyCodec, MigrateError> {
    let Some(from) = &options.from else {
        return Err(MigrateError::WrongState(
            "the stored keys are encrypted in GPT-Load's format: pass --from <the ENCRYPTION_KEY GPT-Load used>, and --to <key> to encrypt them in this server's format (the same key is fine) or no --to for plain text.".into(),
        ));
    };
    let codec = derive_recorded(from, gptload::KDF_ID).await?;
    if sample.iter().all(|(v, h)| codec.reads(v, h)) {
        Ok(codec)
    } else {
        Err(MigrateError::WrongState(
            "--from is not the key the stored keys are encrypted with (GPT-Load's format).".into(),
        ))
    }
}

async fn matches_record(password: &str, record: &KdfRecord) -> Result<bool, MigrateError> {
    let codec = derive_recorded(password, &record.kdf_id).await?;
    Ok(codec.verifier() == Some(record.verifier.as_str()))
}

/// The codec of a recorded derivation (ours or GPT-Load's), off the async threads.
async fn derive_recorded(password: &str, kdf_id: &str) -> Result<KeyCodec, MigrateError> {
    let password = Zeroizing::new(password.to_string());
    let kdf_id = kdf_id.to_string();
    tokio::task::spawn_blocking(move || KeyCodec::derive_recorded(&password, &kdf_id))
        .await
        .map_err(|e| MigrateError::Kdf(KdfError::Derive(e.to_string())))?
        .map_err(MigrateError::from)
}

/// Argon2id off the async threads.
async fn derive(password: &str, spec: KdfSpec) -> Result<KeyCodec, MigrateError> {
    let password = Zeroizing::new(password.to_string());
    tokio::task::spawn_blocking(move || KeyCodec::derive(&password, &spec))
        .await
        .map_err(|e| MigrateError::Kdf(KdfError::Derive(e.to_string())))?
        .map_err(MigrateError::from)
}

/// What a full read of one table found.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    rows: u64,
    without_key: u64,
    stale_hashes: u64,
}

/// Reads every row of `T` with `codec`; any row that does not decode fails the pass.
async fn verify<T: KeyTable>(
    db: &Database,
    codec: &KeyCodec,
    batch: i64,
    with: &'static str,
    progress: &mut Progress<'_>,
) -> Result<Tally, MigrateError> {
    let total = T::count(db).await?;
    let mut tally = Tally::default();
    let mut unreadable = 0u64;
    let mut ids = Vec::new();
    let mut after: Option<T::Id> = None;
    loop {
        let rows = T::batch(db, after.as_ref(), batch).await?;
        let Some((last, _, _)) = rows.last() else {
            break;
        };
        after = Some(last.clone());
        for (id, value, hash) in &rows {
            tally.rows += 1;
            if value.is_empty() {
                tally.without_key += 1;
                continue;
            }
            match codec.decode(value) {
                Ok(plain) => {
                    if codec.hash(plain.expose()) != *hash {
                        tally.stale_hashes += 1;
                    }
                }
                Err(_) => {
                    unreadable += 1;
                    if ids.len() < LISTED_IDS {
                        ids.push(id.to_string());
                    }
                }
            }
        }
        progress.rows("Read", T::NAME, tally.rows, total);
    }
    progress.finished("Read", T::NAME, tally.rows, total);
    if unreadable > 0 {
        let more = if unreadable as usize > ids.len() {
            ", …"
        } else {
            ""
        };
        return Err(MigrateError::Unreadable {
            table: T::NAME,
            count: unreadable,
            with,
            ids: format!("{}{more}", ids.join(", ")),
        });
    }
    Ok(tally)
}

async fn stage_check_swap(
    db: &Database,
    options: &MigrateOptions,
    source: &KeyCodec,
    target: &KeyCodec,
    batch: i64,
    (keys, logs): (&Tally, &Tally),
    progress: &mut Progress<'_>,
) -> Result<(), MigrateError> {
    let mut batches = 0usize;
    progress.line("Writing the new values into staging tables…");
    stage::<Keys>(
        db,
        options.fault,
        source,
        target,
        batch,
        &mut batches,
        progress,
    )
    .await?;
    stage::<Logs>(
        db,
        options.fault,
        source,
        target,
        batch,
        &mut batches,
        progress,
    )
    .await?;
    progress.line("Comparing every staged value with its original…");
    check_staged::<Keys>(db, source, target, batch, keys.rows, progress).await?;
    check_staged::<Logs>(db, source, target, batch, logs.rows, progress).await?;
    progress.line("Swapping the new values in (one transaction)…");
    swap(db, options.fault, target, keys.rows, logs.rows).await
}

async fn stage<T: KeyTable>(
    db: &Database,
    fault: Option<Fault>,
    source: &KeyCodec,
    target: &KeyCodec,
    batch: i64,
    batches: &mut usize,
    progress: &mut Progress<'_>,
) -> Result<(), MigrateError> {
    let total = T::count(db).await?;
    let mut done = 0u64;
    let mut after: Option<T::Id> = None;
    loop {
        let rows = T::batch(db, after.as_ref(), batch).await?;
        let Some((last, _, _)) = rows.last() else {
            break;
        };
        after = Some(last.clone());
        let mut staged = Vec::with_capacity(rows.len());
        for (id, value, _) in rows {
            let plain = source.decode(&value).map_err(|err| {
                MigrateError::Changed(format!("{} row {id} no longer reads: {err}", T::NAME))
            })?;
            staged.push((
                id,
                target.encode(plain.expose())?,
                target.hash(plain.expose()),
            ));
        }
        done += staged.len() as u64;
        T::stage(db, staged).await?;
        *batches += 1;
        if fault == Some(Fault::StagingBatch(*batches)) {
            return Err(MigrateError::Injected("while writing staging batches"));
        }
        progress.rows("Staged", T::NAME, done, total);
    }
    progress.finished("Staged", T::NAME, done, total);
    Ok(())
}

async fn check_staged<T: KeyTable>(
    db: &Database,
    source: &KeyCodec,
    target: &KeyCodec,
    batch: i64,
    expected: u64,
    progress: &mut Progress<'_>,
) -> Result<(), MigrateError> {
    let mut checked = 0u64;
    let mut after: Option<T::Id> = None;
    loop {
        let staged = T::staged_batch(db, after.as_ref(), batch).await?;
        let Some((last, _, _)) = staged.last() else {
            break;
        };
        after = Some(last.clone());
        let ids: Vec<T::Id> = staged.iter().map(|(id, _, _)| id.clone()).collect();
        let originals: std::collections::HashMap<T::Id, String> = T::by_ids(db, &ids)
            .await?
            .into_iter()
            .map(|(id, value, _)| (id, value))
            .collect();
        for (id, value, hash) in &staged {
            let original = originals.get(id).ok_or_else(|| {
                MigrateError::Changed(format!("{} row {id} was deleted", T::NAME))
            })?;
            let before = source.decode(original).map_err(|err| {
                MigrateError::Changed(format!("{} row {id} no longer reads: {err}", T::NAME))
            })?;
            let after = target.decode(value).map_err(|err| {
                MigrateError::Verification(format!(
                    "staged {} row {id} does not read back: {err}",
                    T::NAME
                ))
            })?;
            if before.expose() != after.expose() || target.hash(after.expose()) != *hash {
                return Err(MigrateError::Verification(format!(
                    "staged {} row {id} differs from its original",
                    T::NAME
                )));
            }
        }
        checked += staged.len() as u64;
        progress.rows("Compared", T::NAME, checked, expected);
    }
    progress.finished("Compared", T::NAME, checked, expected);
    if checked != expected {
        return Err(MigrateError::Changed(format!(
            "{} has {expected} rows but {checked} were staged",
            T::NAME
        )));
    }
    Ok(())
}

/// The one transaction that changes live data.
async fn swap(
    db: &Database,
    fault: Option<Fault>,
    target: &KeyCodec,
    keys: u64,
    logs: u64,
) -> Result<(), MigrateError> {
    let keys_sql = tables::swap_sql(db, Keys::NAME, Keys::STAGE);
    let logs_sql = tables::swap_sql(db, Logs::NAME, Logs::STAGE);
    let record = target
        .kdf_id()
        .zip(target.verifier())
        .map(|(id, verifier)| (id.to_string(), verifier.to_string()));
    let ts = now();
    with_conn!(db, conn => {
        conn.transaction(async |conn| {
            // A write first: SQLite then takes the write lock at BEGIN time and waits for
            // other writers (this run's own heartbeat) instead of failing when a read snapshot
            // taken by the counts below goes stale.
            diesel::delete(key_encryption::table).execute(conn).await?;
            let live_keys: i64 = api_keys::table.count().get_result(conn).await?;
            let live_logs: i64 = request_logs::table.count().get_result(conn).await?;
            if live_keys as u64 != keys || live_logs as u64 != logs {
                return Err(MigrateError::Changed(format!(
                    "expected {keys} keys and {logs} logs, found {live_keys} and {live_logs}"
                )));
            }
            let updated = diesel::sql_query(&keys_sql).execute(conn).await?;
            if updated as u64 != keys {
                return Err(MigrateError::Changed(format!("{updated} of {keys} keys were updated")));
            }
            if fault == Some(Fault::SwapAfterKeys) {
                return Err(MigrateError::Injected("inside the swap transaction"));
            }
            let updated = diesel::sql_query(&logs_sql).execute(conn).await?;
            if updated as u64 != logs {
                return Err(MigrateError::Changed(format!("{updated} of {logs} logs were updated")));
            }
            if let Some((kdf_id, verifier)) = &record {
                diesel::insert_into(key_encryption::table)
                    .values((
                        key_encryption::id.eq(RECORD_ID),
                        key_encryption::kdf_id.eq(kdf_id),
                        key_encryption::verifier.eq(verifier),
                        key_encryption::created_at.eq(ts),
                    ))
                    .execute(conn)
                    .await?;
            }
            Ok::<_, MigrateError>(())
        })
        .await
    })
}

/// Progress lines: phase lines always, row counts at most once a second and at the end of a table.
struct Progress<'a> {
    sink: &'a mut (dyn FnMut(&str) + Send),
    last: Instant,
}

impl<'a> Progress<'a> {
    fn new(sink: &'a mut (dyn FnMut(&str) + Send)) -> Self {
        Self {
            sink,
            last: Instant::now(),
        }
    }

    fn line(&mut self, text: &str) {
        (self.sink)(text);
        self.last = Instant::now();
    }

    /// A row count inside a pass, at most once a second.
    fn rows(&mut self, what: &str, table: &str, done: u64, total: u64) {
        if done < total && self.last.elapsed() >= Duration::from_secs(1) {
            self.finished(what, table, done, total);
        }
    }

    /// The count at the end of a pass, always.
    fn finished(&mut self, what: &str, table: &str, done: u64, total: u64) {
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        self.line(&format!("  {what} {table}: {done}/{total} ({pct}%)"));
    }
}
