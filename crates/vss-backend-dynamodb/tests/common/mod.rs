//! Connecting the tests to the local DynamoDB-API server of `scripts/test`.
#![allow(dead_code)] // Each test binary uses a part.

use std::sync::Arc;

use vss_backend_dynamodb::{DynamoDbConfig, DynamoDbStore, StaticCredentials};
use vss_core::conformance::{self, Subject};

/// The server's URL, or `None` (with a loud message) when the tests should skip.
pub fn url() -> Option<String> {
    conformance::service_url("VSS_TEST_DYNAMODB_URL")
}

/// The configuration for a fresh table on the local server: dummy credentials, us-east-1.
pub fn config(url: &str, label: &str) -> DynamoDbConfig {
    DynamoDbConfig {
        table: conformance::unique_name(&format!("vss-{label}")),
        region: Some("us-east-1".into()),
        endpoint_url: Some(url.to_string()),
        create_table: true,
        credentials: Some(StaticCredentials {
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
        }),
        ..DynamoDbConfig::default()
    }
}

/// A store on a fresh table, or `None` when the tests should skip.
pub async fn store(label: &str) -> Option<DynamoDbStore> {
    let url = url()?;
    Some(
        DynamoDbStore::connect(config(&url, label))
            .await
            .expect("connect to the local DynamoDB-API server"),
    )
}

pub fn subject(store: DynamoDbStore) -> Subject {
    Subject::admin(Arc::new(store))
}

/// One item of a put.
pub fn kv(key: &str, version: i64, value: impl Into<bytes::Bytes>) -> vss_core::proto::KeyValue {
    vss_core::proto::KeyValue {
        key: key.into(),
        version,
        value: value.into(),
    }
}
