//! Several instances on one backend: three vss-server processes share a
//! PostgreSQL database, a Redis or a DynamoDB table behind a round-robin
//! balancer that sends every request to the next instance. The
//! compare-and-set races, the model test with concurrent sequences, paging
//! and LNURL-auth logins all cross instances at every step, and must behave
//! as one server. (SQLite is one instance per file: docs/operating.md.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::bip32::Xpriv;
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::Network;
use bytes::Bytes;
use common::balancer::Balancer;
use common::child::{self, Started};
use vss_client_ng::client::VssClient;
use vss_client_ng::headers::LnurlAuthToJwtProvider;
use vss_conformance::HttpStore;
use vss_core::conformance::{self, ConcurrencyConfig, ModelConfig, Subject};
use vss_core::proto::{KeyValue, ListKeyVersionsRequest, PutObjectRequest};
use vss_core::{KvStore, StoreLimits, UserToken};

/// Instances per deployment.
const INSTANCES: usize = 3;

const ISSUER_KEY: &str =
    include_str!("../../../crates/vss-auth/tests/fixtures/issuer-es256-private.pem");

/// One shared backend: a config file naming it, in a directory of the test's.
struct Backend {
    dir: tempfile::TempDir,
    file: PathBuf,
}

impl Backend {
    fn new(section: String) -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("backend.toml");
        std::fs::write(&file, section).unwrap();
        Backend { dir, file }
    }

    fn postgres(label: &str) -> Option<Backend> {
        let url = conformance::service_url("VSS_TEST_POSTGRES_URL")?;
        let pg = vss_backend_postgres::PostgresConfig::from_url(&url).unwrap();
        let mut database = conformance::unique_name(&format!("vss_inst_{label}")).replace('-', "_");
        database.truncate(63);
        Some(Backend::new(format!(
            "[postgresql_config]\naddress = \"{}\"\nusername = \"{}\"\n\
             default_database = \"{}\"\nvss_database = \"{database}\"\n",
            pg.address, pg.username, pg.database
        )))
    }

    fn redis() -> Option<Backend> {
        let url = conformance::service_url("VSS_TEST_REDIS_URL")?;
        Some(Backend::new(format!("[redis_config]\nurl = \"{url}\"\n")))
    }

    fn dynamodb(label: &str) -> Option<Backend> {
        let endpoint = conformance::service_url("VSS_TEST_DYNAMODB_URL")?;
        let table = conformance::unique_name(&format!("inst-{label}"));
        Some(Backend::new(format!(
            "[dynamodb_config]\ntable = \"{table}\"\nregion = \"us-east-1\"\n\
             endpoint_url = \"{endpoint}\"\ncreate_table = true\n"
        )))
    }

    fn path(&self) -> &str {
        self.file.to_str().unwrap()
    }

    /// What the backend declares (clients must be told: it is not on the wire).
    async fn limits(&self) -> StoreLimits {
        let config = common::config_from_file(&self.file);
        let store = vss_server::backend::open(&config.backend).await.unwrap();
        let limits = store.limits();
        store.close().await.unwrap();
        limits
    }
}

/// Instances of one deployment, and the balancer in front of them.
struct Deployment {
    instances: Vec<Started>,
    balancer: Balancer,
}

impl Deployment {
    /// `INSTANCES` servers on `backend` with the variables `auth`, started one
    /// after the other (the first creates the database or table).
    async fn start(backend: &Backend, auth: &[(&str, &str)]) -> Deployment {
        let mut env = vec![("VSS_BIND_ADDRESS", "127.0.0.1:0")];
        env.extend_from_slice(common::AWS_ENV);
        env.extend_from_slice(auth);
        let mut instances = Vec::new();
        for _ in 0..INSTANCES {
            instances
                .push(child::start(backend.dir.path(), &["--config", backend.path()], &env).await);
        }
        let urls: Vec<String> = instances.iter().map(|i| i.url.clone()).collect();
        let balancer = Balancer::start(&urls).await;
        Deployment {
            instances,
            balancer,
        }
    }

