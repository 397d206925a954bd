//! Values above DynamoDB's item limit: chunked, read whole or not at all,
//! cleaned up when replaced; and puts at and over the transaction's limits.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use common::kv;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use vss_backend_dynamodb::{layout, DynamoDbStore, CHUNK_SIZE, MAX_ITEMS_PER_PUT};
use vss_core::conformance::{unique_name, unique_user};
use vss_core::proto::{
    DeleteObjectRequest, GetObjectRequest, KeyValue, ListKeyVersionsRequest, PutObjectRequest,
};
use vss_core::{KvStore, UserToken, VssError};

async fn put(
    store: &DynamoDbStore,
    user: &UserToken,
    store_id: &str,
    global_version: Option<i64>,
    items: Vec<KeyValue>,
) -> Result<(), VssError> {
    store
        .put(
            user,
            PutObjectRequest {
                store_id: store_id.into(),
                global_version,
                transaction_items: items,
                delete_items: vec![],
            },
        )
        .await
        .map(|_| ())
}

async fn get(store: &DynamoDbStore, user: &UserToken, store_id: &str, key: &str) -> KeyValue {
    store
        .get(
            user,
            GetObjectRequest {
                store_id: store_id.into(),
                key: key.into(),
            },
        )
        .await
        .unwrap()
        .value
        .unwrap()
}

/// The sort keys of every chunk item in one store's partition.
async fn chunk_items(store: &DynamoDbStore, user: &UserToken, store_id: &str) -> Vec<String> {
    let out: Result<Vec<_>, _> = store
        .client()
        .query()
        .table_name(store.table())
        .key_condition_expression("pk = :pk AND begins_with(sk, :c)")
        .expression_attribute_values(
            ":pk",
            AttributeValue::S(layout::partition_key(user, store_id)),
        )
        .expression_attribute_values(":c", AttributeValue::S(layout::CHUNK_PREFIX.into()))
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .collect()
        .await;
    out.unwrap()
        .iter()
        .map(|item| item["sk"].as_s().unwrap().clone())
        .collect()
}

