//! Round trips per operation, counted on the wire.
//!
//! The store talks to PostgreSQL through a TCP proxy that counts round trips: a
//! round trip starts each time the client sends after the server has spoken (or for
//! the first time). Everything a client sends before hearing back — a pipeline —
//! is one round trip. The pool has one connection, warmed up first, so that what is
//! counted is the steady state: statements already prepared on the connection.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vss_backend_postgres::PostgresStore;
use vss_core::proto::{
    DeleteObjectRequest, GetObjectRequest, KeyValue, ListKeyVersionsRequest, PutObjectRequest,
};
use vss_core::{KvStore, UserToken, VssError};

/// Forwards `from` to `to`; `client_side` says which way the bytes go.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    client_side: bool,
    client_spoke_last: Arc<AtomicBool>,
    round_trips: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if client_side {
            if !client_spoke_last.swap(true, Ordering::SeqCst) {
                round_trips.fetch_add(1, Ordering::SeqCst);
            }
        } else {
            // Before forwarding: the client cannot answer what it has not received.
            client_spoke_last.store(false, Ordering::SeqCst);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Starts the counting proxy in front of `upstream`; returns its address and counter.
async fn start_proxy(upstream: String) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let round_trips = Arc::new(AtomicU64::new(0));
    let counter = round_trips.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(&upstream).await.unwrap();
            client.set_nodelay(true).unwrap();
            server.set_nodelay(true).unwrap();
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let client_spoke_last = Arc::new(AtomicBool::new(false));
            tokio::spawn(pump(
                client_read,
                server_write,
                true,
                client_spoke_last.clone(),
                counter.clone(),
            ));
            tokio::spawn(pump(
                server_read,
                client_write,
                false,
                client_spoke_last,
                counter.clone(),
            ));
        }
    });
    (address, round_trips)
}

fn kv(key: &str, version: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        version,
        value: Bytes::from_static(b"value"),
    }
}

fn put(
    global_version: Option<i64>,
    items: Vec<KeyValue>,
    deletes: Vec<KeyValue>,
) -> PutObjectRequest {
    PutObjectRequest {
        store_id: "s".into(),
        global_version,
        transaction_items: items,
        delete_items: deletes,
    }
}

fn get(key: &str) -> GetObjectRequest {
    GetObjectRequest {
        store_id: "s".into(),
        key: key.into(),
    }
}

fn list(prefix: Option<&str>, page_token: Option<String>) -> ListKeyVersionsRequest {
    ListKeyVersionsRequest {
        store_id: "s".into(),
        key_prefix: prefix.map(str::to_string),
        page_size: Some(2),
        page_token,
    }
}

fn delete(key: &str, version: i64) -> DeleteObjectRequest {
    DeleteObjectRequest {
        store_id: "s".into(),
        key_value: Some(kv(key, version)),
    }
}

/// Runs every kind of operation once: first to warm up, then counted.
async fn each_operation(
    store: &PostgresStore,
    user: &UserToken,
    round: u32,
    counter: &AtomicU64,
) -> Vec<(&'static str, u64)> {
    let mut counts = Vec::new();
    macro_rules! count {
        ($name:expr, $call:expr) => {{
            let before = counter.load(Ordering::SeqCst);
            let result = $call;
            counts.push(($name, counter.load(Ordering::SeqCst) - before));
            result
        }};
    }
    let k = |name: &str| format!("{name}-{round}");
    count!(
        "put: one item, version -1 (ldk-node)",
        store
            .put(user, put(None, vec![kv(&k("a"), -1)], vec![]))
            .await
    )
    .unwrap();
    count!(
        "put: one item, version 0",
        store
            .put(user, put(None, vec![kv(&k("b"), 0)], vec![]))
            .await
    )
    .unwrap();
    count!(
        "put: one item, version 1",
        store
            .put(user, put(None, vec![kv(&k("b"), 1)], vec![]))
            .await
    )
    .unwrap();
    let gv = i64::from(round) * 2;
    count!(
        "put: global version only",
        store.put(user, put(Some(gv), vec![], vec![])).await
    )
    .unwrap();
    count!(
        "put: global version, 3 writes, 1 delete",
        store
            .put(
                user,
                put(
                    Some(gv + 1),
                    vec![kv(&k("c"), 0), kv(&k("d"), -1), kv(&k("b"), 2)],
                    vec![kv(&k("a"), 1)]
                )
            )
            .await
    )
    .unwrap();
    let conflict = count!(
        "put: 2 items, failing condition (CONFLICT)",
        store
            .put(
                user,
                put(None, vec![kv(&k("e"), -1), kv(&k("c"), 7)], vec![])
            )
            .await
    );
    assert!(
        matches!(conflict, Err(VssError::Conflict(_))),
        "{conflict:?}"
    );
    count!("get: a key", store.get(user, get(&k("b"))).await).unwrap();
    count!(
        "get: global_version",
        store.get(user, get("global_version")).await
    )
    .unwrap();
    let missing = count!(
        "get: a missing key (NO_SUCH_KEY)",
        store.get(user, get(&k("zz"))).await
    );
    assert!(matches!(missing, Err(VssError::NoSuchKey(_))));
    let first = count!(
        "list: first page",
        store.list_key_versions(user, list(None, None)).await
    )
    .unwrap();
    let token = first.next_page_token.filter(|t| !t.is_empty());
    assert!(token.is_some(), "more than one page");
    count!(
        "list: next page",
        store.list_key_versions(user, list(None, token)).await
    )
    .unwrap();
    count!(
        "list: first page with prefix",
        store.list_key_versions(user, list(Some("c-"), None)).await
    )
    .unwrap();
    count!(
        "delete: any version",
        store.delete(user, delete(&k("c"), -1)).await
    )
    .unwrap();
    count!(
        "delete: version 3",
        store.delete(user, delete(&k("b"), 3)).await
    )
    .unwrap();
    count!(
        "put: no item, no global version",
        store.put(user, put(None, vec![], vec![])).await
    )
    .unwrap();
    counts
}

// A current-thread runtime: the store queues a whole pipeline before the connection
// task writes it, so a pipeline is one write and the count is exact.
#[tokio::test(flavor = "current_thread")]
async fn round_trips_per_operation() {
    let Some(mut config) = common::fresh_config("VSS_TEST_POSTGRES_URL", "roundtrips") else {
        return;
    };
    let (proxy, counter) = start_proxy(config.address.clone()).await;
    config.address = proxy;
    config.max_connections = 1;
    let store = PostgresStore::connect(config).await.unwrap();
    let user = UserToken::new("counted").unwrap();

    let cold = each_operation(&store, &user, 0, &counter).await;
    let warm = each_operation(&store, &user, 1, &counter).await;
    println!("round trips per operation (cold: statements not yet prepared on the connection):");
    for ((name, warm), (_, cold)) in warm.iter().zip(&cold) {
        println!("  {warm}  (cold {cold})  {name}");
    }
    for (name, count) in &warm {
        let expected = if name.starts_with("put: no item") {
            0
        } else {
            1
        };
        assert_eq!(*count, expected, "round trips of `{name}`");
    }
    // Preparing is one extra round trip at most, however many statements a call needs.
    for (name, count) in &cold {
        assert!(*count <= 2, "cold `{name}` took {count} round trips");
    }
}
