//! Users' usage, which quotas judge: exact after every kind of write, and
//! counted for data written before usage was kept (the layout without the
//! usage hash and the stores' `c` flag), whether the startup pass or a write
//! meets that data first, and while both run at once.

// Test helpers stop the test at the first failed step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use fred::clients::Client;
use fred::interfaces::ClientLike;
use fred::types::{ClusterHash, CustomCommand, Value};
use vss_backend_redis::{RedisConfig, RedisStore};
use vss_core::conformance::{unique_name, unique_user};
use vss_core::proto::{DeleteObjectRequest, KeyValue, PutObjectRequest};
use vss_core::{KvStore, Quota, Usage, UserToken, VssError};

fn kv(key: &str, version: i64, value_len: usize) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        version,
        value: Bytes::from(vec![b'x'; value_len]),
    }
}

fn bytes_quota(max: u64) -> Quota {
    Quota {
        max_bytes: Some(max),
        max_keys: None,
    }
}

async fn put(
    store: &RedisStore,
    user: &UserToken,
    store_id: &str,
    quota: Quota,
    items: Vec<KeyValue>,
    deletes: Vec<KeyValue>,
) -> Result<(), VssError> {
    let req = PutObjectRequest {
        store_id: store_id.to_string(),
        global_version: None,
        transaction_items: items,
        delete_items: deletes,
    };
    store.put_with_quota(user, req, quota).await.map(|_| ())
}

async fn delete_object(
    store: &RedisStore,
    user: &UserToken,
    store_id: &str,
    key: &str,
    version: i64,
) {
    store
        .delete(
            user,
            DeleteObjectRequest {
                store_id: store_id.to_string(),
                key_value: Some(kv(key, version, 0)),
            },
        )
        .await
        .unwrap();
}

/// What a user stores, as the test knows it: (store id, key) -> value length.
#[derive(Debug, Default, Clone)]
struct Model(BTreeMap<(String, String), usize>);

impl Model {
    fn usage(&self) -> Usage {
        self.0.iter().fold(Usage::default(), |u, ((_, key), len)| {
            u.plus(Usage::of_item(key, *len))
        })
    }
}

async fn usage(store: &RedisStore, user: &UserToken) -> Usage {
    store
        .usage(user)
        .await
        .unwrap()
        .expect("a standalone Redis keeps usage")
}

