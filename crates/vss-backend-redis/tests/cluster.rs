//! Redis Cluster. On one node serving every slot: the cluster refuses a
//! script whose keys are in different slots, so the suite proves that every
//! script's keys share one hash tag; quotas are off there (a user's usage
//! would be in another slot than their stores). On a real cluster of three
//! primaries with one replica each (`redis-cli --cluster create`): the suite
//! and the races, a failover of a primary after which every acknowledged write
//! is present (writes confirmed by a replica, `wait_replicas = 1`), and a
//! write no replica confirms answered INTERNAL.

// Test helpers stop the test at the first failed step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::poll_until;
use fred::interfaces::ClientLike;
use fred::types::{ClusterHash, CustomCommand};
use vss_backend_redis::{RedisConfig, RedisStore};
use vss_core::conformance::{self, unique_user, Subject};
use vss_core::proto::{KeyValue, PutObjectRequest};
use vss_core::{AdminStore, KvStore, Quota, VssError};

/// What makes a redis-server child a cluster node on loopback.
const CLUSTER_NODE: [&str; 6] = [
    "--cluster-enabled",
    "yes",
    "--cluster-announce-ip",
    "127.0.0.1",
    // Relative to the server's directory, the temp dir.
    "--cluster-config-file",
    "nodes.conf",
];

