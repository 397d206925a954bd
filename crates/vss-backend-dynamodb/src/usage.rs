//! Per-user usage: the usage item moved by every write, the counting of
//! stores written before usage was kept, and the table-wide count that runs
//! once on an existing table.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use futures::stream::{self, StreamExt};
use vss_core::{Quota, Usage, UserToken, VssError};

use crate::expr::{get_num, get_str, num, Placeholders};
use crate::layout::{
    key_of_record, usage_partition_key, usage_partition_of_store, CHUNK_COUNT, CHUNK_ID,
    COUNTED_AT, COUNTER, METADATA_SK, PK, RECORD_PREFIX, SK, TABLE_PARTITION, USAGE_BYTES,
    USAGE_COUNTED, USAGE_KEYS, USAGE_MARKER_SK, USAGE_SK, VALUE, VALUE_LEN, VERSION,
};
use crate::put::{
    equals_or_absent, fatal_reasons, record_state, Cancelled, Failure, UsageJudge, PUT_ATTEMPTS,
};
use crate::retry::Backoff;
use crate::store::{internal, DynamoDbStore};
use crate::DynamoDbError;

/// How a write moves a user's usage (signed; exact arithmetic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Delta {
    pub bytes: i128,
    pub keys: i128,
}

impl Delta {
    /// Adds what `item` counts.
    pub fn add(&mut self, item: Usage) {
        self.bytes = self.bytes.saturating_add(i128::from(item.bytes));
        self.keys = self.keys.saturating_add(i128::from(item.keys));
    }

    /// Takes away what `item` counts.
    pub fn sub(&mut self, item: Usage) {
        self.bytes = self.bytes.saturating_sub(i128::from(item.bytes));
        self.keys = self.keys.saturating_sub(i128::from(item.keys));
    }

    pub fn is_zero(&self) -> bool {
        self.bytes == 0 && self.keys == 0
    }

    /// The usage `before` moved by this delta (within `0..=u64::MAX`).
    pub fn apply(self, before: Usage) -> Usage {
        let clamp = |n: i128| u64::try_from(n.max(0)).unwrap_or(u64::MAX);
        Usage {
            bytes: clamp(i128::from(before.bytes).saturating_add(self.bytes)),
            keys: clamp(i128::from(before.keys).saturating_add(self.keys)),
        }
    }
}

/// The usage a usage item holds (no attribute: nothing).
pub(crate) fn usage_of_item(item: &HashMap<String, AttributeValue>) -> Result<Usage, String> {
    let measure = |name| -> Result<u64, String> {
        let n = get_num::<i128>(item, name)?.unwrap_or(0);
        Ok(u64::try_from(n.max(0)).unwrap_or(u64::MAX))
    };
    Ok(Usage {
        bytes: measure(USAGE_BYTES)?,
        keys: measure(USAGE_KEYS)?,
    })
}

