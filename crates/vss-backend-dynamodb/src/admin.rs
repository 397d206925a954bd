//! The admin interface ([`vss_core::admin`]) on DynamoDB.
//!
//! - Stores and users are enumerated by consistent `Scan`s (of metadata
//!   items, of usage items); the cursor is the scan's last key, so the order
//!   is DynamoDB's and a page may hold nothing but a cursor.
//! - A page is read with one `Query` of the `by_seq` index (records by
//!   ascending position, all attributes), chunked values with their chunks,
//!   and the global version with a read of its own: not one snapshot.
//! - Items are written in transactions of at most [`ITEMS_PER_TRANSACTION`]
//!   records plus the store's metadata and the user's usage, each atomic,
//!   conditioned like a put on the records read, so usage stays exact; a
//!   larger page is several transactions. Values too large to be inline are
//!   chunked first, as puts do.
//! - A store is deleted in transactions of records with the usage they free,
//!   then its chunks and its metadata; a user, store by store (found by a
//!   scan of the table), then their usage item.
//!
//! So a page larger than a transaction, `delete_store` and `delete_user` are
//! not atomic as a whole: run them where no server writes.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use base64::Engine;
use bytes::Bytes;
use vss_core::admin::{self, ItemsPage, PageSize, StoreRef, StoredItem, StoresPage, UsagePage};
use vss_core::{AdminStore, KvStore, Quota, Usage, UserToken, VssError};

use crate::chunks::ChunkSet;
use crate::expr::{get_bin, get_num, get_str, Placeholders};
use crate::layout::{
    key_of_record, partition_key, record_sort_key, usage_partition_key, user_of_partition,
    BY_SEQ_INDEX, CHUNK_COUNT, CHUNK_ID, CHUNK_PREFIX, COUNTER, GLOBAL_VERSION, METADATA_SK, PK,
    RECORD_PREFIX, SEQ, SK, USAGE_BYTES, USAGE_COUNTED, USAGE_KEYS, USAGE_PARTITION_PREFIX,
    USAGE_SK, VALUE, VALUE_LEN, VERSION,
};
use crate::put::{
    equals_or_absent, fatal_reasons, record_state, record_value, same_value, storage_plan,
    Cancelled, Failure, Storage, PUT_ATTEMPTS,
};
use crate::retry::Backoff;
use crate::store::{internal, DynamoDbStore};
use crate::usage::{usage_of_item, Delta};

/// Records per transaction: with the store's metadata and the user's usage,
/// within DynamoDB's 100 actions.
pub const ITEMS_PER_TRANSACTION: usize = 96;

/// Items a scan looks at per page (a page of stores or users may hold fewer).
const SCAN_LIMIT: i32 = 1000;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// A scan's last key as a cursor: its partition and sort keys.
fn cursor_of(last: Option<&HashMap<String, AttributeValue>>) -> Option<String> {
    let last = last?;
    let pk = get_str(last, PK).ok().flatten()?;
    let sk = get_str(last, SK).ok().flatten()?;
    Some(format!("{}.{}", b64().encode(pk), b64().encode(sk)))
}

/// A cursor back as a scan's start key.
fn start_of(cursor: Option<&str>) -> Result<Option<HashMap<String, AttributeValue>>, VssError> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let invalid = || VssError::InvalidRequest(format!("`{cursor}` is not a cursor of this table"));
    let (pk, sk) = cursor.split_once('.').ok_or_else(invalid)?;
    let text = |part: &str| {
        b64()
            .decode(part)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(invalid)
    };
    Ok(Some(DynamoDbStore::item_key(&text(pk)?, text(sk)?)))
}

/// The store of a store partition key.
fn store_of_partition(pk: &str) -> Option<StoreRef> {
    let user = user_of_partition(pk)?;
    let (len, rest) = pk.split_once(':')?;
    let store_id = rest.get(len.parse::<usize>().ok()?..)?;
    Some(StoreRef {
        user: UserToken::new(user).ok()?,
        store_id: store_id.to_string(),
    })
}