fn command(name: &'static str) -> CustomCommand {
    CustomCommand::new_static(name, ClusterHash::Random, false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_on_a_cluster() {
    let Some(bin) = common::redis_server() else {
        return;
    };
    let (redis, _dir) = common::durable_child(&bin, &CLUSTER_NODE).await;
    let admin = redis.admin().await;
    admin
        .custom::<(), _>(command("CLUSTER"), vec!["ADDSLOTSRANGE", "0", "16383"])
        .await
        .unwrap();
    poll_until("the cluster to be ok", Duration::from_secs(30), || async {
        let info: String = admin
            .custom(command("CLUSTER"), vec!["INFO"])
            .await
            .unwrap();
        info.contains("cluster_state:ok")
    })
    .await;

    let url = format!("redis-cluster://127.0.0.1:{}", redis.port);
    let store = Arc::new(RedisStore::connect(RedisConfig::new(url)).await.unwrap());
    // The guard checked the cluster's primary, which runs AOF always.
    assert!(store.durability_warnings().is_empty());
    conformance::run_all(|| {
        let store = store.clone();
        async move { Subject::new(store) }
    })
    .await
    .assert_all_passed();

    // The layout's two keys of one store hash to one slot.
    let slot = |key: &'static str| {
        let admin = admin.clone();
        async move {
            admin
                .custom::<i64, _>(command("CLUSTER"), vec!["KEYSLOT", key])
                .await
                .unwrap()
        }
    };
    assert_eq!(slot("vss:{7d2e.7b}:h").await, slot("vss:{7d2e.7b}:z").await);

    // No quotas, and no usage kept: a store's writes touch its own slot only.
    assert!(!store.limits().enforces_quotas);
    let user = unique_user();
    let req = || PutObjectRequest {
        store_id: "s".into(),
        global_version: None,
        transaction_items: vec![KeyValue {
            key: "k".into(),
            version: -1,
            value: bytes::Bytes::from_static(b"v"),
        }],
        delete_items: vec![],
    };
    let quota = Quota {
        max_bytes: Some(1000),
        max_keys: None,
    };
    let refused = store.put_with_quota(&user, req(), quota).await;
    assert!(matches!(refused, Err(VssError::Internal(_))), "{refused:?}");
    store
        .put_with_quota(&user, req(), Quota::UNLIMITED)
        .await
        .unwrap();
    assert_eq!(store.usage(&user).await.unwrap(), None);
    let hex: String = user.as_str().bytes().map(|b| format!("{b:02x}")).collect();
    let exists: i64 = admin
        .custom(command("EXISTS"), vec![format!("vss:{{{hex}}}:u")])
        .await
        .unwrap();
    assert_eq!(exists, 0, "no usage hash on a cluster");
    let flagged: i64 = admin
        .custom(
            command("HEXISTS"),
            vec![format!("vss:{{{hex}.73}}:h"), "c".into()],
        )
        .await
        .unwrap();
    assert_eq!(flagged, 0, "no usage flag on a cluster's stores");
    // The admin interface refuses a cluster: a SCAN would see one node.
    let listed = AdminStore::list_stores(&*store, None, 10).await;
    assert!(
        matches!(&listed, Err(VssError::Internal(why)) if why.contains("Redis Cluster")),
        "{listed:?}"
    );
    store.close().await.unwrap();

    // A cluster node reached through a plain URL keeps no usage either: its
    // scripts could not reach a usage hash in another slot.
    let plain = RedisStore::connect(RedisConfig::new(redis.url()))
        .await
        .unwrap();
    assert!(!plain.limits().enforces_quotas);
    common::round_trip(&plain).await;
    plain.close().await.unwrap();
}

/// A Redis Cluster of three primaries, each with one replica, made by
/// `redis-cli --cluster create` from six redis-server children (AOF always,
/// failure detected after 1 s).
struct RealCluster {
    nodes: Vec<(common::ChildRedis, tempfile::TempDir)>,
}

impl RealCluster {
    async fn start(bin: &std::path::Path) -> RealCluster {
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let args = [
                &CLUSTER_NODE[..],
                &[
                    "--cluster-node-timeout",
                    "1000",
                    "--enable-debug-command",
                    "yes",
                ],
            ]
            .concat();
            nodes.push(common::durable_child(bin, &args).await);
        }
        let cli = bin.with_file_name("redis-cli");
        let cli = if cli.exists() {
            cli
        } else {
            "redis-cli".into()
        };
        let mut create = std::process::Command::new(&cli);
        create.args(["--cluster", "create"]);
        for (node, _) in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", cli.display()));
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = RealCluster { nodes };
        // Every node sees all six and every slot served; every replica in sync.
        for (node, _) in &cluster.nodes {
            let admin = node.admin().await;
            poll_until("the cluster to form", Duration::from_secs(60), || async {
                let info: String = admin
                    .custom(command("CLUSTER"), vec!["INFO"])
                    .await
                    .unwrap();
                info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:6")
            })
            .await;
            poll_until(
                "replicas to be in sync",
                Duration::from_secs(60),
                || async {
                    let info: String = admin
                        .custom(command("INFO"), vec!["replication"])
                        .await
                        .unwrap();
                    info.contains("role:master") || info.contains("master_link_status:up")
                },
            )
            .await;
        }
        cluster
    }

    /// Every node as a seed, as operators should list them: the client finds
    /// the cluster again through any node that is still up.
    fn url(&self) -> String {
        let seeds: Vec<String> = self.nodes[1..]
            .iter()
            .map(|(node, _)| format!("node=127.0.0.1:{}", node.port))
            .collect();
        format!(
            "redis-cluster://127.0.0.1:{}?{}",
            self.nodes[0].0.port,
            seeds.join("&")
        )
    }

    /// `ROLE`'s first word of node `i`: `master` or `slave`.
    async fn role(&self, i: usize) -> String {
        let role: Vec<fred::types::Value> = self.nodes[i]
            .0
            .admin()
            .await
            .custom(command("ROLE"), Vec::<String>::new())
            .await
            .unwrap();
        role[0].as_string().unwrap()
    }

    /// The index of the replica of primary `i`.
    async fn replica_of(&self, i: usize) -> usize {
        let port = self.nodes[i].0.port.to_string();
        for j in 0..self.nodes.len() {
            if j == i {
                continue;
            }
            let info: String = self.nodes[j]
                .0
                .admin()
                .await
                .custom(command("INFO"), vec!["replication"])
                .await
                .unwrap();
            if info.contains(&format!("master_port:{port}")) {
                return j;
            }
        }
        panic!("primary {i} has no replica");
    }
}

