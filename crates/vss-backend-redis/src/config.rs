//! How to reach Redis and how careful to be with it.

use std::path::PathBuf;
use std::time::Duration;

use vss_core::StoreLimits;

/// Configuration of a [`crate::RedisStore`].
///
/// Build it with [`RedisConfig::new`] and change the fields you need:
///
/// ```
/// use vss_backend_redis::RedisConfig;
///
/// let config = RedisConfig {
///     pool_size: 8,
///     ..RedisConfig::new("rediss://vss:secret@redis.internal:6380")
/// };
/// assert!(!config.allow_volatile);
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    /// Where Redis is: `redis://[[user]:password@]host[:port][/db]`, `rediss://…` for
    /// TLS (the server's certificate is checked against the system's roots, or
    /// [`RedisConfig::tls_ca_file`]), or `redis-cluster://host:port?node=host2:port2`
    /// (`rediss-cluster://` with TLS) for a Redis Cluster.
    pub url: String,
    /// A PEM file of the CA certificates that signed the server's certificate,
    /// trusted instead of the system's roots (for a private CA). Needs a
    /// `rediss://` URL. Default `None`.
    pub tls_ca_file: Option<PathBuf>,
    /// Start even when the server persists nothing (or its persistence cannot be
    /// checked, or it may evict keys). Wallet state on such a server can vanish:
    /// only for tests and throwaway deployments. Default `false`.
    pub allow_volatile: bool,
    /// Connections kept open; each one multiplexes many concurrent requests. Default 4.
    pub pool_size: usize,
    /// Prefix of every Redis key this backend writes, so one Redis can be shared
    /// (must not contain `{` or `}`). Default `"vss"`.
    pub namespace: String,
    /// How long one command may take before it fails with an internal error
    /// (its outcome is then unknown, as with any lost reply). Default 10 s.
    pub command_timeout: Duration,
    /// How long opening a connection (TCP and TLS) may take. Default 10 s.
    pub connect_timeout: Duration,
    /// Most sorted-set entries one `listKeyVersions` call scans while looking for
    /// keys that match a prefix. A sparse prefix then gives a short page (with a
    /// token that resumes after the scanned entries) instead of unbounded work.
    /// Must exceed `limits.max_page_size`. Default 1000.
    pub list_scan_limit: usize,
    /// Replicas that must confirm every write before it is answered: after a
    /// write's script, `WAIT wait_replicas` on the primary that ran it. Redis
    /// replicates asynchronously, so without it a failover that promotes a
    /// replica loses the writes that replica had not received, acknowledged
    /// or not. With one replica per primary, 1 makes every acknowledged write
    /// survive the loss of its primary. A write not confirmed within
    /// `wait_timeout` (a replica down or lagging) answers INTERNAL: it is on
    /// the primary but not known to be on a replica, and clients retry.
    /// Default 0: no wait (for a server without replicas).
    pub wait_replicas: u32,
    /// How long a write waits for `wait_replicas` confirmations. Default 2 s.
    pub wait_timeout: Duration,
    /// What the store declares to clients (items per put, page sizes). The
    /// store lowers `max_value_size` to what the server takes, and sets
    /// `enforces_quotas` itself (true on a standalone server, false on Redis
    /// Cluster), whatever is given here.
    pub limits: StoreLimits,
}

impl RedisConfig {
    /// The defaults, for the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            tls_ca_file: None,
            allow_volatile: false,
            pool_size: 4,
            namespace: "vss".to_string(),
            command_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            list_scan_limit: 1000,
            wait_replicas: 0,
            wait_timeout: Duration::from_secs(2),
            limits: StoreLimits::default(),
        }
    }
}

impl Default for RedisConfig {
    /// The defaults, for a server on `redis://127.0.0.1:6379`.
    fn default() -> Self {
        RedisConfig::new("redis://127.0.0.1:6379")
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("tls_ca_file", &self.tls_ca_file)
            .field("allow_volatile", &self.allow_volatile)
            .field("pool_size", &self.pool_size)
            .field("namespace", &self.namespace)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("list_scan_limit", &self.list_scan_limit)
            .field("wait_replicas", &self.wait_replicas)
            .field("wait_timeout", &self.wait_timeout)
            .field("limits", &self.limits)
            .finish()
    }
}

/// `url` with the password of its user info replaced by `***`, fit for logs
/// and `Debug` output.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{}:***{}", &url[..scheme_end + 3], user, &rest[at..])
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_debug_output() {
        let config = RedisConfig::new("rediss://vss:s3cret@host:6380/0");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("rediss://vss:***@host:6380/0"), "{shown}");
        assert_eq!(redact_url("redis://:pw@h"), "redis://:***@h");
        assert_eq!(redact_url("redis://h:1/0"), "redis://h:1/0");
    }

    #[test]
    fn a_wait_for_replicas_needs_a_time_bound() {
        let config = |wait_replicas, wait_timeout| RedisConfig {
            wait_replicas,
            wait_timeout,
            ..RedisConfig::default()
        };
        assert!(config(0, Duration::ZERO).check().is_ok());
        assert!(config(1, Duration::from_millis(1)).check().is_ok());
        let err = config(1, Duration::from_micros(999)).check().unwrap_err();
        assert!(err.to_string().contains("wait_timeout"), "{err}");
    }
}
