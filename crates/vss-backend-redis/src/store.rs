//! [`RedisStore`]: the [`KvStore`] on Redis.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fred::clients::Pool;
use fred::interfaces::{
    ClientLike, ClusterInterface, ConfigInterface, EventInterface, HashesInterface,
};
use fred::types::config::{Config, ReconnectPolicy};
use fred::types::scripts::Script;
use fred::types::{ClusterHash, CustomCommand, InfoKind, Key, Value};
use vss_core::proto::{
    DeleteObjectRequest, DeleteObjectResponse, GetObjectRequest, GetObjectResponse, KeyValue,
    ListKeyVersionsRequest, ListKeyVersionsResponse, PutObjectRequest, PutObjectResponse,
};
use vss_core::validate::{self, DeleteCondition, GetTarget, ListedKey, WriteCondition};
use vss_core::{KvStore, Quota, StoreLimits, Usage, UserToken, VssError};

use crate::config::redact_url;
use crate::durability;
use crate::keys::{self, StoreKeys};
use crate::{usage, RedisConfig, RedisError};

// The scripts that write share usage.lua; the shebang must be the first line.
const PUT_LUA: &str = concat!(
    "#!lua\n",
    include_str!("lua/usage.lua"),
    include_str!("lua/put.lua")
);
const DELETE_LUA: &str = concat!(
    "#!lua\n",
    include_str!("lua/usage.lua"),
    include_str!("lua/delete.lua")
);
const COUNT_LUA: &str = concat!(
    "#!lua\n",
    include_str!("lua/usage.lua"),
    include_str!("lua/count.lua")
);
const LIST_LUA: &str = include_str!("lua/list.lua");
const READ_ITEMS_LUA: &str = include_str!("lua/read_items.lua");
const WRITE_ITEMS_LUA: &str = concat!(
    "#!lua\n",
    include_str!("lua/usage.lua"),
    include_str!("lua/write_items.lua")
);
const DELETE_STORE_LUA: &str = concat!(
    "#!lua\n",
    include_str!("lua/usage.lua"),
    include_str!("lua/delete_store.lua")
);

/// The largest value a store declares ([`StoreLimits::max_value_size`]) when
/// the server's `proto-max-bulk-len` cannot be read (`CONFIG GET` denied, as
/// on many managed services): Redis's default of 512 MiB, less 1 MiB of
/// headroom in case the service set it a little lower.
pub const MAX_VALUE_SIZE_WITHOUT_CONFIG: usize = (512 << 20) - (1 << 20);

/// Redis strings hold at most 512 MiB, whatever `proto-max-bulk-len` allows.
const REDIS_STRING_MAX: u64 = 512 << 20;

/// Quota limits at or above this are sent as no limit: Lua compares numbers
/// as `f64`, exact below 2^53, and no usage comes near it.
const LARGEST_EXACT_LIMIT: u64 = 1 << 53;

