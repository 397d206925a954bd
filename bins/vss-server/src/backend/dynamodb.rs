//! `[dynamodb_config]`: the DynamoDB backend (cargo feature `dynamodb`).

use crate::settings::parse;

/// The file section of these settings.
pub const SECTION: &str = "dynamodb_config";

/// The DynamoDB table used when none is configured.
pub const DEFAULT_DYNAMODB_TABLE: &str = "vss";

/// Settings of the DynamoDB backend. Credentials come from the standard AWS
/// chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`, web
/// identity, instance or task roles) unless [`DynamoDbSettings::credentials`] is set.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct DynamoDbSettings {
    /// DynamoDB table
    #[arg(id = "dynamodb_config.table", long = "dynamodb-table", env = "VSS_DYNAMODB_TABLE",
          value_name = "TABLE", default_value = DEFAULT_DYNAMODB_TABLE, value_parser = table_name)]
    pub table: String,

    /// AWS region of the table [default: from the AWS chain, e.g. AWS_REGION]
    #[arg(id = "dynamodb_config.region", long = "dynamodb-region", env = "VSS_DYNAMODB_REGION",
          value_name = "REGION", value_parser = region)]
    pub region: Option<String>,

    /// DynamoDB endpoint instead of the region's (a local DynamoDB-API server, a VPC endpoint)
    #[arg(id = "dynamodb_config.endpoint_url", long = "dynamodb-endpoint-url",
          env = "VSS_DYNAMODB_ENDPOINT_URL", value_name = "URL", value_parser = endpoint_url)]
    pub endpoint_url: Option<String>,

    /// Create the DynamoDB table when it is missing
    #[arg(id = "dynamodb_config.create_table", long = "dynamodb-create-table",
          env = "VSS_DYNAMODB_CREATE_TABLE", value_name = "BOOL", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value = "false",
          action = clap::ArgAction::Set, value_parser = parse::boolean)]
    pub create_table: bool,

    /// Fixed credentials instead of the AWS chain, for embedding and tests
    /// against a local server. Not a configuration setting: keys belong in the
    /// AWS chain's places.
    #[arg(skip)]
    pub credentials: Option<AwsCredentials>,
}

impl Default for DynamoDbSettings {
    /// Table `vss`, region and credentials from the AWS chain, no table creation.
    fn default() -> Self {
        super::defaults()
    }
}

/// An AWS access key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
}

impl std::fmt::Debug for AwsCredentials {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// A DynamoDB table name: 3 to 255 of `[A-Za-z0-9_.-]`.
fn table_name(s: &str) -> Result<String, String> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if (3..=255).contains(&s.len()) && s.chars().all(valid_char) {
        Ok(s.to_string())
    } else {
        Err("a DynamoDB table name is 3 to 255 letters, digits, `_`, `-` or `.`".into())
    }
}

/// An AWS region name such as `us-east-1`.
fn region(s: &str) -> Result<String, String> {
    let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if !s.is_empty() && s.chars().all(valid_char) {
        Ok(s.to_string())
    } else {
        Err("not an AWS region name such as us-east-1".into())
    }
}

fn endpoint_url(s: &str) -> Result<String, String> {
    parse::http_url(s, "http://127.0.0.1:8000")
}

#[cfg(feature = "dynamodb")]
impl DynamoDbSettings {
    /// Connects, and checks (or creates) the table.
    pub(crate) async fn open(
        &self,
    ) -> Result<std::sync::Arc<dyn vss_core::KvStore>, super::BackendError> {
        Ok(self.open_admin().await?)
    }

    /// Connects (and checks the table), with the admin interface.
    pub(crate) async fn open_admin(
        &self,
    ) -> Result<std::sync::Arc<dyn vss_core::AdminStore>, super::BackendError> {
        use vss_backend_dynamodb::{
            DynamoDbConfig, DynamoDbError, DynamoDbStore, StaticCredentials,
        };
        let config = DynamoDbConfig {
            table: self.table.clone(),
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
            create_table: self.create_table,
            credentials: self.credentials.as_ref().map(|c| StaticCredentials {
                access_key_id: c.access_key_id.clone(),
                secret_access_key: c.secret_access_key.clone(),
            }),
            ..DynamoDbConfig::default()
        };
        let store = DynamoDbStore::connect(config).await.map_err(|e| match e {
            DynamoDbError::NoTable(_) => super::BackendError::open("dynamodb", e)
                .naming::<Self>("create_table", "dynamodb_config.create_table"),
            e => super::BackendError::open("dynamodb", e),
        })?;
        tracing::info!(
            table = %self.table,
            region = self.region.as_deref().unwrap_or("(from the AWS chain)"),
            endpoint = self.endpoint_url.as_deref().unwrap_or("(the region's)"),
            "connected to DynamoDB"
        );
        Ok(std::sync::Arc::new(store))
    }
}
