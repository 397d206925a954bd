//! What is particular to the Redis backend: the documented key layout, users
//! and stores whose names contain the separators, scripts reloaded after
//! NOSCRIPT, and listings whose work per call is bounded.

// Test helpers stop the test at the first failed step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use fred::interfaces::{ClientLike, LuaInterface};
use fred::types::{ClusterHash, CustomCommand};
use vss_backend_redis::{RedisConfig, RedisStore};
use vss_core::conformance::{unique_name, unique_user};
use vss_core::proto::{
    DeleteObjectRequest, GetObjectRequest, KeyValue, ListKeyVersionsRequest, PutObjectRequest,
};
use vss_core::{KvStore, StoreLimits, UserToken, VssError};

fn kv(key: &str, version: i64, value: &[u8]) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        version,
        value: Bytes::copy_from_slice(value),
    }
}

async fn put(
    store: &RedisStore,
    user: &UserToken,
    store_id: &str,
    global_version: Option<i64>,
    items: Vec<KeyValue>,
) -> Result<(), VssError> {
    store
        .put(
            user,
            PutObjectRequest {
                store_id: store_id.to_string(),
                global_version,
                transaction_items: items,
                delete_items: vec![],
            },
        )
        .await
        .map(|_| ())
}

async fn get(store: &RedisStore, user: &UserToken, store_id: &str, key: &str) -> KeyValue {
    store
        .get(
            user,
            GetObjectRequest {
                store_id: store_id.to_string(),
                key: key.to_string(),
            },
        )
        .await
        .unwrap()
        .value
        .unwrap()
}

/// Every page of a listing: (keys of each page, number of calls).
async fn list_pages(
    store: &RedisStore,
    user: &UserToken,
    store_id: &str,
    prefix: Option<&str>,
    page_size: i32,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut token = None;
    loop {
        let page = store
            .list_key_versions(
                user,
                ListKeyVersionsRequest {
                    store_id: store_id.to_string(),
                    key_prefix: prefix.map(str::to_string),
                    page_size: Some(page_size),
                    page_token: token,
                },
            )
            .await
            .unwrap();
        pages.push(page.key_versions.into_iter().map(|kv| kv.key).collect());
        match page.next_page_token {
            Some(t) if !t.is_empty() => token = Some(t),
            Some(_) => return pages,
            None => panic!("next_page_token must always be present"),
        }
        assert!(pages.len() < 10_000, "listing does not end");
    }
}

fn command(name: &'static str) -> CustomCommand {
    CustomCommand::new_static(name, ClusterHash::FirstKey, false)
}

#[tokio::test]
async fn keys_follow_the_documented_layout() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let namespace = unique_name("ns");
    let store = RedisStore::connect(RedisConfig {
        namespace: namespace.clone(),
        ..RedisConfig::new(&url)
    })
    .await
    .unwrap();
    let admin = common::admin(&url).await;
    // A user token of "ab" is hex 6162; the empty store id is empty hex.
    let user = UserToken::new("ab").unwrap();
    let hash = format!("{namespace}:{{6162.}}:h");
    let order = format!("{namespace}:{{6162.}}:z");
    let exists: i64 = admin
        .custom(command("EXISTS"), vec![hash.clone(), order.clone()])
        .await
        .unwrap();
    assert_eq!(exists, 0);

    put(&store, &user, "", Some(0), vec![kv("k", 0, b"v")])
        .await
        .unwrap();
    let exists: i64 = admin
        .custom(command("EXISTS"), vec![hash.clone(), order.clone()])
        .await
        .unwrap();
    assert_eq!(exists, 2, "{hash} and {order} hold the store");

    store
        .delete(
            &user,
            DeleteObjectRequest {
                store_id: String::new(),
                key_value: Some(kv("k", -1, b"")),
            },
        )
        .await
        .unwrap();
    admin
        .custom::<(), _>(command("DEL"), vec![hash, order])
        .await
        .unwrap();
    store.close().await.unwrap();
}

