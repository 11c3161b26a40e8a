//! LogBatcherActor: buffers request records and writes them in batches, one transaction per
//! flush, off the request path. The buffer is bounded: when the database cannot keep up the oldest
//! records are shed and counted, so the proxy never waits on the database.
//!
//! Timing: a record waits at most the *maximum delay* (1 s by default) before its batch is
//! written, whatever the request rate: the first record to enter an empty buffer arms a one-shot
//! deadline and everything buffered when it fires goes out together (in [`BATCH_SIZE`] chunks).
//! Under load batches fill first and go at once. What a crash (SIGKILL, OOM) can lose is therefore
//! bounded by about one delay of traffic, not by a flush period or a batch size.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::domain::RequestRecord;
use crate::ports::LogSink;

/// Records written per transaction.
pub const BATCH_SIZE: usize = 500;

/// How long the batcher lets records gather in the [`RecordQueue`] after the first one arrives.
const QUEUE_COALESCE: Duration = Duration::from_millis(10);

/// Taken off the maximum delay so a batch is not only started but committed within it.
const WRITE_ALLOWANCE: Duration = Duration::from_millis(100);

/// Pause before a failed write is tried again.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Where request handlers drop their records: a shared vector behind a mutex, drained by the
/// batcher. A message per record woke the batcher's thread for every request (a futex wake and
/// a context switch each, a measurable share of the proxy's CPU at 15k req/s); pushing here
/// costs an uncontended lock, and only the first record after a drain wakes the batcher, which
/// then collects everything that arrived in the next [`QUEUE_COALESCE`].
#[derive(Clone, Default)]
pub struct RecordQueue {
    inner: Arc<QueueInner>,
}

#[derive(Default)]
struct QueueInner {
    records: parking_lot::Mutex<Vec<RequestRecord>>,
    ready: tokio::sync::Notify,
}

impl RecordQueue {
    /// Hands one record to the batcher (never blocks on the database).
    pub fn push(&self, record: RequestRecord) {
        let was_empty = {
            let mut records = self.inner.records.lock();
            let was_empty = records.is_empty();
            records.push(record);
            was_empty
        };
        if was_empty {
            self.inner.ready.notify_one();
        }
    }

    fn take(&self) -> Vec<RequestRecord> {
        std::mem::take(&mut *self.inner.records.lock())
    }
}

/// Counters shared with metrics and the dashboard.
#[derive(Debug, Default)]
pub struct LogCounters {
    pub buffered: AtomicU64,
    pub written: AtomicU64,
    pub shed: AtomicU64,
    pub failed_flushes: AtomicU64,
}

/// The log batcher actor.
pub struct LogBatcherActor {
    sink: Arc<dyn LogSink>,
    buffer: VecDeque<RequestRecord>,
    capacity: usize,
    /// The longest a record may wait before its batch is written (zero: at once).
    max_delay: Duration,
    flushing: bool,
    counters: Arc<LogCounters>,
    /// The one-shot deadline of the oldest buffered record (or of a retry after a failure).
    deadline: Option<SpawnHandle>,
    /// Records at the front of the buffer whose deadline has passed: written back to back.
    owed: usize,
    /// `FlushAll` callers, answered once the buffer is empty and no write is in flight (true),
    /// or when a write fails (false).
    waiters: Vec<tokio::sync::oneshot::Sender<bool>>,
    queue: RecordQueue,
}

impl LogBatcherActor {
    /// A batcher writing to `sink`, holding at most `capacity` records, writing each record at
    /// most `max_delay` after it arrives (zero: as soon as records arrive).
    pub fn new(sink: Arc<dyn LogSink>, capacity: usize, max_delay: Duration) -> Self {
        Self {
            sink,
            buffer: VecDeque::new(),
            capacity: capacity.max(1),
            max_delay,
            flushing: false,
            counters: Arc::new(LogCounters::default()),
            deadline: None,
            owed: 0,
            waiters: Vec::new(),
            queue: RecordQueue::default(),
        }
    }

    /// The queue request handlers push their records to.
    pub fn queue(&self) -> RecordQueue {
        self.queue.clone()
    }

    /// Waits for the queue to receive records, lets more gather, then buffers them all.
    fn arm_queue(&self, ctx: &mut Context<Self>) {
        let queue = self.queue.clone();
        ctx.spawn(
            async move {
                queue.inner.ready.notified().await;
                tokio::time::sleep(QUEUE_COALESCE).await;
            }
            .into_actor(self)
            .map(|(), act, ctx| {
                act.drain_queue(ctx);
                act.arm_queue(ctx);
            }),
        );
    }

