//! Counting data written before usage was kept: the startup pass.
//!
//! Every script that writes keeps its user's usage exact, and counts a store
//! it meets unflagged (written before usage was kept) first, in the same
//! atomic step. What is left are stores nobody writes to: a user's quota put
//! in one store must also see the data of their other stores. So the first
//! [`crate::RedisStore::connect`] to a namespace walks every store hash with
//! `SCAN` and runs the count script on each (it counts and flags a store
//! unless it is flagged already, atomically), then sets the namespace's
//! marker so later starts skip the walk. `connect` returns only after that,
//! so no request is served before every store is counted.

use std::time::Instant;

use bytes::Bytes;
use fred::clients::Pool;
use fred::error::{Error, ErrorKind};
use fred::interfaces::ClientLike;
use fred::types::scripts::Script;
use fred::types::{ClusterHash, CustomCommand, Key, Value};

use crate::keys::{self, StoreKeys};
use crate::RedisError;

/// Stores counted by one script call: a call blocks Redis while it runs, and
/// counting a store reads every one of its keys.
const STORES_PER_CALL: usize = 32;

/// The `COUNT` hint of each `SCAN` call.
const SCAN_COUNT: &str = "1000";

fn command(name: &'static str) -> CustomCommand {
    CustomCommand::new_static(name, ClusterHash::FirstKey, false)
}

/// Counts every store of `namespace` not counted yet into its user's usage,
/// unless the namespace's marker says this was done; sets the marker when done.
pub(crate) async fn count_existing(
    pool: &Pool,
    namespace: &str,
    script: &Script,
) -> Result<(), RedisError> {
    let marker = Bytes::from(keys::usage_marker(namespace));
    let done: Value = pool
        .next()
        .custom(command("GET"), vec![Value::Bytes(marker.clone())])
        .await
        .map_err(RedisError::redis("reading the usage marker"))?;
    if !matches!(done, Value::Null) {
        return Ok(());
    }

    let started = Instant::now();
    tracing::info!(
        "counting the usage of stores written before usage was kept, in namespace `{namespace}` \
         (once; requests wait until it is done)"
    );
    let pattern = Bytes::from(keys::store_hash_pattern(namespace));
    let mut cursor = Value::from("0");
    let (mut stores, mut counted) = (0_u64, 0_u64);
    loop {
        let answer: Value = pool
            .next()
            .custom(
                CustomCommand::new_static("SCAN", ClusterHash::Random, false),
                vec![
                    cursor,
                    Value::from("MATCH"),
                    Value::Bytes(pattern.clone()),
                    Value::from("COUNT"),
                    Value::from(SCAN_COUNT),
                    Value::from("TYPE"),
                    Value::from("hash"),
                ],
            )
            .await
            .map_err(RedisError::redis("scanning stores to count their usage"))?;
        let (next, found) =
            scan_page(answer).map_err(RedisError::redis("scanning stores to count their usage"))?;
        let found: Vec<StoreKeys> = found
            .iter()
            .filter_map(|key| StoreKeys::from_hash_key(namespace, key))
            .collect();
        for batch in found.chunks(STORES_PER_CALL) {
            let redis_keys: Vec<Key> = batch
                .iter()
                .flat_map(|store| [&store.hash, &store.order, &store.usage])
                .map(|key| Key::from(Bytes::from(key.clone())))
                .collect();
            let now: i64 = script
                .evalsha_with_reload(pool.next(), redis_keys, Vec::<Value>::new())
                .await
                .map_err(RedisError::redis("counting the usage of existing stores"))?;
            counted += u64::try_from(now).unwrap_or(0);
        }
        stores += found.len() as u64;
        if next == b"0" {
            break;
        }
        cursor = Value::Bytes(Bytes::from(next));
    }

    pool.next()
        .custom::<(), _>(command("SET"), vec![Value::Bytes(marker), Value::from("1")])
        .await
        .map_err(RedisError::redis("setting the usage marker"))?;
    tracing::info!(
        "usage counted in namespace `{namespace}`: {counted} of {stores} stores were not \
         counted yet; took {:?}",
        started.elapsed()
    );
    Ok(())
}

/// The next cursor and the keys of one `SCAN` answer.
pub(crate) fn scan_page(answer: Value) -> Result<(Vec<u8>, Vec<Vec<u8>>), Error> {
    let bad = || Error::new(ErrorKind::Protocol, "unexpected SCAN answer");
    let Value::Array(parts) = answer else {
        return Err(bad());
    };
    let mut parts = parts.into_iter();
    let (Some(cursor), Some(Value::Array(found))) = (parts.next(), parts.next()) else {
        return Err(bad());
    };
    let bytes = |value: Value| match value {
        Value::Bytes(b) => Some(b.to_vec()),
        Value::String(s) => Some(s.inner().to_vec()),
        _ => None,
    };
    let cursor = bytes(cursor).ok_or_else(bad)?;
    let found = found.into_iter().map(bytes).collect::<Option<_>>();
    Ok((cursor, found.ok_or_else(bad)?))
}
