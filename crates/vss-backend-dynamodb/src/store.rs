//! `DynamoDbStore`: connecting, reads, deletes, listings and maintenance.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use bytes::Bytes;
use vss_core::proto::{
    DeleteObjectRequest, DeleteObjectResponse, GetObjectRequest, GetObjectResponse, KeyValue,
    ListKeyVersionsRequest, ListKeyVersionsResponse, PutObjectRequest, PutObjectResponse,
};
use vss_core::validate::{self, GetTarget, ListedKey};
use vss_core::{KvStore, Quota, StoreLimits, Usage, UserToken, VssError};

use crate::chunks::ChunkSet;
use crate::expr::{get_bin, get_num, get_str, Placeholders};
use crate::layout::{
    key_of_record, partition_key, record_sort_key, usage_partition_key, BY_SEQ_INDEX,
    GLOBAL_VERSION, METADATA_SK, PK, RECORD_PREFIX, SEQ, SK, VALUE, VERSION,
};
use crate::put::{fatal_reasons, same_value, Cancelled, Failure, PUT_ATTEMPTS};
use crate::retry::Backoff;
use crate::usage::Delta;
use crate::{DynamoDbConfig, DynamoDbError};

/// Most items one put may hold: a transaction has at most 100 actions, and
/// two of them are the store's metadata and the user's usage.
pub const MAX_ITEMS_PER_PUT: usize = 98;
/// Largest value stored inside its record; larger ones are chunked. Keeps a
/// record (value, keys and attributes) below DynamoDB's 400 KB item limit.
pub const INLINE_VALUE_LIMIT: usize = 350 * 1024;
/// Most bytes of values one put stores inline; further values are chunked, so a
/// transaction always stays below DynamoDB's 4 MB limit.
pub const INLINE_BUDGET_PER_PUT: usize = 3 * 1024 * 1024;
/// Bytes per chunk of a chunked value.
pub const CHUNK_SIZE: usize = 350 * 1024;
/// DynamoDB's limit on the items of one partition key (an "item collection",
/// here one store) in a table with a local secondary index: 10 GB, read as
/// decimal gigabytes to stay on the safe side.
const ITEM_COLLECTION_LIMIT: u64 = 10_000_000_000;
/// Most bytes a chunk item takes besides its data: the partition key (at most
/// 2048 bytes, DynamoDB's limit), the sort key, attribute names and the time.
const CHUNK_OVERHEAD: u64 = 2048 + 128;
/// Largest value a store holds, declared in [`vss_core::StoreLimits`]: the
/// chunks of a bigger value cannot fit in one store's item collection, so a
/// put with one is refused (TOO_LARGE) before anything is written. About
/// 9.9 GB; a value below it still fails (INTERNAL) when the store's other
/// data (or the value it replaces, kept until the put commits) leaves too
/// little of the collection. The chunk layout itself (a 32-bit chunk count)
/// would allow far more.
pub const MAX_VALUE_SIZE: u64 =
    ITEM_COLLECTION_LIMIT / (CHUNK_SIZE as u64 + CHUNK_OVERHEAD) * CHUNK_SIZE as u64;
/// A put that has written chunks does not start a transaction after this long,
/// so orphan cleanup with an older age limit never removes chunks a put is
/// about to commit.
pub const PUT_DEADLINE: Duration = Duration::from_secs(600);

/// Reads of a chunked value retried when it was replaced under the reader.
const READ_ATTEMPTS: u32 = 16;

/// A VSS store on one DynamoDB table; cheap to share (`Arc`) across tasks.
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    pub(crate) client: Client,
    pub(crate) table: String,
    pub(crate) chunk_concurrency: usize,
}

/// What an orphan-chunk cleanup did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Partitions (stores) examined.
    pub partitions: usize,
    /// Orphaned chunk sets (values) removed.
    pub chunk_sets_deleted: usize,
    /// Chunk items removed.
    pub chunks_deleted: usize,
}

