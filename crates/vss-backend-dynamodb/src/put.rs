//! `putObjects` as one `TransactWriteItems`: read, check, commit; retry races.
//! The user's usage moves in the same transaction, judged by the put's quota.

use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Delete, KeysAndAttributes,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use vss_core::validate::{
    self, DeleteCondition, PlannedDelete, PlannedWrite, PutPlan, WriteCondition,
};
use vss_core::{Quota, Usage, UserToken, VssError};

use crate::chunks::ChunkSet;
use crate::expr::{bin, get_bin, get_num, get_str, Placeholders};
use crate::layout::{
    key_of_record, partition_key, record_sort_key, usage_partition_key, CHUNK_COUNT, CHUNK_ID,
    COUNTER, GLOBAL_VERSION, METADATA_SK, SEQ, SK, USAGE_COUNTED, VALUE, VALUE_LEN, VERSION,
};
use crate::retry::{random_id, Backoff};
use crate::store::{
    internal, DynamoDbStore, INLINE_BUDGET_PER_PUT, INLINE_VALUE_LIMIT, PUT_DEADLINE,
};
use crate::usage::Delta;

/// Attempts of one put when it keeps racing with other writers of its store.
pub(crate) const PUT_ATTEMPTS: u32 = 64;
/// Rounds of a read that DynamoDB only partly answered.
const READ_ROUNDS: u32 = 16;

/// Where a written value goes.
#[derive(Debug, Clone)]
pub(crate) enum Storage {
    Inline,
    Chunked(ChunkSet),
}

/// A record as a write read it.
#[derive(Debug, Clone)]
pub(crate) struct Current {
    pub version: i64,
    pub chunks: Option<ChunkSet>,
    /// Length of the value.
    pub len: u64,
    /// Written before records carried their length (inline, no `vl`): the
    /// missing `vl` pins it, since every write now sets one.
    pub legacy: bool,
}

/// The store as a write read it (not one snapshot: each item as of its read,
/// which is all the conditions need, since the transaction re-checks them).
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// Whether the store's metadata item exists.
    pub metadata: bool,
    /// Whether the metadata says the store is counted in its user's usage.
    pub counted: bool,
    pub global_version: Option<i64>,
    pub counter: Option<i64>,
    pub records: HashMap<String, Current>,
}

impl Observed {
    fn version_of(&self, key: &str) -> Option<i64> {
        self.records.get(key).map(|c| c.version)
    }

    /// What the user stores under `key` now, as read.
    fn usage_of(&self, key: &str) -> Option<Usage> {
        let len = usize::try_from(self.records.get(key)?.len).unwrap_or(usize::MAX);
        Some(Usage::of_item(key, len))
    }

    /// Whether usage may move with a write to this store now: the store is
    /// counted, or new (no metadata, so no record: its first write marks it).
    /// `None` when the read was torn (records without metadata): read again.
    pub fn countable(&self) -> Option<bool> {
        if self.metadata {
            Some(self.counted)
        } else if self.records.is_empty() {
            Some(true)
        } else {
            None
        }
    }
}

/// A record's state; `None` for a legacy record read without its value
/// (`value_read` false), whose length only the value tells.
pub(crate) fn record_state(
    item: &HashMap<String, AttributeValue>,
    value_read: bool,
) -> Result<Option<Current>, String> {
    let version = get_num(item, VERSION)?.ok_or("record without a version")?;
    let chunks = ChunkSet::of_record(item)?;
    let (len, legacy) = match (&chunks, get_num::<u64>(item, VALUE_LEN)?) {
        (Some(chunks), _) => (chunks.len, false),
        (None, Some(len)) => (len, false),
        (None, None) if value_read => (get_bin(item, VALUE)?.map_or(0, |v| v.len() as u64), true),
        (None, None) => return Ok(None),
    };
    Ok(Some(Current {
        version,
        chunks,
        len,
        legacy,
    }))
}

/// The usage judgement of a put, carried by its usage action.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UsageJudge {
    pub delta: Delta,
    pub quota: Quota,
}

