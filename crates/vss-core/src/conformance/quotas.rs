//! The rules of quotas (`crate::quota`) and of the largest value a store
//! holds. Quota rules run against stores that declare
//! [`crate::StoreLimits::enforces_quotas`] and are skipped for others.
//!
//! Sizes are exact: a key counts its bytes plus its value's, so key `a` with a
//! 59-byte value counts 60 bytes.

use futures::future::join_all;

use super::support::{ensure, ensure_eq, expect_err, kv, unexpected, Ctx, Kind};
use super::{Subject, TestError, TestResult};
use crate::{Quota, VssError};

fn bytes(max: u64) -> Quota {
    Quota {
        max_bytes: Some(max),
        max_keys: None,
    }
}

fn keys(max: u64) -> Quota {
    Quota {
        max_bytes: None,
        max_keys: Some(max),
    }
}

/// A context for a quota rule, or the skip of a store without quotas.
fn quota_ctx(s: &Subject) -> Result<Ctx, TestError> {
    if !s.store.limits().enforces_quotas {
        return Err(TestError::Skipped(
            "the store does not enforce quotas (StoreLimits::enforces_quotas)".into(),
        ));
    }
    Ok(Ctx::new(s))
}

/// A put under `quota` that must succeed.
async fn must_put_within(t: &Ctx, quota: Quota, items: &[(&str, usize)]) -> TestResult {
    let items = items
        .iter()
        .map(|(key, len)| kv(key, -1, &vec![b'x'; *len]))
        .collect();
    t.put_with_quota(quota, items, vec![])
        .await
        .map_err(|e| unexpected(&format!("put within {quota:?}"), e))
}

/// A put under `quota` that must be refused for the quota, with a message
/// naming the limit and the usage the put would reach.
async fn must_refuse(
    t: &Ctx,
    quota: Quota,
    items: &[(&str, usize)],
    limit: u64,
    would_reach: u64,
) -> TestResult {
    let items = items
        .iter()
        .map(|(key, len)| kv(key, -1, &vec![b'y'; *len]))
        .collect();
    match t.put_with_quota(quota, items, vec![]).await {
        Err(VssError::QuotaExceeded(message)) => {
            ensure!(
                message.contains(&limit.to_string()) && message.contains(&would_reach.to_string()),
                "the quota error should name the limit {limit} and the usage {would_reach}: {message}"
            );
            Ok(())
        }
        other => Err(TestError::Failed(format!(
            "a put over {quota:?} (to {would_reach}) should be refused for the quota, got {other:?}"
        ))),
    }
}

pub(super) async fn quota_refuses_a_put_over_the_byte_limit(s: Subject) -> TestResult {
    let t = quota_ctx(&s)?;
    must_put_within(&t, bytes(100), &[("a", 59)]).await?;
    must_refuse(&t, bytes(100), &[("b", 40)], 100, 101).await?;
    expect_err(t.get("b").await, Kind::NoSuchKey, "the refused key")?;
    // The limit itself is allowed.
    must_put_within(&t, bytes(100), &[("b", 39)]).await?;
    must_refuse(&t, bytes(100), &[("c", 0)], 100, 101).await?;
    // A put without a quota is not limited by one given earlier.
    must_put_within(&t, Quota::UNLIMITED, &[("c", 1000)]).await
}

pub(super) async fn quota_refuses_a_new_key_over_the_key_limit(s: Subject) -> TestResult {
    let t = quota_ctx(&s)?;
    must_put_within(&t, keys(2), &[("a", 10), ("b", 10)]).await?;
    must_refuse(&t, keys(2), &[("c", 1)], 2, 3).await?;
    expect_err(t.get("c").await, Kind::NoSuchKey, "the refused key")?;
    // Overwriting a stored key adds no key, even with a bigger value.
    must_put_within(&t, keys(2), &[("a", 500)]).await?;
    // Creating one key while deleting another keeps the count.
    t.put_with_quota(keys(2), vec![kv("c", 0, b"c")], vec![kv("a", -1, b"")])
        .await
        .map_err(|e| unexpected("a put that swaps a key for another", e))?;
    ensure_eq!(
        t.list_keys(None).await?,
        vec!["c".to_string(), "b".to_string()],
        "keys after the swap"
    );
    Ok(())
}