    /// Stops every instance with SIGTERM; each must exit cleanly.
    async fn stop(self) {
        for instance in self.instances {
            let (code, stderr) = instance.signal("TERM").await;
            assert_eq!(code, Some(0), "{stderr}");
        }
    }
}

/// The races, the model test with 4 concurrent sequences and paging, through the balancer.
async fn one_server_across_instances(backend: Backend) {
    let limits = backend.limits().await;
    let deployment = Deployment::start(&backend, &[("VSS_AUTH", "none")]).await;
    let url = deployment.balancer.url("/vss");
    let store = Arc::new(HttpStore::new(&url).unwrap().with_limits(limits));

    conformance::run_races(
        || async { Subject::single_user(store.clone()) },
        ConcurrencyConfig::default(),
    )
    .await
    .unwrap();
    let cases = ModelConfig::default().cases;
    conformance::run_model(
        || async { Subject::single_user(store.clone()) },
        ModelConfig::concurrent(cases, 4),
    )
    .await
    .unwrap();

    pages_continue_on_other_instances(&deployment, &store).await;
    // Every instance served its share.
    let served = deployment.balancer.served();
    assert!(served.iter().all(|&n| n > 100), "{served:?}");
    deployment.stop().await;
}

/// A listing in pages of 5, each page from the next instance, finds every key once.
async fn pages_continue_on_other_instances(deployment: &Deployment, store: &Arc<HttpStore>) {
    let user = UserToken::new("unauthenticated").unwrap();
    let store_id = conformance::unique_name("pages");
    for chunk in 0..5 {
        let items = (0..5)
            .map(|i| KeyValue {
                key: format!("key-{:02}", chunk * 5 + i),
                version: 0,
                value: Bytes::from_static(b"v"),
            })
            .collect();
        store
            .put(
                &user,
                PutObjectRequest {
                    store_id: store_id.clone(),
                    global_version: None,
                    transaction_items: items,
                    delete_items: vec![],
                },
            )
            .await
            .unwrap();
    }
    let before = deployment.balancer.served();
    let mut seen = BTreeMap::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_key_versions(
                &user,
                ListKeyVersionsRequest {
                    store_id: store_id.clone(),
                    key_prefix: None,
                    page_size: Some(5),
                    page_token: token.take(),
                },
            )
            .await
            .unwrap();
        pages += 1;
        for kv in page.key_versions {
            assert!(
                seen.insert(kv.key.clone(), kv.version).is_none(),
                "{} twice",
                kv.key
            );
        }
        match page.next_page_token {
            Some(next) if !next.is_empty() => token = Some(next),
            _ => break,
        }
    }
    assert_eq!(seen.len(), 25, "{seen:?}");
    assert!(seen.values().all(|&v| v == 1));
    // One request per page, in turn: every instance continued another's token.
    let after = deployment.balancer.served();
    let per_instance: Vec<usize> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(per_instance.iter().sum::<usize>(), pages);
    assert!(
        pages >= INSTANCES && per_instance.iter().all(|&n| n >= 1),
        "{per_instance:?}"
    );
}

/// `GET path` on an instance (or the balancer), as plain text.
async fn get_text(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let answer = common::get(addr, path).await;
    (answer.status, answer.body)
}

/// The signed answer to the challenge in `callback` by `key`: the query to append.
fn signed_answer(callback: &str, key: &SecretKey) -> String {
    let k1 = callback.split("k1=").nth(1).unwrap();
    let digest: [u8; 32] = hex::decode(k1).unwrap().try_into().unwrap();
    let secp = Secp256k1::new();
    let sig = secp.sign_ecdsa(&Message::from_digest(digest), key);
    let public = bitcoin::secp256k1::PublicKey::from_secret_key(&secp, key);
    format!(
        "&sig={}&key={}",
        hex::encode(sig.serialize_der()),
        hex::encode(public.serialize())
    )
}