/// What an action of the transaction stands for, to read its cancellation reason.
#[derive(Debug, Clone, Copy)]
enum Role<'a> {
    Write(&'a PlannedWrite),
    Delete(&'a PlannedDelete),
    Metadata,
    Usage(UsageJudge),
}

/// How a put attempt ended, when it did not commit.
pub(crate) enum Failure {
    /// Nothing was written (a conflict, a refusal, a failed read).
    Definite(VssError),
    /// The transaction may have committed (the answer was lost).
    Ambiguous(VssError),
}

/// Why a transaction did not commit, when DynamoDB said so.
pub(crate) enum Cancelled {
    /// Cancelled, with a reason per action.
    Reasons(Vec<CancellationReason>),
    /// Refused as a whole for a transient reason (throttling): retry.
    Transient,
}

/// What to do after a cancelled transaction.
enum Verdict {
    /// Refused: a CONFLICT, or over the quota.
    Refused(VssError),
    Retry,
    Fatal(String),
}

impl DynamoDbStore {
    /// Applies a validated put judged by `quota`: chunks first, then the
    /// transaction, then the removal of the chunks it replaced.
    pub(crate) async fn apply_put(
        &self,
        user: &UserToken,
        plan: PutPlan,
        quota: Quota,
    ) -> Result<(), VssError> {
        if plan.writes.is_empty() && plan.deletes.is_empty() && plan.global_version.is_none() {
            // Valid and changes nothing: no need to ask DynamoDB.
            return Ok(());
        }
        let pk = partition_key(user, &plan.store_id);
        let usage_pk = usage_partition_key(user);
        let started = Instant::now();

        let storage = storage_plan(plan.writes.iter().map(|w| w.value.len()))?;
        let new_chunks: Vec<&ChunkSet> = storage
            .iter()
            .filter_map(|s| match s {
                Storage::Chunked(set) => Some(set),
                Storage::Inline => None,
            })
            .collect();
        for (write, storage) in plan.writes.iter().zip(&storage) {
            if let Storage::Chunked(set) = storage {
                if let Err(err) = self.write_chunks(&pk, set, &write.value).await {
                    self.discard(&pk, &new_chunks).await;
                    return Err(err);
                }
            }
        }

        let target = Target {
            pk: &pk,
            usage_pk: &usage_pk,
            plan: &plan,
            storage: &storage,
            quota,
        };
        match self.commit(&target, started).await {
            Ok(replaced) => {
                for set in &replaced {
                    self.delete_chunks(&pk, set).await;
                }
                Ok(())
            }
            Err(Failure::Definite(err)) => {
                self.discard(&pk, &new_chunks).await;
                Err(err)
            }
            // The record may point at the new chunks now: keep them. If it does
            // not, they are orphans for the cleanup.
            Err(Failure::Ambiguous(err)) => Err(err),
        }
    }

    async fn discard(&self, pk: &str, sets: &[&ChunkSet]) {
        for set in sets {
            self.delete_chunks(pk, set).await;
        }
    }

    /// Reads, checks and commits until the put commits, is refused or gives up.
    /// Returns the chunk sets of the values it replaced or deleted.
    async fn commit(
        &self,
        target: &Target<'_>,
        started: Instant,
    ) -> Result<Vec<ChunkSet>, Failure> {
        let Target {
            pk, plan, storage, ..
        } = *target;
        let keys: Vec<&str> = plan
            .writes
            .iter()
            .map(|w| w.key.as_str())
            .chain(plan.deletes.iter().map(|d| d.key.as_str()))
            .collect();
        let mut backoff = Backoff::new(PUT_ATTEMPTS);
        loop {
            if !backoff.next_attempt() {
                return Err(Failure::Definite(VssError::internal(format!(
                    "put gave up after {} attempts racing other writers",
                    backoff.attempts()
                ))));
            }
            if !storage.iter().all(|s| matches!(s, Storage::Inline))
                && started.elapsed() > PUT_DEADLINE
            {
                return Err(Failure::Definite(VssError::internal(
                    "put ran past its deadline; not committing its chunks",
                )));
            }
            let observed = self.observe(pk, &keys).await.map_err(Failure::Definite)?;
            // The client's conditions against what was read: CONFLICT if any fails already.
            plan.check(
                || Ok(observed.global_version.unwrap_or(0)),
                |key| Ok(observed.version_of(key)),
            )
            .map_err(Failure::Definite)?;
            if !self
                .may_count(pk, &observed, &backoff)
                .await
                .map_err(Failure::Definite)?
            {
                continue;
            }
            let (actions, roles) = self
                .transaction(target, &observed)
                .map_err(Failure::Definite)?;
            if actions.is_empty() {
                return Ok(Vec::new());
            }
            match self.transact(actions).await {
                Ok(()) => return Ok(replaced(plan, &observed)),
                Err(Ok(Cancelled::Transient)) => backoff.wait().await,
                Err(Ok(Cancelled::Reasons(reasons))) => match verdict(plan, &roles, &reasons) {
                    Verdict::Refused(err) => return Err(Failure::Definite(err)),
                    Verdict::Retry => backoff.wait().await,
                    Verdict::Fatal(why) => {
                        return Err(Failure::Definite(VssError::internal(format!(
                            "TransactWriteItems cancelled: {why}"
                        ))))
                    }
                },
                Err(Err(failure)) => return Err(failure),
            }
        }
    }

    /// Whether a write may move usage with the store as `observed`: `true`
    /// to go on; `false` once it counted a store written before usage was
    /// counted, or waited out a torn read (records without metadata): then
    /// the caller reads again.
    pub(crate) async fn may_count(
        &self,
        pk: &str,
        observed: &Observed,
        backoff: &Backoff,
    ) -> Result<bool, VssError> {
        match observed.countable() {
            Some(true) => Ok(true),
            Some(false) => {
                self.count_store(pk).await?;
                Ok(false)
            }
            None => {
                backoff.wait().await;
                Ok(false)
            }
        }
    }

    /// Sends one `TransactWriteItems` (idempotent across the SDK's own retries).
    pub(crate) async fn transact(
        &self,
        actions: Vec<TransactWriteItem>,
    ) -> Result<(), Result<Cancelled, Failure>> {
        vss_core::deadline::ensure("DynamoDB write").map_err(|err| Err(Failure::Definite(err)))?;
        let token = random_id().map_err(|e| {
            Err(Failure::Definite(VssError::internal(format!(
                "no randomness: {e}"
            ))))
        })?;
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            // Makes the SDK's own retries of this request idempotent.
            .client_request_token(token)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => Err(classify(err)),
        }
    }

    /// Reads the store's metadata and the records of `keys` (strongly
    /// consistent), then the values of legacy records among them, whose
    /// length only the value tells.
    pub(crate) async fn observe(&self, pk: &str, keys: &[&str]) -> Result<Observed, VssError> {
        let mut record_keys: Vec<_> = keys
            .iter()
            .map(|key| Self::item_key(pk, record_sort_key(key)))
            .collect();
        record_keys.push(Self::item_key(pk, METADATA_SK.to_string()));
        let attributes = [
            SK,
            VERSION,
            CHUNK_ID,
            CHUNK_COUNT,
            VALUE_LEN,
            GLOBAL_VERSION,
            COUNTER,
            USAGE_COUNTED,
        ];
        let mut observed = Observed::default();
        let mut legacy = Vec::new();
        for item in self.batch_read(record_keys, &attributes).await? {
            if let Some(key) = remember(&mut observed, &item, false).map_err(VssError::internal)? {
                legacy.push(key);
            }
        }
        if !legacy.is_empty() {
            let keys = legacy
                .iter()
                .map(|key| Self::item_key(pk, record_sort_key(key)))
                .collect();
            // Read again with the value: the record as it is now, or gone.
            for item in self
                .batch_read(
                    keys,
                    &[SK, VERSION, CHUNK_ID, CHUNK_COUNT, VALUE_LEN, VALUE],
                )
                .await?
            {
                remember(&mut observed, &item, true).map_err(VssError::internal)?;
            }
        }
        Ok(observed)
    }

    /// Reads items by key with a `BatchGetItem` (strongly consistent), with
    /// rounds for whatever DynamoDB leaves unprocessed. At most 100 keys.
    pub(crate) async fn batch_read(
        &self,
        mut keys: Vec<HashMap<String, AttributeValue>>,
        attributes: &[&str],
    ) -> Result<Vec<HashMap<String, AttributeValue>>, VssError> {
        let mut p = Placeholders::default();
        let projection = p.projection(attributes);
        let mut items = Vec::with_capacity(keys.len());
        let mut backoff = Backoff::new(READ_ROUNDS);
        while !keys.is_empty() {
            if !backoff.next_attempt() {
                return Err(VssError::internal(
                    "BatchGetItem kept leaving keys unprocessed",
                ));
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut keys)))
                .consistent_read(true)
                .projection_expression(projection.clone())
                .set_expression_attribute_names(p.names())
                .build()
                .map_err(|e| internal("BatchGetItem request", e))?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e: SdkError<BatchGetItemError, _>| internal("BatchGetItem", e))?;
            if let Some(read) = out.responses().and_then(|r| r.get(&self.table)) {
                items.extend(read.iter().cloned());
            }
            if let Some(unprocessed) = out.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                keys = unprocessed.keys().to_vec();
                if !keys.is_empty() {
                    backoff.wait().await;
                }
            }
        }
        Ok(items)
    }

    /// The actions of the transaction, with what each stands for.
    fn transaction<'a>(
        &self,
        target: &Target<'a>,
        observed: &Observed,
    ) -> Result<(Vec<TransactWriteItem>, Vec<Role<'a>>), VssError> {
        let Target {
            pk,
            usage_pk,
            plan,
            storage,
            quota,
        } = *target;
        let mut actions = Vec::with_capacity(plan.writes.len() + plan.deletes.len() + 2);
        let mut roles = Vec::with_capacity(actions.capacity());
        // How the user's usage moves: exact, since every action on an existing
        // record is conditioned on the value (its length) read.
        let mut delta = Delta::default();

        // New keys take the next creation sequences, in request order.
        let first_counter = observed.counter.unwrap_or(0);
        let mut counter = first_counter;

        for (write, storage) in plan.writes.iter().zip(storage) {
            let current = observed.records.get(&write.key);
            if let Some(old) = observed.usage_of(&write.key) {
                delta.sub(old);
            }
            delta.add(Usage::of_item(&write.key, write.value.len()));
            let mut p = Placeholders::default();
            let (mut set, remove) =
                record_value(&mut p, write.condition.new_version(), &write.value, storage)?;
            let condition = match current {
                None => {
                    counter = counter
                        .checked_add(1)
                        .ok_or_else(|| VssError::internal("creation counter overflow"))?;
                    set.push(format!("{} = {}", p.name(SEQ), p.number(counter)));
                    format!("attribute_not_exists({})", p.name(SK))
                }
                // Existing keys keep their sequence; the condition also pins the
                // value read (its chunks, its length), so the chunks this put
                // replaces and the bytes it frees are exactly known.
                Some(current) => {
                    let rule = match write.condition {
                        WriteCondition::VersionIs(v) => {
                            format!("{} = {}", p.name(VERSION), p.number(v))
                        }
                        WriteCondition::Any | WriteCondition::MustNotExist => {
                            format!("attribute_exists({})", p.name(SK))
                        }
                    };
                    format!("{rule} AND {}", same_value(&mut p, current)?)
                }
            };
            let update = format!("SET {} REMOVE {}", set.join(", "), remove.join(", "));
            actions.push(self.update(
                pk,
                record_sort_key(&write.key),
                update,
                Some(condition),
                &p,
            )?);
            roles.push(Role::Write(write));
        }

        for delete in &plan.deletes {
            let Some(current) = observed.records.get(&delete.key) else {
                return Err(validate::delete_conflict(&delete.key));
            };
            if let Some(old) = observed.usage_of(&delete.key) {
                delta.sub(old);
            }
            let mut p = Placeholders::default();
            let rule = match delete.condition {
                DeleteCondition::VersionIs(v) => format!("{} = {}", p.name(VERSION), p.number(v)),
                DeleteCondition::Exists => format!("attribute_exists({})", p.name(SK)),
            };
            let condition = format!("{rule} AND {}", same_value(&mut p, current)?);
            actions.push(self.delete_action(pk, &delete.key, condition, &p)?);
            roles.push(Role::Delete(delete));
        }

        let new_keys = counter != first_counter;
        if new_keys || plan.global_version.is_some() {
            let mut p = Placeholders::default();
            let mut set = Vec::new();
            let mut conditions = Vec::new();
            if new_keys {
                set.push(format!("{} = {}", p.name(COUNTER), p.number(counter)));
                conditions.push(equals_or_absent(&mut p, COUNTER, observed.counter));
            }
            if let Some(expected) = plan.global_version {
                let next = expected
                    .checked_add(1)
                    .ok_or_else(|| VssError::internal("global version overflow"))?;
                set.push(format!("{} = {}", p.name(GLOBAL_VERSION), p.number(next)));
                conditions.push(equals_or_absent(
                    &mut p,
                    GLOBAL_VERSION,
                    observed.global_version,
                ));
            }
            if !observed.metadata {
                // A new store: counted from its first write. It must still
                // hold no record (a record raises the counter).
                set.push(format!("{} = {}", p.name(USAGE_COUNTED), p.number(1)));
                if !new_keys {
                    conditions.push(equals_or_absent(&mut p, COUNTER, None));
                }
            }
            let update = format!("SET {}", set.join(", "));
            let condition = conditions.join(" AND ");
            actions.push(self.update(pk, METADATA_SK.to_string(), update, Some(condition), &p)?);
            roles.push(Role::Metadata);
        }

        if let Some((action, judge)) = self.usage_action(usage_pk, delta, quota)? {
            actions.push(action);
            roles.push(Role::Usage(judge));
        }
        Ok((actions, roles))
    }

    /// A conditional `Delete` of the record of `key`, in a transaction.
    pub(crate) fn delete_action(
        &self,
        pk: &str,
        key: &str,
        condition: String,
        p: &Placeholders,
    ) -> Result<TransactWriteItem, VssError> {
        let action = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(Self::item_key(pk, record_sort_key(key))))
            .condition_expression(condition)
            .set_expression_attribute_names(p.names())
            .set_expression_attribute_values(p.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| internal("Delete action", e))?;
        Ok(TransactWriteItem::builder().delete(action).build())
    }

    /// An `Update` of one item, in a transaction.
    pub(crate) fn update(
        &self,
        pk: &str,
        sk: String,
        update: String,
        condition: Option<String>,
        p: &Placeholders,
    ) -> Result<TransactWriteItem, VssError> {
        let action = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::item_key(pk, sk)))
            .update_expression(update)
            .set_condition_expression(condition.filter(|c| !c.is_empty()))
            .set_expression_attribute_names(p.names())
            .set_expression_attribute_values(p.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| internal("Update action", e))?;
        Ok(TransactWriteItem::builder().update(action).build())
    }
}