#[tokio::test]
async fn users_and_stores_containing_separators_stay_apart() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let store = common::connect(&url).await;
    let base = unique_name("sep");
    // Pairs that a naive `user:store` or `{user}{store}` encoding would merge.
    let pairs = [
        (base.clone(), ":x".to_string()),
        (format!("{base}:"), "x".to_string()),
        (format!("{base}}}"), "{x".to_string()),
        (format!("{base}}}{{"), "x".to_string()),
        (format!("{base}."), "x".to_string()),
        (base.clone(), ".x".to_string()),
        (format!("{base}x"), String::new()),
        (base.clone(), "x".to_string()),
    ];
    for (i, (user, store_id)) in pairs.iter().enumerate() {
        let user = UserToken::new(user.clone()).unwrap();
        put(
            &store,
            &user,
            store_id,
            Some(0),
            vec![kv("k", 0, format!("{i}").as_bytes())],
        )
        .await
        .unwrap();
    }
    for (i, (user, store_id)) in pairs.iter().enumerate() {
        let user = UserToken::new(user.clone()).unwrap();
        let got = get(&store, &user, store_id, "k").await;
        assert_eq!(
            &got.value[..],
            format!("{i}").as_bytes(),
            "{user}/{store_id:?}"
        );
        assert_eq!(
            get(&store, &user, store_id, "global_version").await.version,
            1
        );
        let pages = list_pages(&store, &user, store_id, None, 100).await;
        assert_eq!(pages.concat(), vec!["k".to_string()], "{user}/{store_id:?}");
    }
    store.close().await.unwrap();
}

#[tokio::test]
async fn scripts_are_loaded_again_after_script_flush() {
    let Some(bin) = common::redis_server() else {
        return;
    };
    // A server of its own: flushing the shared test server's scripts could
    // make another test's reload race a second flush.
    let (redis, _dir) = common::durable_child(&bin, &[]).await;
    let url = redis.url();
    let store = common::connect(&url).await;
    let admin = redis.admin().await;
    let user = unique_user();
    put(&store, &user, "s", None, vec![kv("a", 0, b"1")])
        .await
        .unwrap();

    // As after a Redis restart: the script cache is empty, EVALSHA answers NOSCRIPT.
    admin.script_flush(false).await.unwrap();
    put(&store, &user, "s", None, vec![kv("a", 1, b"2")])
        .await
        .unwrap();
    assert_eq!(get(&store, &user, "s", "a").await.version, 2);
    admin.script_flush(false).await.unwrap();
    assert_eq!(
        list_pages(&store, &user, "s", None, 10).await.concat(),
        vec!["a"]
    );
    admin.script_flush(false).await.unwrap();
    store
        .delete(
            &user,
            DeleteObjectRequest {
                store_id: "s".into(),
                key_value: Some(kv("a", 2, b"")),
            },
        )
        .await
        .unwrap();
    assert!(list_pages(&store, &user, "s", None, 10)
        .await
        .concat()
        .is_empty());
    store.close().await.unwrap();
}

#[tokio::test]
async fn sparse_prefix_listings_do_bounded_work_and_return_every_key_once() {
    let Some(url) = common::redis_url() else {
        return;
    };
    const SCAN: usize = 8;
    let store = RedisStore::connect(RedisConfig {
        list_scan_limit: SCAN,
        limits: StoreLimits {
            max_page_size: 5,
            default_page_size: 5,
            ..StoreLimits::default()
        },
        ..RedisConfig::new(&url)
    })
    .await
    .unwrap();
    let user = unique_user();
    // 200 keys, created in order; one in 20 starts with "p/", plus look-alikes.
    let mut matching = Vec::new();
    for batch in 0..10 {
        let mut items = Vec::new();
        for j in 0..20 {
            let i = batch * 20 + j;
            let key = match i % 20 {
                7 => format!("p/{i:03}"),
                3 => format!("p{i:03}"),
                11 => format!("q/p/{i:03}"),
                _ => format!("other/{i:03}"),
            };
            if key.starts_with("p/") {
                matching.push(key.clone());
            }
            items.push(kv(&key, 0, b"v"));
        }
        put(&store, &user, "s", None, items).await.unwrap();
    }
    matching.reverse(); // newest first

    let pages = list_pages(&store, &user, "s", Some("p/"), 5).await;
    assert_eq!(
        pages.concat(),
        matching,
        "every matching key once, newest first"
    );
    // No call looked at more than SCAN entries, so covering 200 entries took
    // at least 200 / SCAN calls, many of them short or empty but not last.
    assert!(pages.len() >= 200 / SCAN, "{} calls", pages.len());
    assert!(pages[..pages.len() - 1].iter().any(|p| p.is_empty()));

    // Without a prefix, every scanned entry matches: full pages.
    let pages = list_pages(&store, &user, "s", None, 5).await;
    assert_eq!(pages.concat().len(), 200);
    assert!(pages[..pages.len() - 1].iter().all(|p| p.len() == 5));
    store.close().await.unwrap();
}