    fn drain_queue(&mut self, ctx: &mut Context<Self>) {
        let records = self.queue.take();
        if records.is_empty() {
            return;
        }
        self.buffer.extend(records);
        self.buffered(ctx);
    }

    /// After records entered the buffer: write now if due, else make sure a deadline is armed.
    fn buffered(&mut self, ctx: &mut Context<Self>) {
        self.shed_overflow();
        self.publish_depth();
        if self.max_delay.is_zero() || self.buffer.len() >= self.batch_size() {
            self.start_flush(ctx);
        }
        if !self.buffer.is_empty() && self.deadline.is_none() {
            let wait = self
                .max_delay
                .saturating_sub(QUEUE_COALESCE + WRITE_ALLOWANCE);
            self.arm_deadline(ctx, wait);
        }
    }

    /// Counters, readable without asking the actor.
    pub fn counters(&self) -> Arc<LogCounters> {
        Arc::clone(&self.counters)
    }

    /// (Re)arms the one-shot deadline: when it fires, everything buffered then is owed.
    fn arm_deadline(&mut self, ctx: &mut Context<Self>, wait: Duration) {
        if let Some(handle) = self.deadline.take() {
            ctx.cancel_future(handle);
        }
        self.deadline = Some(ctx.run_later(wait, |act, ctx| {
            act.deadline = None;
            act.owed = act.buffer.len();
            act.start_flush(ctx);
        }));
    }

    /// A full batch: [`BATCH_SIZE`], or the whole buffer when it is smaller than that.
    fn batch_size(&self) -> usize {
        BATCH_SIZE.min(self.capacity)
    }

    /// Answers the `FlushAll` callers once everything is written.
    fn settle_waiters(&mut self) {
        if !self.flushing && self.buffer.is_empty() {
            for waiter in self.waiters.drain(..) {
                let _ = waiter.send(true);
            }
        }
    }

    fn publish_depth(&self) {
        self.counters
            .buffered
            .store(self.buffer.len() as u64, Ordering::Relaxed);
    }

    /// Starts writing one batch unless a write is already in flight. On success the next batch
    /// follows at once while records remain; on failure the batch goes back to the front of the
    /// buffer and waits for the next tick.
    fn start_flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing || self.buffer.is_empty() {
            return;
        }
        self.flushing = true;
        let take = self.buffer.len().min(BATCH_SIZE);
        let batch: Vec<RequestRecord> = self.buffer.drain(..take).collect();
        self.owed = self.owed.saturating_sub(take);
        self.publish_depth();
        let sink = Arc::clone(&self.sink);
        ctx.spawn(
            async move {
                let result = sink.write_batch(&batch).await;
                (batch, result)
            }
            .into_actor(self)
            .map(|(batch, result), act, ctx| {
                act.flushing = false;
                match result {
                    Ok(()) => {
                        act.counters.written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                        if act.max_delay.is_zero()
                            || act.owed > 0
                            || act.buffer.len() >= act.batch_size()
                            || !act.waiters.is_empty()
                        {
                            act.start_flush(ctx);
                        }
                    }
                    Err(err) => {
                        act.counters.failed_flushes.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %err, records = batch.len(), "Writing request logs failed; will retry.");
                        for record in batch.into_iter().rev() {
                            act.buffer.push_front(record);
                        }
                        act.shed_overflow();
                        for waiter in act.waiters.drain(..) {
                            let _ = waiter.send(false);
                        }
                        // Everything waits for the retry, which writes all of it back to back.
                        act.owed = 0;
                        act.arm_deadline(ctx, RETRY_PAUSE);
                    }
                }
                act.publish_depth();
                act.settle_waiters();
            }),
        );
    }

    fn shed_overflow(&mut self) {
        let mut shed = 0u64;
        while self.buffer.len() > self.capacity {
            self.buffer.pop_front();
            shed += 1;
        }
        if shed > 0 {
            let total = self.counters.shed.fetch_add(shed, Ordering::Relaxed) + shed;
            tracing::warn!(
                shed,
                total,
                "Request log buffer is full; dropped the oldest records."
            );
        }
    }
}

impl Actor for LogBatcherActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Records arrive through the queue (or `do_send`), neither bounded; the buffer's own
        // bound (and shedding) applies instead.
        self.arm_queue(ctx);
    }
}

