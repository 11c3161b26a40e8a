//! The Redis store: a `deadpool-redis` pool for commands and one RESP3 `ConnectionManager` that
//! holds the subscription. The manager reconnects and resubscribes by itself after a dropped
//! connection or a Redis restart; this module turns that into a [`Notice::Resynced`] so every
//! node reloads what it may have missed.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::{Manager, Pool, Runtime};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Script};
use tokio::sync::{broadcast, mpsc};

use gpt_load_actors::cluster::{Coordinator, EventEnvelope, LeadAttempt, Notice, StoreError};

/// Commands that take longer than this count as failed: the callers (leader renewal above all)
/// must decide in time, not wait on a dead server.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the subscriber checks its connection, so a silent loss is noticed and repaired.
const PING_INTERVAL: Duration = Duration::from_millis(500);
/// Cluster-wide failure counts of keys nobody touches any more disappear after this long.
const FAILURE_COUNT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Leadership terms kept in `<prefix>cluster:terms`.
const TERMS_KEPT: i64 = 200;

const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local e = redis.call('INCR', KEYS[2])
  local floor = tonumber(ARGV[3])
  if e <= floor then
    e = floor + 1
    redis.call('SET', KEYS[2], e)
  end
  redis.call('SET', KEYS[1], ARGV[1] .. '/' .. e, 'PX', ARGV[2])
  return {1, tostring(e)}
end
local v = redis.call('GET', KEYS[1])
if not v then v = '' end
return {0, v}
";

const COMPARE_AND_EXPIRE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

const COMPARE_AND_DELETE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

const RECORD_TERM: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local started = now
local old = redis.call('HGET', KEYS[2], ARGV[2])
if old then started = cjson.decode(old)['started_ms'] end
redis.call('HSET', KEYS[2], ARGV[2], cjson.encode({node = ARGV[3], epoch = tonumber(ARGV[2]), started_ms = started, last_ms = now}))
redis.call('HDEL', KEYS[2], tostring(tonumber(ARGV[2]) - tonumber(ARGV[4])))
return 1
";

const INCR_WITH_TTL: &str = r"
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n
";

/// Redis key and channel names, all under one prefix.
#[derive(Clone, Debug)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn leader(&self) -> String {
        format!("{}cluster:leader", self.prefix)
    }
    fn epoch(&self) -> String {
        format!("{}cluster:epoch", self.prefix)
    }
    fn terms(&self) -> String {
        format!("{}cluster:terms", self.prefix)
    }
    fn events(&self) -> String {
        format!("{}events", self.prefix)
    }
    fn failures(&self, key_id: i64) -> String {
        format!("{}key:{key_id}:failures", self.prefix)
    }
    fn lock(&self, name: &str) -> String {
        format!("{}lock:{name}", self.prefix)
    }
    fn task_lock(&self) -> String {
        format!("{}tasks:lock", self.prefix)
    }
    fn task_status(&self) -> String {
        format!("{}tasks:status", self.prefix)
    }
}

/// The store of a cluster.
pub struct RedisStore {
    pool: Pool,
    keys: Keys,
    notices: broadcast::Sender<Notice>,
    acquire: Script,
    compare_and_expire: Script,
    compare_and_delete: Script,
    record_term: Script,
    incr_with_ttl: Script,
    /// Dropped with the store, which ends the subscriber task.
    _stop: tokio::sync::watch::Sender<()>,
}

/// A Redis failure, `Unavailable` when the connection (not the command) failed.
fn command_error(err: redis::RedisError) -> StoreError {
    if err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
    {
        StoreError::Unavailable(err.to_string())
    } else {
        StoreError::Command(err.to_string())
    }
}

fn holder(node: &str, epoch: u64) -> String {
    format!("{node}/{epoch}")
}

impl RedisStore {
    /// Opens the pool, checks that Redis answers a PING, and starts the subscription.
    pub async fn connect(dsn: &str, prefix: &str) -> Result<Self, StoreError> {
        // The parser's messages never repeat the URL, so they cannot leak its password.
        let info = dsn.into_connection_info().map_err(|e| {
            StoreError::InvalidAddress(format!("REDIS_DSN is not a valid Redis URL: {e}"))
        })?;
        let addr = info.addr().to_string();
        let unreachable = |reason: String| StoreError::Unreachable {
            store: "Redis",
            addr: addr.clone(),
            reason,
        };
        let manager = Manager::new(info.clone()).map_err(|e| unreachable(e.to_string()))?;
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(COMMAND_TIMEOUT))
            .create_timeout(Some(COMMAND_TIMEOUT))
            .recycle_timeout(Some(COMMAND_TIMEOUT))
            .build()
            .map_err(|e| unreachable(e.to_string()))?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
        let store = Self {
            pool,
            keys: Keys {
                prefix: prefix.to_string(),
            },
            notices: broadcast::channel(4096).0,
            acquire: Script::new(ACQUIRE),
            compare_and_expire: Script::new(COMPARE_AND_EXPIRE),
            compare_and_delete: Script::new(COMPARE_AND_DELETE),
            record_term: Script::new(RECORD_TERM),
            incr_with_ttl: Script::new(INCR_WITH_TTL),
            _stop: stop_tx,
        };
        store.ping().await.map_err(|e| match e {
            StoreError::Unavailable(reason) | StoreError::Command(reason) => unreachable(reason),
            other => other,
        })?;

