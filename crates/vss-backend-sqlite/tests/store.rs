//! What is particular to the SQLite backend: the file, its schema, closing,
//! persistence across reopening, batching under concurrent writers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use futures::future::join_all;
use rusqlite::Connection;
use vss_backend_sqlite::{SqliteConfig, SqliteError, SqliteStore, APPLICATION_ID, SCHEMA_VERSION};
use vss_core::proto::{
    DeleteObjectRequest, GetObjectRequest, KeyValue, ListKeyVersionsRequest, PutObjectRequest,
};
use vss_core::{KvStore, UserToken, VssError};

fn user(name: &str) -> UserToken {
    UserToken::new(name).unwrap()
}

fn kv(key: &str, version: i64, value: &[u8]) -> KeyValue {
    KeyValue {
        key: key.into(),
        version,
        value: Bytes::copy_from_slice(value),
    }
}

fn put(store_id: &str, global_version: Option<i64>, items: Vec<KeyValue>) -> PutObjectRequest {
    PutObjectRequest {
        store_id: store_id.into(),
        global_version,
        transaction_items: items,
        delete_items: vec![],
    }
}

async fn get(store: &SqliteStore, u: &UserToken, key: &str) -> Result<(i64, Bytes), VssError> {
    let kv = store
        .get(
            u,
            GetObjectRequest {
                store_id: "s".into(),
                key: key.into(),
            },
        )
        .await?
        .value
        .unwrap();
    Ok((kv.version, kv.value))
}

async fn list_keys(store: &SqliteStore, u: &UserToken, prefix: Option<&str>) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = store
            .list_key_versions(
                u,
                ListKeyVersionsRequest {
                    store_id: "s".into(),
                    key_prefix: prefix.map(String::from),
                    page_size: Some(2),
                    page_token: token.take(),
                },
            )
            .await
            .unwrap();
        keys.extend(page.key_versions.into_iter().map(|kv| kv.key));
        match page.next_page_token.unwrap() {
            t if t.is_empty() => return keys,
            t => token = Some(t),
        }
    }
}

fn header(path: &std::path::Path) -> (i32, i64, String) {
    let conn = Connection::open(path).unwrap();
    let app: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    (app, version, mode)
}

#[tokio::test]
async fn open_creates_the_directory_and_a_current_wal_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/vss.sqlite3");
    let store = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
    assert_eq!(store.path(), path);
    store
        .put(&user("u"), put("s", None, vec![kv("k", 0, b"v")]))
        .await
        .unwrap();
    store.close().await.unwrap();
    assert_eq!(
        header(&path),
        (APPLICATION_ID, SCHEMA_VERSION, "wal".to_string())
    );
}

