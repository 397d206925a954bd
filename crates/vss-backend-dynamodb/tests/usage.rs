//! Per-user usage: exact on every write path, counted once for data written
//! before usage was kept (in the old layout, by raw requests), without a race
//! between that count and concurrent writers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use common::kv;
use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use vss_backend_dynamodb::{layout, DynamoDbConfig, DynamoDbStore, CHUNK_SIZE};
use vss_core::conformance::{unique_name, unique_user};
use vss_core::proto::{
    DeleteObjectRequest, GetObjectRequest, KeyValue, ListKeyVersionsRequest, PutObjectRequest,
};
use vss_core::{KvStore, Quota, Usage, UserToken, VssError};

fn bytes(max: u64) -> Quota {
    Quota {
        max_bytes: Some(max),
        max_keys: None,
    }
}

async fn put_quota(
    store: &DynamoDbStore,
    user: &UserToken,
    store_id: &str,
    quota: Quota,
    items: Vec<KeyValue>,
    deletes: Vec<KeyValue>,
) -> Result<(), VssError> {
    store
        .put_with_quota(
            user,
            PutObjectRequest {
                store_id: store_id.into(),
                global_version: None,
                transaction_items: items,
                delete_items: deletes,
            },
            quota,
        )
        .await
        .map(|_| ())
}

async fn put(store: &DynamoDbStore, user: &UserToken, store_id: &str, items: Vec<KeyValue>) {
    put_quota(store, user, store_id, Quota::UNLIMITED, items, vec![])
        .await
        .unwrap();
}

async fn delete_object(store: &DynamoDbStore, user: &UserToken, store_id: &str, key: &str, v: i64) {
    store
        .delete(
            user,
            DeleteObjectRequest {
                store_id: store_id.into(),
                key_value: Some(kv(key, v, Bytes::new())),
            },
        )
        .await
        .unwrap();
}