        // RESP3 is what lets one managed connection carry the subscription and survive reconnects.
        let redis_settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let info = info.set_redis_settings(redis_settings);
        let client = redis::Client::open(info).map_err(|e| unreachable(e.to_string()))?;
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        let config = ConnectionManagerConfig::new()
            .set_push_sender(push_tx)
            .set_automatic_resubscription()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let mut subscriber = tokio::time::timeout(
            COMMAND_TIMEOUT,
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| unreachable("timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
        subscriber
            .subscribe(store.keys.events())
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        tokio::spawn(listen(subscriber, push_rx, store.notices.clone(), stop_rx));
        Ok(store)
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    async fn set_nx(&self, key: String, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let set: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(owner)
                .arg("NX")
                .arg("PX")
                .arg(ttl.as_millis() as u64)
                .query_async(&mut conn)
                .await
                .map_err(command_error)?;
            Ok(set.is_some())
        })
        .await
    }

    async fn timed<T>(
        &self,
        op: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(COMMAND_TIMEOUT, op)
            .await
            .map_err(|_| StoreError::Unavailable("no answer in time".into()))?
    }
}

/// Forwards published events and turns reconnections into [`Notice::Resynced`].
async fn listen(
    mut subscriber: ConnectionManager,
    mut pushes: mpsc::UnboundedReceiver<PushInfo>,
    notices: broadcast::Sender<Notice>,
    mut stop: tokio::sync::watch::Receiver<()>,
) {
    let mut lost = false;
    let mut subscribed_once = false;
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            push = pushes.recv() => {
                let Some(push) = push else { return };
                match push.kind {
                    PushKind::Message => {
                        if let Some(envelope) = decode(&push) {
                            let _ = notices.send(Notice::Event(envelope));
                        }
                    }
                    PushKind::Subscribe => {
                        if subscribed_once || lost {
                            tracing::info!("Resubscribed to cluster events; reloading everything.");
                            lost = false;
                            let _ = notices.send(Notice::Resynced);
                        }
                        subscribed_once = true;
                    }
                    PushKind::Disconnection => {
                        if !lost {
                            tracing::warn!("Lost the Redis subscription; reconnecting.");
                        }
                        lost = true;
                    }
                    _ => {}
                }
            }
            _ = ping.tick() => {
                let answered: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut subscriber).await;
                match answered {
                    Ok(_) if lost => {
                        // The manager resubscribes before it hands the new connection out, so a
                        // PING that answers means the subscription is back.
                        tracing::info!("Redis subscription is back; reloading everything.");
                        lost = false;
                        let _ = notices.send(Notice::Resynced);
                    }
                    Ok(_) => {}
                    Err(err) => {
                        if !lost {
                            tracing::warn!(error = %err, "Redis does not answer; cluster events are paused.");
                        }
                        lost = true;
                    }
                }
            }
        }
    }
}

fn decode(push: &PushInfo) -> Option<EventEnvelope> {
    let payload = push.data.get(1)?;
    let bytes: Vec<u8> = redis::from_redis_value_ref(payload).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(envelope) => Some(envelope),
        Err(err) => {
            tracing::warn!(error = %err, "Ignored a cluster event this version cannot read.");
            None
        }
    }
}