/// A store on the cluster whose writes are confirmed by one replica.
async fn replicated_store(cluster: &RealCluster, wait_timeout: Duration) -> Arc<RedisStore> {
    let config = RedisConfig {
        wait_replicas: 1,
        wait_timeout,
        ..RedisConfig::new(cluster.url())
    };
    Arc::new(RedisStore::connect(config).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_and_the_races_pass_on_a_three_primary_cluster() {
    let Some(bin) = common::redis_server() else {
        return;
    };
    let cluster = RealCluster::start(&bin).await;
    // Without replica confirmation, the store says what a failover can lose.
    let unconfirmed = RedisStore::connect(RedisConfig::new(cluster.url()))
        .await
        .unwrap();
    assert!(
        unconfirmed
            .durability_warnings()
            .iter()
            .any(|w| w.contains("wait_replicas")),
        "{:?}",
        unconfirmed.durability_warnings()
    );
    unconfirmed.close().await.unwrap();

    let store = replicated_store(&cluster, Duration::from_secs(2)).await;
    assert!(
        store.durability_warnings().is_empty(),
        "{:?}",
        store.durability_warnings()
    );
    conformance::run_all(|| {
        let store = store.clone();
        async move { Subject::new(store) }
    })
    .await
    .assert_all_passed();
    conformance::run_races(
        || async { Subject::new(store.clone()) },
        conformance::ConcurrencyConfig::default(),
    )
    .await
    .unwrap();
    // The suite's stores are spread over all three primaries.
    for i in 0..6 {
        if cluster.role(i).await == "master" {
            let keys: i64 = cluster.nodes[i]
                .0
                .admin()
                .await
                .custom(command("DBSIZE"), Vec::<String>::new())
                .await
                .unwrap();
            assert!(keys > 0, "primary {i} holds no keys");
        }
    }
    store.close().await.unwrap();
}

/// Puts `key` = `value` as a new key (version 0) in `store_id` of `user`.
async fn create(
    store: &RedisStore,
    user: &vss_core::UserToken,
    store_id: &str,
    key: &str,
) -> Result<(), VssError> {
    store
        .put(
            user,
            PutObjectRequest {
                store_id: store_id.into(),
                global_version: None,
                transaction_items: vec![KeyValue {
                    key: key.into(),
                    version: 0,
                    value: bytes::Bytes::from(key.to_string()),
                }],
                delete_items: vec![],
            },
        )
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_the_failover_of_a_primary() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let Some(bin) = common::redis_server() else {
        return;
    };
    let mut cluster = RealCluster::start(&bin).await;
    let store = replicated_store(&cluster, Duration::from_secs(2)).await;
    let user = unique_user();

    // Writers on 24 stores (spread over the primaries) create keys without
    // pause, each recording what was acknowledged.
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Writes each writer had acknowledged once the cluster was whole again.
    let healed = Arc::new(AtomicBool::new(false));
    let after: Arc<Vec<AtomicUsize>> = Arc::new((0..24).map(|_| AtomicUsize::new(0)).collect());
    let mut writers = Vec::new();
    for w in 0..24 {
        let (store, user, acked, stop) = (store.clone(), user.clone(), acked.clone(), stop.clone());
        let (healed, after) = (healed.clone(), after.clone());
        writers.push(tokio::spawn(async move {
            let store_id = format!("s{w}");
            let (mut ok, mut failed) = (Vec::new(), 0usize);
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let key = format!("k{n}");
                n += 1;
                match create(&store, &user, &store_id, &key).await {
                    Ok(()) => {
                        ok.push(key);
                        acked.fetch_add(1, Ordering::SeqCst);
                        if healed.load(Ordering::SeqCst) {
                            after[w].fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Err(VssError::Internal(_)) => failed += 1,
                    Err(other) => panic!("a write during a failover answered {other:?}"),
                }
            }
            (store_id, ok, failed)
        }));
    }
    poll_until(
        "writes before the failover",
        Duration::from_secs(60),
        || async { acked.load(Ordering::SeqCst) >= 500 },
    )
    .await;

    // Kill a primary as a crash would; its replica takes over.
    let primary = {
        let mut found = 0;
        for i in 0..6 {
            if cluster.role(i).await == "master" {
                found = i;
                break;
            }
        }
        found
    };
    let replica = cluster.replica_of(primary).await;
    cluster.nodes[primary].0.kill();
    poll_until(
        "the replica to be promoted",
        Duration::from_secs(60),
        || async { cluster.role(replica).await == "master" },
    )
    .await;
    // The promoted primary has no replica: its slots take no confirmed write
    // until the lost node comes back, which rejoins as its replica.
    cluster.nodes[primary].0.restart().await;
    poll_until(
        "the old primary to rejoin as a replica",
        Duration::from_secs(60),
        || async {
            cluster.role(primary).await == "slave" && cluster.replica_of(replica).await == primary
        },
    )
    .await;
    healed.store(true, Ordering::SeqCst);
    // Writes go on everywhere, including the slots of the lost primary.
    poll_until(
        "writes on every store after the failover",
        Duration::from_secs(60),
        || async { after.iter().all(|n| n.load(Ordering::SeqCst) >= 5) },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    let mut failed_total = 0;
    for writer in writers {
        let (store_id, ok, failed) = writer.await.unwrap();
        failed_total += failed;
        // Every store took writes after the failover: its last key is recent.
        for key in &ok {
            let got = store
                .get(
                    &user,
                    vss_core::proto::GetObjectRequest {
                        store_id: store_id.clone(),
                        key: key.clone(),
                    },
                )
                .await
                .unwrap_or_else(|e| panic!("acknowledged {store_id}/{key} lost: {e:?}"));
            let value = got.value.unwrap();
            assert_eq!(
                value.value,
                bytes::Bytes::from(key.clone()),
                "{store_id}/{key}"
            );
            assert_eq!(value.version, 1, "{store_id}/{key}");
        }
        total += ok.len();
    }
    eprintln!(
        "failover: {total} acknowledged writes all present after the promotion; \
         {failed_total} answered INTERNAL while the primary was down"
    );
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_no_replica_confirms_is_not_acknowledged() {
    let Some(bin) = common::redis_server() else {
        return;
    };
    let cluster = RealCluster::start(&bin).await;
    let store = replicated_store(&cluster, Duration::from_millis(300)).await;
    let user = unique_user();
    create(&store, &user, "s", "before").await.unwrap();
    // Every replica stops answering for a while (its event loop sleeps).
    const SLEEP_SECS: &str = "5";
    let slept_at = std::time::Instant::now();
    let mut sleepers = Vec::new();
    let mut pingers = Vec::new();
    for i in 0..6 {
        if cluster.role(i).await == "slave" {
            let admin = cluster.nodes[i].0.admin().await;
            // Connected before the node sleeps: a sleeping node finishes no handshake.
            pingers.push(cluster.nodes[i].0.admin().await);
            sleepers.push(tokio::spawn(async move {
                let _: Result<String, _> = admin
                    .custom(command("DEBUG"), vec!["SLEEP", SLEEP_SECS])
                    .await;
            }));
        }
    }
    assert_eq!(sleepers.len(), 3);
    // The write waits until every replica is asleep (a ping goes unanswered for
    // 500 ms), so that none can confirm it in the moment before its sleep begins,
    // and is sent well inside the sleep.
    for pinger in &pingers {
        poll_until("a replica to sleep", Duration::from_secs(10), || async {
            let ping = pinger.custom::<String, String>(command("PING"), vec![]);
            tokio::time::timeout(Duration::from_millis(500), ping)
                .await
                .is_err()
        })
        .await;
    }
    assert!(
        slept_at.elapsed() < Duration::from_secs(3),
        "the replicas were found asleep only after {:?} of their 5 s",
        slept_at.elapsed()
    );
    // The write reaches its primary, but no replica confirms it in time: INTERNAL.
    let refused = create(&store, &user, "s", "unconfirmed").await;
    assert!(
        matches!(&refused, Err(VssError::Internal(why)) if why.contains("replicas confirmed")),
        "{refused:?}"
    );
    for sleeper in sleepers {
        sleeper.await.unwrap();
    }
    // Replicas back: writes are confirmed again.
    create(&store, &user, "s", "after").await.unwrap();
    store.close().await.unwrap();
}
