//! Large values as immutable chunks: written before the record points at them,
//! read by the chunk id a record names, deleted once no record does.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use bytes::{Bytes, BytesMut};
use futures::stream::{self, StreamExt, TryStreamExt};
use vss_core::VssError;

use crate::expr::{bin, get_bin, get_num, get_str, num, Placeholders};
use crate::layout::{
    chunk_id_of, chunk_sort_key, CHUNK_COUNT, CHUNK_DATA, CHUNK_ID, CHUNK_PREFIX, CHUNK_WRITTEN_AT,
    PK, RECORD_PREFIX, SK, VALUE_LEN,
};
use crate::store::{DynamoDbStore, CHUNK_SIZE};
use crate::{CleanupReport, DynamoDbError};

/// The chunks of one value: `count` items under one random id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChunkSet {
    pub id: String,
    pub count: u32,
    pub len: u64,
}

impl ChunkSet {
    /// A fresh chunk set for a value of `len` bytes.
    pub fn fresh(len: usize) -> Result<Self, VssError> {
        let id = crate::retry::random_id()
            .map_err(|e| VssError::internal(format!("no randomness for a chunk id: {e}")))?;
        let count = u32::try_from(len.div_ceil(CHUNK_SIZE).max(1))
            .map_err(|_| VssError::internal("value has too many chunks"))?;
        Ok(ChunkSet {
            id,
            count,
            len: len as u64,
        })
    }

    /// The chunk set a record names, if it is chunked.
    pub fn of_record(item: &HashMap<String, AttributeValue>) -> Result<Option<Self>, String> {
        let Some(id) = get_str(item, CHUNK_ID)? else {
            return Ok(None);
        };
        let count = get_num::<u32>(item, CHUNK_COUNT)?
            .ok_or_else(|| format!("chunked record lacks `{CHUNK_COUNT}`"))?;
        let len = get_num::<u64>(item, VALUE_LEN)?
            .ok_or_else(|| format!("chunked record lacks `{VALUE_LEN}`"))?;
        Ok(Some(ChunkSet {
            id: id.to_string(),
            count,
            len,
        }))
    }
}

