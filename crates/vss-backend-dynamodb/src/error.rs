//! Errors of connecting and of maintenance calls.

use aws_sdk_dynamodb::error::DisplayErrorContext;

/// Why connecting to the table, or a maintenance call, failed.
#[derive(Debug, thiserror::Error)]
pub enum DynamoDbError {
    /// The configuration cannot work (for example an empty table name).
    #[error("invalid DynamoDB configuration: {0}")]
    Config(String),
    /// The table exists but does not have the layout this crate needs.
    #[error("table `{table}` does not have the expected schema: {problem}")]
    Schema {
        /// The table.
        table: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The table is missing and `create_table` is off.
    #[error("table `{0}` does not exist (set create_table to create it)")]
    NoTable(String),
    /// A DynamoDB request failed.
    #[error("DynamoDB {operation} failed: {message}")]
    Request {
        /// The API operation.
        operation: &'static str,
        /// The error with all its causes.
        message: String,
    },
}

impl DynamoDbError {
    pub(crate) fn request(operation: &'static str, err: impl std::error::Error) -> Self {
        DynamoDbError::Request {
            operation,
            message: DisplayErrorContext(err).to_string(),
        }
    }
}