/// A challenge from instance A answered at B logs in; the same answer at C
/// (and at A, and at B again) is refused; the token works at every
/// instance; real clients log in through the balancer.
async fn lnurl_logins_across_instances(backend: Backend) {
    let key_file = backend.dir.path().join("issuer.pem");
    std::fs::write(&key_file, ISSUER_KEY).unwrap();
    let auth = [
        ("VSS_AUTH", "lnurl"),
        (
            "VSS_LNURL_AUTH_PRIVATE_KEY_FILE",
            key_file.to_str().unwrap(),
        ),
    ];
    let deployment = Deployment::start(&backend, &auth).await;
    let [a, b, c] = [0, 1, 2].map(|i| deployment.instances[i].addr());

    let key = SecretKey::from_slice(&[0x42; 32]).unwrap();
    for round in 0..5 {
        let (status, callback) = get_text(a, "/lnurl-auth").await;
        assert_eq!(status, 200, "{callback}");
        let path = callback.split_once(&a.to_string()).unwrap().1.to_string();
        let answer = format!("{path}{}", signed_answer(&callback, &key));
        let (status, login) = get_text(b, &answer).await;
        assert_eq!(status, 200, "round {round}: {login}");
        let token: serde_json::Value = serde_json::from_str(&login).unwrap();
        let token = token["token"].as_str().unwrap().to_string();
        for (at, name) in [(c, "C"), (a, "A"), (b, "B")] {
            let (status, refused) = get_text(at, &answer).await;
            assert_eq!(status, 400, "replay at {name}: {refused}");
            assert!(refused.contains("already used"), "{refused}");
        }
        // The token is good at every instance.
        for at in [a, b, c] {
            let list = common::plain_request(
                at,
                "POST",
                "/vss/listKeyVersions",
                &[("authorization", &format!("Bearer {token}"))],
                &prost::Message::encode_to_vec(&ListKeyVersionsRequest {
                    store_id: "s".into(),
                    ..Default::default()
                }),
            )
            .await;
            assert_eq!(list.status, 200, "{list:?}");
        }
    }

    // Concurrent answers with one challenge at the three instances: one login.
    for _ in 0..10 {
        let (_, callback) = get_text(a, "/lnurl-auth").await;
        let path = callback.split_once(&a.to_string()).unwrap().1.to_string();
        let answer = format!("{path}{}", signed_answer(&callback, &key));
        let (x, y, z) = tokio::join!(
            get_text(a, &answer),
            get_text(b, &answer),
            get_text(c, &answer)
        );
        let ok = [x.0, y.0, z.0].iter().filter(|s| **s == 200).count();
        assert_eq!(ok, 1, "{x:?} {y:?} {z:?}");
    }

    // ldk-node's provider through the balancer: its challenge and its answer
    // reach different instances, and its data is one user's everywhere.
    let lnurl_url = deployment.balancer.url("/lnurl-auth");
    let vss_url = deployment.balancer.url("/vss");
    let parent = Xpriv::new_master(Network::Testnet, &[7; 32]).unwrap();
    for value in [&b"first"[..], b"second"] {
        let provider = Arc::new(LnurlAuthToJwtProvider::new(
            parent,
            lnurl_url.clone(),
            HashMap::new(),
        ));
        let client =
            VssClient::new_with_headers(vss_url.clone(), common::client_policy(), provider);
        client
            .put_object(&vss_client_ng::types::PutObjectRequest {
                store_id: "wallet".into(),
                global_version: None,
                transaction_items: vec![vss_client_ng::types::KeyValue {
                    key: "state".into(),
                    version: -1,
                    value: value.to_vec(),
                }],
                delete_items: vec![],
            })
            .await
            .unwrap();
        for _ in 0..INSTANCES {
            let got = client
                .get_object(&vss_client_ng::types::GetObjectRequest {
                    store_id: "wallet".into(),
                    key: "state".into(),
                })
                .await
                .unwrap();
            assert_eq!(got.value.unwrap().value, value);
        }
    }
    deployment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_postgres_behave_as_one_server() {
    let Some(backend) = Backend::postgres("one") else {
        return;
    };
    one_server_across_instances(backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_redis_behave_as_one_server() {
    let Some(backend) = Backend::redis() else {
        return;
    };
    one_server_across_instances(backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_dynamodb_behave_as_one_server() {
    let Some(backend) = Backend::dynamodb("one") else {
        return;
    };
    one_server_across_instances(backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lnurl_auth_logins_cross_instances_on_postgres() {
    let Some(backend) = Backend::postgres("lnurl") else {
        return;
    };
    lnurl_logins_across_instances(backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lnurl_auth_logins_cross_instances_on_redis() {
    let Some(backend) = Backend::redis() else {
        return;
    };
    lnurl_logins_across_instances(backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lnurl_auth_logins_cross_instances_on_dynamodb() {
    let Some(backend) = Backend::dynamodb("lnurl") else {
        return;
    };
    lnurl_logins_across_instances(backend).await;
}

/// 100,000 challenge requests: the server keeps nothing per challenge (its
/// resident memory grows by less than 10 MiB), and a login whose challenge was
/// issued before the flood completes after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_challenges_costs_no_memory_and_evicts_no_login() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("issuer.pem");
    std::fs::write(&key_file, ISSUER_KEY).unwrap();
    let db = dir.path().join("vss.sqlite3");
    let server = child::start(
        dir.path(),
        &[],
        &[
            ("VSS_BIND_ADDRESS", "127.0.0.1:0"),
            ("VSS_BACKEND", "sqlite"),
            ("VSS_SQLITE_PATH", db.to_str().unwrap()),
            ("VSS_AUTH", "lnurl"),
            (
                "VSS_LNURL_AUTH_PRIVATE_KEY_FILE",
                key_file.to_str().unwrap(),
            ),
            ("VSS_LOG_LEVEL", "warn"),
        ],
    )
    .await;
    let addr = server.addr();
    let (status, pending) = get_text(addr, "/lnurl-auth").await;
    assert_eq!(status, 200);
    // Warm the connection handling up before the first reading.
    flood(addr, 2_000).await;
    let before = resident_kib(server.pid());
    flood(addr, 100_000).await;
    let after = resident_kib(server.pid());
    eprintln!("resident memory: {before} KiB before 100,000 challenges, {after} KiB after");
    assert!(
        after.saturating_sub(before) < 10 * 1024,
        "resident memory grew from {before} KiB to {after} KiB"
    );
    let key = SecretKey::from_slice(&[0x24; 32]).unwrap();
    let path = pending.split_once(&addr.to_string()).unwrap().1.to_string();
    let (status, login) = get_text(addr, &format!("{path}{}", signed_answer(&pending, &key))).await;
    assert_eq!(status, 200, "{login}");
    let (code, stderr) = server.signal("TERM").await;
    assert_eq!(code, Some(0), "{stderr}");
}

/// `count` challenge requests over 8 kept-alive connections; each is answered 200.
async fn flood(addr: std::net::SocketAddr, count: usize) {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, http_body_util::Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let uri: hyper::Uri = format!("http://{addr}/lnurl-auth").parse().unwrap();
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let client = client.clone();
            let uri = uri.clone();
            tokio::spawn(async move {
                for _ in (w..count).step_by(8) {
                    let answer = client.get(uri.clone()).await.unwrap();
                    assert_eq!(answer.status(), 200);
                    http_body_util::BodyExt::collect(answer.into_body())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        tokio::time::timeout(Duration::from_secs(600), worker)
            .await
            .expect("the flood did not finish")
            .unwrap();
    }
}

/// The resident set of process `pid`, in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