pub(super) async fn quota_counts_a_multi_item_put_as_a_whole(s: Subject) -> TestResult {
    let t = quota_ctx(&s)?;
    // Each item fits; together they do not, and none is written.
    must_refuse(&t, bytes(100), &[("a", 40), ("b", 40), ("c", 40)], 100, 123).await?;
    ensure_eq!(
        t.list_keys(None).await?,
        Vec::<String>::new(),
        "keys after the refused put"
    );
    must_put_within(&t, bytes(100), &[("a", 40), ("b", 40)]).await?;
    // What a put deletes counts against what it writes.
    t.put_with_quota(
        bytes(100),
        vec![kv("c", 0, &[b'z'; 57])],
        vec![kv("a", -1, b"")],
    )
    .await
    .map_err(|e| unexpected("a put whose delete makes room for its write", e))?;
    ensure_eq!(t.version_of("a").await?, None, "the deleted key");
    ensure_eq!(t.version_of("c").await?, Some(1), "the written key");
    Ok(())
}

pub(super) async fn quota_counts_data_written_without_a_quota(s: Subject) -> TestResult {
    let t = quota_ctx(&s)?;
    must_put_within(&t, Quota::UNLIMITED, &[("a", 90)]).await?;
    must_refuse(&t, bytes(100), &[("b", 9)], 100, 101).await?;
    must_put_within(&t, bytes(100), &[("b", 8)]).await?;
    // Written without a quota again: still counted afterwards.
    must_put_within(&t, Quota::UNLIMITED, &[("c", 10)]).await?;
    must_refuse(&t, bytes(120), &[("d", 9)], 120, 121).await
}

pub(super) async fn quota_counts_every_store_of_the_user_and_no_other_user(
    s: Subject,
) -> TestResult {
    let t = quota_ctx(&s)?;
    let other_store = t.other_store(&super::unique_name("store"));
    must_put_within(&t, bytes(100), &[("a", 59)]).await?;
    must_refuse(&other_store, bytes(100), &[("b", 40)], 100, 101).await?;
    must_put_within(&other_store, bytes(100), &[("b", 39)]).await?;
    // Another user's usage is their own.
    let other_user = t.other_user();
    must_put_within(&other_user, bytes(100), &[("a", 99)]).await
}

pub(super) async fn quota_lets_an_overwrite_shrink_and_refuses_it_growing(
    s: Subject,
) -> TestResult {
    let t = quota_ctx(&s)?;
    must_put_within(&t, Quota::UNLIMITED, &[("a", 200)]).await?;
    // Over the quota, but shrinking: allowed, unconditional or by version.
    must_put_within(&t, bytes(100), &[("a", 150)]).await?;
    t.put_with_quota(bytes(100), vec![kv("a", 1, &[b'v'; 120])], vec![])
        .await
        .map_err(|e| unexpected("a conditional update that shrinks", e))?;
    ensure_eq!(t.must_get("a").await?.1.len(), 120, "value after shrinking");
    // Growing, or adding a key, while over: refused.
    must_refuse(&t, bytes(100), &[("a", 130)], 100, 131).await?;
    must_refuse(&t, bytes(100), &[("b", 0)], 100, 122).await?;
    ensure_eq!(
        t.must_get("a").await?.1.len(),
        120,
        "value after refused growth"
    );
    Ok(())
}