#[async_trait]
impl Coordinator for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let _: String = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .map_err(command_error)?;
            Ok(())
        })
        .await
    }

    async fn try_lead(
        &self,
        node: &str,
        ttl: Duration,
        min_epoch: u64,
    ) -> Result<LeadAttempt, StoreError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let (won, value): (i64, String) = self
                .acquire
                .key(self.keys.leader())
                .key(self.keys.epoch())
                .arg(node)
                .arg(ttl.as_millis() as u64)
                .arg(min_epoch)
                .invoke_async(&mut conn)
                .await
                .map_err(command_error)?;
            Ok(if won == 1 {
                LeadAttempt::Won {
                    epoch: value
                        .parse()
                        .map_err(|e: std::num::ParseIntError| StoreError::Command(e.to_string()))?,
                }
            } else {
                LeadAttempt::Held {
                    epoch: value.rsplit('/').next().and_then(|e| e.parse().ok()),
                }
            })
        })
        .await
    }

    async fn renew(&self, node: &str, epoch: u64, ttl: Duration) -> Result<bool, StoreError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let n: i64 = self
                .compare_and_expire
                .key(self.keys.leader())
                .arg(holder(node, epoch))
                .arg(ttl.as_millis() as u64)
                .invoke_async(&mut conn)
                .await
                .map_err(command_error)?;
            Ok(n == 1)
        })
        .await
    }

    async fn resign(&self, node: &str, epoch: u64) -> Result<bool, StoreError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let n: i64 = self
                .compare_and_delete
                .key(self.keys.leader())
                .arg(holder(node, epoch))
                .invoke_async(&mut conn)
                .await
                .map_err(command_error)?;
            Ok(n == 1)
        })
        .await
    }

    async fn record_term(&self, node: &str, epoch: u64) -> Result<bool, StoreError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let n: i64 = self
                .record_term
                .key(self.keys.leader())
                .key(self.keys.terms())
                .arg(holder(node, epoch))
                .arg(epoch)
                .arg(node)
                .arg(TERMS_KEPT)
                .invoke_async(&mut conn)
                .await
                .map_err(command_error)?;
            Ok(n == 1)
        })
        .await
    }

    async fn publish(&self, event: &EventEnvelope) -> Result<(), StoreError> {
        let payload =
            serde_json::to_string(event).map_err(|e| StoreError::Encode(e.to_string()))?;
        self.timed(async {
            let mut conn = self.conn().await?;
            let _: i64 = conn
                .publish(self.keys.events(), payload)
                .await
                .map_err(command_error)?;
            Ok(())
        })
        .await
    }

    fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    async fn count_failure(&self, key_id: i64) -> Result<i64, StoreError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            self.incr_with_ttl
                .key(self.keys.failures(key_id))
                .arg(FAILURE_COUNT_TTL.as_millis() as u64)
                .invoke_async(&mut conn)
                .await
                .map_err(command_error)
        })
        .await
    }

    async fn reset_failures(&self, key_ids: &[i64]) -> Result<(), StoreError> {
        if key_ids.is_empty() {
            return Ok(());
        }
        self.timed(async {
            let mut conn = self.conn().await?;
            for chunk in key_ids.chunks(1000) {
                let names: Vec<String> = chunk.iter().map(|id| self.keys.failures(*id)).collect();
                let _: i64 = conn.del(names).await.map_err(command_error)?;
            }
            Ok(())
        })
        .await
    }

    async fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.set_nx(self.keys.lock(name), owner, ttl).await
    }

    async fn refresh_lock(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let n: i64 = self
                .compare_and_expire
                .key(self.keys.lock(name))
                .arg(owner)
                .arg(ttl.as_millis() as u64)
                .invoke_async(&mut conn)
                .await
                .map_err(command_error)?;
            Ok(n == 1)
        })
        .await
    }

    async fn unlock(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let _: i64 = self
                .compare_and_delete
                .key(self.keys.lock(name))
                .arg(owner)
                .invoke_async(&mut conn)
                .await
                .map_err(command_error)?;
            Ok(())
        })
        .await
    }

    async fn claim_task(&self, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.set_nx(self.keys.task_lock(), owner, ttl).await
    }

    async fn refresh_task(&self, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let n: i64 = self
                .compare_and_expire
                .key(self.keys.task_lock())
                .arg(owner)
                .arg(ttl.as_millis() as u64)
                .invoke_async(&mut conn)
                .await
                .map_err(command_error)?;
            Ok(n == 1)
        })
        .await
    }

    async fn release_task(&self, owner: &str) -> Result<(), StoreError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let _: i64 = self
                .compare_and_delete
                .key(self.keys.task_lock())
                .arg(owner)
                .invoke_async(&mut conn)
                .await
                .map_err(command_error)?;
            Ok(())
        })
        .await
    }

    async fn put_task_status(&self, status: &str) -> Result<(), StoreError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let _: () = conn
                .set(self.keys.task_status(), status)
                .await
                .map_err(command_error)?;
            Ok(())
        })
        .await
    }

    async fn task_status(&self) -> Result<Option<String>, StoreError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            conn.get(self.keys.task_status())
                .await
                .map_err(command_error)
        })
        .await
    }
}