/// What one put writes, and under which quota.
#[derive(Clone, Copy)]
struct Target<'a> {
    pk: &'a str,
    usage_pk: &'a str,
    plan: &'a PutPlan,
    storage: &'a [Storage],
    quota: Quota,
}

/// The `SET` and `REMOVE` clauses that make a record hold `version` and
/// `value`, stored as `storage` says (its length too, which usage reads).
pub(crate) fn record_value(
    p: &mut Placeholders,
    version: i64,
    value: &[u8],
    storage: &Storage,
) -> Result<(Vec<String>, Vec<String>), VssError> {
    let len =
        i64::try_from(value.len()).map_err(|_| VssError::internal("value length out of range"))?;
    let mut set = vec![
        format!("{} = {}", p.name(VERSION), p.number(version)),
        format!("{} = {}", p.name(VALUE_LEN), p.number(len)),
    ];
    let mut remove = Vec::new();
    match storage {
        Storage::Inline if value.is_empty() => {
            remove.extend([VALUE, CHUNK_ID, CHUNK_COUNT].map(|a| p.name(a)));
        }
        Storage::Inline => {
            set.push(format!("{} = {}", p.name(VALUE), p.value(bin(value))));
            remove.extend([CHUNK_ID, CHUNK_COUNT].map(|a| p.name(a)));
        }
        Storage::Chunked(chunks) => {
            set.push(format!("{} = {}", p.name(CHUNK_ID), p.string(&chunks.id)));
            set.push(format!(
                "{} = {}",
                p.name(CHUNK_COUNT),
                p.number(chunks.count.into())
            ));
            remove.push(p.name(VALUE));
        }
    }
    Ok((set, remove))
}