impl DynamoDbStore {
    /// Connects to the table of `config`, creating it if it is missing and
    /// `config.create_table` is set, and checks its schema. On a table whose
    /// existing data was never counted into usage, counts it first
    /// ([`DynamoDbStore::count_existing_usage`]: one scan of the table).
    pub async fn connect(config: DynamoDbConfig) -> Result<DynamoDbStore, DynamoDbError> {
        if config.table.is_empty() {
            return Err(DynamoDbError::Config("the table name is empty".into()));
        }
        if config.chunk_concurrency == 0 || config.max_attempts == 0 {
            return Err(DynamoDbError::Config(
                "chunk_concurrency and max_attempts must be at least 1".into(),
            ));
        }
        // hyper + rustls with ring, like the rest of the workspace.
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .retry_config(RetryConfig::standard().with_max_attempts(config.max_attempts))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(config.attempt_timeout)
                    .build(),
            );
        if let Some(region) = config.region.clone() {
            loader = loader.region(Region::new(region));
        }
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(credentials) = &config.credentials {
            loader = loader.credentials_provider(Credentials::new(
                &credentials.access_key_id,
                &credentials.secret_access_key,
                None,
                None,
                "vss-config",
            ));
        }
        let sdk_config = loader.load().await;
        if sdk_config.region().is_none() {
            return Err(DynamoDbError::Config(
                "no AWS region: set `region` or AWS_REGION".into(),
            ));
        }
        let client = Client::new(&sdk_config);
        crate::schema::ensure_table(&client, &config.table, config.create_table).await?;
        let store = DynamoDbStore {
            client,
            table: config.table,
            chunk_concurrency: config.chunk_concurrency,
        };
        store.ensure_usage_counted().await?;
        Ok(store)
    }

    /// The DynamoDB client (for tooling and tests).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Removes chunks of one store that no record points to and that were
    /// written more than `min_age` ago (see the crate docs; one hour is safe).
    pub async fn cleanup_orphan_chunks(
        &self,
        user: &UserToken,
        store_id: &str,
        min_age: Duration,
    ) -> Result<CleanupReport, DynamoDbError> {
        self.cleanup_partition(&partition_key(user, store_id), min_age)
            .await
    }

    /// [`DynamoDbStore::cleanup_orphan_chunks`] for every store of the table:
    /// scans the whole table for chunks first, so run it rarely (e.g. daily).
    pub async fn cleanup_all_orphan_chunks(
        &self,
        min_age: Duration,
    ) -> Result<CleanupReport, DynamoDbError> {
        let mut total = CleanupReport::default();
        for pk in self.partitions_with_chunks().await? {
            let report = self.cleanup_partition(&pk, min_age).await?;
            total.partitions += report.partitions;
            total.chunk_sets_deleted += report.chunk_sets_deleted;
            total.chunks_deleted += report.chunks_deleted;
        }
        Ok(total)
    }

    pub(crate) fn item_key(pk: &str, sk: String) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (PK.to_string(), AttributeValue::S(pk.to_string())),
            (SK.to_string(), AttributeValue::S(sk)),
        ])
    }

    /// The store's metadata item with `attributes` (strongly consistent);
    /// `None` when the store has none (never written).
    pub(crate) async fn metadata(
        &self,
        pk: &str,
        attributes: &[&str],
    ) -> Result<Option<HashMap<String, AttributeValue>>, VssError> {
        let mut p = Placeholders::default();
        let projection = p.projection(attributes);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::item_key(pk, METADATA_SK.to_string())))
            .consistent_read(true)
            .projection_expression(projection)
            .set_expression_attribute_names(p.names())
            .send()
            .await
            .map_err(|e| internal("GetItem of store metadata", e))?;
        Ok(out.item)
    }

    /// The store's global version (0 when never written), strongly consistent.
    pub(crate) async fn global_version(&self, pk: &str) -> Result<i64, VssError> {
        match self.metadata(pk, &[GLOBAL_VERSION]).await? {
            None => Ok(0),
            Some(item) => Ok(get_num(&item, GLOBAL_VERSION)
                .map_err(VssError::internal)?
                .unwrap_or(0)),
        }
    }

    /// Reads one record with its whole value.
    pub(crate) async fn get_record(
        &self,
        pk: &str,
        key: &str,
    ) -> Result<Option<(i64, Bytes)>, VssError> {
        let mut backoff = Backoff::new(READ_ATTEMPTS);
        loop {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(Self::item_key(pk, record_sort_key(key))))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| internal("GetItem of a record", e))?;
            let Some(item) = out.item() else {
                return Ok(None);
            };
            let version = get_num::<i64>(item, VERSION)
                .map_err(VssError::internal)?
                .ok_or_else(|| VssError::internal("record without a version"))?;
            let chunks = ChunkSet::of_record(item).map_err(VssError::internal)?;
            let Some(chunks) = chunks else {
                let value = get_bin(item, VALUE).map_err(VssError::internal)?;
                return Ok(Some((
                    version,
                    Bytes::copy_from_slice(value.unwrap_or_default()),
                )));
            };
            if let Some(value) = self.read_chunks(pk, &chunks).await? {
                return Ok(Some((version, value)));
            }
            // Replaced and cleaned up while we read it: read the new record.
            if !backoff.next_attempt() {
                return Err(VssError::internal(format!(
                    "value kept changing while being read ({} attempts)",
                    backoff.attempts()
                )));
            }
            backoff.wait().await;
        }
    }
}

