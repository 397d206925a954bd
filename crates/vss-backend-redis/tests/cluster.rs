//! The same suite on Redis Cluster (one node serving every slot): the cluster
//! refuses a script whose keys are in different slots, so this proves that
//! every script's keys share one hash tag.

// Test helpers stop the test at the first failed step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::poll_until;
use fred::interfaces::ClientLike;
use fred::types::{ClusterHash, CustomCommand};
use vss_backend_redis::{RedisConfig, RedisStore};
use vss_core::conformance::{self, Subject};
use vss_core::KvStore;

fn command(name: &'static str) -> CustomCommand {
    CustomCommand::new_static(name, ClusterHash::Random, false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_on_a_cluster() {
    let Some(bin) = common::redis_server() else {
        return;
    };
    let (redis, _dir) = common::durable_child(
        &bin,
        &[
            "--cluster-enabled",
            "yes",
            "--cluster-announce-ip",
            "127.0.0.1",
            // Relative to the server's directory, the temp dir.
            "--cluster-config-file",
            "nodes.conf",
        ],
    )
    .await;
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
    store.close().await.unwrap();
}