pub(super) async fn quota_usage_is_freed_by_deletes(s: Subject) -> TestResult {
    let t = quota_ctx(&s)?;
    must_put_within(&t, bytes(100), &[("a", 90)]).await?;
    must_refuse(&t, bytes(100), &[("b", 9)], 100, 101).await?;
    t.delete("a", -1)
        .await
        .map_err(|e| unexpected("deleteObject", e))?;
    must_put_within(&t, bytes(100), &[("b", 9)]).await?;
    must_put_within(&t, bytes(100), &[("a", 89)]).await?;
    // A put that only deletes frees as well, and is allowed over the quota.
    t.put_with_quota(bytes(10), vec![], vec![kv("a", -1, b"")])
        .await
        .map_err(|e| unexpected("a put that only deletes, over the quota", e))?;
    must_put_within(&t, bytes(100), &[("c", 89)]).await?;
    // deleteObject of a key at another version frees nothing.
    t.delete("c", 7)
        .await
        .map_err(|e| unexpected("deleteObject at another version", e))?;
    must_refuse(&t, bytes(100), &[("d", 0)], 100, 101).await
}

pub(super) async fn quota_conflict_is_answered_before_the_quota(s: Subject) -> TestResult {
    let t = quota_ctx(&s)?;
    expect_err(
        t.put_with_quota(bytes(10), vec![kv("a", 5, &[0; 100])], vec![])
            .await,
        Kind::Conflict,
        "an update of a missing key, over the quota",
    )?;
    must_put_within(&t, bytes(10), &[("a", 9)]).await
}

pub(super) async fn quota_races_for_the_last_bytes_never_overshoot(s: Subject) -> TestResult {
    let t = quota_ctx(&s)?;
    const TASKS: usize = 16;
    // Each put stores 100 bytes (a 3-byte key and 97 bytes); 10 fit.
    let quota = bytes(1000);
    let puts = (0..TASKS).map(|i| {
        let t = t.clone();
        tokio::spawn(async move {
            let key = format!("k{i:02}");
            t.put_with_quota(quota, vec![kv(&key, 0, &[b'r'; 97])], vec![])
                .await
        })
    });
    let mut stored = 0;
    let mut refused = 0;
    for outcome in join_all(puts).await {
        match outcome {
            Ok(Ok(())) => stored += 1,
            Ok(Err(VssError::QuotaExceeded(_))) => refused += 1,
            Ok(Err(e)) => return Err(unexpected("a racing put", e)),
            Err(e) => return Err(TestError::Failed(format!("a racing put panicked: {e}"))),
        }
    }
    ensure_eq!(
        (stored, refused),
        (10, TASKS - 10),
        "(stored, refused) of racing puts"
    );
    ensure_eq!(
        t.list_keys(None).await?.len(),
        10,
        "keys stored by racing puts"
    );
    must_refuse(&t, quota, &[("z", 0)], 1000, 1001).await
}

/// Values up to this size are written to test a store's declared limit.
const LARGEST_TESTED_LIMIT: usize = 16 << 20;

pub(super) async fn value_over_the_store_limit_is_too_large(s: Subject) -> TestResult {
    let max = s.store.limits().max_value_size;
    if max > LARGEST_TESTED_LIMIT {
        return Err(TestError::Skipped(format!(
            "the store's largest value ({max} bytes) is too large to write in a test"
        )));
    }
    let t = Ctx::new(&s);
    let at_limit = vec![b'l'; max];
    t.must_put("fits", 0, &at_limit).await?;
    ensure_eq!(t.must_get("fits").await?.1.len(), max, "value at the limit");
    let over = vec![b'o'; max + 1];
    match t.put(vec![kv("small", 0, b"s"), kv("big", 0, &over)]).await {
        Err(VssError::TooLarge(message)) => ensure!(
            message.contains(&max.to_string()) && message.contains("big"),
            "the error should name the key and the limit {max}: {message}"
        ),
        other => {
            return Err(TestError::Failed(format!(
                "a value of {} bytes over a limit of {max} should be too large, got {other:?}",
                max + 1
            )))
        }
    }
    ensure_eq!(
        t.version_of("small").await?,
        None,
        "the other item of the refused put"
    );
    Ok(())
}