/// What the user stores in `store_ids`, recounted from listings and reads.
async fn recount(store: &DynamoDbStore, user: &UserToken, store_ids: &[String]) -> Usage {
    let mut usage = Usage::default();
    for sid in store_ids {
        let mut token = None;
        loop {
            let page = store
                .list_key_versions(
                    user,
                    ListKeyVersionsRequest {
                        store_id: sid.clone(),
                        key_prefix: None,
                        page_size: None,
                        page_token: token.take(),
                    },
                )
                .await
                .unwrap();
            for listed in page.key_versions {
                let value = store
                    .get(
                        user,
                        GetObjectRequest {
                            store_id: sid.clone(),
                            key: listed.key.clone(),
                        },
                    )
                    .await
                    .unwrap()
                    .value
                    .unwrap()
                    .value;
                usage = usage.plus(Usage::of_item(&listed.key, value.len()));
            }
            match page.next_page_token.as_deref() {
                Some("") | None => break,
                Some(next) => token = Some(next.to_string()),
            }
        }
    }
    usage
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

async fn raw_put(store: &DynamoDbStore, item: HashMap<String, AttributeValue>) {
    store
        .client()
        .put_item()
        .table_name(store.table())
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

/// Writes a store as a version before usage wrote it: metadata without the
/// counted mark, records without `vl` unless chunked, chunks. `records` are
/// (key, value length); values over `CHUNK_SIZE` are chunked. Answers what
/// the store counts.
async fn write_legacy_store(
    store: &DynamoDbStore,
    user: &UserToken,
    store_id: &str,
    records: &[(&str, usize)],
) -> Usage {
    let pk = layout::partition_key(user, store_id);
    let item = |sk: String| {
        HashMap::from([
            (layout::PK.to_string(), s(&pk)),
            (layout::SK.to_string(), s(&sk)),
        ])
    };
    let mut usage = Usage::default();
    for (i, (key, len)) in records.iter().enumerate() {
        let mut record = item(layout::record_sort_key(key));
        record.insert(layout::SEQ.into(), n(i + 1));
        record.insert(layout::VERSION.into(), n(1));
        if *len > CHUNK_SIZE {
            let cid = unique_name("legacy").replace(|c: char| !c.is_ascii_alphanumeric(), "");
            let count = len.div_ceil(CHUNK_SIZE);
            for index in 0..count {
                let data = vec![b'c'; (*len - index * CHUNK_SIZE).min(CHUNK_SIZE)];
                let mut chunk = item(layout::chunk_sort_key(&cid, index as u32));
                chunk.insert(
                    layout::CHUNK_DATA.into(),
                    AttributeValue::B(Blob::new(data)),
                );
                chunk.insert(layout::CHUNK_WRITTEN_AT.into(), n(1));
                raw_put(store, chunk).await;
            }
            record.insert(layout::CHUNK_ID.into(), s(&cid));
            record.insert(layout::CHUNK_COUNT.into(), n(count));
            record.insert(layout::VALUE_LEN.into(), n(len));
        } else if *len > 0 {
            record.insert(
                layout::VALUE.into(),
                AttributeValue::B(Blob::new(vec![b'v'; *len])),
            );
        }
        raw_put(store, record).await;
        usage = usage.plus(Usage::of_item(key, *len));
    }
    let mut metadata = item(layout::METADATA_SK.to_string());
    metadata.insert(layout::COUNTER.into(), n(records.len()));
    raw_put(store, metadata).await;
    usage
}

/// Removes the marker that says the table's existing data was counted, as
/// on a table written before usage was kept.
async fn forget_the_count(store: &DynamoDbStore) {
    store
        .client()
        .delete_item()
        .table_name(store.table())
        .key(layout::PK, s(layout::TABLE_PARTITION))
        .key(layout::SK, s(layout::USAGE_MARKER_SK))
        .send()
        .await
        .unwrap();
}

async fn marker_exists(store: &DynamoDbStore) -> bool {
    store
        .client()
        .get_item()
        .table_name(store.table())
        .key(layout::PK, s(layout::TABLE_PARTITION))
        .key(layout::SK, s(layout::USAGE_MARKER_SK))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item()
        .is_some()
}

async fn store_and_config(label: &str) -> Option<(DynamoDbStore, DynamoDbConfig)> {
    let url = common::url()?;
    let config = common::config(&url, label);
    let store = DynamoDbStore::connect(config.clone()).await.unwrap();
    Some((store, config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_written_before_usage_is_counted_once_on_connect_and_judged_exactly() {
    let Some((store, config)) = store_and_config("usage-legacy").await else {
        return;
    };
    assert!(
        marker_exists(&store).await,
        "a new table is counted at once"
    );
    let (user, other) = (unique_user(), unique_user());
    let (s1, s2) = (unique_name("s1"), unique_name("s2"));
    let big = 2 * CHUNK_SIZE + 17;
    let mut legacy =
        write_legacy_store(&store, &user, &s1, &[("a", 10), ("empty", 0), ("big", big)]).await;
    legacy = legacy.plus(write_legacy_store(&store, &user, &s2, &[("bb", 300)]).await);
    let others = write_legacy_store(&store, &other, &s1, &[("a", 55)]).await;
    forget_the_count(&store).await;
    assert_eq!(store.usage(&user).await.unwrap(), Usage::default());

    // A server of this version starting on the table counts it, once.
    let store = DynamoDbStore::connect(DynamoDbConfig {
        create_table: false,
        ..config
    })
    .await
    .unwrap();
    assert!(marker_exists(&store).await);
    assert_eq!(
        legacy,
        Usage {
            bytes: (1 + 10) + 5 + (3 + big as u64) + (2 + 300),
            keys: 4
        }
    );
    assert_eq!(store.usage(&user).await.unwrap(), legacy);
    assert_eq!(store.usage(&other).await.unwrap(), others);
    let again = store.count_existing_usage().await.unwrap();
    assert_eq!(again.stores, 0, "every store was counted already");
    assert_eq!(store.usage(&user).await.unwrap(), legacy);
    let stores = [s1.clone(), s2.clone()];
    assert_eq!(recount(&store, &user, &stores).await, legacy);

    // A quota put sees the old data: exactly the limit fits, one byte more does not.
    let quota = bytes(legacy.bytes + 10);
    put_quota(
        &store,
        &user,
        &s2,
        quota,
        vec![kv("x", 0, vec![b'x'; 9])],
        vec![],
    )
    .await
    .unwrap();
    match put_quota(
        &store,
        &user,
        &s1,
        quota,
        vec![kv("y", 0, Bytes::new())],
        vec![],
    )
    .await
    {
        Err(VssError::QuotaExceeded(message)) => assert!(
            message.contains(&(legacy.bytes + 11).to_string()),
            "{message}"
        ),
        other => panic!("expected a quota refusal, got {other:?}"),
    }

    // Legacy records change exactly: overwritten (inline, by version and
    // not), deleted by a put, deleted by deleteObject.
    put(&store, &user, &s1, vec![kv("a", 1, vec![b'n'; 25])]).await;
    put(&store, &user, &s1, vec![kv("empty", -1, vec![b'n'; 3])]).await;
    put_quota(
        &store,
        &user,
        &s2,
        Quota::UNLIMITED,
        vec![],
        vec![kv("bb", 1, Bytes::new())],
    )
    .await
    .unwrap();
    delete_object(&store, &user, &s1, "big", -1).await;
    let expected = recount(&store, &user, &stores).await;
    assert_eq!(
        expected,
        Usage {
            bytes: (1 + 25) + (5 + 3) + (1 + 9),
            keys: 3
        }
    );
    assert_eq!(store.usage(&user).await.unwrap(), expected);
    assert_eq!(store.usage(&other).await.unwrap(), others);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_not_yet_counted_is_counted_by_its_first_write() {
    let Some((store, _)) = store_and_config("usage-lazy").await else {
        return;
    };
    let user = unique_user();
    let (s1, s2, s3) = (unique_name("s1"), unique_name("s2"), unique_name("s3"));
    // Stores the count did not see (the marker is there already).
    write_legacy_store(&store, &user, &s1, &[("a", 10), ("b", 20)]).await;
    write_legacy_store(&store, &user, &s2, &[("c", 30), ("d", 40)]).await;
    write_legacy_store(&store, &user, &s3, &[("e", 50)]).await;
    assert_eq!(store.usage(&user).await.unwrap(), Usage::default());

    put(&store, &user, &s1, vec![kv("new", 0, vec![b'n'; 7])]).await;
    let s1_usage = recount(&store, &user, std::slice::from_ref(&s1)).await;
    assert_eq!(store.usage(&user).await.unwrap(), s1_usage);

    delete_object(&store, &user, &s2, "c", 1).await;
    let both = recount(&store, &user, &[s1.clone(), s2.clone()]).await;
    assert_eq!(store.usage(&user).await.unwrap(), both);

    // A quota put on an uncounted store counts it before judging.
    let quota = bytes(both.bytes + 51 + 4);
    match put_quota(
        &store,
        &user,
        &s3,
        quota,
        vec![kv("f", 0, vec![b'f'; 4])],
        vec![],
    )
    .await
    {
        Err(VssError::QuotaExceeded(message)) => {
            assert!(
                message.contains(&(both.bytes + 51 + 5).to_string()),
                "{message}"
            )
        }
        other => panic!("expected a quota refusal, got {other:?}"),
    }
    put_quota(
        &store,
        &user,
        &s3,
        quota,
        vec![kv("f", 0, vec![b'f'; 3])],
        vec![],
    )
    .await
    .unwrap();
    let all = recount(&store, &user, &[s1, s2, s3]).await;
    assert_eq!(all.bytes, quota.max_bytes.unwrap());
    assert_eq!(store.usage(&user).await.unwrap(), all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counting_races_with_writers_and_stays_exact() {
    let Some((store, _)) = store_and_config("usage-race").await else {
        return;
    };
    let store = Arc::new(store);
    let user = unique_user();
    let sids: Vec<String> = (0..6).map(|i| unique_name(&format!("s{i}"))).collect();
    for sid in &sids {
        write_legacy_store(
            &store,
            &user,
            sid,
            &[("k0", 10), ("k1", 20), ("k2", 30), ("k3", 0), ("k4", 40)],
        )
        .await;
    }
    forget_the_count(&store).await;

    let mut tasks = Vec::new();
    // Two counts at once, as two servers starting together would run them.
    for _ in 0..2 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.count_existing_usage().await.unwrap();
        }));
    }
    for sid in sids.clone() {
        let (store, user) = (store.clone(), user.clone());
        tasks.push(tokio::spawn(async move {
            put(&store, &user, &sid, vec![kv("k0", -1, vec![b'o'; 21])]).await;
            put(&store, &user, &sid, vec![kv("new", 0, vec![b'n'; 5])]).await;
            delete_object(&store, &user, &sid, "k1", -1).await;
            put_quota(
                &store,
                &user,
                &sid,
                Quota::UNLIMITED,
                vec![],
                vec![kv("k2", -1, Bytes::new())],
            )
            .await
            .unwrap();
            put(&store, &user, &sid, vec![kv("k3", 1, vec![b'3'; 2])]).await;
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(marker_exists(&store).await);
    let expected = recount(&store, &user, &sids).await;
    assert_eq!(
        expected,
        Usage {
            bytes: 6 * ((2 + 21) + (3 + 5) + (2 + 2) + (2 + 40)),
            keys: 6 * 4
        }
    );
    assert_eq!(store.usage(&user).await.unwrap(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_stays_exact_on_every_write_path() {
    let Some((store, _)) = store_and_config("usage-paths").await else {
        return;
    };
    let user = unique_user();
    let (a, b) = (unique_name("a"), unique_name("b"));
    let stores = [a.clone(), b.clone()];
    let chunked = CHUNK_SIZE + 1000;
    let check = |what: &'static str| {
        let (store, user, stores) = (&store, &user, &stores);
        async move {
            let expected = recount(store, user, stores).await;
            assert_eq!(store.usage(user).await.unwrap(), expected, "after {what}");
        }
    };

    put(
        &store,
        &user,
        &a,
        vec![
            kv("k1", 0, vec![1u8; 10]),
            kv("k2", 0, Bytes::new()),
            kv("k3", 0, vec![3u8; chunked]),
        ],
    )
    .await;
    check("creating inline, empty and chunked values").await;

    put(
        &store,
        &user,
        &a,
        vec![
            kv("k1", -1, Bytes::new()),
            kv("k2", 1, vec![2u8; chunked + 5]),
            kv("k3", 1, vec![3u8; 7]),
        ],
    )
    .await;
    check("overwrites across storage kinds").await;

    put_quota(
        &store,
        &user,
        &a,
        Quota::UNLIMITED,
        vec![kv("k4", 0, vec![4u8; 3])],
        vec![kv("k1", -1, Bytes::new())],
    )
    .await
    .unwrap();
    check("a put that writes and deletes").await;

    delete_object(&store, &user, &a, "k2", 7).await;
    check("deleteObject at another version").await;
    delete_object(&store, &user, &a, "k2", 2).await;
    check("deleteObject of a chunked value").await;
    delete_object(&store, &user, &a, "missing", -1).await;
    check("deleteObject of a missing key").await;

    store
        .put(
            &user,
            PutObjectRequest {
                store_id: b.clone(),
                global_version: Some(0),
                transaction_items: vec![kv("k1", 0, vec![9u8; 100])],
                delete_items: vec![],
            },
        )
        .await
        .unwrap();
    check("a second store, with its global version").await;

    let conflict = put_quota(
        &store,
        &user,
        &b,
        Quota::UNLIMITED,
        vec![kv("k9", 0, vec![9u8; 50]), kv("k1", 5, Bytes::new())],
        vec![],
    )
    .await;
    assert!(
        matches!(conflict, Err(VssError::Conflict(_))),
        "{conflict:?}"
    );
    check("a conflicting put").await;

    let refused = put_quota(
        &store,
        &user,
        &b,
        bytes(10),
        vec![kv("k8", 0, vec![8u8; 50])],
        vec![],
    )
    .await;
    assert!(
        matches!(refused, Err(VssError::QuotaExceeded(_))),
        "{refused:?}"
    );
    check("a refused put").await;

    // Shrinking over the quota is allowed, and counted.
    put_quota(
        &store,
        &user,
        &b,
        bytes(10),
        vec![kv("k1", 1, vec![9u8; 60])],
        vec![],
    )
    .await
    .unwrap();
    check("a shrinking put over the quota").await;
}