/// Where each written value goes: inline while it fits an item and the put's
/// inline budget, chunked otherwise.
pub(crate) fn storage_plan(lengths: impl Iterator<Item = usize>) -> Result<Vec<Storage>, VssError> {
    let mut inline_budget = INLINE_BUDGET_PER_PUT;
    lengths
        .map(|len| {
            if len <= INLINE_VALUE_LIMIT && len <= inline_budget {
                inline_budget -= len;
                Ok(Storage::Inline)
            } else {
                ChunkSet::fresh(len).map(Storage::Chunked)
            }
        })
        .collect()
}

/// Records one item of a read in `observed`; answers the key of a legacy
/// record read without its value (its length is still unknown).
fn remember(
    observed: &mut Observed,
    item: &HashMap<String, AttributeValue>,
    value_read: bool,
) -> Result<Option<String>, String> {
    let sk = get_str(item, SK)?.ok_or("item without a sort key")?;
    if sk == METADATA_SK {
        observed.metadata = true;
        observed.counted = item.contains_key(USAGE_COUNTED);
        observed.global_version = get_num(item, GLOBAL_VERSION)?;
        observed.counter = get_num(item, COUNTER)?;
    } else if let Some(key) = key_of_record(sk) {
        match record_state(item, value_read)? {
            Some(current) => {
                observed.records.insert(key.to_string(), current);
            }
            None => return Ok(Some(key.to_string())),
        }
    }
    Ok(None)
}