/// What counting existing data did ([`DynamoDbStore::count_existing_usage`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageCountReport {
    /// Stores counted by this call (stores counted already, or by a
    /// concurrent writer or count, are not included).
    pub stores: usize,
    /// Keys found in those stores.
    pub keys: u64,
    /// Bytes (keys plus values) found in those stores.
    pub bytes: u64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl DynamoDbStore {
    /// What `user` stores over all their stores (keys, and bytes of keys
    /// plus values), as the usage quotas are judged by. Strongly consistent.
    pub async fn usage(&self, user: &UserToken) -> Result<Usage, DynamoDbError> {
        let mut p = Placeholders::default();
        let projection = p.projection(&[USAGE_BYTES, USAGE_KEYS]);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::item_key(
                &usage_partition_key(user),
                USAGE_SK.to_string(),
            )))
            .consistent_read(true)
            .projection_expression(projection)
            .set_expression_attribute_names(p.names())
            .send()
            .await
            .map_err(|e| DynamoDbError::request("GetItem", e))?;
        match out.item() {
            None => Ok(Usage::default()),
            Some(item) => usage_of_item(item).map_err(|message| DynamoDbError::Request {
                operation: "GetItem",
                message: format!("malformed usage item: {message}"),
            }),
        }
    }

    /// The action that moves the usage item at `usage_pk` by `delta` (none
    /// when it is zero), conditioned on `quota`: for each limited measure the
    /// put raises, the usage before must leave room for the rise, which is
    /// [`Quota::admit`] as a condition. `ADD` otherwise: writers of one user
    /// never race on the usage they read, only the quota's edge refuses.
    pub(crate) fn usage_action(
        &self,
        usage_pk: &str,
        delta: Delta,
        quota: Quota,
    ) -> Result<Option<(TransactWriteItem, UsageJudge)>, VssError> {
        if delta.is_zero() {
            return Ok(None);
        }
        let mut p = Placeholders::default();
        let update = format!(
            "ADD {} {}, {} {}",
            p.name(USAGE_BYTES),
            p.value(num(delta.bytes)),
            p.name(USAGE_KEYS),
            p.value(num(delta.keys))
        );
        let mut conditions = Vec::new();
        for (attribute, rise, max) in [
            (USAGE_BYTES, delta.bytes, quota.max_bytes),
            (USAGE_KEYS, delta.keys, quota.max_keys),
        ] {
            let Some(max) = max else { continue };
            if rise <= 0 {
                continue;
            }
            // Admitted when before + rise <= max. A missing attribute is 0,
            // and compares false: it passes only when the rise fits at all.
            let room = i128::from(max).saturating_sub(rise);
            let name = p.name(attribute);
            let bound = p.value(num(room));
            conditions.push(if room >= 0 {
                format!("(attribute_not_exists({name}) OR {name} <= {bound})")
            } else {
                format!("{name} <= {bound}")
            });
        }
        let action = self.update(
            usage_pk,
            USAGE_SK.to_string(),
            update,
            Some(conditions.join(" AND ")),
            &p,
        )?;
        Ok(Some((action, UsageJudge { delta, quota })))
    }

    /// Counts the store at `pk`, written before usage was kept, into its
    /// user's usage, once: reads its records, then in one transaction marks
    /// its metadata counted (conditioned on not being counted yet, and on the
    /// creation counter read) and adds what it found to the usage item.
    ///
    /// No write of this crate changes an uncounted store (each counts it
    /// first, here), so the records cannot change between the read and the
    /// transaction; the condition makes concurrent counts of one store add it
    /// once. Answers what it added, or `None` when there was nothing to count
    /// (no metadata: a store without records) or it was counted already.
    pub(crate) async fn count_store(&self, pk: &str) -> Result<Option<Usage>, VssError> {
        let usage_pk = usage_partition_of_store(pk)
            .ok_or_else(|| VssError::internal(format!("partition key `{pk}` names no user")))?;
        let mut backoff = Backoff::new(PUT_ATTEMPTS);
        loop {
            if !backoff.next_attempt() {
                return Err(VssError::internal(format!(
                    "counting the usage of a store gave up after {} attempts",
                    backoff.attempts()
                )));
            }
            let Some(metadata) = self.metadata(pk, &[USAGE_COUNTED, COUNTER]).await? else {
                return Ok(None);
            };
            if metadata.contains_key(USAGE_COUNTED) {
                return Ok(None);
            }
            let counter = get_num::<i64>(&metadata, COUNTER).map_err(VssError::internal)?;

            let usage = self.records_usage(pk).await?;

            let mut p = Placeholders::default();
            let update = format!("SET {} = {}", p.name(USAGE_COUNTED), p.number(1));
            let condition = format!(
                "attribute_exists({}) AND attribute_not_exists({}) AND {}",
                p.name(SK),
                p.name(USAGE_COUNTED),
                equals_or_absent(&mut p, COUNTER, counter)
            );
            let mut actions =
                vec![self.update(pk, METADATA_SK.to_string(), update, Some(condition), &p)?];
            let mut delta = Delta::default();
            delta.add(usage);
            if let Some((action, _)) = self.usage_action(&usage_pk, delta, Quota::UNLIMITED)? {
                actions.push(action);
            }
            match self.transact(actions).await {
                Ok(()) => {
                    tracing::info!(
                        pk,
                        keys = usage.keys,
                        bytes = usage.bytes,
                        "counted a store written before usage was kept"
                    );
                    return Ok(Some(usage));
                }
                Err(Ok(Cancelled::Transient)) => backoff.wait().await,
                Err(Ok(Cancelled::Reasons(reasons))) => {
                    if let Some(why) = fatal_reasons(&reasons) {
                        return Err(VssError::internal(format!(
                            "TransactWriteItems cancelled: {why}"
                        )));
                    }
                    // Counted meanwhile (the next read says so), or changed by
                    // a writer of an earlier version: read again.
                    backoff.wait().await;
                }
                // It may have committed: the next read tells, and the
                // condition on the mark keeps it from being added twice.
                Err(Err(Failure::Ambiguous(err))) => {
                    tracing::warn!(pk, error = %err, "usage count of a store: outcome unknown; reading again");
                    backoff.wait().await;
                }
                Err(Err(Failure::Definite(err))) => return Err(err),
            }
        }
    }

    /// What the records of the store at `pk` count, read page by page (a
    /// strongly consistent `Query`; values only to measure legacy records).
    async fn records_usage(&self, pk: &str) -> Result<Usage, VssError> {
        let mut items = self
            .prefix_query(
                pk,
                RECORD_PREFIX,
                &[SK, VERSION, CHUNK_ID, CHUNK_COUNT, VALUE_LEN, VALUE],
            )
            .into_paginator()
            .items()
            .send();
        let mut usage = Usage::default();
        while let Some(item) = items.next().await {
            let item = item.map_err(|e| internal("Query of records", e))?;
            let sk = get_str(&item, SK).map_err(VssError::internal)?;
            let Some(key) = sk.and_then(key_of_record) else {
                return Err(VssError::internal("record query returned another item"));
            };
            let len = record_state(&item, true)
                .map_err(VssError::internal)?
                .map_or(0, |current| current.len);
            usage = usage.plus(Usage::of_item(
                key,
                usize::try_from(len).unwrap_or(usize::MAX),
            ));
        }
        Ok(usage)
    }

    /// Counts every store written before usage was kept into its user's
    /// usage (a consistent `Scan` for metadata items not marked counted, then
    /// each store counted as the crate docs describe, a few at once), then
    /// writes the table's marker that says so. Safe to run at any time and
    /// concurrently with writers and with other counts; [`Self::connect`]
    /// runs it when the marker is missing. Only writers of an earlier version
    /// of this crate can make it inexact: stop them first (see the crate docs).
    pub async fn count_existing_usage(&self) -> Result<UsageCountReport, DynamoDbError> {
        let mut p = Placeholders::default();
        let filter = format!(
            "{} = {} AND attribute_not_exists({})",
            p.name(SK),
            p.string(METADATA_SK),
            p.name(USAGE_COUNTED)
        );
        let projection = p.name(PK);
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression(filter)
            .projection_expression(projection)
            .set_expression_attribute_names(p.names())
            .set_expression_attribute_values(p.values())
            .consistent_read(true)
            .into_paginator()
            .send();
        let mut report = UsageCountReport::default();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| DynamoDbError::request("Scan", e))?;
            let partitions: Vec<String> = page
                .items()
                .iter()
                .filter_map(|item| get_str(item, PK).ok().flatten().map(str::to_string))
                .collect();
            let counted: Vec<Result<Option<Usage>, VssError>> = stream::iter(partitions)
                .map(|pk| async move { self.count_store(&pk).await })
                .buffer_unordered(self.chunk_concurrency)
                .collect()
                .await;
            for result in counted {
                if let Some(usage) = result.map_err(|e| DynamoDbError::request("usage count", e))? {
                    report.stores += 1;
                    report.keys = report.keys.saturating_add(usage.keys);
                    report.bytes = report.bytes.saturating_add(usage.bytes);
                }
            }
        }
        let marker = HashMap::from([
            (
                PK.to_string(),
                AttributeValue::S(TABLE_PARTITION.to_string()),
            ),
            (
                SK.to_string(),
                AttributeValue::S(USAGE_MARKER_SK.to_string()),
            ),
            (COUNTED_AT.to_string(), num(now_secs())),
        ]);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(marker))
            .send()
            .await
            .map_err(|e| DynamoDbError::request("PutItem", e))?;
        Ok(report)
    }

    /// Counts existing data ([`Self::count_existing_usage`]) unless the
    /// table's marker says it was done.
    pub(crate) async fn ensure_usage_counted(&self) -> Result<(), DynamoDbError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::item_key(
                TABLE_PARTITION,
                USAGE_MARKER_SK.to_string(),
            )))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DynamoDbError::request("GetItem", e))?;
        if out.item().is_some() {
            return Ok(());
        }
        tracing::info!(
            table = %self.table,
            "counting the usage of data written before usage was kept (once per table)"
        );
        let report = self.count_existing_usage().await?;
        tracing::info!(
            table = %self.table,
            stores = report.stores,
            keys = report.keys,
            bytes = report.bytes,
            "usage of existing data counted"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_move_usage_exactly_and_never_below_zero() {
        let mut delta = Delta::default();
        assert!(delta.is_zero());
        delta.add(Usage::of_item("ab", 10));
        delta.sub(Usage::of_item("c", 3));
        assert_eq!(delta, Delta { bytes: 8, keys: 0 });
        let before = Usage { bytes: 5, keys: 1 };
        assert_eq!(delta.apply(before), Usage { bytes: 13, keys: 1 });
        delta.sub(Usage::of_item("abcdefghijkl", 100));
        assert_eq!(delta.apply(before), Usage { bytes: 0, keys: 0 });
    }

    #[test]
    fn usage_items_read_missing_measures_as_zero() {
        let item = HashMap::from([(USAGE_BYTES.to_string(), num(42))]);
        assert_eq!(usage_of_item(&item), Ok(Usage { bytes: 42, keys: 0 }));
        let negative = HashMap::from([(USAGE_KEYS.to_string(), num(-3))]);
        assert_eq!(usage_of_item(&negative), Ok(Usage::default()));
        let malformed = HashMap::from([(USAGE_KEYS.to_string(), AttributeValue::S("x".into()))]);
        assert!(usage_of_item(&malformed).is_err());
    }
}
