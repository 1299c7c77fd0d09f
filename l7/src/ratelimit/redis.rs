//! The global store: GCRA in Redis, one atomic Lua script per check, with
//! Redis's clock (`TIME`), so any number of weir instances share one limit
//! and need no synchronised clocks.
//!
//! The client is redis-rs's `ConnectionManager`: created lazily (weir
//! starts while Redis is down), one multiplexed connection that pipelines
//! concurrent checks, reconnecting by itself after an I/O error. `Script`
//! sends `EVALSHA` and, on `NOSCRIPT` (a restarted Redis), loads the script
//! and retries. Callers bound every check with the policy's timeout.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, Script};
use weir_common::rate::{Decision, Rate};
use weir_config::rate_limit::RedisConfig;

/// GCRA with Redis's clock, microseconds. KEYS[1] holds the key's TAT
/// (theoretical arrival time) and expires when the bucket is full again, so
/// idle keys cost Redis nothing. Returns {allowed, remaining, retry_after,
/// reset} (microseconds). `replicate_commands` lets Redis < 7 write after
/// `TIME` (a no-op on 7+).
const GCRA_LUA: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((now + tolerance - new_tat) / interval), 0, new_tat - now}
";

/// The Redis side of global policies (one per process, shared).
pub struct RedisStore {
    manager: ConnectionManager,
    script: Script,
    prefix: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store for `config`; connects lazily, on the first check. Must be
    /// called within a tokio runtime.
    pub fn new(config: &RedisConfig) -> redis::RedisResult<Self> {
        let mut settings = RedisConnectionInfo::default();
        if let Some(user) = &config.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &config.password {
            settings = settings.set_password(password.expose());
        }
        let info = ConnectionAddr::Tcp(config.host.clone(), config.port)
            .into_connection_info()?
            .set_redis_settings(settings);
        let client = redis::Client::open(info)?;
        let manager = ConnectionManager::new_lazy_with_config(
            client,
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.connect_timeout.max(Duration::from_secs(1))))
                // A few quick retries per reconnect, then the next check
                // starts another: Redis coming back is noticed within about
                // a second, and a dead Redis is not hammered.
                .set_number_of_retries(2)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_millis(500)),
        )?;
        Ok(Self {
            manager,
            script: Script::new(GCRA_LUA),
            prefix: config.key_prefix.clone(),
        })
    }

    /// One check of `key` under `policy` at `rate`. Unbounded in time: the
    /// caller wraps it in the policy's timeout.
    pub async fn check(&self, policy: &str, key: u64, rate: &Rate) -> redis::RedisResult<Decision> {
        let interval = (rate.interval_nanos() / 1_000).max(1);
        let tolerance = interval.saturating_mul(rate.burst());
        let mut con = self.manager.clone();
        let reply: Vec<i64> = self
            .script
            .key(format!("{}{policy}:{key:016x}", self.prefix))
            .arg(interval)
            .arg(tolerance)
            .invoke_async(&mut con)
            .await?;
        let field = |i: usize| reply.get(i).map_or(0, |v| u64::try_from(*v).unwrap_or(0));
        if reply.len() != 4 {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Parse,
                "unexpected reply from the rate-limit script",
            )));
        }
        Ok(Decision {
            allowed: field(0) == 1,
            remaining: field(1).min(rate.burst().saturating_sub(1)),
            retry_after: Duration::from_micros(field(2)),
            reset: Duration::from_micros(field(3)),
        })
    }
}
