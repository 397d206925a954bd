//! The same suite on Redis Cluster (one node serving every slot): the cluster
//! refuses a script whose keys are in different slots, so this proves that
//! every script's keys share one hash tag. Quotas are off there (a user's
//! usage would be in another slot than their stores): the quota rules skip,
//! a put with a quota is refused, and no usage is written.

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
