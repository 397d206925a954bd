//! `putObjects` as one `TransactWriteItems`: read, check, commit; retry races.

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
use vss_core::{UserToken, VssError};

use crate::chunks::ChunkSet;
use crate::expr::{bin, get_num, get_str, Placeholders};
use crate::layout::{
    key_of_record, partition_key, record_sort_key, CHUNK_COUNT, CHUNK_ID, COUNTER, GLOBAL_VERSION,
    METADATA_SK, SEQ, SK, VALUE, VALUE_LEN, VERSION,
};
use crate::retry::{random_id, Backoff};
use crate::store::{
    internal, DynamoDbStore, INLINE_BUDGET_PER_PUT, INLINE_VALUE_LIMIT, PUT_DEADLINE,
};

/// Attempts of one put when it keeps racing with other writers of its store.
const PUT_ATTEMPTS: u32 = 64;
/// Rounds of a read that DynamoDB only partly answered.
const READ_ROUNDS: u32 = 16;

/// Where a written value goes.
#[derive(Debug, Clone)]
enum Storage {
    Inline,
    Chunked(ChunkSet),
}

/// A record as the put read it.
#[derive(Debug, Clone)]
struct Current {
    version: i64,
    chunks: Option<ChunkSet>,
}

/// The store as the put read it (not one snapshot: each item as of its read,
/// which is all the conditions need, since the transaction re-checks them).
#[derive(Debug, Default)]
struct Observed {
    global_version: Option<i64>,
    counter: Option<i64>,
    records: HashMap<String, Current>,
}

impl Observed {
    fn version_of(&self, key: &str) -> Option<i64> {
        self.records.get(key).map(|c| c.version)
    }
}