fn command(name: &'static str) -> CustomCommand {
    CustomCommand::new_static(name, ClusterHash::FirstKey, false)
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn store_hash(namespace: &str, user: &UserToken, store_id: &str) -> String {
    format!("{namespace}:{{{}.{}}}:h", hex(user.as_str()), hex(store_id))
}

/// Writes a store the way this backend did before it kept usage: the hash
/// (`s`, `g`, `v`+key, `d`+key) and the sorted set, with no `c` flag and no
/// usage hash. Keys get versions 1 and sequences 1, 2, ...
async fn write_old_layout(
    admin: &Client,
    namespace: &str,
    user: &UserToken,
    store_id: &str,
    items: &[(&str, usize)],
    model: &mut Model,
) {
    let hash = store_hash(namespace, user, store_id);
    let order = format!("{}z", hash.strip_suffix('h').unwrap());
    let mut fields: Vec<Value> = vec![
        hash.clone().into(),
        "s".into(),
        items.len().to_string().into(),
        "g".into(),
        "3".into(),
    ];
    let mut members: Vec<Value> = vec![order.into()];
    for (i, (key, len)) in items.iter().enumerate() {
        fields.extend([
            format!("v{key}").into(),
            "1".into(),
            format!("d{key}").into(),
            Value::Bytes(Bytes::from(vec![b'o'; *len])),
        ]);
        members.extend([(i + 1).to_string().into(), (*key).into()]);
        model
            .0
            .insert((store_id.to_string(), key.to_string()), *len);
    }
    admin
        .custom::<(), _>(command("HSET"), fields)
        .await
        .unwrap();
    if !items.is_empty() {
        admin
            .custom::<(), _>(command("ZADD"), members)
            .await
            .unwrap();
    }
}

async fn is_flagged(admin: &Client, namespace: &str, user: &UserToken, store_id: &str) -> bool {
    let flagged: i64 = admin
        .custom(
            command("HEXISTS"),
            vec![store_hash(namespace, user, store_id), "c".to_string()],
        )
        .await
        .unwrap();
    flagged == 1
}

async fn connect_in(url: &str, namespace: &str) -> RedisStore {
    RedisStore::connect(RedisConfig {
        namespace: namespace.to_string(),
        ..RedisConfig::new(url)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn usage_is_exact_after_every_kind_of_write() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let store = common::connect(&url).await;
    assert!(store.limits().enforces_quotas);
    let user = unique_user();
    let mut model = Model::default();
    let set = |model: &mut Model, store_id: &str, key: &str, len: Option<usize>| {
        let entry = (store_id.to_string(), key.to_string());
        match len {
            Some(len) => model.0.insert(entry, len),
            None => model.0.remove(&entry),
        };
    };
    let none = Quota::UNLIMITED;
    assert_eq!(usage(&store, &user).await, Usage::default());

    // New keys in two stores.
    put(
        &store,
        &user,
        "a",
        none,
        vec![kv("k1", 0, 10), kv("key2", 0, 0)],
        vec![],
    )
    .await
    .unwrap();
    set(&mut model, "a", "k1", Some(10));
    set(&mut model, "a", "key2", Some(0));
    put(&store, &user, "b", none, vec![kv("k1", 0, 7)], vec![])
        .await
        .unwrap();
    set(&mut model, "b", "k1", Some(7));
    assert_eq!(usage(&store, &user).await, model.usage());

    // Overwrites, growing and shrinking, conditional and not.
    put(
        &store,
        &user,
        "a",
        none,
        vec![kv("k1", 1, 50), kv("key2", -1, 3)],
        vec![],
    )
    .await
    .unwrap();
    set(&mut model, "a", "k1", Some(50));
    set(&mut model, "a", "key2", Some(3));
    put(
        &store,
        &user,
        "a",
        bytes_quota(1000),
        vec![kv("k1", 2, 1)],
        vec![],
    )
    .await
    .unwrap();
    set(&mut model, "a", "k1", Some(1));
    assert_eq!(usage(&store, &user).await, model.usage());

    // A put that writes and deletes.
    put(
        &store,
        &user,
        "a",
        none,
        vec![kv("k3", 0, 20)],
        vec![kv("key2", -1, 0)],
    )
    .await
    .unwrap();
    set(&mut model, "a", "k3", Some(20));
    set(&mut model, "a", "key2", None);
    assert_eq!(usage(&store, &user).await, model.usage());

    // Refused puts change nothing: a conflict, and the quota.
    let conflict = put(&store, &user, "a", none, vec![kv("k9", 4, 100)], vec![]).await;
    assert!(
        matches!(conflict, Err(VssError::Conflict(_))),
        "{conflict:?}"
    );
    let over = put(
        &store,
        &user,
        "b",
        bytes_quota(50),
        vec![kv("k9", 0, 100)],
        vec![],
    )
    .await;
    assert!(matches!(over, Err(VssError::QuotaExceeded(_))), "{over:?}");
    assert_eq!(usage(&store, &user).await, model.usage());

    // deleteObject: at another version (nothing), of a missing key, then for real.
    delete_object(&store, &user, "a", "k3", 9).await;
    delete_object(&store, &user, "a", "missing", -1).await;
    assert_eq!(usage(&store, &user).await, model.usage());
    delete_object(&store, &user, "a", "k3", 1).await;
    set(&mut model, "a", "k3", None);
    delete_object(&store, &user, "b", "k1", -1).await;
    set(&mut model, "b", "k1", None);
    assert_eq!(usage(&store, &user).await, model.usage());

    // The global version counts nothing.
    store
        .put(
            &user,
            PutObjectRequest {
                store_id: "c".into(),
                global_version: Some(0),
                transaction_items: vec![],
                delete_items: vec![],
            },
        )
        .await
        .unwrap();
    assert_eq!(usage(&store, &user).await, model.usage());
    assert_eq!(model.usage(), Usage { bytes: 3, keys: 1 });
    store.close().await.unwrap();
}

#[tokio::test]
async fn data_written_before_usage_was_kept_is_counted_at_connect() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let namespace = unique_name("old");
    let admin = common::admin(&url).await;
    let user = unique_user();
    let other_user = unique_user();
    let mut model = Model::default();
    let mut other_model = Model::default();
    write_old_layout(
        &admin,
        &namespace,
        &user,
        "s1",
        &[("a", 30), ("bb", 12)],
        &mut model,
    )
    .await;
    write_old_layout(&admin, &namespace, &user, "", &[("c", 100)], &mut model).await;
    // A store that only ever had a global version.
    write_old_layout(&admin, &namespace, &user, "empty", &[], &mut model).await;
    write_old_layout(
        &admin,
        &namespace,
        &other_user,
        "s1",
        &[("x", 5)],
        &mut other_model,
    )
    .await;
    let old = model.usage();
    assert_eq!(
        old,
        Usage {
            bytes: 146,
            keys: 3
        }
    );

    let store = connect_in(&url, &namespace).await;
    let marker: Value = admin
        .custom(command("GET"), vec![format!("{namespace}:usage-counted")])
        .await
        .unwrap();
    assert!(
        !matches!(marker, Value::Null),
        "the pass marks the namespace"
    );
    for store_id in ["s1", "", "empty"] {
        assert!(
            is_flagged(&admin, &namespace, &user, store_id).await,
            "{store_id:?}"
        );
    }
    assert_eq!(usage(&store, &user).await, old);
    assert_eq!(usage(&store, &other_user).await, other_model.usage());

    // A quota put in a new store sees the old data of every store: a key of
    // 1 byte with a 9-byte value fits exactly, one byte more does not.
    let quota = bytes_quota(old.bytes + 10);
    match put(&store, &user, "new", quota, vec![kv("n", 0, 10)], vec![]).await {
        Err(VssError::QuotaExceeded(message)) => assert!(
            message.contains(&(old.bytes + 11).to_string())
                && message.contains(&old.bytes.to_string()),
            "{message}"
        ),
        other => panic!("one byte over the quota should be refused, got {other:?}"),
    }
    put(&store, &user, "new", quota, vec![kv("n", 0, 9)], vec![])
        .await
        .unwrap();
    model.0.insert(("new".into(), "n".into()), 9);
    // Old data is freed exactly, by a put's delete and by deleteObject.
    put(&store, &user, "s1", quota, vec![], vec![kv("a", 1, 0)])
        .await
        .unwrap();
    model.0.remove(&("s1".into(), "a".into()));
    delete_object(&store, &user, "", "c", 1).await;
    model.0.remove(&(String::new(), "c".into()));
    assert_eq!(usage(&store, &user).await, model.usage());
    assert_eq!(model.usage(), Usage { bytes: 24, keys: 2 });

    // Another start does not count anything twice.
    let again = connect_in(&url, &namespace).await;
    assert_eq!(usage(&again, &user).await, model.usage());
    again.close().await.unwrap();
    store.close().await.unwrap();
}

#[tokio::test]
async fn old_stores_the_pass_did_not_see_are_counted_by_the_first_write() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let namespace = unique_name("late");
    let store = connect_in(&url, &namespace).await;
    let admin = common::admin(&url).await;
    let user = unique_user();
    let mut model = Model::default();
    // Written the old way after the pass (as by an older server still running).
    write_old_layout(
        &admin,
        &namespace,
        &user,
        "p",
        &[("a", 40), ("b", 8)],
        &mut model,
    )
    .await;
    write_old_layout(
        &admin,
        &namespace,
        &user,
        "d",
        &[("a", 20), ("b", 3)],
        &mut model,
    )
    .await;
    write_old_layout(&admin, &namespace, &user, "q", &[("a", 1)], &mut model).await;
    assert!(!is_flagged(&admin, &namespace, &user, "p").await);

    // A quota put into an old store counts that store first.
    let err = put(
        &store,
        &user,
        "p",
        bytes_quota(60),
        vec![kv("c", 0, 10)],
        vec![],
    )
    .await
    .unwrap_err();
    assert!(matches!(err, VssError::QuotaExceeded(_)), "{err}");
    // A refused put writes nothing, not even the count.
    assert!(!is_flagged(&admin, &namespace, &user, "p").await);
    put(
        &store,
        &user,
        "p",
        bytes_quota(60),
        vec![kv("c", 0, 9)],
        vec![],
    )
    .await
    .unwrap();
    model.0.insert(("p".into(), "c".into()), 9);
    assert!(is_flagged(&admin, &namespace, &user, "p").await);
    // deleteObject into an old store counts it, then frees the key.
    delete_object(&store, &user, "d", "a", -1).await;
    model.0.remove(&("d".into(), "a".into()));
    assert!(is_flagged(&admin, &namespace, &user, "d").await);
    // A put that conflicts writes nothing, the count included: store `q`
    // stays out of the usage until a write goes through.
    let conflict = put(
        &store,
        &user,
        "q",
        Quota::UNLIMITED,
        vec![kv("a", 0, 1)],
        vec![],
    )
    .await;
    assert!(
        matches!(conflict, Err(VssError::Conflict(_))),
        "{conflict:?}"
    );
    assert!(!is_flagged(&admin, &namespace, &user, "q").await);
    model.0.remove(&("q".into(), "a".into()));
    assert_eq!(usage(&store, &user).await, model.usage());
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pass_and_concurrent_writes_count_every_store_once() {
    let Some(url) = common::redis_url() else {
        return;
    };
    const STORES: usize = 2000;
    const WRITERS: usize = 4;
    let namespace = unique_name("race");
    let writer = Arc::new(connect_in(&url, &namespace).await);
    let admin = common::admin(&url).await;
    let user = unique_user();
    let mut model = Model::default();
    for s in 0..STORES {
        let sizes = [("k0", s % 7), ("k1", 10 + s % 3), ("key2", s % 50)];
        let store_id = format!("s{s}");
        write_old_layout(&admin, &namespace, &user, &store_id, &sizes, &mut model).await;
    }
    // As before the first start of this version: the pass has to run again.
    admin
        .custom::<(), _>(command("DEL"), vec![format!("{namespace}:usage-counted")])
        .await
        .unwrap();

    // A second server starts (and counts) while the first keeps writing into
    // the same old stores, in another order than the pass's; whichever meets
    // a store first counts it.
    let starting = tokio::spawn({
        let (url, namespace) = (url.clone(), namespace.clone());
        async move { connect_in(&url, &namespace).await }
    });
    let starting_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (writer, user, done) = (writer.clone(), user.clone(), starting_done.clone());
            tokio::spawn(async move {
                // Rounds of writes done in each store of this writer.
                let mut rounds = vec![0_usize; STORES];
                let mine: Vec<usize> = (0..STORES)
                    .map(|i| (i * 7919 + 13) % STORES)
                    .filter(|s| s % WRITERS == w)
                    .collect();
                let mut round = 0;
                while round < 2 || !done.load(std::sync::atomic::Ordering::SeqCst) {
                    for &s in &mine {
                        let store_id = format!("s{s}");
                        match (round, s % 2) {
                            (0, 0) => put(
                                &writer,
                                &user,
                                &store_id,
                                Quota::UNLIMITED,
                                vec![kv("k0", 1, 4), kv("new", 0, s % 11)],
                                vec![kv("k1", 1, 0)],
                            )
                            .await
                            .unwrap(),
                            (0, _) => delete_object(&writer, &user, &store_id, "key2", 1).await,
                            _ => put(
                                &writer,
                                &user,
                                &store_id,
                                Quota::UNLIMITED,
                                vec![kv(&format!("r{round}"), 0, (s + round) % 5)],
                                vec![],
                            )
                            .await
                            .unwrap(),
                        }
                        rounds[s] += 1;
                    }
                    round += 1;
                }
                rounds
            })
        })
        .collect();
    let started = starting.await.unwrap();
    starting_done.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut rounds = vec![0_usize; STORES];
    for writer in writers {
        for (s, n) in writer.await.unwrap().into_iter().enumerate() {
            rounds[s] += n;
        }
    }

    for (s, &n) in rounds.iter().enumerate() {
        let store_id = format!("s{s}");
        if s % 2 == 0 {
            model.0.insert((store_id.clone(), "k0".into()), 4);
            model.0.insert((store_id.clone(), "new".into()), s % 11);
            model.0.remove(&(store_id.clone(), "k1".into()));
        } else {
            model.0.remove(&(store_id.clone(), "key2".into()));
        }
        for round in 1..n {
            model
                .0
                .insert((store_id.clone(), format!("r{round}")), (s + round) % 5);
        }
    }
    assert_eq!(usage(&started, &user).await, model.usage());
    for s in (0..STORES).step_by(97) {
        assert!(is_flagged(&admin, &namespace, &user, &format!("s{s}")).await);
    }
    started.close().await.unwrap();
    writer.close().await.unwrap();
}