/// The condition that a record still holds the value read: the same chunks,
/// or an inline value of the same length (or, for a legacy record, still no
/// length: it has not been written since).
pub(crate) fn same_value(p: &mut Placeholders, current: &Current) -> Result<String, VssError> {
    Ok(match &current.chunks {
        Some(chunks) => format!("{} = {}", p.name(CHUNK_ID), p.string(&chunks.id)),
        None if current.legacy => format!(
            "attribute_not_exists({}) AND attribute_not_exists({})",
            p.name(CHUNK_ID),
            p.name(VALUE_LEN)
        ),
        None => {
            let len = i64::try_from(current.len)
                .map_err(|_| VssError::internal("value length out of range"))?;
            format!(
                "attribute_not_exists({}) AND {} = {}",
                p.name(CHUNK_ID),
                p.name(VALUE_LEN),
                p.number(len)
            )
        }
    })
}

/// `attr = value`, or `attribute_not_exists(attr)` when it was absent.
pub(crate) fn equals_or_absent(
    p: &mut Placeholders,
    attribute: &str,
    value: Option<i64>,
) -> String {
    match value {
        Some(v) => format!("{} = {}", p.name(attribute), p.number(v)),
        None => format!("attribute_not_exists({})", p.name(attribute)),
    }
}

/// The chunk sets a committed put replaced or deleted: exactly those read,
/// since every action on an existing record was conditioned on them.
fn replaced(plan: &PutPlan, observed: &Observed) -> Vec<ChunkSet> {
    plan.writes
        .iter()
        .map(|w| &w.key)
        .chain(plan.deletes.iter().map(|d| &d.key))
        .filter_map(|key| observed.records.get(key)?.chunks.clone())
        .collect()
}

