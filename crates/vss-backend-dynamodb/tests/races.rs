//! Writers racing for a store's creation counter: a lost race is retried by
//! the backend, never answered as a CONFLICT, and creation order stays strict.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use vss_core::conformance::{unique_name, unique_user};
use vss_core::proto::{GetObjectRequest, KeyValue, ListKeyVersionsRequest, PutObjectRequest};
use vss_core::{KvStore, UserToken};

const TASKS: usize = 8;
const PUTS_PER_TASK: usize = 6;

async fn put(store: &dyn KvStore, user: &UserToken, sid: &str, key: String, version: i64) {
    store
        .put(
            user,
            PutObjectRequest {
                store_id: sid.into(),
                global_version: None,
                transaction_items: vec![KeyValue {
                    key,
                    version,
                    value: Bytes::from_static(b"v"),
                }],
                delete_items: vec![],
            },
        )
        .await
        .unwrap_or_else(|e| panic!("a racing put was refused: {e:?}"));
}

async fn list_all(store: &dyn KvStore, user: &UserToken, sid: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token = None;
    for _ in 0..100 {
        let page = store
            .list_key_versions(
                user,
                ListKeyVersionsRequest {
                    store_id: sid.into(),
                    key_prefix: None,
                    page_size: Some(7),
                    page_token: token.take(),
                },
            )
            .await
            .unwrap();
        keys.extend(page.key_versions.into_iter().map(|kv| kv.key));
        match page.next_page_token.as_deref() {
            Some("") => return keys,
            Some(next) => token = Some(next.to_string()),
            None => panic!("next_page_token must always be present"),
        }
    }
    panic!("listing did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creators_all_succeed_in_a_strict_creation_order() {
    let Some(store) = common::store("creators").await else {
        return;
    };
    let store: Arc<dyn KvStore> = Arc::new(store);
    let (user, sid) = (unique_user(), unique_name("s"));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (store, user, sid) = (store.clone(), user.clone(), sid.clone());
            tokio::spawn(async move {
                for i in 0..PUTS_PER_TASK {
                    // Alternate creates (version 0) and upserts of new keys (-1).
                    let version = if i % 2 == 0 { 0 } else { -1 };
                    put(&*store, &user, &sid, format!("t{task}-{i}"), version).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let keys = list_all(&*store, &user, &sid).await;
    assert_eq!(keys.len(), TASKS * PUTS_PER_TASK, "listed {keys:?}");
    assert_eq!(
        keys.iter().collect::<HashSet<_>>().len(),
        keys.len(),
        "a key listed twice"
    );
    // Each task created its keys one after another: newest first, they appear in reverse.
    for task in 0..TASKS {
        let positions: Vec<usize> = (0..PUTS_PER_TASK)
            .map(|i| {
                keys.iter()
                    .position(|k| *k == format!("t{task}-{i}"))
                    .unwrap()
            })
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] > w[1]),
            "task {task}'s keys are out of creation order: {positions:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_unconditional_overwrites_all_succeed_and_keep_the_key_in_place() {
    let Some(store) = common::store("overwriters").await else {
        return;
    };
    let store: Arc<dyn KvStore> = Arc::new(store);
    let (user, sid) = (unique_user(), unique_name("s"));
    put(&*store, &user, &sid, "first".into(), 0).await;
    put(&*store, &user, &sid, "shared".into(), 0).await;
    put(&*store, &user, &sid, "last".into(), 0).await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (store, user, sid) = (store.clone(), user.clone(), sid.clone());
            tokio::spawn(async move {
                for i in 0..PUTS_PER_TASK {
                    // ldk-node's way: -1 on an existing key, plus a new key racing the counter.
                    put(&*store, &user, &sid, "shared".into(), -1).await;
                    put(&*store, &user, &sid, format!("n{task}-{i}"), -1).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let got = store
        .get(
            &user,
            GetObjectRequest {
                store_id: sid.clone(),
                key: "shared".into(),
            },
        )
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!(
        got.version, 1,
        "an unconditional overwrite resets the version to 1"
    );
    let keys = list_all(&*store, &user, &sid).await;
    assert_eq!(keys.len(), 3 + TASKS * PUTS_PER_TASK);
    assert_eq!(&keys[keys.len() - 3..], ["last", "shared", "first"]);
}