fn key(pk: &str, sk: String) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_string(), AttributeValue::S(pk.to_string())),
        (SK.to_string(), AttributeValue::S(sk)),
    ])
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl DynamoDbStore {
    /// Writes every chunk of `value` under `set`. On error some chunks may be
    /// written: the caller deletes the set.
    pub(crate) async fn write_chunks(
        &self,
        pk: &str,
        set: &ChunkSet,
        value: &Bytes,
    ) -> Result<(), VssError> {
        let written_at = now_secs();
        stream::iter(0..set.count)
            .map(|index| {
                let start = (index as usize).saturating_mul(CHUNK_SIZE).min(value.len());
                let end = start.saturating_add(CHUNK_SIZE).min(value.len());
                let mut item = key(pk, chunk_sort_key(&set.id, index));
                item.insert(CHUNK_DATA.to_string(), bin(&value[start..end]));
                item.insert(CHUNK_WRITTEN_AT.to_string(), num(written_at));
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .send()
            })
            .buffer_unordered(self.chunk_concurrency)
            .map_err(|e| {
                VssError::internal(format!("PutItem of a chunk: {}", DisplayErrorContext(e)))
            })
            .try_for_each(|_| async { Ok(()) })
            .await
    }

    /// Reads a chunked value; `Ok(None)` when a chunk is missing (the value was
    /// replaced and its chunks removed meanwhile: read the record again).
    pub(crate) async fn read_chunks(
        &self,
        pk: &str,
        set: &ChunkSet,
    ) -> Result<Option<Bytes>, VssError> {
        let mut names = Placeholders::default();
        let projection = names.name(CHUNK_DATA);
        let chunks: Vec<Option<Vec<u8>>> = stream::iter(0..set.count)
            .map(|index| {
                self.client
                    .get_item()
                    .table_name(&self.table)
                    .set_key(Some(key(pk, chunk_sort_key(&set.id, index))))
                    .consistent_read(true)
                    .projection_expression(projection.clone())
                    .set_expression_attribute_names(names.names())
                    .send()
            })
            .buffered(self.chunk_concurrency)
            .map_err(|e| {
                VssError::internal(format!("GetItem of a chunk: {}", DisplayErrorContext(e)))
            })
            .and_then(|out| async move {
                match out.item() {
                    None => Ok(None),
                    Some(item) => get_bin(item, CHUNK_DATA)
                        .map_err(VssError::internal)
                        .map(|data| Some(data.unwrap_or_default().to_vec())),
                }
            })
            .try_collect()
            .await?;
        let mut value = BytesMut::with_capacity(usize::try_from(set.len).unwrap_or(0));
        for chunk in chunks {
            match chunk {
                Some(data) => value.extend_from_slice(&data),
                None => return Ok(None),
            }
        }
        if value.len() as u64 != set.len {
            return Err(VssError::internal(format!(
                "chunks of {} hold {} bytes, the record says {}",
                set.id,
                value.len(),
                set.len
            )));
        }
        Ok(Some(value.freeze()))
    }

    /// Deletes the chunks of `set`; returns how many requests failed (they are
    /// logged, and the chunks left are orphans for the cleanup).
    pub(crate) async fn delete_chunks(&self, pk: &str, set: &ChunkSet) -> usize {
        let failures = stream::iter(0..set.count)
            .map(|index| {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key(pk, chunk_sort_key(&set.id, index))))
                    .send()
            })
            .buffer_unordered(self.chunk_concurrency)
            .filter_map(|result| async move { result.err() })
            .fold(0usize, |failures, err| async move {
                tracing::warn!(
                    error = %DisplayErrorContext(err),
                    "could not delete a chunk; it stays as an orphan until cleanup"
                );
                failures + 1
            })
            .await;
        failures
    }

    /// Removes the orphaned chunks of one partition that are older than `min_age`.
    pub(crate) async fn cleanup_partition(
        &self,
        pk: &str,
        min_age: Duration,
    ) -> Result<CleanupReport, DynamoDbError> {
        let cutoff = now_secs().saturating_sub(min_age.as_secs());
        // First the chunks, then the records: a chunk set that is old now can no
        // longer be referenced by a put in flight (puts give up long before).
        let mut sets: HashMap<String, (bool, Vec<String>)> = HashMap::new();
        for item in self
            .query_prefix(pk, CHUNK_PREFIX, &[SK, CHUNK_WRITTEN_AT])
            .await?
        {
            let (Ok(Some(sk)), Ok(at)) =
                (get_str(&item, SK), get_num::<u64>(&item, CHUNK_WRITTEN_AT))
            else {
                continue;
            };
            let Some(id) = chunk_id_of(sk) else { continue };
            let entry = sets.entry(id.to_string()).or_insert((true, Vec::new()));
            entry.0 &= at.is_some_and(|at| at <= cutoff);
            entry.1.push(sk.to_string());
        }
        let mut referenced = HashSet::new();
        for item in self.query_prefix(pk, RECORD_PREFIX, &[CHUNK_ID]).await? {
            if let Ok(Some(id)) = get_str(&item, CHUNK_ID) {
                referenced.insert(id.to_string());
            }
        }
        let mut report = CleanupReport {
            partitions: 1,
            ..CleanupReport::default()
        };
        for (id, (old, sort_keys)) in sets {
            if !old || referenced.contains(&id) {
                continue;
            }
            tracing::info!(pk, chunk_id = %id, chunks = sort_keys.len(), "deleting orphaned chunks");
            let results: Vec<_> = stream::iter(sort_keys)
                .map(|sk| {
                    self.client
                        .delete_item()
                        .table_name(&self.table)
                        .set_key(Some(key(pk, sk)))
                        .send()
                })
                .buffer_unordered(self.chunk_concurrency)
                .collect()
                .await;
            for result in results {
                result.map_err(|e| DynamoDbError::request("DeleteItem", e))?;
                report.chunks_deleted += 1;
            }
            report.chunk_sets_deleted += 1;
        }
        Ok(report)
    }

    /// A strongly consistent `Query` of the items of partition `pk` whose
    /// sort key starts with `prefix`, with the given attributes; page it
    /// with `into_paginator`.
    pub(crate) fn prefix_query(
        &self,
        pk: &str,
        prefix: &str,
        attributes: &[&str],
    ) -> QueryFluentBuilder {
        let mut p = Placeholders::default();
        let condition = format!(
            "{} = {} AND begins_with({}, {})",
            p.name(PK),
            p.string(pk),
            p.name(SK),
            p.string(prefix)
        );
        let projection = p.projection(attributes);
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression(condition)
            .projection_expression(projection)
            .set_expression_attribute_names(p.names())
            .set_expression_attribute_values(p.values())
            .consistent_read(true)
    }

    /// Every item of a partition whose sort key starts with `prefix`, with the
    /// given attributes.
    async fn query_prefix(
        &self,
        pk: &str,
        prefix: &str,
        attributes: &[&str],
    ) -> Result<Vec<HashMap<String, AttributeValue>>, DynamoDbError> {
        let pages: Vec<_> = self
            .prefix_query(pk, prefix, attributes)
            .into_paginator()
            .items()
            .send()
            .collect()
            .await;
        pages
            .into_iter()
            .map(|item| item.map_err(|e| DynamoDbError::request("Query", e)))
            .collect()
    }

    /// The partitions that hold any chunk, by a scan of the whole table.
    pub(crate) async fn partitions_with_chunks(&self) -> Result<Vec<String>, DynamoDbError> {
        let mut p = Placeholders::default();
        let filter = format!("begins_with({}, {})", p.name(SK), p.string(CHUNK_PREFIX));
        let projection = p.name(PK);
        let items: Vec<_> = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression(filter)
            .projection_expression(projection)
            .set_expression_attribute_names(p.names())
            .set_expression_attribute_values(p.values())
            .into_paginator()
            .items()
            .send()
            .collect()
            .await;
        let mut partitions = Vec::new();
        let mut seen = HashSet::new();
        for item in items {
            let item = item.map_err(|e| DynamoDbError::request("Scan", e))?;
            if let Ok(Some(pk)) = get_str(&item, PK) {
                if seen.insert(pk.to_string()) {
                    partitions.push(pk.to_string());
                }
            }
        }
        Ok(partitions)
    }
}
