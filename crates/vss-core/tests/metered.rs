//! `Metered`: a measured store still passes every rule, and each call is
//! counted by operation and outcome and timed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.
#![cfg(all(feature = "conformance", feature = "metrics"))]

use std::collections::HashMap;
use std::sync::Arc;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;
use vss_core::conformance::Subject;
use vss_core::metered::{Metered, OPERATIONS_TOTAL, OPERATION_DURATION};
use vss_core::proto::{
    DeleteObjectRequest, GetObjectRequest, KeyValue, ListKeyVersionsRequest, PutObjectRequest,
};
use vss_core::{KvStore, MemoryStore, UserToken};

mod metered_memory_store {
    use super::*;

    vss_core::conformance_tests!(|| async {
        Subject::new(Arc::new(Metered::new(MemoryStore::new())))
    });
}

fn put(key: &str, version: i64) -> PutObjectRequest {
    PutObjectRequest {
        store_id: "s".into(),
        global_version: None,
        transaction_items: vec![KeyValue {
            key: key.into(),
            version,
            value: bytes::Bytes::from_static(b"secret value"),
        }],
        delete_items: vec![],
    }
}

#[test]
fn every_call_is_counted_by_operation_and_outcome_and_timed() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let store = Metered::new(MemoryStore::new());
    let user = UserToken::new("alice").unwrap();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let get = |key: &str| GetObjectRequest {
                store_id: "s".into(),
                key: key.into(),
            };
            store.get(&user, get("missing")).await.unwrap_err();
            store.put(&user, put("k", 0)).await.unwrap();
            store.put(&user, put("k", 0)).await.unwrap_err();
            store.get(&user, get("k")).await.unwrap();
            store
                .list_key_versions(&user, ListKeyVersionsRequest::default())
                .await
                .unwrap();
            store
                .delete(
                    &user,
                    DeleteObjectRequest {
                        store_id: "s".into(),
                        key_value: None,
                    },
                )
                .await
                .unwrap_err();
            store.ready().await.unwrap();
        });
    });

    let mut counters = HashMap::new();
    let mut histograms = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let labels: Vec<String> = key
            .key()
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.key().name(), labels.join(","));
        match (key.kind(), value) {
            (MetricKind::Counter, DebugValue::Counter(n)) => {
                counters.insert(name, n);
            }
            (MetricKind::Histogram, DebugValue::Histogram(samples)) => {
                histograms.insert(name, samples.len());
            }
            other => panic!("unexpected metric {name}: {other:?}"),
        }
    }
    let counted = |operation: &str, outcome: &str| {
        counters
            .get(&format!(
                "{OPERATIONS_TOTAL}{{operation={operation},outcome={outcome}}}"
            ))
            .copied()
    };
    assert_eq!(counted("getObject", "no_such_key"), Some(1));
    assert_eq!(counted("getObject", "ok"), Some(1));
    assert_eq!(counted("putObjects", "ok"), Some(1));
    assert_eq!(counted("putObjects", "conflict"), Some(1));
    assert_eq!(counted("listKeyVersions", "ok"), Some(1));
    assert_eq!(counted("deleteObject", "invalid_request"), Some(1));
    assert_eq!(counted("ready", "ok"), Some(1));
    assert_eq!(counters.len(), 7, "{counters:?}");
    let timed = |operation: &str| {
        histograms
            .get(&format!("{OPERATION_DURATION}{{operation={operation}}}"))
            .copied()
    };
    assert_eq!(timed("getObject"), Some(2));
    assert_eq!(timed("putObjects"), Some(2));
    assert_eq!(timed("listKeyVersions"), Some(1));
    assert_eq!(timed("deleteObject"), Some(1));
    // No label holds the user, the store, a key or a value.
    for name in counters.keys().chain(histograms.keys()) {
        for secret in ["alice", "=s,", "=s}", "missing", "secret value"] {
            assert!(!name.contains(secret), "{name} holds {secret}");
        }
    }
}