/// What an action of the transaction stands for, to read its cancellation reason.
#[derive(Debug, Clone, Copy)]
enum Role<'a> {
    Write(&'a PlannedWrite),
    Delete(&'a PlannedDelete),
    Metadata,
}

/// How a put attempt ended, when it did not commit.
enum Failure {
    /// Nothing was written (a conflict, a refusal, a failed read).
    Definite(VssError),
    /// The transaction may have committed (the answer was lost).
    Ambiguous(VssError),
}

/// What to do after a cancelled transaction.
enum Verdict {
    Conflict(VssError),
    Retry,
    Fatal(String),
}

impl DynamoDbStore {
    /// Applies a validated put: chunks first, then the transaction, then the
    /// removal of the chunks it replaced.
    pub(crate) async fn apply_put(&self, user: &UserToken, plan: PutPlan) -> Result<(), VssError> {
        if plan.writes.is_empty() && plan.deletes.is_empty() && plan.global_version.is_none() {
            // Valid and changes nothing: no need to ask DynamoDB.
            return Ok(());
        }
        let pk = partition_key(user, &plan.store_id);
        let started = Instant::now();

        let storage = storage_plan(&plan.writes)?;
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

        match self.commit(&pk, &plan, &storage, started).await {
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

    /// Reads, checks and commits until the put commits, conflicts or gives up.
    /// Returns the chunk sets of the values it replaced or deleted.
    async fn commit(
        &self,
        pk: &str,
        plan: &PutPlan,
        storage: &[Storage],
        started: Instant,
    ) -> Result<Vec<ChunkSet>, Failure> {
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
            let observed = self.observe(pk, plan).await.map_err(Failure::Definite)?;
            // The client's conditions against what was read: CONFLICT if any fails already.
            plan.check(
                || Ok(observed.global_version.unwrap_or(0)),
                |key| Ok(observed.version_of(key)),
            )
            .map_err(Failure::Definite)?;
            let (actions, roles) = self
                .transaction(pk, plan, storage, &observed)
                .map_err(Failure::Definite)?;
            if actions.is_empty() {
                return Ok(Vec::new());
            }
            let token = random_id().map_err(|e| {
                Failure::Definite(VssError::internal(format!("no randomness: {e}")))
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
                Ok(_) => return Ok(replaced(plan, &observed)),
                Err(err) => match classify(err, plan, &roles) {
                    Ok(Verdict::Conflict(err)) => return Err(Failure::Definite(err)),
                    Ok(Verdict::Retry) => backoff.wait().await,
                    Ok(Verdict::Fatal(why)) => {
                        return Err(Failure::Definite(VssError::internal(format!(
                            "TransactWriteItems cancelled: {why}"
                        ))))
                    }
                    Err(failure) => return Err(failure),
                },
            }
        }
    }

    /// Reads the store's metadata and the records of every key the put touches.
    async fn observe(&self, pk: &str, plan: &PutPlan) -> Result<Observed, VssError> {
        let mut p = Placeholders::default();
        let projection = [
            SK,
            VERSION,
            CHUNK_ID,
            CHUNK_COUNT,
            VALUE_LEN,
            GLOBAL_VERSION,
            COUNTER,
        ]
        .map(|a| p.name(a))
        .join(", ");
        let mut keys: Vec<HashMap<String, AttributeValue>> = plan
            .writes
            .iter()
            .map(|w| &w.key)
            .chain(plan.deletes.iter().map(|d| &d.key))
            .map(|key| Self::item_key(pk, record_sort_key(key)))
            .collect();
        keys.push(Self::item_key(pk, METADATA_SK.to_string()));

        let mut observed = Observed::default();
        let mut backoff = Backoff::new(READ_ROUNDS);
        // At most 100 keys (99 items and the metadata): one BatchGetItem, plus
        // rounds for whatever DynamoDB left unprocessed.
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
            let items = out
                .responses()
                .and_then(|r| r.get(&self.table))
                .map(Vec::as_slice)
                .unwrap_or_default();
            for item in items {
                remember(&mut observed, item).map_err(VssError::internal)?;
            }
            if let Some(unprocessed) = out.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                keys = unprocessed.keys().to_vec();
                if !keys.is_empty() {
                    backoff.wait().await;
                }
            }
        }
        Ok(observed)
    }

    /// The actions of the transaction, with what each stands for.
    fn transaction<'a>(
        &self,
        pk: &str,
        plan: &'a PutPlan,
        storage: &[Storage],
        observed: &Observed,
    ) -> Result<(Vec<TransactWriteItem>, Vec<Role<'a>>), VssError> {
        let mut actions = Vec::with_capacity(plan.writes.len() + plan.deletes.len() + 1);
        let mut roles = Vec::with_capacity(actions.capacity());

        // New keys take the next creation sequences, in request order.
        let first_counter = observed.counter.unwrap_or(0);
        let mut counter = first_counter;

        for (write, storage) in plan.writes.iter().zip(storage) {
            let current = observed.records.get(&write.key);
            let mut p = Placeholders::default();
            let mut set = vec![format!(
                "{} = {}",
                p.name(VERSION),
                p.number(write.condition.new_version())
            )];
            let mut remove = Vec::new();
            match storage {
                Storage::Inline if write.value.is_empty() => {
                    remove.extend([VALUE, CHUNK_ID, CHUNK_COUNT, VALUE_LEN].map(|a| p.name(a)));
                }
                Storage::Inline => {
                    set.push(format!(
                        "{} = {}",
                        p.name(VALUE),
                        p.value(bin(&write.value))
                    ));
                    remove.extend([CHUNK_ID, CHUNK_COUNT, VALUE_LEN].map(|a| p.name(a)));
                }
                Storage::Chunked(chunks) => {
                    set.push(format!("{} = {}", p.name(CHUNK_ID), p.string(&chunks.id)));
                    set.push(format!(
                        "{} = {}",
                        p.name(CHUNK_COUNT),
                        p.number(chunks.count.into())
                    ));
                    let len = i64::try_from(chunks.len)
                        .map_err(|_| VssError::internal("value length out of range"))?;
                    set.push(format!("{} = {}", p.name(VALUE_LEN), p.number(len)));
                    remove.push(p.name(VALUE));
                }
            }
            let condition = match current {
                None => {
                    counter = counter
                        .checked_add(1)
                        .ok_or_else(|| VssError::internal("creation counter overflow"))?;
                    set.push(format!("{} = {}", p.name(SEQ), p.number(counter)));
                    format!("attribute_not_exists({})", p.name(SK))
                }
                // Existing keys keep their sequence; the condition also pins the
                // chunks read, so the ones this put replaces are exactly known.
                Some(current) => {
                    let rule = match write.condition {
                        WriteCondition::VersionIs(v) => {
                            format!("{} = {}", p.name(VERSION), p.number(v))
                        }
                        WriteCondition::Any | WriteCondition::MustNotExist => {
                            format!("attribute_exists({})", p.name(SK))
                        }
                    };
                    format!("{rule} AND {}", same_chunks(&mut p, current))
                }
            };
            let update = format!("SET {} REMOVE {}", set.join(", "), remove.join(", "));
            actions.push(self.update(pk, record_sort_key(&write.key), update, condition, &p)?);
            roles.push(Role::Write(write));
        }

        for delete in &plan.deletes {
            let Some(current) = observed.records.get(&delete.key) else {
                return Err(validate::delete_conflict(&delete.key));
            };
            let mut p = Placeholders::default();
            let rule = match delete.condition {
                DeleteCondition::VersionIs(v) => format!("{} = {}", p.name(VERSION), p.number(v)),
                DeleteCondition::Exists => format!("attribute_exists({})", p.name(SK)),
            };
            let condition = format!("{rule} AND {}", same_chunks(&mut p, current));
            let action = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(Self::item_key(pk, record_sort_key(&delete.key))))
                .condition_expression(condition)
                .set_expression_attribute_names(p.names())
                .set_expression_attribute_values(p.values())
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(|e| internal("Delete action", e))?;
            actions.push(TransactWriteItem::builder().delete(action).build());
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
            let update = format!("SET {}", set.join(", "));
            let condition = conditions.join(" AND ");
            actions.push(self.update(pk, METADATA_SK.to_string(), update, condition, &p)?);
            roles.push(Role::Metadata);
        }
        Ok((actions, roles))
    }

    fn update(
        &self,
        pk: &str,
        sk: String,
        update: String,
        condition: String,
        p: &Placeholders,
    ) -> Result<TransactWriteItem, VssError> {
        let action = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::item_key(pk, sk)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(p.names())
            .set_expression_attribute_values(p.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| internal("Update action", e))?;
        Ok(TransactWriteItem::builder().update(action).build())
    }
}