#[tokio::test]
async fn a_newer_schema_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.sqlite3");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "CREATE TABLE from_the_future (x INTEGER);
             INSERT INTO from_the_future VALUES (42);
             PRAGMA application_id = {APPLICATION_ID};
             PRAGMA user_version = {};",
            SCHEMA_VERSION + 1
        ))
        .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = SqliteStore::open(SqliteConfig::new(&path))
        .await
        .unwrap_err();
    match &err {
        SqliteError::SchemaTooNew {
            path: p,
            found,
            supported,
        } => {
            assert_eq!(p, &path);
            assert_eq!(*found, SCHEMA_VERSION + 1);
            assert_eq!(*supported, SCHEMA_VERSION);
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("future.sqlite3"), "{message}");
    assert!(
        message.contains(&format!("schema version {}", SCHEMA_VERSION + 1)),
        "{message}"
    );
    assert!(
        message.contains("newer than this binary supports"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file was changed"
    );
    let (_, version, mode) = header(&path);
    assert_eq!((version, mode.as_str()), (SCHEMA_VERSION + 1, "delete"));
}

#[tokio::test]
async fn another_applications_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.sqlite3");
    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA application_id = 7; CREATE TABLE t (x);")
        .unwrap();
    let err = SqliteStore::open(SqliteConfig::new(&path))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SqliteError::NotVssDatabase { found: 7, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_empty_existing_database_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.sqlite3");
    Connection::open(&path)
        .unwrap()
        .execute_batch("VACUUM")
        .unwrap();
    assert_eq!(header(&path).1, 0);
    let store = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
    store.close().await.unwrap();
    assert_eq!(header(&path).1, SCHEMA_VERSION);
}

#[tokio::test]
async fn invalid_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.sqlite3");
    for config in [
        SqliteConfig::new(&path).max_batch(0),
        SqliteConfig::new(&path).read_connections(0),
    ] {
        let err = SqliteStore::open(config).await.unwrap_err();
        assert!(matches!(err, SqliteError::InvalidConfig { .. }), "{err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let u = user("alice");
    let store = common::open(dir.path(), "persist", |c| c).await;
    store
        .put(
            &u,
            put("s", Some(0), vec![kv("a", 0, b"1"), kv("b", 0, b"2")]),
        )
        .await
        .unwrap();
    store
        .put(&u, put("s", None, vec![kv("c", 0, b"3")]))
        .await
        .unwrap();
    store
        .put(&u, put("s", None, vec![kv("a", 1, b"1b")]))
        .await
        .unwrap();
    store
        .put(&u, put("s", None, vec![kv("d", -1, b"4")]))
        .await
        .unwrap();
    store
        .delete(
            &u,
            DeleteObjectRequest {
                store_id: "s".into(),
                key_value: Some(kv("d", -1, b"")),
            },
        )
        .await
        .unwrap();
    store.close().await.unwrap();
    let wal = dir.path().join("persist.sqlite3-wal");
    assert!(
        std::fs::metadata(&wal)
            .map(|m| m.len() == 0)
            .unwrap_or(true),
        "close left a non-empty WAL"
    );

    let store = common::open(dir.path(), "persist", |c| c).await;
    assert_eq!(
        get(&store, &u, "a").await.unwrap(),
        (2, Bytes::from_static(b"1b"))
    );
    assert_eq!(
        get(&store, &u, "c").await.unwrap(),
        (1, Bytes::from_static(b"3"))
    );
    assert!(matches!(
        get(&store, &u, "d").await,
        Err(VssError::NoSuchKey(_))
    ));
    assert_eq!(get(&store, &u, "global_version").await.unwrap().0, 1);
    assert_eq!(list_keys(&store, &u, None).await, ["c", "b", "a"]);
    // Sequences continue after reopening: a re-created key lists first.
    store
        .put(&u, put("s", None, vec![kv("d", 0, b"again")]))
        .await
        .unwrap();
    assert_eq!(list_keys(&store, &u, None).await, ["d", "c", "b", "a"]);
    store.close().await.unwrap();
}

#[tokio::test]
async fn calls_after_close_fail_as_internal() {
    let dir = tempfile::tempdir().unwrap();
    let u = user("u");
    let store = common::open(dir.path(), "closed", |c| c).await;
    store.close().await.unwrap();
    store.close().await.unwrap();
    let err = store
        .put(&u, put("s", None, vec![kv("k", 0, b"v")]))
        .await
        .unwrap_err();
    assert!(matches!(err, VssError::Internal(_)), "{err:?}");
    assert!(matches!(
        get(&store, &u, "k").await,
        Err(VssError::Internal(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_match_literally() {
    let dir = tempfile::tempdir().unwrap();
    let u = user("u");
    let store = common::open(dir.path(), "prefix", |c| c).await;
    let keys = [
        "a%b", "a_b", "axb", "a\\b", "a\\\\b", "é1", "é", "e1", "ab", "A%b", "a%",
    ];
    for key in keys {
        store
            .put(&u, put("s", None, vec![kv(key, 0, b"")]))
            .await
            .unwrap();
    }
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let cases: [(&str, &[&str]); 7] = [
        ("a%", &["a%", "a%b"]),
        ("a_", &["a_b"]),
        ("a\\", &["a\\b", "a\\\\b"]),
        ("a\\\\", &["a\\\\b"]),
        ("é", &["é", "é1"]),
        ("A", &["A%b"]),
        ("a%b", &["a%b"]),
    ];
    for (prefix, expected) in cases {
        let got = sorted(list_keys(&store, &u, Some(prefix)).await);
        let want = sorted(expected.iter().map(|s| s.to_string()).collect());
        assert_eq!(got, want, "prefix {prefix:?}");
    }
    assert_eq!(list_keys(&store, &u, Some("")).await.len(), keys.len());
    // Another user sees none of them.
    assert!(list_keys(&store, &user("mallory"), None).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_each_get_their_own_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(common::open(dir.path(), "batch", |c| c.max_batch(64)).await);
    let u = user("u");
    // 64 creates of one key race: exactly one wins; the others conflict
    // without disturbing the 64 writes of distinct keys queued beside them.
    let same = (0..64).map(|i| {
        let (store, u) = (store.clone(), u.clone());
        async move {
            store
                .put(&u, put("s", None, vec![kv("same", 0, &[i])]))
                .await
        }
    });
    let distinct = (0..64).map(|i| {
        let (store, u) = (store.clone(), u.clone());
        async move {
            store
                .put(&u, put("s", None, vec![kv(&format!("k{i}"), 0, &[i])]))
                .await
        }
    });
    let (same, distinct) = futures::join!(join_all(same), join_all(distinct));
    let winners: Vec<usize> = same
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1, "{same:?}");
    assert!(same
        .iter()
        .all(|r| r.is_ok() || matches!(r, Err(VssError::Conflict(_)))));
    assert!(distinct.iter().all(|r| r.is_ok()), "{distinct:?}");
    let (version, value) = get(&store, &u, "same").await.unwrap();
    assert_eq!((version, value[0] as usize), (1, winners[0]));
    for i in 0..64u8 {
        assert_eq!(
            get(&store, &u, &format!("k{i}")).await.unwrap(),
            (1, Bytes::from(vec![i]))
        );
    }
    assert_eq!(list_keys(&store, &u, None).await.len(), 65);
    store.close().await.unwrap();
}

/// Readers take several queued reads at once and run them in one read
/// transaction: each read must still see every write acknowledged before it
/// was asked, and its own user's data only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_reads_see_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(common::open(dir.path(), "reads", |c| c.read_connections(2)).await);
    let tasks = (0..48u8).map(|i| {
        let store = store.clone();
        let u = user(&format!("user-{}", i % 4));
        let key = format!("k{i}");
        async move {
            for version in 0..5i64 {
                store
                    .put(&u, put("s", None, vec![kv(&key, version, &[i])]))
                    .await
                    .unwrap();
                // Reads queued beside the other tasks' reads and writes.
                assert_eq!(
                    get(&store, &u, &key).await.unwrap(),
                    (version + 1, Bytes::from(vec![i])),
                    "{key} after its write {version}"
                );
                let listed = list_keys(&store, &u, Some(&key)).await;
                assert!(listed.contains(&key), "{key} not listed: {listed:?}");
                assert!(matches!(
                    get(&store, &user("nobody"), &key).await,
                    Err(VssError::NoSuchKey(_))
                ));
            }
        }
    });
    join_all(tasks.map(tokio::spawn))
        .await
        .into_iter()
        .for_each(|r| r.unwrap());
    store.close().await.unwrap();
}

/// Reads racing with close() are answered (with their value or INTERNAL), never left hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_racing_close_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(common::open(dir.path(), "close-race", |c| c).await);
    let u = user("u");
    store
        .put(&u, put("s", None, vec![kv("k", 0, b"v")]))
        .await
        .unwrap();
    let reads: Vec<_> = (0..200)
        .map(|_| {
            let (store, u) = (store.clone(), u.clone());
            tokio::spawn(async move { get(&store, &u, "k").await })
        })
        .collect();
    store.close().await.unwrap();
    for read in reads {
        match read.await.unwrap() {
            Ok(found) => assert_eq!(found, (1, Bytes::from_static(b"v"))),
            Err(err) => assert!(matches!(err, VssError::Internal(_)), "{err:?}"),
        }
    }
}
