//! The round trips every generation of vss-client-ng in the field must pass
//! against vss-server on SQLite, written once: `client_suite!(crate_name)`
//! expands them for one version of the client (tests/client.rs: 0.6, the
//! current one; tests/client_v04.rs: 0.4, which ldk-node 0.7 uses).

/// The suite for the vss-client-ng crate `$client`, at the test crate's root
/// (it uses `mod common` and its macros: `#[macro_use] mod common;`).
macro_rules! client_suite {
    ($client:ident) => {
        use std::collections::{HashMap, HashSet};
        use std::sync::Arc;

        use common::*;
        use vss_server::AuthConfig;
        use $client::client::VssClient;
        use $client::error::VssError as ClientError;
        use $client::headers::FixedHeaders;
        use $client::types::{
            DeleteObjectRequest, GetObjectRequest, KeyValue, ListKeyVersionsRequest,
            PutObjectRequest,
        };

        type Policy = ldk_policy_type!($client);

        fn policy() -> Policy {
            ldk_policy!($client)
        }

        struct Fixture {
            _dir: tempfile::TempDir,
            server: Running,
            client: VssClient<Policy>,
        }

        async fn fixture() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let server = start(config(sqlite(dir.path()))).await;
            let client = VssClient::new(server.url.clone(), policy());
            Fixture {
                _dir: dir,
                server,
                client,
            }
        }

        fn kv(key: &str, version: i64, value: &[u8]) -> KeyValue {
            KeyValue {
                key: key.into(),
                version,
                value: value.to_vec(),
            }
        }

        fn put(store_id: &str, items: Vec<KeyValue>) -> PutObjectRequest {
            PutObjectRequest {
                store_id: store_id.into(),
                global_version: None,
                transaction_items: items,
                delete_items: vec![],
            }
        }

        fn get(store_id: &str, key: &str) -> GetObjectRequest {
            GetObjectRequest {
                store_id: store_id.into(),
                key: key.into(),
            }
        }

        #[tokio::test]
        async fn put_get_list_delete_round_trip() {
            let f = fixture().await;
            let c = &f.client;
            c.put_object(&put("wallet", vec![kv("a", 0, b"1"), kv("b", 0, b"2")]))
                .await
                .unwrap();
            c.put_object(&put("wallet", vec![kv("a", 1, b"1'")]))
                .await
                .unwrap();
            let a = c
                .get_object(&get("wallet", "a"))
                .await
                .unwrap()
                .value
                .unwrap();
            assert_eq!(
                (a.key.as_str(), a.version, a.value.as_slice()),
                ("a", 2, &b"1'"[..])
            );

            let list = c
                .list_key_versions(&ListKeyVersionsRequest {
                    store_id: "wallet".into(),
                    key_prefix: None,
                    page_size: None,
                    page_token: None,
                })
                .await
                .unwrap();
            let versions: HashMap<String, i64> = list
                .key_versions
                .iter()
                .map(|kv| (kv.key.clone(), kv.version))
                .collect();
            assert_eq!(
                versions,
                HashMap::from([("a".to_string(), 2), ("b".to_string(), 1)])
            );
            assert!(list.key_versions.iter().all(|kv| kv.value.is_empty()));
            assert_eq!(list.next_page_token.as_deref(), Some(""));
            assert_eq!(list.global_version, Some(0));

            c.delete_object(&DeleteObjectRequest {
                store_id: "wallet".into(),
                key_value: Some(kv("a", 2, b"")),
            })
            .await
            .unwrap();
            assert!(matches!(
                c.get_object(&get("wallet", "a")).await,
                Err(ClientError::NoSuchKeyError(_))
            ));
            // Deleting again is fine: deletes are idempotent.
            c.delete_object(&DeleteObjectRequest {
                store_id: "wallet".into(),
                key_value: Some(kv("a", -1, b"")),
            })
            .await
            .unwrap();
            // The global version, as ldk-node reads it.
            c.put_object(&PutObjectRequest {
                global_version: Some(0),
                ..put("wallet", vec![])
            })
            .await
            .unwrap();
            let gv = c
                .get_object(&get("wallet", "global_version"))
                .await
                .unwrap()
                .value
                .unwrap();
            assert_eq!(gv.version, 1);
            f.server.stop().await;
        }

        #[tokio::test]
        async fn a_conflict_is_the_clients_conflict_error_and_writes_nothing() {
            let f = fixture().await;
            let c = &f.client;
            c.put_object(&put("s", vec![kv("k", 0, b"first")]))
                .await
                .unwrap();
            let again = c
                .put_object(&put("s", vec![kv("k", 0, b"second"), kv("other", 0, b"x")]))
                .await;
            assert!(
                matches!(again, Err(ClientError::ConflictError(_))),
                "{again:?}"
            );
            let stale = c.put_object(&put("s", vec![kv("k", 7, b"stale")])).await;
            assert!(
                matches!(stale, Err(ClientError::ConflictError(_))),
                "{stale:?}"
            );
            let wrong_global = c
                .put_object(&PutObjectRequest {
                    global_version: Some(5),
                    ..put("s", vec![kv("k", 1, b"x")])
                })
                .await;
            assert!(
                matches!(wrong_global, Err(ClientError::ConflictError(_))),
                "{wrong_global:?}"
            );
            // Nothing of the failed transactions was written.
            let k = c.get_object(&get("s", "k")).await.unwrap().value.unwrap();
            assert_eq!((k.version, k.value.as_slice()), (1, &b"first"[..]));
            assert!(matches!(
                c.get_object(&get("s", "other")).await,
                Err(ClientError::NoSuchKeyError(_))
            ));
            f.server.stop().await;
        }

        #[tokio::test]
        async fn a_missing_key_is_the_clients_no_such_key_error() {
            let f = fixture().await;
            let missing = f.client.get_object(&get("s", "never-written")).await;
            assert!(
                matches!(missing, Err(ClientError::NoSuchKeyError(_))),
                "{missing:?}"
            );
            // Invalid requests are typed too.
            let invalid = f.client.get_object(&get("s", "")).await;
            assert!(
                matches!(invalid, Err(ClientError::InvalidRequestError(_))),
                "{invalid:?}"
            );
            f.server.stop().await;
        }

        /// Keys as ldk-node makes them: exactly 600 characters of `[A-Za-z0-9+/#]`.

        #[tokio::test]
        async fn keys_of_600_characters_round_trip_and_list() {
            let f = fixture().await;
            let keys: Vec<String> = (0..5).map(ldk_key).collect();
            assert!(keys.iter().all(|k| k.len() == 600));
            f.client
                .put_object(&put(
                    "ldk",
                    keys.iter()
                        .map(|k| kv(k, -1, &k.as_bytes()[..10]))
                        .collect(),
                ))
                .await
                .unwrap();
            for key in &keys {
                let got = f
                    .client
                    .get_object(&get("ldk", key))
                    .await
                    .unwrap()
                    .value
                    .unwrap();
                assert_eq!(&got.key, key);
                assert_eq!(got.value, &key.as_bytes()[..10]);
            }
            let list = f
                .client
                .list_key_versions(&ListKeyVersionsRequest {
                    store_id: "ldk".into(),
                    key_prefix: Some("0003#".into()),
                    page_size: None,
                    page_token: None,
                })
                .await
                .unwrap();
            assert_eq!(list.key_versions.len(), 1);
            assert_eq!(list.key_versions[0].key, keys[3]);
            // 601 bytes is over the limit.
            let long = format!("{}x", keys[0]);
            let refused = f
                .client
                .put_object(&put("ldk", vec![kv(&long, -1, b"")]))
                .await;
            assert!(
                matches!(refused, Err(ClientError::InvalidRequestError(_))),
                "{refused:?}"
            );
            f.server.stop().await;
        }

        #[tokio::test]
        async fn listing_pages_until_the_empty_token_returns_every_key_once() {
            let f = fixture().await;
            let total = 257;
            for chunk in (0..total).collect::<Vec<_>>().chunks(100) {
                let items = chunk
                    .iter()
                    .map(|i| kv(&format!("key-{i:04}"), 0, b"v"))
                    .collect();
                f.client.put_object(&put("paged", items)).await.unwrap();
            }
            // As ldk-node 0.7 does: loop until the server says Some("").
            let mut seen = Vec::new();
            let mut token: Option<String> = None;
            let mut pages = 0;
            let mut first_global_version = None;
            loop {
                let page = f
                    .client
                    .list_key_versions(&ListKeyVersionsRequest {
                        store_id: "paged".into(),
                        key_prefix: Some("key-".into()),
                        page_size: Some(40),
                        page_token: token.clone(),
                    })
                    .await
                    .unwrap();
                pages += 1;
                if pages == 1 {
                    first_global_version = page.global_version;
                } else {
                    assert_eq!(
                        page.global_version, None,
                        "global_version only on the first page"
                    );
                }
                assert!(page.key_versions.len() <= 40);
                seen.extend(page.key_versions.into_iter().map(|kv| kv.key));
                match page.next_page_token {
                    Some(t) if t.is_empty() => break,
                    Some(t) => token = Some(t),
                    None => panic!("next_page_token must always be present"),
                }
                assert!(pages < 100, "the listing does not end");
            }
            assert_eq!(first_global_version, Some(0));
            assert_eq!(seen.len(), total);
            assert_eq!(seen.iter().collect::<HashSet<_>>().len(), total);
            // Newest first: the last key created lists first.
            assert_eq!(seen[0], format!("key-{:04}", total - 1));
            f.server.stop().await;
        }

        #[tokio::test]
        async fn a_value_of_2_mib_round_trips() {
            let f = fixture().await;
            let value: Vec<u8> = (0..2 * 1024 * 1024)
                .map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8)
                .collect();
            f.client
                .put_object(&put("big", vec![kv("blob", 0, &value)]))
                .await
                .unwrap();
            let got = f
                .client
                .get_object(&get("big", "blob"))
                .await
                .unwrap()
                .value
                .unwrap();
            assert_eq!(got.version, 1);
            assert!(got.value == value, "the 2 MiB value came back different");
            f.server.stop().await;
        }

        #[tokio::test]
        async fn the_client_authenticates_with_a_jwt() {
            let dir = tempfile::tempdir().unwrap();
            let mut cfg = config(sqlite(dir.path()));
            cfg.auth = AuthConfig::jwt(PUBLIC_PEM);
            let server = start(cfg).await;
            let headers = |sub: &str| {
                Arc::new(FixedHeaders::new(HashMap::from([(
                    "Authorization".to_string(),
                    format!("Bearer {}", token(sub)),
                )])))
            };
            let alice = VssClient::new_with_headers(server.url.clone(), policy(), headers("alice"));
            let bob = VssClient::new_with_headers(server.url.clone(), policy(), headers("bob"));
            alice
                .put_object(&put("s", vec![kv("k", 0, b"alice's")]))
                .await
                .unwrap();
            assert_eq!(
                alice
                    .get_object(&get("s", "k"))
                    .await
                    .unwrap()
                    .value
                    .unwrap()
                    .value,
                b"alice's"
            );
            assert!(matches!(
                bob.get_object(&get("s", "k")).await,
                Err(ClientError::NoSuchKeyError(_))
            ));
            let anonymous = VssClient::new(server.url.clone(), policy());
            assert!(matches!(
                anonymous.get_object(&get("s", "k")).await,
                Err(ClientError::AuthError(_))
            ));
            server.stop().await;
        }
    };
}