fn pattern(len: usize, seed: u32) -> Bytes {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(31).wrapping_add(seed) % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_mib_value_round_trips_and_replaced_chunks_are_removed() {
    let Some(store) = common::store("large").await else {
        return;
    };
    let (user, sid) = (unique_user(), unique_name("s"));

    let big = pattern(20 * 1024 * 1024, 1);
    put(&store, &user, &sid, None, vec![kv("graph", 0, big.clone())])
        .await
        .unwrap();
    let got = get(&store, &user, &sid, "graph").await;
    assert_eq!(got.version, 1);
    assert_eq!(got.value.len(), big.len());
    assert!(got.value == big, "the 20 MiB value came back different");
    let chunks_of_big = (20 * 1024 * 1024usize).div_ceil(CHUNK_SIZE);
    assert_eq!(chunk_items(&store, &user, &sid).await.len(), chunks_of_big);

    // Overwrite with a smaller chunked value: only its chunks remain.
    let smaller = pattern(5 * 1024 * 1024 + 3, 2);
    put(
        &store,
        &user,
        &sid,
        None,
        vec![kv("graph", 1, smaller.clone())],
    )
    .await
    .unwrap();
    let got = get(&store, &user, &sid, "graph").await;
    assert_eq!(got.version, 2);
    assert!(got.value == smaller);
    assert_eq!(
        chunk_items(&store, &user, &sid).await.len(),
        smaller.len().div_ceil(CHUNK_SIZE)
    );

    // Overwrite with an inline value, then a chunked one again, then delete it.
    put(
        &store,
        &user,
        &sid,
        None,
        vec![kv("graph", -1, &b"tiny"[..])],
    )
    .await
    .unwrap();
    assert_eq!(get(&store, &user, &sid, "graph").await.value, &b"tiny"[..]);
    assert!(chunk_items(&store, &user, &sid).await.is_empty());
    put(&store, &user, &sid, None, vec![kv("graph", 1, big.clone())])
        .await
        .unwrap();
    assert!(get(&store, &user, &sid, "graph").await.value == big);
    store
        .delete(
            &user,
            DeleteObjectRequest {
                store_id: sid.clone(),
                key_value: Some(kv("graph", 2, Bytes::new())),
            },
        )
        .await
        .unwrap();
    assert!(chunk_items(&store, &user, &sid).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_never_sees_a_torn_value_while_it_is_overwritten() {
    let Some(store) = common::store("torn").await else {
        return;
    };
    let store = Arc::new(store);
    let (user, sid) = (unique_user(), unique_name("s"));
    // Four chunks per value; every byte of generation g is g.
    const LEN: usize = 3 * CHUNK_SIZE + 1000;
    const GENERATIONS: u8 = 30;
    put(&store, &user, &sid, None, vec![kv("v", 0, vec![0u8; LEN])])
        .await
        .unwrap();

    let writing = Arc::new(AtomicBool::new(true));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, user, sid, writing) =
                (store.clone(), user.clone(), sid.clone(), writing.clone());
            tokio::spawn(async move {
                let mut reads = 0usize;
                let mut last_generation = 0u8;
                // Bounded: stops when the writer is done, or after many reads.
                while (writing.load(Ordering::SeqCst) || reads < 5) && reads < 5_000 {
                    let got = get(&store, &user, &sid, "v").await;
                    assert_eq!(got.value.len(), LEN, "incomplete value");
                    let generation = got.value[0];
                    assert!(
                        got.value.iter().all(|&b| b == generation),
                        "torn value: generation {generation} mixed with others"
                    );
                    assert_eq!(
                        i64::from(generation) + 1,
                        got.version,
                        "value and version disagree"
                    );
                    assert!(generation >= last_generation, "a read went back in time");
                    last_generation = generation;
                    reads += 1;
                }
                reads
            })
        })
        .collect();

    for generation in 1..=GENERATIONS {
        put(
            &store,
            &user,
            &sid,
            None,
            vec![kv("v", i64::from(generation), vec![generation; LEN])],
        )
        .await
        .unwrap();
    }
    writing.store(false, Ordering::SeqCst);
    for reader in readers {
        assert!(reader.await.unwrap() >= 5);
    }
    let last = get(&store, &user, &sid, "v").await;
    assert_eq!(last.version, i64::from(GENERATIONS) + 1);
    assert!(last.value.iter().all(|&b| b == GENERATIONS));
    // Every replaced generation's chunks are gone.
    assert_eq!(
        chunk_items(&store, &user, &sid).await.len(),
        LEN.div_ceil(CHUNK_SIZE)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_put_over_the_transaction_limit_is_refused_and_writes_nothing() {
    let Some(store) = common::store("limit").await else {
        return;
    };
    let (user, sid) = (unique_user(), unique_name("s"));
    assert_eq!(store.limits().max_items_per_put, MAX_ITEMS_PER_PUT);

    let items: Vec<KeyValue> = (0..=MAX_ITEMS_PER_PUT)
        .map(|i| kv(&format!("k{i:03}"), 0, &b"v"[..]))
        .collect();
    let err = put(&store, &user, &sid, Some(0), items).await.unwrap_err();
    match err {
        VssError::InvalidRequest(message) => assert!(
            message.contains(&MAX_ITEMS_PER_PUT.to_string()),
            "the refusal should state the limit: {message}"
        ),
        other => panic!("expected INVALID_REQUEST, got {other:?}"),
    }
    let listing = store
        .list_key_versions(
            &user,
            ListKeyVersionsRequest {
                store_id: sid.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(listing.key_versions.is_empty(), "a refused put wrote keys");
    assert_eq!(
        listing.global_version,
        Some(0),
        "a refused put moved the global version"
    );
    assert!(chunk_items(&store, &user, &sid).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn values_beyond_four_mb_in_one_put_commit_together() {
    let Some(store) = common::store("budget").await else {
        return;
    };
    let (user, sid) = (unique_user(), unique_name("s"));
    // 20 values just under the inline limit: 6.8 MB, more than one transaction holds inline.
    let values: Vec<Bytes> = (0..20).map(|i| pattern(340 * 1024, i)).collect();
    let items = values
        .iter()
        .enumerate()
        .map(|(i, v)| kv(&format!("k{i:02}"), 0, v.clone()))
        .collect();
    put(&store, &user, &sid, Some(0), items).await.unwrap();
    for (i, value) in values.iter().enumerate() {
        let got = get(&store, &user, &sid, &format!("k{i:02}")).await;
        assert_eq!(got.version, 1);
        assert!(got.value == *value, "value {i} came back different");
    }
    assert_eq!(get(&store, &user, &sid, "global_version").await.version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orphaned_chunks_are_cleaned_up_and_referenced_ones_kept() {
    let Some(store) = common::store("orphans").await else {
        return;
    };
    let (user, sid) = (unique_user(), unique_name("s"));
    let value = pattern(2 * CHUNK_SIZE + 10, 9);
    put(
        &store,
        &user,
        &sid,
        None,
        vec![kv("kept", 0, value.clone())],
    )
    .await
    .unwrap();
    let referenced = chunk_items(&store, &user, &sid).await;
    assert_eq!(referenced.len(), 3);

    // What a crash between writing chunks and committing leaves: chunks no record
    // names. One set written long ago, one just now.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (id, written_at) in [("0ld0ld", now - 7200), ("fresh0", now)] {
        for index in 0..2 {
            let item = HashMap::from([
                (
                    "pk".to_string(),
                    AttributeValue::S(layout::partition_key(&user, &sid)),
                ),
                (
                    "sk".to_string(),
                    AttributeValue::S(layout::chunk_sort_key(id, index)),
                ),
                (
                    "data".to_string(),
                    AttributeValue::B(Blob::new(vec![7u8; 10])),
                ),
                ("at".to_string(), AttributeValue::N(written_at.to_string())),
            ]);
            store
                .client()
                .put_item()
                .table_name(store.table())
                .set_item(Some(item))
                .send()
                .await
                .unwrap();
        }
    }
    assert_eq!(chunk_items(&store, &user, &sid).await.len(), 7);

    let report = store
        .cleanup_orphan_chunks(&user, &sid, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!((report.chunk_sets_deleted, report.chunks_deleted), (1, 2));
    let left = chunk_items(&store, &user, &sid).await;
    assert_eq!(left.len(), 5);
    assert!(left.iter().all(|sk| !sk.contains("0ld0ld")));

    // The table-wide sweep with no age limit takes the fresh orphan, never the value's chunks.
    let report = store
        .cleanup_all_orphan_chunks(Duration::ZERO)
        .await
        .unwrap();
    assert_eq!((report.chunk_sets_deleted, report.chunks_deleted), (1, 2));
    let mut left = chunk_items(&store, &user, &sid).await;
    left.sort();
    let mut expected = referenced.clone();
    expected.sort();
    assert_eq!(left, expected);
    assert!(get(&store, &user, &sid, "kept").await.value == value);
}