/// Buffers one record (fire-and-forget from the request path).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Record(pub RequestRecord);

impl Handler<Record> for LogBatcherActor {
    type Result = ();

    fn handle(&mut self, msg: Record, ctx: &mut Self::Context) {
        self.buffer.push_back(msg.0);
        self.buffered(ctx);
    }
}

/// Changes the maximum delay (`REQUEST_LOG_MAX_DELAY_MS`, capped by the
/// `request_log_write_interval_minutes` setting).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetMaxDelay(pub Duration);

impl Handler<SetMaxDelay> for LogBatcherActor {
    type Result = ();

    fn handle(&mut self, msg: SetMaxDelay, ctx: &mut Self::Context) {
        if msg.0 != self.max_delay {
            self.max_delay = msg.0;
            // The pending deadline was computed from the old delay: start over with the new one.
            if let Some(handle) = self.deadline.take() {
                ctx.cancel_future(handle);
            }
            self.buffered(ctx);
        }
    }
}

/// Writes everything buffered now, including a write already in flight, and answers when done
/// (graceful stop, tests). Answers `false` when a write failed and records remain buffered.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct FlushAll;

impl Handler<FlushAll> for LogBatcherActor {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, _msg: FlushAll, ctx: &mut Self::Context) -> Self::Result {
        self.drain_queue(ctx);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiters.push(tx);
        // Goes through the one write pipeline, so a batch already in flight is waited for
        // rather than raced; each completed batch starts the next while a caller waits.
        self.start_flush(ctx);
        self.settle_waiters();
        Box::pin(async move { rx.await.unwrap_or(false) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RequestType;
    use crate::ports::PortError;
    use async_trait::async_trait;
    use parking_lot::Mutex;
    use std::sync::atomic::AtomicBool;

    #[derive(Default)]
    struct Sink {
        batches: Mutex<Vec<usize>>,
        down: AtomicBool,
        /// When set, a write waits until this is notified (a slow database).
        gate: Option<tokio::sync::Semaphore>,
    }

    #[async_trait]
    impl LogSink for Sink {
        async fn write_batch(&self, records: &[RequestRecord]) -> Result<(), PortError> {
            if let Some(gate) = &self.gate {
                let _permit = gate
                    .acquire()
                    .await
                    .map_err(|e| PortError::Other(e.to_string()))?;
            }
            if self.down.load(Ordering::SeqCst) {
                return Err(PortError::Unavailable("database unavailable".into()));
            }
            self.batches.lock().push(records.len());
            Ok(())
        }
    }

    fn record(i: usize) -> RequestRecord {
        RequestRecord {
            id: i.to_string(),
            timestamp: chrono::Utc::now().naive_utc(),
            group_id: 1,
            group_name: "g".into(),
            parent_group_id: 0,
            parent_group_name: String::new(),
            key_id: None,
            key: None,
            model: String::new(),
            is_success: true,
            source_ip: String::new(),
            status_code: 200,
            request_path: String::new(),
            duration_ms: 1,
            error_message: String::new(),
            user_agent: String::new(),
            request_type: RequestType::Final,
            upstream_addr: String::new(),
            is_stream: false,
            request_body: String::new(),
            usage: Default::default(),
            proxy_key: String::new(),
        }
    }

    #[actix_rt::test]
    async fn batches_by_size_and_flushes_the_rest_on_demand() {
        let sink = Arc::new(Sink::default());
        let actor = LogBatcherActor::new(sink.clone(), 10_000, Duration::from_secs(3600));
        let counters = actor.counters();
        let addr = actor.start();
        for i in 0..1200 {
            addr.do_send(Record(record(i)));
        }
        assert!(addr.send(FlushAll).await.unwrap());
        assert_eq!(sink.batches.lock().iter().sum::<usize>(), 1200);
        assert!(sink.batches.lock().iter().all(|n| *n <= BATCH_SIZE));
        assert_eq!(counters.written.load(Ordering::SeqCst), 1200);
        assert_eq!(counters.buffered.load(Ordering::SeqCst), 0);
    }

    #[actix_rt::test]
    async fn a_down_database_sheds_the_oldest_beyond_capacity_and_keeps_the_rest() {
        let sink = Arc::new(Sink::default());
        sink.down.store(true, Ordering::SeqCst);
        let actor = LogBatcherActor::new(sink.clone(), 600, Duration::from_secs(3600));
        let counters = actor.counters();
        let addr = actor.start();
        for i in 0..1000 {
            addr.do_send(Record(record(i)));
        }
        assert!(!addr.send(FlushAll).await.unwrap());
        assert_eq!(counters.shed.load(Ordering::SeqCst), 400);
        assert_eq!(counters.buffered.load(Ordering::SeqCst), 600);
        sink.down.store(false, Ordering::SeqCst);
        assert!(addr.send(FlushAll).await.unwrap());
        assert_eq!(sink.batches.lock().iter().sum::<usize>(), 600);
    }

    #[actix_rt::test]
    async fn flush_all_waits_for_the_write_already_in_flight() {
        let sink = Arc::new(Sink {
            gate: Some(tokio::sync::Semaphore::new(0)),
            ..Default::default()
        });
        // Written at once: the first record starts a write that the gate holds.
        let actor = LogBatcherActor::new(sink.clone(), 100, Duration::ZERO);
        let addr = actor.start();
        for i in 0..5 {
            addr.do_send(Record(record(i)));
        }
        let flush = tokio::spawn(addr.send(FlushAll));
        // Let the flush request reach the actor while the first write is still held.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(
            !flush.is_finished(),
            "FlushAll answered before the write in flight ended"
        );
        sink.gate.as_ref().unwrap().add_permits(1000);
        assert!(flush.await.unwrap().unwrap());
        assert_eq!(sink.batches.lock().iter().sum::<usize>(), 5);
    }

    #[actix_rt::test]
    async fn queued_records_are_written_without_a_message_each() {
        let sink = Arc::new(Sink::default());
        let actor = LogBatcherActor::new(sink.clone(), 10_000, Duration::ZERO);
        let queue = actor.queue();
        let counters = actor.counters();
        let addr = actor.start();
        for i in 0..700 {
            queue.push(record(i));
        }
        // Written at once (interval zero) without anyone asking: wait for the batcher to drain.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while counters.written.load(Ordering::SeqCst) < 700 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "queued records were not written"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(sink.batches.lock().iter().all(|n| *n <= BATCH_SIZE));
        // And a flush picks up what is still queued.
        let quiet = LogBatcherActor::new(sink.clone(), 10_000, Duration::from_secs(3600));
        let queue = quiet.queue();
        let quiet = quiet.start();
        for i in 0..3 {
            queue.push(record(i));
        }
        assert!(quiet.send(FlushAll).await.unwrap());
        assert_eq!(sink.batches.lock().iter().sum::<usize>(), 703);
        drop(addr);
    }

    #[actix_rt::test]
    async fn every_record_is_written_within_the_maximum_delay_in_one_batch() {
        let sink = Arc::new(Sink::default());
        let max_delay = Duration::from_millis(400);
        let actor = LogBatcherActor::new(sink.clone(), 10_000, max_delay);
        let queue = actor.queue();
        let counters = actor.counters();
        let _addr = actor.start();
        for round in 0..3u64 {
            let pushed = std::time::Instant::now();
            for i in 0..50 {
                queue.push(record(i));
            }
            let want = 50 * (round + 1);
            let deadline = pushed + Duration::from_secs(5);
            while counters.written.load(Ordering::SeqCst) < want {
                assert!(
                    std::time::Instant::now() < deadline,
                    "records were not written"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let took = pushed.elapsed();
            // Not written record by record, nor held for longer than the delay (plus scheduling
            // slack on a busy machine).
            assert!(took >= max_delay / 2, "written after {took:?}: not batched");
            assert!(
                took < max_delay + Duration::from_millis(300),
                "written after {took:?}"
            );
        }
        assert_eq!(
            *sink.batches.lock(),
            vec![50, 50, 50],
            "one write per delay"
        );
    }

    #[actix_rt::test]
    async fn a_failed_write_is_retried_without_being_asked() {
        let sink = Arc::new(Sink::default());
        sink.down.store(true, Ordering::SeqCst);
        let actor = LogBatcherActor::new(sink.clone(), 10_000, Duration::from_millis(50));
        let queue = actor.queue();
        let counters = actor.counters();
        let _addr = actor.start();
        for i in 0..7 {
            queue.push(record(i));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while counters.failed_flushes.load(Ordering::SeqCst) == 0 {
            assert!(std::time::Instant::now() < deadline, "no write was tried");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        sink.down.store(false, Ordering::SeqCst);
        while counters.written.load(Ordering::SeqCst) < 7 {
            assert!(
                std::time::Instant::now() < deadline,
                "the failed batch was not retried"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(sink.batches.lock().iter().sum::<usize>(), 7);
    }
}