/// Reads why a transaction failed.
fn classify(
    err: SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> Result<Cancelled, Failure> {
    let service = match err {
        SdkError::ServiceError(service) => service.into_err(),
        // Never sent: nothing written.
        SdkError::ConstructionFailure(_) => {
            return Err(Failure::Definite(internal("TransactWriteItems", err)))
        }
        // Timeouts, lost connections, unreadable answers: it may have committed.
        other => return Err(Failure::Ambiguous(internal("TransactWriteItems", other))),
    };
    match service {
        TransactWriteItemsError::TransactionCanceledException(cancelled) => Ok(Cancelled::Reasons(
            cancelled.cancellation_reasons().to_vec(),
        )),
        // Refused before running, and already retried by the SDK.
        TransactWriteItemsError::ProvisionedThroughputExceededException(_)
        | TransactWriteItemsError::RequestLimitExceeded(_)
        | TransactWriteItemsError::ThrottlingException(_) => Ok(Cancelled::Transient),
        // An earlier attempt with the same token is still running: it may commit.
        TransactWriteItemsError::TransactionInProgressException(_)
        | TransactWriteItemsError::InternalServerError(_) => {
            Err(Failure::Ambiguous(internal("TransactWriteItems", service)))
        }
        // Validation errors and the like: refused, nothing written.
        other => Err(Failure::Definite(internal("TransactWriteItems", other))),
    }
}

/// Whether a cancellation reason's code is transient (retried).
pub(crate) fn is_transient(code: &str) -> bool {
    matches!(
        code,
        "TransactionConflict"
            | "ThrottlingError"
            | "ProvisionedThroughputExceeded"
            | "RequestLimitExceeded"
    )
}

/// The reasons of a cancellation that are neither a failed condition nor
/// transient, if any: nothing retrying fixes.
pub(crate) fn fatal_reasons(reasons: &[CancellationReason]) -> Option<String> {
    let fatal: Vec<String> = reasons
        .iter()
        .filter_map(|reason| {
            let code = reason.code().unwrap_or("None");
            let benign =
                matches!(code, "None" | "" | "ConditionalCheckFailed") || is_transient(code);
            (!benign).then(|| format!("{code}: {}", reason.message().unwrap_or("no message")))
        })
        .collect();
    (!fatal.is_empty()).then(|| fatal.join("; "))
}

/// Tells a real CONFLICT (a client's condition fails on the item as it is now)
/// from a race (only the state this put read changed: retry from the reads),
/// and a quota refusal (only the usage condition failed, on the usage as it
/// is now) from both. A CONFLICT comes first, a race before the quota: the
/// quota is judged on a put whose other conditions all held.
fn verdict(plan: &PutPlan, roles: &[Role<'_>], reasons: &[CancellationReason]) -> Verdict {
    let mut conflicts: Vec<(usize, VssError)> = Vec::new();
    let mut fatal = Vec::new();
    let mut raced = false;
    let mut over_quota = None;
    for (role, reason) in roles.iter().zip(reasons) {
        let code = reason.code().unwrap_or("None");
        match code {
            "None" | "" => {}
            "ConditionalCheckFailed" => match role {
                Role::Usage(judge) => match quota_refusal(*judge, reason.item()) {
                    Some(refusal) => over_quota = Some(refusal),
                    None => raced = true,
                },
                _ => match conflict_of(plan, *role, reason.item()) {
                    Some(conflict) => conflicts.push(conflict),
                    None => raced = true,
                },
            },
            code if is_transient(code) => raced = true,
            other => fatal.push(format!(
                "{other}: {}",
                reason.message().unwrap_or("no message")
            )),
        }
    }
    // Report the global version first, then items in request order, as the
    // reference store does.
    conflicts.sort_by_key(|(rank, _)| *rank);
    if let Some((_, conflict)) = conflicts.into_iter().next() {
        return Verdict::Refused(conflict);
    }
    if !fatal.is_empty() {
        return Verdict::Fatal(fatal.join("; "));
    }
    match over_quota {
        Some(refusal) if !raced => Verdict::Refused(refusal),
        _ => Verdict::Retry,
    }
}

/// The quota refusal a failed usage condition means, judged on the usage
/// item as it was (`ALL_OLD`; none: no usage yet); `None` if the quota
/// admits the put after all (the next round decides).
fn quota_refusal(
    judge: UsageJudge,
    item: Option<&HashMap<String, AttributeValue>>,
) -> Option<VssError> {
    let before = match item {
        Some(item) => crate::usage::usage_of_item(item).ok()?,
        None => Usage::default(),
    };
    judge.quota.admit(before, judge.delta.apply(before)).err()
}

/// The CONFLICT a failed condition means, with its rank, or `None` for a race.
/// The failed item comes back only when it exists (`ALL_OLD`); without it,
/// the next round's reads decide.
fn conflict_of(
    plan: &PutPlan,
    role: Role<'_>,
    item: Option<&HashMap<String, AttributeValue>>,
) -> Option<(usize, VssError)> {
    let version = || item.and_then(|i| get_num::<i64>(i, VERSION).ok().flatten());
    match role {
        Role::Metadata => {
            let expected = plan.global_version?;
            let stored = get_num::<i64>(item?, GLOBAL_VERSION).ok()?.unwrap_or(0);
            (stored != expected).then(|| (0, plan.global_version_conflict(stored)))
        }
        Role::Write(write) => {
            let conflict = match write.condition {
                // Only used for keys read as missing: it exists now.
                WriteCondition::MustNotExist => true,
                WriteCondition::VersionIs(v) => item.is_some() && version() != Some(v),
                WriteCondition::Any => false,
            };
            conflict.then(|| (1, validate::write_conflict(&write.key)))
        }
        Role::Delete(delete) => {
            let conflict = match delete.condition {
                DeleteCondition::VersionIs(v) => item.is_some() && version() != Some(v),
                DeleteCondition::Exists => false,
            };
            conflict.then(|| (2, validate::delete_conflict(&delete.key)))
        }
        Role::Usage(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{USAGE_BYTES, USAGE_KEYS};
    use vss_core::proto::{KeyValue, PutObjectRequest};
    use vss_core::StoreLimits;

    fn plan(
        global_version: Option<i64>,
        writes: &[(&str, i64)],
        deletes: &[(&str, i64)],
    ) -> PutPlan {
        let kv = |(key, version): &(&str, i64)| KeyValue {
            key: key.to_string(),
            version: *version,
            value: Default::default(),
        };
        validate::put(
            PutObjectRequest {
                store_id: "s".into(),
                global_version,
                transaction_items: writes.iter().map(kv).collect(),
                delete_items: deletes.iter().map(kv).collect(),
            },
            &StoreLimits::default(),
        )
        .unwrap()
    }

    fn failed(item: &[(&str, i64)]) -> CancellationReason {
        let mut reason = CancellationReason::builder().code("ConditionalCheckFailed");
        for (name, n) in item {
            reason = reason.item(*name, AttributeValue::N(n.to_string()));
        }
        reason.build()
    }

    fn passed() -> CancellationReason {
        CancellationReason::builder().code("None").build()
    }

    fn roles(plan: &PutPlan, metadata: bool) -> Vec<Role<'_>> {
        let mut roles: Vec<Role<'_>> = plan.writes.iter().map(Role::Write).collect();
        roles.extend(plan.deletes.iter().map(Role::Delete));
        if metadata {
            roles.push(Role::Metadata);
        }
        roles
    }

    #[test]
    fn a_counter_race_is_retried_not_a_conflict() {
        let p = plan(Some(4), &[("a", 0)], &[]);
        // The metadata condition failed but the global version is still as expected.
        let reasons = [passed(), failed(&[(GLOBAL_VERSION, 4), (COUNTER, 9)])];
        assert!(matches!(
            verdict(&p, &roles(&p, true), &reasons),
            Verdict::Retry
        ));
        // Without a global version in the put, any metadata failure is the counter.
        let p = plan(None, &[("a", -1)], &[]);
        let reasons = [passed(), failed(&[(COUNTER, 9)])];
        assert!(matches!(
            verdict(&p, &roles(&p, true), &reasons),
            Verdict::Retry
        ));
    }

    #[test]
    fn a_moved_global_version_is_a_conflict() {
        let p = plan(Some(4), &[("a", -1)], &[]);
        let reasons = [passed(), failed(&[(GLOBAL_VERSION, 5), (COUNTER, 9)])];
        match verdict(&p, &roles(&p, true), &reasons) {
            Verdict::Refused(VssError::Conflict(m)) => assert!(m.contains("global version")),
            _ => panic!("expected a global version conflict"),
        }
    }

    #[test]
    fn item_conditions_are_judged_on_the_item_as_it_is() {
        let p = plan(
            None,
            &[("v", 3), ("new", 0), ("any", -1)],
            &[("d", 2), ("e", -1)],
        );
        let r = roles(&p, false);
        let only = |i: usize, reason: CancellationReason| {
            let mut reasons: Vec<_> = (0..r.len()).map(|_| passed()).collect();
            reasons[i] = reason;
            verdict(&p, &r, &reasons)
        };
        // Version moved on: conflict. Same version (only the chunks read changed): race.
        assert!(matches!(
            only(0, failed(&[(VERSION, 4)])),
            Verdict::Refused(_)
        ));
        assert!(matches!(only(0, failed(&[(VERSION, 3)])), Verdict::Retry));
        // No item returned: the next round's reads decide.
        assert!(matches!(only(0, failed(&[])), Verdict::Retry));
        // A key to create exists now.
        assert!(matches!(
            only(1, failed(&[(VERSION, 1)])),
            Verdict::Refused(_)
        ));
        // An unconditional write never conflicts.
        assert!(matches!(only(2, failed(&[(VERSION, 7)])), Verdict::Retry));
        assert!(matches!(
            only(3, failed(&[(VERSION, 5)])),
            Verdict::Refused(_)
        ));
        assert!(matches!(only(3, failed(&[(VERSION, 2)])), Verdict::Retry));
        assert!(matches!(only(4, failed(&[])), Verdict::Retry));
    }

    #[test]
    fn transient_reasons_are_retried_and_unknown_ones_are_fatal() {
        let p = plan(None, &[("a", 1), ("b", 1)], &[]);
        let r = roles(&p, false);
        for code in [
            "TransactionConflict",
            "ThrottlingError",
            "ProvisionedThroughputExceeded",
        ] {
            let reasons = [CancellationReason::builder().code(code).build(), passed()];
            assert!(
                matches!(verdict(&p, &r, &reasons), Verdict::Retry),
                "{code}"
            );
        }
        let reasons = [
            passed(),
            CancellationReason::builder()
                .code("ValidationError")
                .message("Item size has exceeded the maximum allowed size")
                .build(),
        ];
        assert!(
            matches!(verdict(&p, &r, &reasons), Verdict::Fatal(m) if m.contains("ValidationError"))
        );
    }

    #[test]
    fn the_global_version_conflict_is_reported_first() {
        let p = plan(Some(1), &[("a", 2)], &[]);
        let reasons = [failed(&[(VERSION, 5)]), failed(&[(GLOBAL_VERSION, 3)])];
        match verdict(&p, &roles(&p, true), &reasons) {
            Verdict::Refused(VssError::Conflict(m)) => {
                assert!(m.contains("global version"), "{m}")
            }
            _ => panic!("expected a conflict"),
        }
    }

    fn usage_failed(bytes: i64, keys: i64) -> CancellationReason {
        failed(&[(USAGE_BYTES, bytes), (USAGE_KEYS, keys)])
    }

    fn with_usage<'a>(plan: &'a PutPlan, judge: UsageJudge) -> Vec<Role<'a>> {
        let mut roles = roles(plan, true);
        roles.push(Role::Usage(judge));
        roles
    }

    #[test]
    fn a_failed_usage_condition_is_a_quota_refusal_judged_on_the_usage_as_it_is() {
        let p = plan(None, &[("a", -1)], &[]);
        let judge = UsageJudge {
            delta: Delta { bytes: 40, keys: 1 },
            quota: Quota {
                max_bytes: Some(100),
                max_keys: None,
            },
        };
        let r = with_usage(&p, judge);
        match verdict(&p, &r, &[passed(), passed(), usage_failed(61, 1)]) {
            Verdict::Refused(VssError::QuotaExceeded(m)) => {
                assert!(
                    m.contains("101") && m.contains("100") && m.contains("61"),
                    "{m}"
                )
            }
            _ => panic!("expected a quota refusal"),
        }
        // No usage item yet: judged on zero usage.
        let big = UsageJudge {
            delta: Delta {
                bytes: 140,
                keys: 1,
            },
            ..judge
        };
        let r = with_usage(&p, big);
        let reasons = [passed(), passed(), failed(&[])];
        assert!(matches!(
            verdict(&p, &r, &reasons),
            Verdict::Refused(VssError::QuotaExceeded(_))
        ));
        // The usage read admits the put after all: the next round decides.
        let r = with_usage(&p, judge);
        assert!(matches!(
            verdict(&p, &r, &[passed(), passed(), usage_failed(10, 1)]),
            Verdict::Retry
        ));
    }

    #[test]
    fn a_conflict_wins_over_the_quota_and_a_race_is_retried_first() {
        let p = plan(None, &[("a", 3)], &[]);
        let judge = UsageJudge {
            delta: Delta { bytes: 40, keys: 0 },
            quota: Quota {
                max_bytes: Some(100),
                max_keys: None,
            },
        };
        let r = with_usage(&p, judge);
        assert!(matches!(
            verdict(
                &p,
                &r,
                &[failed(&[(VERSION, 9)]), passed(), usage_failed(90, 1)]
            ),
            Verdict::Refused(VssError::Conflict(_))
        ));
        // Only the value read changed (same version): read again before judging.
        assert!(matches!(
            verdict(
                &p,
                &r,
                &[failed(&[(VERSION, 3)]), passed(), usage_failed(90, 1)]
            ),
            Verdict::Retry
        ));
        let conflict = CancellationReason::builder()
            .code("TransactionConflict")
            .build();
        assert!(matches!(
            verdict(&p, &r, &[passed(), passed(), conflict]),
            Verdict::Retry
        ));
    }

    #[test]
    fn legacy_records_are_sized_by_their_value_and_pinned_by_the_missing_length() {
        let mut item = HashMap::from([
            (SK.to_string(), AttributeValue::S("k#a".into())),
            (VERSION.to_string(), AttributeValue::N("3".into())),
        ]);
        let mut observed = Observed::default();
        // Without the value, its length is unknown: read again with it.
        assert_eq!(
            remember(&mut observed, &item, false).unwrap(),
            Some("a".to_string())
        );
        assert!(observed.records.is_empty());
        item.insert(VALUE.to_string(), bin(b"12345"));
        assert_eq!(remember(&mut observed, &item, true).unwrap(), None);
        let current = &observed.records["a"];
        assert_eq!((current.len, current.legacy), (5, true));
        let mut p = Placeholders::default();
        assert!(same_value(&mut p, current)
            .unwrap()
            .contains("attribute_not_exists(#vl)"));
        // Written by this version: sized by `vl`, pinned by it.
        item.insert(VALUE_LEN.to_string(), AttributeValue::N("5".into()));
        remember(&mut observed, &item, false).unwrap();
        let current = &observed.records["a"];
        assert_eq!((current.len, current.legacy), (5, false));
        let mut p = Placeholders::default();
        assert!(same_value(&mut p, current).unwrap().contains("#vl = :v0"));
        // Records without metadata mean a torn read.
        assert_eq!(observed.countable(), None);
        observed.metadata = true;
        assert_eq!(observed.countable(), Some(false));
        observed.counted = true;
        assert_eq!(observed.countable(), Some(true));
        assert_eq!(Observed::default().countable(), Some(true));
    }

    #[test]
    fn inline_values_stay_within_the_transaction_budget() {
        let write = |len: usize| PlannedWrite {
            key: "k".into(),
            value: vec![1u8; len].into(),
            condition: WriteCondition::Any,
        };
        let mut writes: Vec<_> = (0..12).map(|_| write(INLINE_VALUE_LIMIT)).collect();
        writes.push(write(0));
        writes.push(write(INLINE_VALUE_LIMIT + 1));
        let storage = storage_plan(writes.iter().map(|w| w.value.len())).unwrap();
        let inline = |s: &Storage| matches!(s, Storage::Inline);
        let fitting = INLINE_BUDGET_PER_PUT / INLINE_VALUE_LIMIT;
        assert!(storage[..fitting].iter().all(inline));
        assert!(storage[fitting..12].iter().all(|s| !inline(s)));
        assert!(inline(&storage[12]), "an empty value is always inline");
        assert!(
            !inline(&storage[13]),
            "a value over the item limit is chunked"
        );
        match &storage[13] {
            Storage::Chunked(set) => {
                assert_eq!((set.count, set.len), (2, INLINE_VALUE_LIMIT as u64 + 1))
            }
            Storage::Inline => unreachable!(),
        }
        // Inline values plus 100 actions of keys and attributes (under 2 KB each)
        // stay below the 4 MB a transaction may hold.
        const { assert!(INLINE_BUDGET_PER_PUT + 100 * 2048 < 4_000_000) };
    }
}
