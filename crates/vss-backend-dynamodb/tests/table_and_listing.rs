//! Connecting to missing and misshapen tables, listings whose prefix filter
//! drops whole pages, and partitions that must not collide.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use bytes::Bytes;
use vss_backend_dynamodb::{DynamoDbConfig, DynamoDbError, DynamoDbStore};
use vss_core::conformance::unique_name;
use vss_core::proto::{GetObjectRequest, KeyValue, ListKeyVersionsRequest, PutObjectRequest};
use vss_core::{KvStore, UserToken, VssError};

fn kv(key: &str, version: i64, value: &[u8]) -> KeyValue {
    KeyValue {
        key: key.into(),
        version,
        value: Bytes::copy_from_slice(value),
    }
}

async fn put(store: &DynamoDbStore, user: &UserToken, store_id: &str, items: Vec<KeyValue>) {
    store
        .put(
            user,
            PutObjectRequest {
                store_id: store_id.into(),
                global_version: None,
                transaction_items: items,
                delete_items: vec![],
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_missing_table_is_an_error_unless_it_may_be_created() {
    let Some(url) = common::url() else {
        return;
    };
    let config = DynamoDbConfig {
        create_table: false,
        ..common::config(&url, "missing")
    };
    match DynamoDbStore::connect(config.clone()).await {
        Err(DynamoDbError::NoTable(table)) => assert_eq!(table, config.table),
        other => panic!("expected NoTable, got {other:?}"),
    }
    // Created once, then found as it is.
    DynamoDbStore::connect(DynamoDbConfig {
        create_table: true,
        ..config.clone()
    })
    .await
    .unwrap();
    DynamoDbStore::connect(config).await.unwrap();
}

#[tokio::test]
async fn a_table_of_another_shape_is_refused() {
    let Some(url) = common::url() else {
        return;
    };
    let config = common::config(&url, "misshapen");
    // Connect to some table to get a client, then make a table without the index.
    let other = DynamoDbStore::connect(common::config(&url, "misshapen-probe"))
        .await
        .unwrap();
    other
        .client()
        .create_table()
        .table_name(&config.table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("sk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("sk")
                .key_type(KeyType::Range)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    match DynamoDbStore::connect(config).await {
        Err(DynamoDbError::Schema { problem, .. }) => {
            assert!(problem.contains("seq"), "unexpected problem: {problem}")
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
}

#[tokio::test]
async fn configuration_mistakes_are_reported() {
    let Some(url) = common::url() else {
        return;
    };
    let config = DynamoDbConfig {
        table: String::new(),
        ..common::config(&url, "bad")
    };
    assert!(matches!(
        DynamoDbStore::connect(config).await,
        Err(DynamoDbError::Config(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_moves_on_when_the_prefix_filter_drops_whole_pages() {
    let Some(store) = common::store("filter").await else {
        return;
    };
    let user = UserToken::new("filter-user").unwrap();
    let sid = unique_name("s");
    // The only match is the oldest key, behind 40 newer keys that do not match.
    put(&store, &user, &sid, vec![kv("a-old", 0, b"")]).await;
    for batch in 0..4 {
        let items = (0..10)
            .map(|i| kv(&format!("x{batch}{i}"), 0, b""))
            .collect();
        put(&store, &user, &sid, items).await;
    }
    let mut token = None;
    let mut keys = Vec::new();
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= 20, "listing does not move forward");
        let page = store
            .list_key_versions(
                &user,
                ListKeyVersionsRequest {
                    store_id: sid.clone(),
                    key_prefix: Some("a".into()),
                    page_size: Some(5),
                    page_token: token.take(),
                },
            )
            .await
            .unwrap();
        assert!(page.key_versions.len() <= 5);
        keys.extend(page.key_versions.into_iter().map(|kv| kv.key));
        match page.next_page_token {
            Some(next) if !next.is_empty() => token = Some(next),
            Some(_) => break,
            None => panic!("next_page_token must always be present"),
        }
    }
    assert_eq!(keys, vec!["a-old".to_string()]);
    // 41 items evaluated 6 at a time (page size + 1): 7 queries, the last one short.
    assert!(pages <= 8, "took {pages} pages");
}

#[tokio::test]
async fn user_and_store_pairs_never_share_a_partition() {
    let Some(store) = common::store("partitions").await else {
        return;
    };
    let ab = UserToken::new("ab").unwrap();
    let a = UserToken::new("a").unwrap();
    put(&store, &ab, "c", vec![kv("k", 0, b"ab/c")]).await;
    put(&store, &a, "bc", vec![kv("k", 0, b"a/bc")]).await;
    for (user, sid, want) in [(&ab, "c", &b"ab/c"[..]), (&a, "bc", &b"a/bc"[..])] {
        let got = store
            .get(
                user,
                GetObjectRequest {
                    store_id: sid.into(),
                    key: "k".into(),
                },
            )
            .await
            .unwrap()
            .value
            .unwrap();
        assert_eq!((got.version, &got.value[..]), (1, want));
    }
    // A token that looks like a length prefix stays its own user.
    let tricky = UserToken::new("1:a").unwrap();
    let one = UserToken::new("1").unwrap();
    put(&store, &tricky, "", vec![kv("k", 0, b"tricky")]).await;
    let err = store
        .get(
            &one,
            GetObjectRequest {
                store_id: ":a".into(),
                key: "k".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, VssError::NoSuchKey(_)), "got {err:?}");
}