/// Where each written value goes: inline while it fits an item and the put's
/// inline budget, chunked otherwise.
fn storage_plan(writes: &[PlannedWrite]) -> Result<Vec<Storage>, VssError> {
    let mut inline_budget = INLINE_BUDGET_PER_PUT;
    writes
        .iter()
        .map(|write| {
            let len = write.value.len();
            if len <= INLINE_VALUE_LIMIT && len <= inline_budget {
                inline_budget -= len;
                Ok(Storage::Inline)
            } else {
                ChunkSet::fresh(len).map(Storage::Chunked)
            }
        })
        .collect()
}

/// Records one item of the read in `observed`.
fn remember(observed: &mut Observed, item: &HashMap<String, AttributeValue>) -> Result<(), String> {
    let sk = get_str(item, SK)?.ok_or("item without a sort key")?;
    if sk == METADATA_SK {
        observed.global_version = get_num(item, GLOBAL_VERSION)?;
        observed.counter = get_num(item, COUNTER)?;
    } else if let Some(key) = key_of_record(sk) {
        let version = get_num(item, VERSION)?.ok_or("record without a version")?;
        let chunks = ChunkSet::of_record(item)?;
        observed
            .records
            .insert(key.to_string(), Current { version, chunks });
    }
    Ok(())
}

/// The condition that a record still has the chunks (or the inline value) read.
fn same_chunks(p: &mut Placeholders, current: &Current) -> String {
    match &current.chunks {
        Some(chunks) => format!("{} = {}", p.name(CHUNK_ID), p.string(&chunks.id)),
        None => format!("attribute_not_exists({})", p.name(CHUNK_ID)),
    }
}

/// `attr = value`, or `attribute_not_exists(attr)` when it was absent.
fn equals_or_absent(p: &mut Placeholders, attribute: &str, value: Option<i64>) -> String {
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
    plan: &PutPlan,
    roles: &[Role<'_>],
) -> Result<Verdict, Failure> {
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
        TransactWriteItemsError::TransactionCanceledException(cancelled) => {
            Ok(verdict(plan, roles, cancelled.cancellation_reasons()))
        }
        // Refused before running, and already retried by the SDK.
        TransactWriteItemsError::ProvisionedThroughputExceededException(_)
        | TransactWriteItemsError::RequestLimitExceeded(_)
        | TransactWriteItemsError::ThrottlingException(_) => Ok(Verdict::Retry),
        // An earlier attempt with the same token is still running: it may commit.
        TransactWriteItemsError::TransactionInProgressException(_)
        | TransactWriteItemsError::InternalServerError(_) => {
            Err(Failure::Ambiguous(internal("TransactWriteItems", service)))
        }
        // Validation errors and the like: refused, nothing written.
        other => Err(Failure::Definite(internal("TransactWriteItems", other))),
    }
}

/// Tells a real CONFLICT (a client's condition fails on the item as it is now)
/// from a race (only the state this put read changed: retry from the reads).
fn verdict(plan: &PutPlan, roles: &[Role<'_>], reasons: &[CancellationReason]) -> Verdict {
    let mut conflicts: Vec<(usize, VssError)> = Vec::new();
    let mut fatal = Vec::new();
    for (role, reason) in roles.iter().zip(reasons) {
        let code = reason.code().unwrap_or("None");
        match code {
            "None" | "" => {}
            "ConditionalCheckFailed" => {
                if let Some(conflict) = conflict_of(plan, *role, reason.item()) {
                    conflicts.push(conflict);
                }
            }
            "TransactionConflict"
            | "ThrottlingError"
            | "ProvisionedThroughputExceeded"
            | "RequestLimitExceeded" => {}
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
        return Verdict::Conflict(conflict);
    }
    if !fatal.is_empty() {
        return Verdict::Fatal(fatal.join("; "));
    }
    Verdict::Retry
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
            Verdict::Conflict(VssError::Conflict(m)) => assert!(m.contains("global version")),
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
            Verdict::Conflict(_)
        ));
        assert!(matches!(only(0, failed(&[(VERSION, 3)])), Verdict::Retry));
        // No item returned: the next round's reads decide.
        assert!(matches!(only(0, failed(&[])), Verdict::Retry));
        // A key to create exists now.
        assert!(matches!(
            only(1, failed(&[(VERSION, 1)])),
            Verdict::Conflict(_)
        ));
        // An unconditional write never conflicts.
        assert!(matches!(only(2, failed(&[(VERSION, 7)])), Verdict::Retry));
        assert!(matches!(
            only(3, failed(&[(VERSION, 5)])),
            Verdict::Conflict(_)
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
            Verdict::Conflict(VssError::Conflict(m)) => {
                assert!(m.contains("global version"), "{m}")
            }
            _ => panic!("expected a conflict"),
        }
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
        let storage = storage_plan(&writes).unwrap();
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
