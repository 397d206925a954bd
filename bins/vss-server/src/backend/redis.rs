//! `[redis_config]`: the Redis backend (cargo feature `redis`).

use std::path::PathBuf;

use crate::settings::{parse, ConfigError, Origins};

/// The file section of these settings.
pub const SECTION: &str = "redis_config";

/// The Redis URL used when none is configured.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Settings of the Redis backend.
#[derive(clap::Args, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://[[user]:password@]host[:port][/db]`, `rediss://` for TLS, `redis-cluster://` / `rediss-cluster://` for a cluster
    #[arg(id = "redis_config.url", long = "redis-url", env = "VSS_REDIS_URL", hide = true,
          hide_env_values = true, default_value = DEFAULT_REDIS_URL, value_parser = redis_url)]
    pub url: String,

    /// Start even if Redis could lose acknowledged writes (no AOF with appendfsync always)
    #[arg(id = "redis_config.allow_volatile", long = "redis-allow-volatile",
          env = "VSS_REDIS_ALLOW_VOLATILE", value_name = "BOOL", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value = "false",
          action = clap::ArgAction::Set, value_parser = parse::boolean)]
    pub allow_volatile: bool,

    /// CA certificates (PEM) trusted for a rediss:// server [default: the system's roots]
    #[arg(id = "redis_config.tls_ca_file", long = "redis-tls-ca-file",
          env = "VSS_REDIS_TLS_CA_FILE", value_name = "FILE", value_parser = parse::existing_file)]
    pub tls_ca_file: Option<PathBuf>,

    /// Replicas that must confirm each write before it is answered (Redis WAIT); 1 with one replica per primary survives a failover
    #[arg(id = "redis_config.wait_replicas", long = "redis-wait-replicas",
          env = "VSS_REDIS_WAIT_REPLICAS", value_name = "COUNT", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=16))]
    pub wait_replicas: u32,

    /// Milliseconds a write waits for wait_replicas confirmations before it answers INTERNAL
    #[arg(id = "redis_config.wait_timeout_ms", long = "redis-wait-timeout-ms",
          env = "VSS_REDIS_WAIT_TIMEOUT_MS", value_name = "MS", default_value_t = 2000,
          value_parser = parse::positive)]
    pub wait_timeout_ms: u64,
}

impl Default for RedisSettings {
    /// A local Redis, durability guard on, system roots.
    fn default() -> Self {
        super::defaults()
    }
}

impl std::fmt::Debug for RedisSettings {
    // Written out to keep the password in the URL out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        #[cfg(feature = "redis")]
        let url = vss_backend_redis::redact_url(&self.url);
        #[cfg(not(feature = "redis"))]
        let url = "<redacted>";
        f.debug_struct("RedisSettings")
            .field("url", &url)
            .field("allow_volatile", &self.allow_volatile)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("wait_replicas", &self.wait_replicas)
            .field("wait_timeout_ms", &self.wait_timeout_ms)
            .finish()
    }
}

/// A Redis URL, by the backend's own rule (secret: the reason never repeats it).
fn redis_url(s: &str) -> Result<String, String> {
    #[cfg(feature = "redis")]
    vss_backend_redis::RedisConfig::new(s)
        .check()
        .map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

impl RedisSettings {
    /// Runs the backend's own checks of the settings together (a CA file
    /// needs a TLS URL), naming the settings involved.
    pub(super) fn checked(self, origins: &Origins) -> Result<Self, ConfigError> {
        #[cfg(feature = "redis")]
        if let Err(err) = self.backend_config().check() {
            return Err(ConfigError::Conflict(format!(
                "{err} ({} with {})",
                origins.setting("redis_config.tls_ca_file").names(),
                origins.setting("redis_config.url").names()
            )));
        }
        let _ = origins;
        Ok(self)
    }
}

#[cfg(feature = "redis")]
impl RedisSettings {
    fn backend_config(&self) -> vss_backend_redis::RedisConfig {
        vss_backend_redis::RedisConfig {
            allow_volatile: self.allow_volatile,
            tls_ca_file: self.tls_ca_file.clone(),
            wait_replicas: self.wait_replicas,
            wait_timeout: std::time::Duration::from_millis(self.wait_timeout_ms),
            ..vss_backend_redis::RedisConfig::new(self.url.clone())
        }
    }

    /// Connects, runs the durability guard (which logs each warning once) and loads the scripts.
    pub(crate) async fn open(
        &self,
    ) -> Result<std::sync::Arc<dyn vss_core::KvStore>, super::BackendError> {
        Ok(self.open_admin().await?)
    }

    /// Connects, with the admin interface (which refuses to work on Redis Cluster).
    pub(crate) async fn open_admin(
        &self,
    ) -> Result<std::sync::Arc<dyn vss_core::AdminStore>, super::BackendError> {
        use vss_backend_redis::{RedisError, RedisStore};
        let store = RedisStore::connect(self.backend_config())
            .await
            .map_err(|e| match e {
                RedisError::NotDurable(_) => super::BackendError::open("redis", e)
                    .naming::<Self>("allow_volatile", "redis_config.allow_volatile"),
                e => super::BackendError::open("redis", e),
            })?;
        let url = vss_backend_redis::redact_url(&self.url);
        tracing::info!(%url, "connected to Redis");
        Ok(std::sync::Arc::new(store))
    }
}
