//! Where the table is and how to reach it.

use std::time::Duration;

/// How [`crate::DynamoDbStore::connect`] reaches its table.
///
/// Build it as a struct literal with `..DynamoDbConfig::default()`.
#[derive(Clone)]
pub struct DynamoDbConfig {
    /// The table's name.
    pub table: String,
    /// The AWS region; `None` takes it from the standard chain (`AWS_REGION`,
    /// the shared config file, instance metadata).
    pub region: Option<String>,
    /// Another endpoint than the region's (a local DynamoDB-API server such as
    /// `http://127.0.0.1:8000`, or a VPC endpoint); `None` for the default.
    pub endpoint_url: Option<String>,
    /// Create the table (with its index, on-demand billing) when it does not
    /// exist, and wait until it is active. When `false`, a missing table is an error.
    pub create_table: bool,
    /// Fixed credentials, meant for local servers and tests; `None` (the
    /// default, and the right choice on AWS) uses the standard credential chain.
    pub credentials: Option<StaticCredentials>,
    /// Attempts the SDK makes for one request before giving up (throttling,
    /// timeouts, 5xx), with its exponential backoff.
    pub max_attempts: u32,
    /// Limit for one attempt of one request.
    pub attempt_timeout: Duration,
    /// Requests for chunks of one large value sent at once.
    pub chunk_concurrency: usize,
}

impl Default for DynamoDbConfig {
    /// Table `vss`, region and credentials from the standard chains, no table
    /// creation, 5 attempts per request, 60 s per attempt, 8 chunk requests at once.
    fn default() -> Self {
        DynamoDbConfig {
            table: "vss".into(),
            region: None,
            endpoint_url: None,
            create_table: false,
            credentials: None,
            max_attempts: 5,
            attempt_timeout: Duration::from_secs(60),
            chunk_concurrency: 8,
        }
    }
}

impl std::fmt::Debug for DynamoDbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoDbConfig")
            .field("table", &self.table)
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("create_table", &self.create_table)
            .field("credentials", &self.credentials)
            .field("max_attempts", &self.max_attempts)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("chunk_concurrency", &self.chunk_concurrency)
            .finish()
    }
}

/// An access key pair given in the configuration instead of the credential chain.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
}

impl std::fmt::Debug for StaticCredentials {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .finish()
    }
}
