//! A wallet's tests, as a wallet team writes them: vss-client-ng (the client of
//! ldk-node's `VssStore`) against a `TestServer`, from `#[tokio::test]` and from
//! a plain `#[test]`, in every storage and authentication mode.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use vss_client_ng::client::VssClient;
use vss_client_ng::error::VssError;
use vss_client_ng::headers::sigs_auth::SigsAuthProvider;
use vss_client_ng::headers::{FixedHeaders, VssHeaderProvider};
use vss_client_ng::types::{
    DeleteObjectRequest, GetObjectRequest, KeyValue, ListKeyVersionsRequest, PutObjectRequest,
};
use vss_client_ng::util::retry::{
    ExponentialBackoffRetryPolicy, MaxAttemptsRetryPolicy, RetryPolicy,
};
use vss_core::KvStore;
use vss_testkit::{Auth, Storage, TestServer};

type Policy = MaxAttemptsRetryPolicy<ExponentialBackoffRetryPolicy<VssError>>;

fn client(server: &TestServer, headers: HashMap<String, String>) -> VssClient<Policy> {
    with_provider(server, Arc::new(FixedHeaders::new(headers)))
}

fn with_provider(server: &TestServer, headers: Arc<dyn VssHeaderProvider>) -> VssClient<Policy> {
    let policy = ExponentialBackoffRetryPolicy::new(Duration::from_millis(10)).with_max_attempts(2);
    VssClient::new_with_headers(server.base_url().to_string(), policy, headers)
}

/// A key as ldk-node makes them: 600 characters, distinct for each `n`.
fn ldk_key(n: usize) -> String {
    let mut key = format!("{n:04}#");
    while key.len() < 600 {
        key.push(char::from(b'a' + (key.len() * 7 + n) as u8 % 26));
    }
    key
}

async fn put(client: &VssClient<Policy>, store: &str, key: &str, version: i64, value: &[u8]) {
    client
        .put_object(&PutObjectRequest {
            store_id: store.into(),
            global_version: None,
            transaction_items: vec![KeyValue {
                key: key.into(),
                version,
                value: value.to_vec(),
            }],
            delete_items: vec![],
        })
        .await
        .unwrap();
}

/// ldk-node's way: 250 keys of 600 characters written in puts of 50, then
/// listed page by page until the server gives no next page token, read back,
/// one deleted; a stale version is refused.
async fn wallet_session(client: &VssClient<Policy>) {
    let keys: Vec<String> = (0..250).map(ldk_key).collect();
    for chunk in keys.chunks(50) {
        client
            .put_object(&PutObjectRequest {
                store_id: "wallet".into(),
                global_version: None,
                transaction_items: chunk
                    .iter()
                    .map(|k| KeyValue {
                        key: k.clone(),
                        version: 0,
                        value: k.as_bytes()[..8].to_vec(),
                    })
                    .collect(),
                delete_items: vec![],
            })
            .await
            .unwrap();
    }
    let mut listed = Vec::new();
    let mut page_token = None;
    loop {
        let page = client
            .list_key_versions(&ListKeyVersionsRequest {
                store_id: "wallet".into(),
                key_prefix: None,
                page_size: Some(40),
                page_token: page_token.take(),
            })
            .await
            .unwrap();
        listed.extend(page.key_versions.into_iter().map(|kv| (kv.key, kv.version)));
        match page.next_page_token {
            Some(token) if !token.is_empty() => page_token = Some(token),
            _ => break,
        }
    }
    assert_eq!(listed.len(), keys.len(), "each key exactly once");
    let distinct: BTreeSet<&str> = listed.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(distinct, keys.iter().map(String::as_str).collect());
    assert!(listed.iter().all(|(_, version)| *version == 1));

    let got = client
        .get_object(&GetObjectRequest {
            store_id: "wallet".into(),
            key: keys[7].clone(),
        })
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!((got.version, &got.value[..]), (1, &keys[7].as_bytes()[..8]));

    let stale = client
        .put_object(&PutObjectRequest {
            store_id: "wallet".into(),
            global_version: None,
            transaction_items: vec![KeyValue {
                key: keys[7].clone(),
                version: 0,
                value: b"again".to_vec(),
            }],
            delete_items: vec![],
        })
        .await;
    assert!(
        matches!(stale, Err(VssError::ConflictError(_))),
        "{stale:?}"
    );

    client
        .delete_object(&DeleteObjectRequest {
            store_id: "wallet".into(),
            key_value: Some(KeyValue {
                key: keys[7].clone(),
                version: 1,
                value: vec![],
            }),
        })
        .await
        .unwrap();
    let gone = client
        .get_object(&GetObjectRequest {
            store_id: "wallet".into(),
            key: keys[7].clone(),
        })
        .await;
    assert!(matches!(gone, Err(VssError::NoSuchKeyError(_))), "{gone:?}");
}

