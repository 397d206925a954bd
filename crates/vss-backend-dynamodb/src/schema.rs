//! Creating the table, or checking that an existing one has the layout.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, LocalSecondaryIndex, Projection,
    ProjectionType, ScalarAttributeType, TableDescription, TableStatus,
};
use aws_sdk_dynamodb::Client;

use crate::layout::{BY_SEQ_INDEX, PK, SEQ, SK, VERSION};
use crate::DynamoDbError;

/// How long to wait for a table to become active.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Makes sure `table` exists with the layout, creating it when asked to.
pub(crate) async fn ensure_table(
    client: &Client,
    table: &str,
    create: bool,
) -> Result<(), DynamoDbError> {
    match describe(client, table).await? {
        Some(desc) => {
            let desc = if desc.table_status() == Some(&TableStatus::Active) {
                desc
            } else {
                wait_until_active(client, table).await?
            };
            verify(table, &desc)
        }
        None if create => {
            create_table(client, table).await?;
            let desc = wait_until_active(client, table).await?;
            verify(table, &desc)
        }
        None => Err(DynamoDbError::NoTable(table.to_string())),
    }
}

async fn describe(client: &Client, table: &str) -> Result<Option<TableDescription>, DynamoDbError> {
    match client.describe_table().table_name(table).send().await {
        Ok(out) => Ok(out.table().cloned()),
        Err(err) => match err.into_service_error() {
            DescribeTableError::ResourceNotFoundException(_) => Ok(None),
            other => Err(DynamoDbError::request("DescribeTable", other)),
        },
    }
}

fn key(name: &str, key_type: KeyType) -> Result<KeySchemaElement, DynamoDbError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(|e| DynamoDbError::request("CreateTable", e))
}

fn attribute(name: &str, kind: ScalarAttributeType) -> Result<AttributeDefinition, DynamoDbError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .map_err(|e| DynamoDbError::request("CreateTable", e))
}

async fn create_table(client: &Client, table: &str) -> Result<(), DynamoDbError> {
    let index = LocalSecondaryIndex::builder()
        .index_name(BY_SEQ_INDEX)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SEQ, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::Include)
                .non_key_attributes(VERSION)
                .build(),
        )
        .build()
        .map_err(|e| DynamoDbError::request("CreateTable", e))?;
    let result = client
        .create_table()
        .table_name(table)
        .attribute_definitions(attribute(PK, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(SK, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(SEQ, ScalarAttributeType::N)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .local_secondary_indexes(index)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    match result {
        Ok(_) => {
            tracing::info!(table, "created DynamoDB table");
            Ok(())
        }
        Err(err) => match err.into_service_error() {
            // Another server created it at the same moment: fine, wait for it.
            CreateTableError::ResourceInUseException(_) => Ok(()),
            other => Err(DynamoDbError::request("CreateTable", other)),
        },
    }
}

async fn wait_until_active(
    client: &Client,
    table: &str,
) -> Result<TableDescription, DynamoDbError> {
    let started = Instant::now();
    loop {
        if let Some(desc) = describe(client, table).await? {
            if desc.table_status() == Some(&TableStatus::Active) {
                return Ok(desc);
            }
        }
        if started.elapsed() > ACTIVE_TIMEOUT {
            return Err(DynamoDbError::Schema {
                table: table.to_string(),
                problem: format!("not active after {} s", ACTIVE_TIMEOUT.as_secs()),
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

fn has_key(keys: &[KeySchemaElement], name: &str, key_type: KeyType) -> bool {
    keys.iter()
        .any(|k| k.attribute_name() == name && *k.key_type() == key_type)
}

/// Checks keys, attribute types and the listing index of an existing table.
fn verify(table: &str, desc: &TableDescription) -> Result<(), DynamoDbError> {
    let problem = |problem: String| DynamoDbError::Schema {
        table: table.to_string(),
        problem,
    };
    let keys = desc.key_schema();
    if keys.len() != 2 || !has_key(keys, PK, KeyType::Hash) || !has_key(keys, SK, KeyType::Range) {
        return Err(problem(format!(
            "the key schema must be `{PK}` (HASH) and `{SK}` (RANGE)"
        )));
    }
    for (name, kind) in [
        (PK, ScalarAttributeType::S),
        (SK, ScalarAttributeType::S),
        (SEQ, ScalarAttributeType::N),
    ] {
        let declared = desc
            .attribute_definitions()
            .iter()
            .any(|a| a.attribute_name() == name && *a.attribute_type() == kind);
        if !declared {
            return Err(problem(format!(
                "attribute `{name}` must be declared as {}",
                kind.as_str()
            )));
        }
    }
    let index = desc
        .local_secondary_indexes()
        .iter()
        .find(|i| i.index_name() == Some(BY_SEQ_INDEX));
    let Some(index) = index else {
        return Err(problem(format!(
            "the local secondary index `{BY_SEQ_INDEX}` is missing"
        )));
    };
    let index_keys = index.key_schema();
    if index_keys.len() != 2
        || !has_key(index_keys, PK, KeyType::Hash)
        || !has_key(index_keys, SEQ, KeyType::Range)
    {
        return Err(problem(format!(
            "index `{BY_SEQ_INDEX}` must be keyed by `{PK}` (HASH) and `{SEQ}` (RANGE)"
        )));
    }
    let projects_version = index.projection().is_some_and(|p| {
        p.projection_type() == Some(&ProjectionType::All)
            || p.non_key_attributes().iter().any(|a| a == VERSION)
    });
    if !projects_version {
        // Still correct (DynamoDB fetches the attribute from the table), only dearer.
        tracing::warn!(
            table,
            "index `{BY_SEQ_INDEX}` does not project `{VERSION}`: listings read the table too"
        );
    }
    Ok(())
}