/// A VSS store on Redis (or Valkey), 7.0 or newer.
///
/// Cheap to share behind an `Arc`; every request uses one pooled, multiplexed
/// connection, and connections come back by themselves after Redis restarts.
pub struct RedisStore {
    pub(crate) pool: Pool,
    pub(crate) namespace: String,
    list_scan_limit: usize,
    limits: StoreLimits,
    put_script: Script,
    delete_script: Script,
    list_script: Script,
    pub(crate) read_items_script: Script,
    pub(crate) write_items_script: Script,
    pub(crate) delete_store_script: Script,
    /// Whether users' usage is kept (a standalone server), so that quotas work.
    pub(crate) keeps_usage: bool,
    /// Replicas that confirm each write, and how long to wait for them.
    wait_replicas: u32,
    wait_timeout: Duration,
    durability_warnings: Vec<String>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("namespace", &self.namespace)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Reconnections of pooled connections (after a restart, a failover or a
/// network break), counted through the `metrics` facade. Commands are never
/// resent: a request whose connection broke answers INTERNAL.
pub const RECONNECTS_TOTAL: &str = "vss_redis_reconnects_total";

/// Registers the help text of [`RECONNECTS_TOTAL`] with the recorder installed now.
pub fn describe_metrics() {
    metrics::describe_counter!(
        RECONNECTS_TOTAL,
        "Reconnections of pooled Redis connections (restart, failover, network break)."
    );
}

impl RedisStore {
    /// Connects, runs the durability guard, reads the largest value the
    /// server takes, loads the Lua scripts and, on a standalone server the
    /// first time, counts the usage of data written before usage was kept
    /// (see the crate docs, "Quotas"): it returns once every store is counted.
    ///
    /// Fails when Redis cannot be reached, when the configuration is unusable,
    /// or with [`RedisError::NotDurable`] when the server could lose
    /// acknowledged writes and [`RedisConfig::allow_volatile`] is not set.
    pub async fn connect(config: RedisConfig) -> Result<RedisStore, RedisError> {
        let fred_config = client_config(&config)?;
        let pool = fred::types::Builder::from_config(fred_config)
            .with_connection_config(|c| {
                c.connection_timeout = config.connect_timeout;
                c.internal_command_timeout = config.connect_timeout;
                // Never resend a command whose connection broke: a put that did
                // run would answer CONFLICT the second time. The caller gets an
                // internal error instead, which wallets retry.
                c.max_command_attempts = 1;
            })
            .with_performance_config(|p| {
                p.default_command_timeout = config.command_timeout;
            })
            // Reconnect forever, backing off to at most 2 s between tries.
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
            .build_pool(config.pool_size)
            .map_err(RedisError::redis("building the connection pool"))?;
        pool.init().await.map_err(RedisError::redis("connecting"))?;
        for client in pool.clients() {
            // The listener ends with the client.
            let _listener = client.on_reconnect(|_server| async {
                metrics::counter!(RECONNECTS_TOTAL).increment(1);
                Ok(())
            });
        }

        let mut durability_warnings = match guard(&pool, config.allow_volatile).await {
            Ok(warnings) => warnings,
            Err(e) => {
                let _ = pool.quit().await;
                return Err(e);
            }
        };
        if config.wait_replicas == 0 && has_cluster_replicas(&pool).await {
            let warning = "Redis Cluster fails over to replicas that receive writes \
                           asynchronously: writes acknowledged shortly before a primary is lost \
                           can be missing after the failover; set wait_replicas to 1 (one \
                           replica per primary) so that every write is confirmed by a replica \
                           before it is answered"
                .to_string();
            tracing::warn!("{warning}");
            durability_warnings.push(warning);
        }

        // Usage lives in a key of its own per user, in another cluster slot
        // than the stores: only a standalone server runs such scripts.
        let keeps_usage = runs_cross_slot_scripts(&pool).await;
        let max_value_size = server_max_value_size(&pool).await;
        let limits = StoreLimits {
            max_value_size: config.limits.max_value_size.min(max_value_size),
            enforces_quotas: keeps_usage,
            ..config.limits
        };

        let store = RedisStore {
            pool,
            namespace: config.namespace,
            list_scan_limit: config.list_scan_limit,
            limits,
            put_script: Script::from_lua(PUT_LUA),
            delete_script: Script::from_lua(DELETE_LUA),
            list_script: Script::from_lua(LIST_LUA),
            read_items_script: Script::from_lua(READ_ITEMS_LUA),
            write_items_script: Script::from_lua(WRITE_ITEMS_LUA),
            delete_store_script: Script::from_lua(DELETE_STORE_LUA),
            keeps_usage,
            wait_replicas: config.wait_replicas,
            wait_timeout: config.wait_timeout,
            durability_warnings,
        };
        for script in [
            &store.put_script,
            &store.delete_script,
            &store.list_script,
            &store.read_items_script,
            &store.write_items_script,
            &store.delete_store_script,
        ] {
            if let Err(source) = script.load(store.pool.next()).await {
                let _ = store.pool.quit().await;
                return Err(RedisError::Redis {
                    context: "loading the Lua scripts (Redis 7.0 or newer is required)",
                    source,
                });
            }
        }
        if keeps_usage {
            let count_script = Script::from_lua(COUNT_LUA);
            if let Err(e) =
                usage::count_existing(&store.pool, &store.namespace, &count_script).await
            {
                let _ = store.pool.quit().await;
                return Err(e);
            }
        }
        Ok(store)
    }

    /// The usage of `user` over all their stores, as kept for quotas: bytes
    /// of keys plus values, and keys. `None` on Redis Cluster, where usage is
    /// not kept.
    pub async fn usage(&self, user: &UserToken) -> Result<Option<Usage>, VssError> {
        if !self.keeps_usage {
            return Ok(None);
        }
        let answer: Value = self
            .pool
            .hmget(
                Bytes::from(keys::usage_key(&self.namespace, user)),
                vec!["bytes", "keys"],
            )
            .await
            .map_err(|e| VssError::internal(format!("redis usage: {e}")))?;
        let mut parts = array(answer, "usage")?.into_iter();
        let mut field = |what| -> Result<u64, VssError> {
            match next(&mut parts, "usage")? {
                Value::Null => Ok(0),
                // Never below zero, as the scripts read it.
                stored => Ok(u64::try_from(decimal(stored, what)?).unwrap_or(0)),
            }
        };
        Ok(Some(Usage {
            bytes: field("usage bytes")?,
            keys: field("usage keys")?,
        }))
    }

    /// What the durability guard warned about at startup (also logged), empty
    /// when every server runs AOF with `appendfsync always`.
    pub fn durability_warnings(&self) -> &[String] {
        &self.durability_warnings
    }

    fn keys(&self, user: &UserToken, store_id: &str) -> StoreKeys {
        StoreKeys::new(&self.namespace, user, store_id)
    }

    /// The KEYS of a script on one store: its hash and sorted set, then,
    /// for a script that writes and when usage is kept, the user's usage hash.
    fn script_keys(&self, keys: StoreKeys, writes: bool) -> Vec<Key> {
        let mut redis_keys = vec![
            Key::from(Bytes::from(keys.hash)),
            Key::from(Bytes::from(keys.order)),
        ];
        if writes && self.keeps_usage {
            redis_keys.push(Key::from(Bytes::from(keys.usage)));
        }
        redis_keys
    }

    /// Runs a script by SHA, loading it again when the server answers NOSCRIPT
    /// (after a restart or `SCRIPT FLUSH`). A script that `writes` is answered
    /// only once [`RedisConfig::wait_replicas`] replicas confirmed it.
    pub(crate) async fn run(
        &self,
        script: &Script,
        what: &'static str,
        redis_keys: Vec<Key>,
        args: Vec<Value>,
        writes: bool,
    ) -> Result<Value, VssError> {
        if writes {
            vss_core::deadline::ensure("redis write")?;
        }
        let client = self.pool.next();
        // Every key of a script shares one slot: the primary that runs it.
        let slot = redis_keys.first().map(Key::cluster_hash);
        let answer = script
            .evalsha_with_reload::<Value, _, _>(client, redis_keys, args)
            .await
            .map_err(|e| VssError::internal(format!("redis {what} script: {e}")))?;
        if writes && self.wait_replicas > 0 {
            self.confirm_replicated(client, slot, what).await?;
        }
        Ok(answer)
    }

    /// `WAIT` on the connection that ran a write, at the primary of `slot`:
    /// succeeds once `wait_replicas` replicas hold everything written on it.
    async fn confirm_replicated(
        &self,
        client: &fred::clients::Client,
        slot: Option<u16>,
        what: &'static str,
    ) -> Result<(), VssError> {
        let timeout_ms = i64::try_from(self.wait_timeout.as_millis()).unwrap_or(i64::MAX);
        let wait = CustomCommand::new_static("WAIT", ClusterHash::from(slot), false);
        let confirmed: i64 = client
            .custom(wait, vec![i64::from(self.wait_replicas), timeout_ms])
            .await
            .map_err(|e| VssError::internal(format!("redis {what}: WAIT for replicas: {e}")))?;
        if confirmed < i64::from(self.wait_replicas) {
            return Err(VssError::internal(format!(
                "redis {what}: {confirmed} of {} replicas confirmed the write within {:?} \
                 (wait_replicas); it is on the primary but could be lost in a failover",
                self.wait_replicas, self.wait_timeout
            )));
        }
        Ok(())
    }
}

impl RedisConfig {
    /// Checks what can be checked without a server: the URL's scheme, a CA
    /// file only with TLS, the pool size, the namespace and the scan limit.
    /// [`RedisStore::connect`] runs it first; a configuration front end can
    /// run it early, to refuse a bad configuration before connecting.
    pub fn check(&self) -> Result<(), RedisError> {
        let Some((_, tls)) = plain_url(&self.url) else {
            return Err(RedisError::Config(
                "the URL's scheme must be redis, rediss, redis-cluster or rediss-cluster".into(),
            ));
        };
        if self.tls_ca_file.is_some() && !tls {
            return Err(RedisError::Config(
                "tls_ca_file is set but the URL does not use TLS (rediss:// or rediss-cluster://)"
                    .into(),
            ));
        }
        if self.pool_size == 0 {
            return Err(RedisError::Config("pool_size must be at least 1".into()));
        }
        if !keys::valid_namespace(&self.namespace) {
            return Err(RedisError::Config(
                "namespace must not contain `{` or `}` (they delimit the cluster hash tag)".into(),
            ));
        }
        let max_page = usize::try_from(self.limits.max_page_size).unwrap_or(0);
        if self.list_scan_limit <= max_page {
            return Err(RedisError::Config(format!(
                "list_scan_limit ({}) must exceed limits.max_page_size ({max_page})",
                self.list_scan_limit
            )));
        }
        // `WAIT n 0` would block until the replicas answer, however long.
        if self.wait_replicas > 0 && self.wait_timeout.as_millis() == 0 {
            return Err(RedisError::Config(
                "wait_timeout must be at least 1 ms when wait_replicas is set".into(),
            ));
        }
        Ok(())
    }
}

/// The URL fred is given (TLS is set up here, so `rediss` becomes `redis`)
/// and whether it uses TLS; `None` for a scheme that is not Redis's.
fn plain_url(url: &str) -> Option<(String, bool)> {
    match url.split_once("://") {
        Some(("rediss", rest)) => Some((format!("redis://{rest}"), true)),
        Some(("rediss-cluster", rest)) => Some((format!("redis-cluster://{rest}"), true)),
        Some(("redis" | "redis-cluster", _)) => Some((url.to_string(), false)),
        _ => None,
    }
}

/// The client configuration for the URL, with TLS set up here rather than by
/// the client library: with an explicit crypto provider (so it cannot clash
/// with other TLS users in the same binary) and an optional private CA.
fn client_config(config: &RedisConfig) -> Result<Config, RedisError> {
    config.check()?;
    let bad_url = |e: &dyn std::fmt::Display| {
        RedisError::Config(format!("cannot use URL {}: {e}", redact_url(&config.url)))
    };
    let Some((url, tls)) = plain_url(&config.url) else {
        return Err(bad_url(&"not a Redis URL"));
    };
    let mut fred_config = Config::from_url(&url).map_err(|e| bad_url(&e))?;
    if tls {
        fred_config.tls = Some(tls_config(config.tls_ca_file.as_deref())?.into());
    }
    Ok(fred_config)
}

fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, RedisError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let unreadable = |e: &dyn std::fmt::Display| {
                RedisError::Config(format!("cannot read tls_ca_file {}: {e}", path.display()))
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))? {
                roots
                    .add(cert.map_err(|e| unreadable(&e))?)
                    .map_err(|e| unreadable(&e))?;
            }
        }
        None => {
            let (added, _ignored) =
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if added == 0 {
                return Err(RedisError::Config(
                    "no trusted root certificates found on this system for rediss://; \
                     set tls_ca_file"
                        .into(),
                ));
            }
        }
    }
    if roots.is_empty() {
        return Err(RedisError::Config(
            "tls_ca_file holds no certificate".into(),
        ));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RedisError::Config(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Whether this is a Redis Cluster with replicas, which a failover promotes.
async fn has_cluster_replicas(pool: &Pool) -> bool {
    let client = pool.next();
    if !client.is_clustered() {
        return false;
    }
    let nodes = CustomCommand::new_static("CLUSTER", ClusterHash::Random, false);
    match client.custom::<String, _>(nodes, vec!["NODES"]).await {
        // `<id> <addr> <flags> ...`, one line per node; flags name a replica `slave`.
        Ok(nodes) => nodes.lines().any(|line| {
            line.split(' ')
                .nth(2)
                .is_some_and(|flags| flags.split(',').any(|flag| flag == "slave"))
        }),
        Err(e) => {
            tracing::info!("cannot read CLUSTER NODES ({e}); taking the cluster as replicated");
            true
        }
    }
}

/// Whether scripts may touch keys of different cluster slots: not on Redis
/// Cluster, whether reached as one or, through a plain URL, as one of its
/// nodes (`INFO cluster` says `cluster_enabled:1`).
async fn runs_cross_slot_scripts(pool: &Pool) -> bool {
    let client = pool.next();
    if client.is_clustered() {
        return false;
    }
    match client.info::<String>(Some(InfoKind::Cluster)).await {
        Ok(info) if durability::info_field(&info, "cluster_enabled") == Some("1") => {
            tracing::warn!(
                "this Redis runs in cluster mode but the URL is not a redis-cluster:// one; \
                 keeping no usage, so quotas are off"
            );
            false
        }
        Ok(_) => true,
        Err(e) => {
            tracing::info!("cannot read INFO cluster ({e}); taking the server as standalone");
            true
        }
    }
}

/// The largest value every primary takes: the smallest `proto-max-bulk-len`
/// (a value is one bulk argument of `EVALSHA`, and Redis takes one of exactly
/// that length), and at most [`REDIS_STRING_MAX`]. When a server does not
/// answer `CONFIG GET`, [`MAX_VALUE_SIZE_WITHOUT_CONFIG`], logged at info.
async fn server_max_value_size(pool: &Pool) -> usize {
    async fn read<C: ConfigInterface + Sync>(client: &C) -> Result<u64, String> {
        let mut answer: HashMap<String, String> = client
            .config_get("proto-max-bulk-len")
            .await
            .map_err(|e| e.to_string())?;
        let value = answer
            .remove("proto-max-bulk-len")
            .ok_or("no proto-max-bulk-len in the answer")?;
        value
            .trim()
            .parse()
            .map_err(|_| format!("proto-max-bulk-len `{value}` is not a number"))
    }

    let client = pool.next();
    let answers = if client.is_clustered() {
        let nodes = client
            .cached_cluster_state()
            .map(|state| state.unique_primary_nodes())
            .unwrap_or_default();
        let mut answers = Vec::with_capacity(nodes.len());
        for node in nodes {
            answers.push(read(&client.with_cluster_node(node)).await);
        }
        answers
    } else {
        vec![read(client).await]
    };
    let mut max = REDIS_STRING_MAX;
    for answer in answers {
        match answer {
            Ok(limit) => max = max.min(limit),
            Err(e) => {
                tracing::info!(
                    "cannot read the server's proto-max-bulk-len ({e}); values are limited to \
                     {MAX_VALUE_SIZE_WITHOUT_CONFIG} bytes"
                );
                return MAX_VALUE_SIZE_WITHOUT_CONFIG;
            }
        }
    }
    usize::try_from(max).unwrap_or(usize::MAX)
}

/// Reads every primary's persistence settings; refuses volatile servers unless allowed.
async fn guard(pool: &Pool, allow_volatile: bool) -> Result<Vec<String>, RedisError> {
    let client = pool.next();
    let mut verdicts = Vec::new();
    if client.is_clustered() {
        let nodes = client
            .cached_cluster_state()
            .map(|state| state.unique_primary_nodes())
            .unwrap_or_default();
        if nodes.is_empty() {
            return Err(RedisError::NotDurable(
                "the cluster reported no primary nodes to check".into(),
            ));
        }
        for node in nodes {
            let evidence = durability::read(&client.with_cluster_node(node.clone())).await;
            verdicts.push((node.to_string(), durability::assess(&evidence)));
        }
    } else {
        let evidence = durability::read(client).await;
        verdicts.push((String::new(), durability::assess(&evidence)));
    }

    let mut warnings = Vec::new();
    for (node, verdict) in verdicts {
        let on = |msg: String| {
            if node.is_empty() {
                msg
            } else {
                format!("{node}: {msg}")
            }
        };
        for refusal in verdict.refusals {
            if !allow_volatile {
                return Err(RedisError::NotDurable(format!(
                    "{} (set allow_volatile to start anyway)",
                    on(refusal)
                )));
            }
            let msg = on(format!(
                "{refusal}; starting anyway because allow_volatile is set"
            ));
            tracing::warn!("{msg}");
            warnings.push(msg);
        }
        for warning in verdict.warnings {
            let msg = on(warning);
            tracing::warn!("{msg}");
            warnings.push(msg);
        }
    }
    Ok(warnings)
}

#[async_trait]
impl KvStore for RedisStore {
    async fn get(
        &self,
        user: &UserToken,
        req: GetObjectRequest,
    ) -> Result<GetObjectResponse, VssError> {
        let target = validate::get(&req)?;
        let keys = self.keys(user, &req.store_id);
        let value = match target {
            GetTarget::GlobalVersion => {
                let stored: Value = self
                    .pool
                    .hget(Bytes::from(keys.hash), keys::GLOBAL_VERSION_FIELD)
                    .await
                    .map_err(|e| VssError::internal(format!("redis get global version: {e}")))?;
                let version = match stored {
                    Value::Null => 0,
                    other => decimal(other, "global version")?,
                };
                validate::global_version_key_value(version)
            }
            GetTarget::Key(key) => {
                // One HMGET reads version and value atomically.
                let fields = vec![
                    Key::from(Bytes::from(keys::version_field(&key))),
                    Key::from(Bytes::from(keys::value_field(&key))),
                ];
                let answer: Value = self
                    .pool
                    .hmget(Bytes::from(keys.hash), fields)
                    .await
                    .map_err(|e| VssError::internal(format!("redis get: {e}")))?;
                let mut parts = array(answer, "get")?.into_iter();
                let (version, value) = match (parts.next(), parts.next()) {
                    (Some(Value::Null), _) | (None, _) => return Err(VssError::no_such_key(&key)),
                    (Some(version), Some(value)) => {
                        (decimal(version, "version")?, bytes(value, "value")?)
                    }
                    (Some(_), None) => return Err(VssError::internal("redis get: short reply")),
                };
                KeyValue {
                    key,
                    version,
                    value,
                }
            }
        };
        Ok(GetObjectResponse { value: Some(value) })
    }

    async fn put(
        &self,
        user: &UserToken,
        req: PutObjectRequest,
    ) -> Result<PutObjectResponse, VssError> {
        self.put_with_quota(user, req, Quota::UNLIMITED).await
    }

    async fn put_with_quota(
        &self,
        user: &UserToken,
        req: PutObjectRequest,
        quota: Quota,
    ) -> Result<PutObjectResponse, VssError> {
        if !self.keeps_usage && !quota.is_unlimited() {
            return Err(VssError::internal(
                "a put carries a quota, but quotas need a standalone Redis: on Redis Cluster a \
                 user's usage and their stores are in different slots",
            ));
        }
        let plan = validate::put(req, &self.limits)?;
        let keys = self.keys(user, &plan.store_id);

        let mut args = Vec::with_capacity(6 + 5 * plan.writes.len() + 3 * plan.deletes.len());
        match plan.global_version {
            Some(expected) => {
                args.push(Value::from(expected.to_string()));
                args.push(Value::from(expected.saturating_add(1).to_string()));
            }
            None => {
                args.push(Value::from(""));
                args.push(Value::from(""));
            }
        }
        args.push(Value::from(plan.writes.len().to_string()));
        args.push(Value::from(plan.deletes.len().to_string()));
        args.push(limit_arg(quota.max_bytes));
        args.push(limit_arg(quota.max_keys));
        for write in &plan.writes {
            let (condition, expected) = match write.condition {
                WriteCondition::MustNotExist => ("n", String::new()),
                WriteCondition::VersionIs(v) => ("v", v.to_string()),
                WriteCondition::Any => ("a", String::new()),
            };
            args.push(Value::from(write.key.as_str()));
            args.push(Value::from(condition));
            args.push(Value::from(expected));
            args.push(Value::from(write.condition.new_version().to_string()));
            args.push(Value::Bytes(write.value.clone()));
        }
        for delete in &plan.deletes {
            let (condition, expected) = match delete.condition {
                DeleteCondition::VersionIs(v) => ("v", v.to_string()),
                DeleteCondition::Exists => ("e", String::new()),
            };
            args.push(Value::from(delete.key.as_str()));
            args.push(Value::from(condition));
            args.push(Value::from(expected));
        }

        let answer = self
            .run(
                &self.put_script,
                "put",
                self.script_keys(keys, true),
                args,
                true,
            )
            .await?;
        let mut parts = array(answer, "put")?.into_iter();
        let outcome = parts.next().map(|v| text(v, "put outcome")).transpose()?;
        match outcome.as_deref() {
            Some("ok") => Ok(PutObjectResponse {}),
            Some("g") => {
                let stored = decimal(next(&mut parts, "put")?, "global version")?;
                Err(plan.global_version_conflict(stored))
            }
            Some("w") => {
                let index = index(next(&mut parts, "put")?)?;
                match plan.writes.get(index) {
                    Some(write) => Err(validate::write_conflict(&write.key)),
                    None => Err(VssError::internal("redis put: bad write index")),
                }
            }
            Some("d") => {
                let index = index(next(&mut parts, "put")?)?;
                match plan.deletes.get(index) {
                    Some(delete) => Err(validate::delete_conflict(&delete.key)),
                    None => Err(VssError::internal("redis put: bad delete index")),
                }
            }
            Some("q") => {
                let mut usage = || -> Result<Usage, VssError> {
                    Ok(Usage {
                        bytes: measure(next(&mut parts, "put")?)?,
                        keys: measure(next(&mut parts, "put")?)?,
                    })
                };
                let (before, after) = (usage()?, usage()?);
                // The script judged by the same rule; admit builds the message.
                quota.admit(before, after)?;
                Err(VssError::internal(format!(
                    "redis put: the script refused a put the quota admits \
                     ({before:?} to {after:?} under {quota:?})"
                )))
            }
            _ => Err(VssError::internal(format!(
                "redis put: unexpected outcome {outcome:?}"
            ))),
        }
    }

    async fn delete(
        &self,
        user: &UserToken,
        req: DeleteObjectRequest,
    ) -> Result<DeleteObjectResponse, VssError> {
        let plan = validate::delete(req)?;
        let keys = self.keys(user, &plan.store_id);
        let expected = plan.version.map(|v| v.to_string()).unwrap_or_default();
        let args = vec![Value::from(plan.key.as_str()), Value::from(expected)];
        let answer = self
            .run(
                &self.delete_script,
                "delete",
                self.script_keys(keys, true),
                args,
                true,
            )
            .await?;
        match answer {
            Value::Integer(0 | 1) => Ok(DeleteObjectResponse {}),
            other => Err(VssError::internal(format!(
                "redis delete: unexpected reply {other:?}"
            ))),
        }
    }

    async fn list_key_versions(
        &self,
        user: &UserToken,
        req: ListKeyVersionsRequest,
    ) -> Result<ListKeyVersionsResponse, VssError> {
        let plan = validate::list(user, req, &self.limits)?;
        let keys = self.keys(user, &plan.store_id);
        let upper = match plan.before_sequence {
            Some(before) => format!("({before}"),
            None => "+inf".to_string(),
        };
        let wanted = plan.fetch_limit();
        let args = vec![
            Value::from(upper),
            Value::from(plan.prefix.as_str()),
            Value::from(wanted.to_string()),
            Value::from(self.list_scan_limit.to_string()),
        ];
        let answer = self
            .run(
                &self.list_script,
                "list",
                self.script_keys(keys, false),
                args,
                false,
            )
            .await?;
        let mut parts = array(answer, "list")?.into_iter();
        let global_version = decimal(next(&mut parts, "list")?, "global version")?;
        let stopped_at = text(next(&mut parts, "list")?, "list position")?;
        let mut rows = Vec::with_capacity(wanted);
        while let Some(key) = parts.next() {
            let key = text(key, "listed key")?;
            let version = decimal(next(&mut parts, "list")?, "listed version")?;
            let sequence = decimal(next(&mut parts, "list")?, "listed sequence")?;
            rows.push(ListedKey {
                key,
                version,
                sequence,
            });
        }

        // When the scan budget ran out before the page filled, everything down
        // to `stopped_at` was looked at, so the next page starts below it.
        let stopped_at = match stopped_at.as_str() {
            "" => None,
            position => Some(decimal(Value::from(position), "list position")?),
        };
        Ok(plan.respond_scanned(rows, stopped_at, global_version))
    }

    fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// `PING` on a pooled connection.
    async fn ready(&self) -> Result<(), VssError> {
        self.pool
            .next()
            .ping::<()>(None)
            .await
            .map_err(|e| VssError::internal(format!("redis ping: {e}")))
    }

    async fn close(&self) -> Result<(), VssError> {
        self.pool
            .quit()
            .await
            .map_err(|e| VssError::internal(format!("redis quit: {e}")))
    }
}

pub(crate) fn array(value: Value, what: &str) -> Result<Vec<Value>, VssError> {
    match value {
        Value::Array(values) => Ok(values),
        other => Err(VssError::internal(format!(
            "redis {what}: expected an array, got {other:?}"
        ))),
    }
}

pub(crate) fn next(parts: &mut impl Iterator<Item = Value>, what: &str) -> Result<Value, VssError> {
    parts
        .next()
        .ok_or_else(|| VssError::internal(format!("redis {what}: short reply")))
}

pub(crate) fn bytes(value: Value, what: &str) -> Result<Bytes, VssError> {
    match value {
        Value::Bytes(b) => Ok(b),
        Value::String(s) => Ok(s.inner().clone()),
        other => Err(VssError::internal(format!(
            "redis: {what} is not a string: {other:?}"
        ))),
    }
}

pub(crate) fn text(value: Value, what: &str) -> Result<String, VssError> {
    String::from_utf8(bytes(value, what)?.to_vec())
        .map_err(|_| VssError::internal(format!("redis: {what} is not UTF-8")))
}

/// A decimal integer, sent as a string or an integer.
pub(crate) fn decimal(value: Value, what: &str) -> Result<i64, VssError> {
    match value {
        Value::Integer(i) => Ok(i),
        other => {
            let s = text(other, what)?;
            s.parse()
                .map_err(|_| VssError::internal(format!("redis: {what} `{s}` is not an integer")))
        }
    }
}

/// A quota limit as the put script takes it: a decimal, or `''` for none.
fn limit_arg(limit: Option<u64>) -> Value {
    match limit {
        Some(max) if max < LARGEST_EXACT_LIMIT => Value::from(max.to_string()),
        _ => Value::from(""),
    }
}

/// A usage measure from a script: a decimal that is never negative.
fn measure(value: Value) -> Result<u64, VssError> {
    let n = decimal(value, "usage")?;
    u64::try_from(n).map_err(|_| VssError::internal(format!("redis: negative usage {n}")))
}

/// A 1-based index from a script, as a 0-based one.
fn index(value: Value) -> Result<usize, VssError> {
    let i = decimal(value, "index")?;
    usize::try_from(i)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .ok_or_else(|| VssError::internal(format!("redis: bad index {i}")))
}
