//! The embedding example as a process: it serves the custom backend to
//! vss-client-ng with a JWT, and refuses requests without one.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use vss_client_ng::client::VssClient;
use vss_client_ng::error::VssError;
use vss_client_ng::headers::FixedHeaders;
use vss_client_ng::types::{GetObjectRequest, KeyValue, ListKeyVersionsRequest, PutObjectRequest};
use vss_client_ng::util::retry::{
    ExponentialBackoffRetryPolicy, MaxAttemptsRetryPolicy, RetryPolicy,
};

const PUBLIC_PEM: &str = "../../crates/vss-auth/tests/fixtures/jwt/rs256-public.pem";
const PRIVATE_PEM: &str =
    include_str!("../../../crates/vss-auth/tests/fixtures/jwt/rs256-private.pem");

type Policy = MaxAttemptsRetryPolicy<ExponentialBackoffRetryPolicy<VssError>>;

fn client(url: &str, headers: HashMap<String, String>) -> VssClient<Policy> {
    let policy = ExponentialBackoffRetryPolicy::new(Duration::from_millis(10)).with_max_attempts(1);
    VssClient::new_with_headers(
        url.to_string(),
        policy,
        Arc::new(FixedHeaders::new(headers)),
    )
}

fn bearer(sub: &str) -> HashMap<String, String> {
    let token = vss_auth::JwtSigner::from_private_pem(PRIVATE_PEM)
        .unwrap()
        .token(sub, Duration::from_secs(600))
        .unwrap();
    HashMap::from([("Authorization".to_string(), format!("Bearer {token}"))])
}

/// Kills the example when the test ends, passed or not.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serves_the_custom_backend_with_jwt_auth() {
    let public = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(PUBLIC_PEM);
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_vss-embed-example"))
            .arg("--jwt-public-key")
            .arg(&public)
            .args(["--bind", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("serving on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();

    let alice = client(&url, bearer("alice"));
    alice
        .put_object(&PutObjectRequest {
            store_id: "wallet".into(),
            global_version: Some(0),
            transaction_items: vec![KeyValue {
                key: "channel-monitor".into(),
                version: 0,
                value: b"state".to_vec(),
            }],
            delete_items: vec![],
        })
        .await
        .unwrap();
    let got = alice
        .get_object(&GetObjectRequest {
            store_id: "wallet".into(),
            key: "channel-monitor".into(),
        })
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!((got.version, got.value.as_slice()), (1, &b"state"[..]));
    let listed = alice
        .list_key_versions(&ListKeyVersionsRequest {
            store_id: "wallet".into(),
            key_prefix: None,
            page_size: None,
            page_token: None,
        })
        .await
        .unwrap();
    assert_eq!(listed.global_version, Some(1));
    assert_eq!(listed.key_versions.len(), 1);

    // Another user does not see it; no token is refused.
    let request = GetObjectRequest {
        store_id: "wallet".into(),
        key: "channel-monitor".into(),
    };
    let bob = client(&url, bearer("bob")).get_object(&request).await;
    assert!(matches!(bob, Err(VssError::NoSuchKeyError(_))), "{bob:?}");
    let anonymous = client(&url, HashMap::new()).get_object(&request).await;
    assert!(
        matches!(anonymous, Err(VssError::AuthError(_))),
        "{anonymous:?}"
    );
}

#[test]
fn a_bad_key_file_stops_startup_and_names_the_flag() {
    let output = Command::new(env!("CARGO_BIN_EXE_vss-embed-example"))
        .args([
            "--jwt-public-key",
            "/nonexistent/key.pem",
            "--bind",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--jwt-public-key /nonexistent/key.pem"),
        "{stderr}"
    );
}