impl DynamoDbStore {
    /// One consistent scan page with `filter`, projecting `attributes`.
    async fn scan_page(
        &self,
        cursor: Option<&str>,
        filter: String,
        attributes: &[&str],
        mut p: Placeholders,
    ) -> Result<(Vec<HashMap<String, AttributeValue>>, Option<String>), VssError> {
        let projection = p.projection(attributes);
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression(filter)
            .projection_expression(projection)
            .set_expression_attribute_names(p.names())
            .set_expression_attribute_values(p.values())
            .set_exclusive_start_key(start_of(cursor)?)
            .consistent_read(true)
            .limit(SCAN_LIMIT)
            .send()
            .await
            .map_err(|e| internal("Scan", e))?;
        let next = cursor_of(out.last_evaluated_key());
        Ok((out.items.unwrap_or_default(), next))
    }

    /// Writes one transaction's worth of items (values already chunked per
    /// `storage`): reads what they replace, then commits records, metadata
    /// and usage together, retrying races. Returns the chunk sets replaced.
    async fn write_batch(
        &self,
        pk: &str,
        usage_pk: &str,
        items: &[StoredItem],
        storage: &[Storage],
        global_version: Option<i64>,
    ) -> Result<Vec<ChunkSet>, Failure> {
        let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
        let mut backoff = Backoff::new(PUT_ATTEMPTS);
        loop {
            if !backoff.next_attempt() {
                return Err(Failure::Definite(VssError::internal(format!(
                    "writing items gave up after {} attempts racing other writers",
                    backoff.attempts()
                ))));
            }
            let observed = self.observe(pk, &keys).await.map_err(Failure::Definite)?;
            if !self
                .may_count(pk, &observed, &backoff)
                .await
                .map_err(Failure::Definite)?
            {
                continue;
            }
            let mut actions: Vec<TransactWriteItem> = Vec::with_capacity(items.len() + 2);
            let mut delta = Delta::default();
            for (item, storage) in items.iter().zip(storage) {
                let current = observed.records.get(&item.key);
                if let Some(current) = current {
                    let len = usize::try_from(current.len).unwrap_or(usize::MAX);
                    delta.sub(Usage::of_item(&item.key, len));
                }
                delta.add(item.usage());
                let mut p = Placeholders::default();
                let (mut set, remove) = record_value(&mut p, item.version, &item.value, storage)
                    .map_err(Failure::Definite)?;
                set.push(format!("{} = {}", p.name(SEQ), p.number(item.position)));
                let condition = match current {
                    None => format!("attribute_not_exists({})", p.name(SK)),
                    Some(current) => same_value(&mut p, current).map_err(Failure::Definite)?,
                };
                let update = format!("SET {} REMOVE {}", set.join(", "), remove.join(", "));
                actions.push(
                    self.update(pk, record_sort_key(&item.key), update, Some(condition), &p)
                        .map_err(Failure::Definite)?,
                );
            }

            // The metadata: the counter past every position written, the
            // global version, and the mark of a new store (counted from now).
            let last = items.last().map_or(0, |i| i.position);
            let mut p = Placeholders::default();
            let (mut set, mut conditions) = (Vec::new(), Vec::new());
            if last > observed.counter.unwrap_or(0) {
                set.push(format!("{} = {}", p.name(COUNTER), p.number(last)));
                conditions.push(equals_or_absent(&mut p, COUNTER, observed.counter));
            }
            if let Some(global_version) = global_version {
                set.push(format!(
                    "{} = {}",
                    p.name(GLOBAL_VERSION),
                    p.number(global_version)
                ));
            }
            if !observed.metadata {
                set.push(format!("{} = {}", p.name(USAGE_COUNTED), p.number(1)));
                if last <= observed.counter.unwrap_or(0) {
                    conditions.push(equals_or_absent(&mut p, COUNTER, None));
                }
            }
            if !set.is_empty() {
                let update = format!("SET {}", set.join(", "));
                let condition = (!conditions.is_empty()).then(|| conditions.join(" AND "));
                actions.push(
                    self.update(pk, METADATA_SK.to_string(), update, condition, &p)
                        .map_err(Failure::Definite)?,
                );
            }
            if let Some((action, _)) = self
                .usage_action(usage_pk, delta, Quota::UNLIMITED)
                .map_err(Failure::Definite)?
            {
                actions.push(action);
            }
            if actions.is_empty() {
                return Ok(Vec::new());
            }
            match self.transact(actions).await {
                Ok(()) => {
                    return Ok(items
                        .iter()
                        .filter_map(|i| observed.records.get(&i.key)?.chunks.clone())
                        .collect())
                }
                Err(Ok(Cancelled::Transient)) => backoff.wait().await,
                Err(Ok(Cancelled::Reasons(reasons))) => match fatal_reasons(&reasons) {
                    // A condition on what was read failed: it changed; read again.
                    None => backoff.wait().await,
                    Some(why) => {
                        return Err(Failure::Definite(VssError::internal(format!(
                            "TransactWriteItems cancelled: {why}"
                        ))))
                    }
                },
                Err(Err(failure)) => return Err(failure),
            }
        }
    }