/// A DynamoDB failure as an internal error (logged by the server, never sent).
pub(crate) fn internal<E>(what: &str, err: E) -> VssError
where
    E: std::error::Error,
{
    VssError::internal(format!("DynamoDB {what}: {}", DisplayErrorContext(err)))
}

#[async_trait]
impl KvStore for DynamoDbStore {
    async fn get(
        &self,
        user: &UserToken,
        req: GetObjectRequest,
    ) -> Result<GetObjectResponse, VssError> {
        let target = validate::get(&req)?;
        let pk = partition_key(user, &req.store_id);
        let value = match target {
            GetTarget::GlobalVersion => {
                validate::global_version_key_value(self.global_version(&pk).await?)
            }
            GetTarget::Key(key) => match self.get_record(&pk, &key).await? {
                Some((version, value)) => KeyValue {
                    key,
                    version,
                    value,
                },
                None => return Err(VssError::no_such_key(&key)),
            },
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

    /// The put's transaction moves the user's usage item too, conditioned on
    /// the quota (see the crate docs).
    async fn put_with_quota(
        &self,
        user: &UserToken,
        req: PutObjectRequest,
        quota: Quota,
    ) -> Result<PutObjectResponse, VssError> {
        let plan = validate::put(req, &self.limits())?;
        self.apply_put(user, plan, quota).await?;
        Ok(PutObjectResponse {})
    }

    /// Reads the record (and the store's metadata), then deletes it in one
    /// transaction with the usage it frees, conditioned on the value read.
    async fn delete(
        &self,
        user: &UserToken,
        req: DeleteObjectRequest,
    ) -> Result<DeleteObjectResponse, VssError> {
        let plan = validate::delete(req)?;
        let pk = partition_key(user, &plan.store_id);
        let usage_pk = usage_partition_key(user);
        let mut backoff = Backoff::new(PUT_ATTEMPTS);
        loop {
            if !backoff.next_attempt() {
                return Err(VssError::internal(format!(
                    "deleteObject gave up after {} attempts racing other writers",
                    backoff.attempts()
                )));
            }
            let observed = self.observe(&pk, &[plan.key.as_str()]).await?;
            // Missing, or another version: deleteObject succeeds and changes nothing.
            let Some(current) = observed.records.get(&plan.key) else {
                return Ok(DeleteObjectResponse {});
            };
            if plan.version.is_some_and(|v| v != current.version) {
                return Ok(DeleteObjectResponse {});
            }
            match observed.countable() {
                Some(true) => {}
                // Written before usage was counted: count it once, then delete.
                Some(false) => {
                    self.count_store(&pk).await?;
                    continue;
                }
                None => {
                    backoff.wait().await;
                    continue;
                }
            }
            // The record as read, so the bytes freed are exactly its own.
            let mut p = Placeholders::default();
            let condition = format!(
                "{} = {} AND {}",
                p.name(VERSION),
                p.number(current.version),
                same_value(&mut p, current)?
            );
            let mut actions = vec![self.delete_action(&pk, &plan.key, condition, &p)?];
            let mut delta = Delta::default();
            delta.sub(Usage::of_item(
                &plan.key,
                usize::try_from(current.len).unwrap_or(usize::MAX),
            ));
            if let Some((action, _)) = self.usage_action(&usage_pk, delta, Quota::UNLIMITED)? {
                actions.push(action);
            }
            match self.transact(actions).await {
                Ok(()) => {
                    // The chunks of the deleted value: no record points at them now.
                    if let Some(chunks) = &current.chunks {
                        self.delete_chunks(&pk, chunks).await;
                    }
                    return Ok(DeleteObjectResponse {});
                }
                Err(Ok(Cancelled::Transient)) => backoff.wait().await,
                Err(Ok(Cancelled::Reasons(reasons))) => {
                    if let Some(why) = fatal_reasons(&reasons) {
                        return Err(VssError::internal(format!(
                            "TransactWriteItems cancelled: {why}"
                        )));
                    }
                    // The record changed since it was read: read it again.
                    backoff.wait().await;
                }
                // Lost answers: it may have deleted (a retry by the client
                // then finds nothing and succeeds); its chunks, if it did,
                // are left for the orphan cleanup.
                Err(Err(Failure::Definite(err) | Failure::Ambiguous(err))) => return Err(err),
            }
        }
    }

    async fn list_key_versions(
        &self,
        user: &UserToken,
        req: ListKeyVersionsRequest,
    ) -> Result<ListKeyVersionsResponse, VssError> {
        let plan = validate::list(user, req, &self.limits())?;
        let pk = partition_key(user, &plan.store_id);
        // Read before the keys, as the contract asks; only the first page carries it.
        let global_version = if plan.first_page {
            self.global_version(&pk).await?
        } else {
            0
        };
        // Page size 0 reads no keys (and DynamoDB refuses a Limit of 0).
        if plan.fetch_limit() == 0 {
            return Ok(plan.respond(Vec::new(), global_version));
        }

        let mut p = Placeholders::default();
        let mut condition = format!("{} = {}", p.name(PK), p.string(&pk));
        if let Some(before) = plan.before_sequence {
            condition.push_str(&format!(" AND {} < {}", p.name(SEQ), p.number(before)));
        }
        let projection = p.projection(&[SK, SEQ, VERSION]);
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_SEQ_INDEX)
            .consistent_read(true)
            .scan_index_forward(false)
            .limit(i32::try_from(plan.fetch_limit()).unwrap_or(i32::MAX))
            .key_condition_expression(condition)
            .projection_expression(projection);
        if !plan.prefix.is_empty() {
            // begins_with compares bytes literally: no wildcard in any character.
            let filter = format!(
                "begins_with({}, {})",
                p.name(SK),
                p.string(&format!("{RECORD_PREFIX}{}", plan.prefix))
            );
            query = query.filter_expression(filter);
        }
        let out = query
            .set_expression_attribute_names(p.names())
            .set_expression_attribute_values(p.values())
            .send()
            .await
            .map_err(|e| internal("Query", e))?;

        let mut rows = Vec::with_capacity(out.items().len());
        for item in out.items() {
            let sk = get_str(item, SK).map_err(VssError::internal)?;
            let Some(key) = sk.and_then(key_of_record) else {
                return Err(VssError::internal("listing index holds a non-record item"));
            };
            let version = get_num(item, VERSION).map_err(VssError::internal)?;
            let sequence = get_num(item, SEQ).map_err(VssError::internal)?;
            let (Some(version), Some(sequence)) = (version, sequence) else {
                return Err(VssError::internal(
                    "listed record lacks version or sequence",
                ));
            };
            rows.push(ListedKey {
                key: key.to_string(),
                version,
                sequence,
            });
        }
        // The query stops at its Limit of evaluated items (before the prefix
        // filter) or at 1 MB: then its last evaluated item is where it stopped,
        // and the listing resumes below it even when the filter kept nothing.
        let stopped_at = match out.last_evaluated_key() {
            Some(key) => Some(
                get_num::<i64>(key, SEQ)
                    .map_err(VssError::internal)?
                    .ok_or_else(|| VssError::internal("query resume key lacks the sequence"))?,
            ),
            None => None,
        };
        Ok(plan.respond_scanned(rows, stopped_at, global_version))
    }

    /// `DescribeTable` of the table.
    async fn ready(&self) -> Result<(), VssError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| internal("DescribeTable", e))
    }

    fn limits(&self) -> StoreLimits {
        StoreLimits {
            max_items_per_put: MAX_ITEMS_PER_PUT,
            max_value_size: usize::try_from(MAX_VALUE_SIZE).unwrap_or(usize::MAX),
            enforces_quotas: true,
            ..StoreLimits::default()
        }
    }
}