#[tokio::test]
async fn a_wallet_session_in_memory_from_a_tokio_test() {
    let server = TestServer::start().await.unwrap();
    assert!(server.base_url().starts_with("http://127.0.0.1:"));
    assert!(server.base_url().ends_with("/vss"));
    wallet_session(&client(&server, server.headers_for("anyone"))).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_session_on_sqlite_keeps_its_data_in_the_file() {
    let server = TestServer::builder()
        .storage(Storage::Sqlite)
        .start()
        .await
        .unwrap();
    let path = server.sqlite_path().unwrap().to_path_buf();
    wallet_session(&client(&server, HashMap::new())).await;
    // The keys are in the file (the session deleted one of its 250).
    let file =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let stored: i64 = file
        .query_row(
            "SELECT count(*) FROM vss_records WHERE store_id = 'wallet'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(stored, 249);
    server.stop().await;
}

/// A plain `#[test]`: the server runs on its own thread; the test brings the
/// runtime its client needs, as a wallet's blocking API does.
#[test]
fn a_plain_test_and_the_server_stops_when_dropped() {
    let server = TestServer::builder()
        .storage(Storage::Sqlite)
        .start_blocking()
        .unwrap();
    let address = server.address();
    let dir = server
        .sqlite_path()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(wallet_session(&client(&server, HashMap::new())));
    drop(server);
    // Dropping waited for the server's thread: nothing listens, nothing is left.
    assert!(std::net::TcpStream::connect(address).is_err());
    assert!(!dir.exists(), "{} is still there", dir.display());
}

#[tokio::test]
async fn jwt_users_see_only_their_own_data() {
    let server = TestServer::builder().auth(Auth::Jwt).start().await.unwrap();
    assert!(server.jwt_for("alice").is_some());
    let alice = client(&server, server.headers_for("alice"));
    let bob = client(&server, server.headers_for("bob"));
    wallet_session(&alice).await;
    put(&alice, "shared-name", "k", 0, b"alice's").await;
    let seen = bob
        .get_object(&GetObjectRequest {
            store_id: "shared-name".into(),
            key: "k".into(),
        })
        .await;
    assert!(matches!(seen, Err(VssError::NoSuchKeyError(_))), "{seen:?}");

    let nobody = client(&server, HashMap::new());
    let refused = nobody
        .get_object(&GetObjectRequest {
            store_id: "shared-name".into(),
            key: "k".into(),
        })
        .await;
    assert!(
        matches!(refused, Err(VssError::AuthError(_))),
        "{refused:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn signature_auth_takes_vss_client_ngs_provider_and_the_kits_headers() {
    let server = TestServer::builder()
        .auth(Auth::Sigs)
        .start()
        .await
        .unwrap();
    assert!(server.jwt_for("alice").is_none());
    let key = bitcoin::secp256k1::SecretKey::from_slice(&[9; 32]).unwrap();
    let wallet = with_provider(
        &server,
        Arc::new(SigsAuthProvider::new(key, HashMap::new())),
    );
    wallet_session(&wallet).await;

    // The kit's headers for a name are that name's key: the same user each time,
    // another user than the wallet's key.
    put(
        &client(&server, server.headers_for("carol")),
        "s",
        "k",
        0,
        b"carol's",
    )
    .await;
    let again = client(&server, server.headers_for("carol"))
        .get_object(&GetObjectRequest {
            store_id: "s".into(),
            key: "k".into(),
        })
        .await
        .unwrap();
    assert_eq!(again.value.unwrap().value, b"carol's");
    let other = wallet
        .get_object(&GetObjectRequest {
            store_id: "s".into(),
            key: "k".into(),
        })
        .await;
    assert!(
        matches!(other, Err(VssError::NoSuchKeyError(_))),
        "{other:?}"
    );
    server.stop().await;
}

/// A custom backend under the real HTTP layer: what the client writes is in the store.
#[tokio::test]
async fn serves_a_store_of_your_own() {
    let store = Arc::new(vss_core::MemoryStore::new());
    let server = TestServer::builder()
        .store(store.clone())
        .start()
        .await
        .unwrap();
    put(&client(&server, HashMap::new()), "mine", "k", -1, b"v").await;
    server.stop().await;
    let user = vss_core::UserToken::new(vss_http::NoopAuthorizer::DEFAULT_USER).unwrap();
    let got = store
        .get(
            &user,
            vss_core::proto::GetObjectRequest {
                store_id: "mine".into(),
                key: "k".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(&got.value.unwrap().value[..], b"v");
}