    /// Deletes up to a transaction's worth of the store's records (read
    /// here) with the usage they free; `false` when none was left.
    async fn delete_some_records(&self, pk: &str, usage_pk: &str) -> Result<bool, VssError> {
        let mut backoff = Backoff::new(PUT_ATTEMPTS);
        loop {
            if !backoff.next_attempt() {
                return Err(VssError::internal(format!(
                    "deleting records gave up after {} attempts racing other writers",
                    backoff.attempts()
                )));
            }
            let counted = match self.metadata(pk, &[USAGE_COUNTED]).await? {
                Some(metadata) => metadata.contains_key(USAGE_COUNTED),
                None => true,
            };
            if !counted {
                self.count_store(pk).await?;
                continue;
            }
            let out = self
                .prefix_query(
                    pk,
                    RECORD_PREFIX,
                    &[SK, VERSION, CHUNK_ID, CHUNK_COUNT, VALUE_LEN, VALUE],
                )
                .limit(ITEMS_PER_TRANSACTION as i32)
                .send()
                .await
                .map_err(|e| internal("Query of records", e))?;
            let records = out.items();
            if records.is_empty() {
                return Ok(false);
            }
            let mut actions = Vec::with_capacity(records.len() + 1);
            let mut delta = Delta::default();
            let mut chunks = Vec::new();
            for record in records {
                let sk = get_str(record, SK).map_err(VssError::internal)?;
                let Some(key) = sk.and_then(key_of_record) else {
                    return Err(VssError::internal("record query returned another item"));
                };
                let Some(current) = record_state(record, true).map_err(VssError::internal)? else {
                    return Err(VssError::internal("a record without its length"));
                };
                delta.sub(Usage::of_item(
                    key,
                    usize::try_from(current.len).unwrap_or(usize::MAX),
                ));
                let mut p = Placeholders::default();
                let condition = same_value(&mut p, &current)?;
                actions.push(self.delete_action(pk, key, condition, &p)?);
                chunks.extend(current.chunks);
            }
            if let Some((action, _)) = self.usage_action(usage_pk, delta, Quota::UNLIMITED)? {
                actions.push(action);
            }
            match self.transact(actions).await {
                Ok(()) => {
                    for set in &chunks {
                        self.delete_chunks(pk, set).await;
                    }
                    return Ok(true);
                }
                Err(Ok(Cancelled::Transient)) => backoff.wait().await,
                Err(Ok(Cancelled::Reasons(reasons))) => match fatal_reasons(&reasons) {
                    None => backoff.wait().await,
                    Some(why) => {
                        return Err(VssError::internal(format!(
                            "TransactWriteItems cancelled: {why}"
                        )))
                    }
                },
                Err(Err(Failure::Definite(e) | Failure::Ambiguous(e))) => return Err(e),
            }
        }
    }

    /// Deletes every item of partition `pk` whose sort key starts with
    /// `prefix` (chunks, the metadata), one by one.
    async fn delete_items_with_prefix(&self, pk: &str, prefix: &str) -> Result<(), VssError> {
        let mut items = self
            .prefix_query(pk, prefix, &[SK])
            .into_paginator()
            .items()
            .send();
        while let Some(item) = items.next().await {
            let item = item.map_err(|e| internal("Query", e))?;
            let Some(sk) = get_str(&item, SK).map_err(VssError::internal)? else {
                continue;
            };
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(Self::item_key(pk, sk.to_string())))
                .send()
                .await
                .map_err(|e| internal("DeleteItem", e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl AdminStore for DynamoDbStore {
    async fn list_stores(
        &self,
        cursor: Option<&str>,
        _limit: usize,
    ) -> Result<StoresPage, VssError> {
        let mut p = Placeholders::default();
        let filter = format!("{} = {}", p.name(SK), p.string(METADATA_SK));
        let (items, next) = self.scan_page(cursor, filter, &[PK], p).await?;
        let stores = items
            .iter()
            .filter_map(|item| get_str(item, PK).ok().flatten())
            .filter_map(store_of_partition)
            .collect();
        Ok(StoresPage { stores, next })
    }

    async fn read_items(
        &self,
        store: &StoreRef,
        after: i64,
        size: PageSize,
    ) -> Result<ItemsPage, VssError> {
        let pk = partition_key(&store.user, &store.store_id);
        let mut p = Placeholders::default();
        let condition = format!(
            "{} = {} AND {} > {}",
            p.name(PK),
            p.string(&pk),
            p.name(SEQ),
            p.number(after)
        );
        // The index holds positions (and versions); the records, their values.
        let projection = p.projection(&[SK, SEQ]);
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_SEQ_INDEX)
            .key_condition_expression(condition)
            .projection_expression(projection)
            .set_expression_attribute_names(p.names())
            .set_expression_attribute_values(p.values())
            .scan_index_forward(true)
            .consistent_read(true)
            .limit(i32::try_from(size.items.max(1)).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| internal("Query of by_seq", e))?;
        let mut listed = Vec::with_capacity(out.items().len());
        for entry in out.items() {
            let sk = get_str(entry, SK).map_err(VssError::internal)?;
            let Some(key) = sk.and_then(key_of_record) else {
                continue;
            };
            let position = get_num::<i64>(entry, SEQ)
                .map_err(VssError::internal)?
                .ok_or_else(|| VssError::internal("an index entry without a position"))?;
            listed.push((key.to_string(), position));
        }
        let mut records = HashMap::with_capacity(listed.len());
        for batch in listed.chunks(100) {
            let keys = batch
                .iter()
                .map(|(key, _)| Self::item_key(&pk, record_sort_key(key)))
                .collect();
            let attributes = [SK, VERSION, CHUNK_ID, CHUNK_COUNT, VALUE_LEN, VALUE];
            for item in self.batch_read(keys, &attributes).await? {
                if let Some(key) = get_str(&item, SK)
                    .map_err(VssError::internal)?
                    .and_then(key_of_record)
                {
                    records.insert(key.to_string(), item.clone());
                }
            }
        }
        let mut items = Vec::new();
        let mut bytes = 0usize;
        for (key, position) in listed {
            // Deleted since the query: not in this page.
            let Some(record) = records.get(&key) else {
                continue;
            };
            let Some(current) = record_state(record, true).map_err(VssError::internal)? else {
                return Err(VssError::internal("a record without its length"));
            };
            bytes = bytes.saturating_add(usize::try_from(current.len).unwrap_or(usize::MAX));
            if !size.fits(items.len(), bytes) {
                break;
            }
            let (version, value) = match &current.chunks {
                None => (
                    current.version,
                    Bytes::copy_from_slice(
                        get_bin(record, VALUE)
                            .map_err(VssError::internal)?
                            .unwrap_or_default(),
                    ),
                ),
                Some(set) => match self.read_chunks(&pk, set).await? {
                    Some(value) => (current.version, value),
                    // Replaced while we read: the record as it is now.
                    None => match self.get_record(&pk, &key).await? {
                        Some(record) => record,
                        None => continue,
                    },
                },
            };
            items.push(StoredItem {
                key,
                version,
                position,
                value,
            });
        }
        Ok(ItemsPage {
            global_version: self.global_version(&pk).await?,
            items,
        })
    }

    async fn write_items(
        &self,
        store: &StoreRef,
        items: &[StoredItem],
        global_version: Option<i64>,
    ) -> Result<(), VssError> {
        admin::check_items(store, items, &self.limits())?;
        let pk = partition_key(&store.user, &store.store_id);
        let usage_pk = usage_partition_key(&store.user);
        let batches: Vec<&[StoredItem]> = if items.is_empty() {
            vec![&[]]
        } else {
            items.chunks(ITEMS_PER_TRANSACTION).collect()
        };
        let count = batches.len();
        for (n, batch) in batches.into_iter().enumerate() {
            let storage = storage_plan(batch.iter().map(|i| i.value.len()))?;
            let mut written: Vec<&ChunkSet> = Vec::new();
            for (item, storage) in batch.iter().zip(&storage) {
                if let Storage::Chunked(set) = storage {
                    written.push(set);
                    if let Err(err) = self.write_chunks(&pk, set, &item.value).await {
                        for set in &written {
                            self.delete_chunks(&pk, set).await;
                        }
                        return Err(err);
                    }
                }
            }
            // The global version goes with the last batch.
            let global = if n + 1 == count { global_version } else { None };
            match self
                .write_batch(&pk, &usage_pk, batch, &storage, global)
                .await
            {
                Ok(replaced) => {
                    for set in &replaced {
                        self.delete_chunks(&pk, set).await;
                    }
                }
                Err(Failure::Definite(err)) => {
                    for set in &written {
                        self.delete_chunks(&pk, set).await;
                    }
                    return Err(err);
                }
                Err(Failure::Ambiguous(err)) => return Err(err),
            }
        }
        Ok(())
    }

    async fn delete_store(&self, store: &StoreRef) -> Result<(), VssError> {
        let pk = partition_key(&store.user, &store.store_id);
        let usage_pk = usage_partition_key(&store.user);
        while self.delete_some_records(&pk, &usage_pk).await? {}
        self.delete_items_with_prefix(&pk, CHUNK_PREFIX).await?;
        self.delete_items_with_prefix(&pk, METADATA_SK).await
    }

    async fn delete_user(&self, user: &UserToken) -> Result<(), VssError> {
        let prefix = partition_key(user, "");
        let mut cursor: Option<String> = None;
        loop {
            let mut p = Placeholders::default();
            let filter = format!(
                "{} = {} AND begins_with({}, {})",
                p.name(SK),
                p.string(METADATA_SK),
                p.name(PK),
                p.string(&prefix)
            );
            let (items, next) = self.scan_page(cursor.as_deref(), filter, &[PK], p).await?;
            for store in items
                .iter()
                .filter_map(|item| get_str(item, PK).ok().flatten())
                .filter_map(store_of_partition)
                .filter(|store| store.user == *user)
            {
                self.delete_store(&store).await?;
            }
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::item_key(
                &usage_partition_key(user),
                USAGE_SK.to_string(),
            )))
            .send()
            .await
            .map_err(|e| internal("DeleteItem of a usage item", e))?;
        Ok(())
    }

    async fn usage(&self, user: &UserToken) -> Result<Usage, VssError> {
        DynamoDbStore::usage(self, user)
            .await
            .map_err(|e| VssError::internal(vss_core::error_chain(&e)))
    }

    async fn list_usage(&self, cursor: Option<&str>, _limit: usize) -> Result<UsagePage, VssError> {
        let mut p = Placeholders::default();
        let filter = format!(
            "{} = {} AND begins_with({}, {})",
            p.name(SK),
            p.string(USAGE_SK),
            p.name(PK),
            p.string(USAGE_PARTITION_PREFIX)
        );
        let (items, next) = self
            .scan_page(cursor, filter, &[PK, USAGE_BYTES, USAGE_KEYS], p)
            .await?;
        let mut users = Vec::with_capacity(items.len());
        for item in &items {
            let Some(user) = get_str(item, PK)
                .map_err(VssError::internal)?
                .and_then(|pk| pk.strip_prefix(USAGE_PARTITION_PREFIX))
                .and_then(|user| UserToken::new(user).ok())
            else {
                continue;
            };
            users.push((user, usage_of_item(item).map_err(VssError::internal)?));
        }
        Ok(UsagePage { users, next })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn partitions_and_cursors_decode() {
        let user = UserToken::new("a:b").unwrap();
        let pk = partition_key(&user, "s:1");
        assert_eq!(
            store_of_partition(&pk),
            Some(StoreRef {
                user,
                store_id: "s:1".into()
            })
        );
        assert_eq!(store_of_partition("u:x"), None);
        let key = DynamoDbStore::item_key(&pk, "m".into());
        let cursor = cursor_of(Some(&key)).unwrap();
        assert_eq!(start_of(Some(&cursor)).unwrap(), Some(key));
        assert!(start_of(Some("x")).is_err());
    }
}
