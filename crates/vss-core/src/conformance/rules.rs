//! One test per rule of the contract (`shared/vss-protocol.md`), grouped as
//! the contract is: versions, atomic puts, deletes, the global version,
//! listing order, pagination, prefixes, sizes, isolation.

use std::collections::HashSet;

use bytes::Bytes;

use super::admin::*;
use super::quotas::*;
use super::support::{ensure, ensure_eq, expect_err, kv, unexpected, Ctx, Kind};
use super::{ConcurrencyConfig, ConformanceTest, Subject, TestError, TestResult};
use crate::page::PageToken;
use crate::proto::{DeleteObjectRequest, KeyValue};
use crate::validate::{GLOBAL_VERSION_KEY, MAX_KEY_LEN, MAX_STORE_ID_LEN};

/// The rule list, written once: expands `__conformance_expand!` with a mode
/// and every rule's name, in order. The suite's table (`ALL`) and the
/// `#[test]`s of `conformance_tests!` are both made from it.
#[macro_export]
#[doc(hidden)]
macro_rules! __conformance_rules {
    ($($mode:tt)*) => {
        $crate::__conformance_expand! { [$($mode)*]
    // Versions.
    create_sets_version_one,
    create_of_existing_key_conflicts,
    update_with_matching_version_increments,
    update_with_wrong_version_conflicts,
    update_of_missing_key_conflicts,
    unconditional_put_creates_with_version_one,
    unconditional_put_resets_version_to_one,
    other_negative_versions_are_invalid,
    get_of_missing_key_is_no_such_key,
    values_round_trip_as_opaque_bytes,
    // Atomic puts.
    multi_item_put_applies_every_item,
    failed_condition_writes_nothing,
    duplicate_keys_in_one_put_are_invalid,
    empty_put_is_valid,
    // Deletes inside puts.
    put_delete_of_missing_key_conflicts,
    put_delete_with_wrong_version_conflicts,
    put_delete_with_matching_version_deletes,
    put_delete_with_any_version_deletes,
    put_mixing_writes_and_deletes_is_atomic,
    // deleteObject.
    delete_object_of_missing_key_succeeds,
    delete_object_with_wrong_version_changes_nothing,
    delete_object_with_matching_or_any_version_deletes,
    delete_object_without_key_value_is_invalid,
    // The global version.
    global_version_of_new_store_is_zero,
    absent_global_version_is_neither_checked_nor_changed,
    matching_global_version_is_incremented,
    mismatched_global_version_conflicts_and_writes_nothing,
    reserved_key_cannot_be_written_or_deleted,
    reserved_key_is_never_listed,
    first_page_global_version_is_read_before_its_keys,
    // Listing order.
    listing_is_newest_first,
    update_and_overwrite_keep_listing_position,
    delete_and_recreate_moves_key_to_front,
    listing_has_versions_and_no_values,
    // Pagination.
    pagination_page_size_1_returns_every_key_once,
    pagination_page_size_7_returns_every_key_once,
    pagination_page_size_100_returns_every_key_once,
    pagination_default_page_size_returns_every_key_once,
    page_size_above_maximum_is_clamped,
    negative_page_size_means_default,
    last_page_token_is_empty,
    page_size_zero_returns_only_global_version,
    keys_created_while_paging_do_not_disturb_listing,
    forged_page_token_is_invalid,
    foreign_page_token_is_invalid,
    // Prefixes.
    empty_prefix_lists_every_key,
    prefix_sql_wildcards_match_literally,
    prefix_ldk_characters_match_literally,
    prefix_unicode_matches_literally,
    // Sizes.
    keys_of_600_bytes_work,
    key_over_600_bytes_is_invalid,
    empty_key_is_invalid,
    store_id_limits,
    put_of_maximum_item_count,
    put_over_item_limit_is_invalid,
    large_value_round_trips,
    // Isolation.
    empty_store_id_is_a_store_of_its_own,
    stores_are_isolated,
    users_are_isolated,
    // Races.
    concurrent_compare_and_set_has_one_winner_per_version,
    // Quotas.
    quota_refuses_a_put_over_the_byte_limit,
    quota_refuses_a_new_key_over_the_key_limit,
    quota_counts_a_multi_item_put_as_a_whole,
    quota_counts_data_written_without_a_quota,
    quota_counts_every_store_of_the_user_and_no_other_user,
    quota_lets_an_overwrite_shrink_and_refuses_it_growing,
    quota_usage_is_freed_by_deletes,
    quota_conflict_is_answered_before_the_quota,
    quota_races_for_the_last_bytes_never_overshoot,
    // Sizes the store can hold.
    value_over_the_store_limit_is_too_large,
    // Operations.
    store_reports_ready,
    // The admin interface.
    admin_copy_in_keeps_versions_order_values_and_global_version,
    admin_copy_out_reads_the_state_written_through_the_protocol,
    admin_copy_replaces_the_destination_store_and_resumes,
    admin_write_items_keeps_usage_exact,
    admin_pages_are_bounded_and_ascend,
    admin_list_stores_enumerates_every_store,
    admin_delete_user_leaves_other_users_untouched,
        }
    };
}

/// The two expansions of the rule list.
#[macro_export]
#[doc(hidden)]
macro_rules! __conformance_expand {
    ([table] $($name:ident),+ $(,)?) => {
        /// Every rule test, in order.
        pub(super) const ALL: &[ConformanceTest] = &[
            $(ConformanceTest { name: stringify!($name), run: |s| Box::pin($name(s)) }),+
        ];
    };
    ([tests ($factory:expr) ($options:expr)] $($name:ident),+ $(,)?) => {
        $(
            #[test]
            fn $name() {
                let options: $crate::conformance::SuiteOptions = $options;
                $crate::conformance::run_test(
                    &options,
                    stringify!($name),
                    $crate::conformance::run_rule(stringify!($name), $factory),
                );
            }
        )+
    };
}

crate::__conformance_rules!(table);

// ---- Versions -------------------------------------------------------------

async fn create_sets_version_one(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    t.must_put("k", 0, b"v").await?;
    let (version, value) = t.must_get("k").await?;
    ensure_eq!(version, 1, "version after create");
    ensure_eq!(&value[..], b"v", "value after create");
    Ok(())
}

async fn create_of_existing_key_conflicts(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    t.must_put("k", 0, b"first").await?;
    expect_err(
        t.put(vec![kv("k", 0, b"second")]).await,
        Kind::Conflict,
        "second create",
    )?;
    let (version, value) = t.must_get("k").await?;
    ensure_eq!(
        (version, &value[..]),
        (1, &b"first"[..]),
        "key after failed create"
    );
    Ok(())
}

async fn update_with_matching_version_increments(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    t.must_put("k", 0, b"v1").await?;
    t.must_put("k", 1, b"v2").await?;
    t.must_put("k", 2, b"v3").await?;
    let (version, value) = t.must_get("k").await?;
    ensure_eq!(
        (version, &value[..]),
        (3, &b"v3"[..]),
        "key after two updates"
    );
    Ok(())
}

async fn update_with_wrong_version_conflicts(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    t.must_put("k", 0, b"v1").await?;
    t.must_put("k", 1, b"v2").await?;
    expect_err(
        t.put(vec![kv("k", 1, b"stale")]).await,
        Kind::Conflict,
        "stale update",
    )?;
    expect_err(
        t.put(vec![kv("k", 3, b"ahead")]).await,
        Kind::Conflict,
        "future update",
    )?;
    let (version, value) = t.must_get("k").await?;
    ensure_eq!(
        (version, &value[..]),
        (2, &b"v2"[..]),
        "key after failed updates"
    );
    Ok(())
}

async fn update_of_missing_key_conflicts(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    expect_err(
        t.put(vec![kv("k", 1, b"v")]).await,
        Kind::Conflict,
        "update of missing key",
    )?;
    ensure_eq!(
        t.version_of("k").await?,
        None,
        "missing key after failed update"
    );
    Ok(())
}

async fn unconditional_put_creates_with_version_one(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    t.must_put("k", -1, b"v").await?;
    let (version, value) = t.must_get("k").await?;
    ensure_eq!(
        (version, &value[..]),
        (1, &b"v"[..]),
        "key after unconditional create"
    );
    Ok(())
}

async fn unconditional_put_resets_version_to_one(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    t.must_put("k", 0, b"v1").await?;
    t.must_put("k", 1, b"v2").await?;
    t.must_put("k", 2, b"v3").await?;
    t.must_put("k", -1, b"over").await?;
    let (version, value) = t.must_get("k").await?;
    ensure_eq!(
        (version, &value[..]),
        (1, &b"over"[..]),
        "key after overwrite"
    );
    // The reset version is a normal version: an update from 1 works again.
    t.must_put("k", 1, b"after").await?;
    ensure_eq!(
        t.version_of("k").await?,
        Some(2),
        "version after update from reset"
    );
    Ok(())
}

async fn other_negative_versions_are_invalid(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    t.must_put("k", 0, b"v").await?;
    expect_err(
        t.put(vec![kv("n", -2, b"v")]).await,
        Kind::InvalidRequest,
        "item version -2",
    )?;
    expect_err(
        t.put(vec![kv("n", i64::MIN, b"v")]).await,
        Kind::InvalidRequest,
        "item version i64::MIN",
    )?;
    expect_err(
        t.put_full(None, vec![], vec![kv("k", -5, b"")]).await,
        Kind::InvalidRequest,
        "delete item version -5",
    )?;
    expect_err(
        t.delete("k", -2).await,
        Kind::InvalidRequest,
        "deleteObject version -2",
    )?;
    ensure_eq!(t.version_of("n").await?, None, "key after invalid put");
    ensure_eq!(
        t.version_of("k").await?,
        Some(1),
        "key after invalid deletes"
    );
    Ok(())
}

async fn get_of_missing_key_is_no_such_key(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    expect_err(
        t.get("missing").await,
        Kind::NoSuchKey,
        "get of a missing key",
    )?;
    t.must_put("present", 0, b"v").await?;
    expect_err(
        t.get("missing").await,
        Kind::NoSuchKey,
        "get of a missing key in a used store",
    )?;
    Ok(())
}

async fn values_round_trip_as_opaque_bytes(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    let binary: Vec<u8> = (0..=255u8).chain([0, 0, 255, 0]).collect();
    t.must_put("binary", 0, &binary).await?;
    t.must_put("empty", 0, b"").await?;
    ensure_eq!(
        &t.must_get("binary").await?.1[..],
        &binary[..],
        "binary value"
    );
    ensure_eq!(t.must_get("empty").await?, (1, Bytes::new()), "empty value");
    Ok(())
}

// ---- Atomic puts ----------------------------------------------------------

async fn multi_item_put_applies_every_item(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    t.put(vec![kv("update", 0, b"u0"), kv("overwrite", 0, b"o0")])
        .await
        .map_err(|e| unexpected("setup put", e))?;
    t.must_put("update", 1, b"u1").await?;
    t.put(vec![
        kv("create", 0, b"c"),
        kv("update", 2, b"u2"),
        kv("overwrite", -1, b"o1"),
        kv("fresh", -1, b"f"),
    ])
    .await
    .map_err(|e| unexpected("multi-item put", e))?;
    ensure_eq!(
        t.must_get("create").await?,
        (1, Bytes::from_static(b"c")),
        "created item"
    );
    ensure_eq!(
        t.must_get("update").await?,
        (3, Bytes::from_static(b"u2")),
        "updated item"
    );
    ensure_eq!(
        t.must_get("overwrite").await?,
        (1, Bytes::from_static(b"o1")),
        "overwritten item"
    );
    ensure_eq!(
        t.must_get("fresh").await?,
        (1, Bytes::from_static(b"f")),
        "upserted item"
    );
    Ok(())
}

async fn failed_condition_writes_nothing(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    t.must_put("a", 0, b"a1").await?;
    t.must_put("b", 0, b"b1").await?;
    // Every item but the last would succeed on its own.
    let result = t
        .put_full(
            Some(0),
            vec![
                kv("a", 1, b"a2"),
                kv("new", 0, b"n"),
                kv("up", -1, b"u"),
                kv("b", 7, b"b2"),
            ],
            vec![],
        )
        .await;
    expect_err(result, Kind::Conflict, "put with one failing item")?;
    ensure_eq!(
        t.must_get("a").await?,
        (1, Bytes::from_static(b"a1")),
        "a after failed put"
    );
    ensure_eq!(
        t.must_get("b").await?,
        (1, Bytes::from_static(b"b1")),
        "b after failed put"
    );
    ensure_eq!(t.version_of("new").await?, None, "new key after failed put");
    ensure_eq!(
        t.version_of("up").await?,
        None,
        "upserted key after failed put"
    );
    ensure_eq!(
        t.global_version().await?,
        0,
        "global version after failed put"
    );
    ensure_eq!(
        t.list_keys(None).await?,
        vec!["b", "a"],
        "listing after failed put"
    );
    Ok(())
}

async fn duplicate_keys_in_one_put_are_invalid(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    t.must_put("k", 0, b"v").await?;
    expect_err(
        t.put(vec![kv("x", 0, b"1"), kv("x", -1, b"2")]).await,
        Kind::InvalidRequest,
        "the same key twice in transaction_items",
    )?;
    expect_err(
        t.put_full(None, vec![kv("k", 1, b"2")], vec![kv("k", 1, b"")])
            .await,
        Kind::InvalidRequest,
        "the same key written and deleted",
    )?;
    expect_err(
        t.put_full(None, vec![], vec![kv("k", -1, b""), kv("k", 1, b"")])
            .await,
        Kind::InvalidRequest,
        "the same key twice in delete_items",
    )?;
    ensure_eq!(t.version_of("x").await?, None, "key of invalid put");
    ensure_eq!(
        t.must_get("k").await?,
        (1, Bytes::from_static(b"v")),
        "key after invalid puts"
    );
    Ok(())
}

async fn empty_put_is_valid(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    t.put_full(None, vec![], vec![])
        .await
        .map_err(|e| unexpected("empty put", e))?;
    ensure_eq!(
        t.global_version().await?,
        0,
        "global version after empty put"
    );
    t.put_full(Some(0), vec![], vec![])
        .await
        .map_err(|e| unexpected("empty put with global version", e))?;
    ensure_eq!(
        t.global_version().await?,
        1,
        "global version after empty put with it"
    );
    expect_err(
        t.put_full(Some(0), vec![], vec![]).await,
        Kind::Conflict,
        "empty put with a stale global version",
    )?;
    ensure_eq!(
        t.global_version().await?,
        1,
        "global version after stale empty put"
    );
    Ok(())
}

// ---- Deletes inside puts --------------------------------------------------

async fn put_delete_of_missing_key_conflicts(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    for version in [-1, 0, 1] {
        expect_err(
            t.put_full(
                None,
                vec![kv("other", -1, b"x")],
                vec![kv("missing", version, b"")],
            )
            .await,
            Kind::Conflict,
            &format!("delete of a missing key with version {version}"),
        )?;
    }
    ensure_eq!(
        t.version_of("other").await?,
        None,
        "written item of a failed put"
    );
    Ok(())
}

async fn put_delete_with_wrong_version_conflicts(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    t.must_put("k", 0, b"v1").await?;
    t.must_put("k", 1, b"v2").await?;
    for version in [0, 1, 3] {
        expect_err(
            t.put_full(None, vec![], vec![kv("k", version, b"")]).await,
            Kind::Conflict,
            &format!("delete of version 2 with version {version}"),
        )?;
    }
    ensure_eq!(
        t.version_of("k").await?,
        Some(2),
        "key after failed deletes"
    );
    Ok(())
}

async fn put_delete_with_matching_version_deletes(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    t.must_put("k", 0, b"v1").await?;
    t.must_put("k", 1, b"v2").await?;
    t.put_full(None, vec![], vec![kv("k", 2, b"")])
        .await
        .map_err(|e| unexpected("delete with matching version", e))?;
    ensure_eq!(t.version_of("k").await?, None, "key after delete");
    ensure_eq!(
        t.list_keys(None).await?,
        Vec::<String>::new(),
        "listing after delete"
    );
    Ok(())
}

async fn put_delete_with_any_version_deletes(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    t.must_put("k", 0, b"v1").await?;
    t.must_put("k", 1, b"v2").await?;
    t.put_full(None, vec![], vec![kv("k", -1, b"")])
        .await
        .map_err(|e| unexpected("delete with version -1", e))?;
    ensure_eq!(t.version_of("k").await?, None, "key after delete");
    Ok(())
}

async fn put_mixing_writes_and_deletes_is_atomic(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    t.must_put("old", 0, b"o").await?;
    t.must_put("keep", 0, b"k").await?;
    // Fails on the delete: the write must not happen.
    expect_err(
        t.put_full(None, vec![kv("new", 0, b"n")], vec![kv("old", 5, b"")])
            .await,
        Kind::Conflict,
        "write with failing delete",
    )?;
    ensure_eq!(t.version_of("new").await?, None, "write of failed put");
    ensure_eq!(t.version_of("old").await?, Some(1), "delete of failed put");
    // Fails on the write: the delete must not happen.
    expect_err(
        t.put_full(None, vec![kv("keep", 9, b"x")], vec![kv("old", 1, b"")])
            .await,
        Kind::Conflict,
        "delete with failing write",
    )?;
    ensure_eq!(
        t.version_of("old").await?,
        Some(1),
        "delete of second failed put"
    );
    // Both succeed together, with the global version.
    t.put_full(Some(0), vec![kv("new", 0, b"n")], vec![kv("old", 1, b"")])
        .await
        .map_err(|e| unexpected("write and delete", e))?;
    ensure_eq!(t.version_of("new").await?, Some(1), "written key");
    ensure_eq!(t.version_of("old").await?, None, "deleted key");
    ensure_eq!(t.global_version().await?, 1, "global version");
    Ok(())
}

// ---- deleteObject ---------------------------------------------------------

async fn delete_object_of_missing_key_succeeds(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    t.delete("missing", -1)
        .await
        .map_err(|e| unexpected("deleteObject of a missing key", e))?;
    t.delete("missing", 3)
        .await
        .map_err(|e| unexpected("conditional deleteObject of a missing key", e))?;
    ensure_eq!(t.version_of("missing").await?, None, "missing key");
    Ok(())
}

async fn delete_object_with_wrong_version_changes_nothing(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    t.must_put("k", 0, b"v1").await?;
    t.must_put("k", 1, b"v2").await?;
    t.delete("k", 1)
        .await
        .map_err(|e| unexpected("deleteObject with a wrong version", e))?;
    ensure_eq!(
        t.must_get("k").await?,
        (2, Bytes::from_static(b"v2")),
        "key after delete"
    );
    Ok(())
}

async fn delete_object_with_matching_or_any_version_deletes(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    t.must_put("a", 0, b"a").await?;
    t.must_put("a", 1, b"a").await?;
    t.must_put("b", 0, b"b").await?;
    t.delete("a", 2)
        .await
        .map_err(|e| unexpected("deleteObject with the stored version", e))?;
    t.delete("b", -1)
        .await
        .map_err(|e| unexpected("deleteObject with version -1", e))?;
    ensure_eq!(t.version_of("a").await?, None, "key deleted by version");
    ensure_eq!(
        t.version_of("b").await?,
        None,
        "key deleted unconditionally"
    );
    ensure_eq!(
        t.list_keys(None).await?,
        Vec::<String>::new(),
        "listing after deletes"
    );
    Ok(())
}

async fn delete_object_without_key_value_is_invalid(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    let req = DeleteObjectRequest {
        store_id: t.store_id.clone(),
        key_value: None,
    };
    expect_err(
        t.store.delete(&t.user, req).await,
        Kind::InvalidRequest,
        "deleteObject without key_value",
    )
}

// ---- The global version ---------------------------------------------------

async fn global_version_of_new_store_is_zero(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    let resp = t
        .store
        .get(
            &t.user,
            crate::proto::GetObjectRequest {
                store_id: t.store_id.clone(),
                key: GLOBAL_VERSION_KEY.into(),
            },
        )
        .await
        .map_err(|e| unexpected("get of the reserved key", e))?;
    let expected = KeyValue {
        key: GLOBAL_VERSION_KEY.into(),
        version: 0,
        value: Bytes::new(),
    };
    ensure_eq!(resp.value, Some(expected), "reserved key of a new store");
    // Also once the store holds keys, until a put carries a global version.
    t.must_put("k", 0, b"v").await?;
    ensure_eq!(
        t.global_version().await?,
        0,
        "global version of a used store"
    );
    let first = t
        .list_page(None, None, None)
        .await
        .map_err(|e| unexpected("list", e))?;
    ensure_eq!(
        first.global_version,
        Some(0),
        "global version on the first page"
    );
    Ok(())
}

async fn absent_global_version_is_neither_checked_nor_changed(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    t.put_full(Some(0), vec![kv("a", 0, b"")], vec![])
        .await
        .map_err(|e| unexpected("put with global version", e))?;
    t.put_full(None, vec![kv("b", 0, b"")], vec![])
        .await
        .map_err(|e| unexpected("put without global version", e))?;
    ensure_eq!(
        t.global_version().await?,
        1,
        "global version after put without it"
    );
    Ok(())
}

async fn matching_global_version_is_incremented(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    for g in 0..3 {
        t.put_full(Some(g), vec![kv(&format!("k{g}"), 0, b"v")], vec![])
            .await
            .map_err(|e| unexpected(&format!("put with global version {g}"), e))?;
        ensure_eq!(t.global_version().await?, g + 1, "global version after put");
    }
    let first = t
        .list_page(None, None, None)
        .await
        .map_err(|e| unexpected("list", e))?;
    ensure_eq!(
        first.global_version,
        Some(3),
        "global version on the first page"
    );
    Ok(())
}

async fn mismatched_global_version_conflicts_and_writes_nothing(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    t.put_full(Some(0), vec![], vec![])
        .await
        .map_err(|e| unexpected("put with global version 0", e))?;
    for stale in [0, 2, -1] {
        expect_err(
            t.put_full(Some(stale), vec![kv("k", -1, b"v")], vec![])
                .await,
            Kind::Conflict,
            &format!("put with global version {stale} when it is 1"),
        )?;
    }
    ensure_eq!(t.version_of("k").await?, None, "item of conflicting put");
    ensure_eq!(
        t.global_version().await?,
        1,
        "global version after conflicts"
    );
    Ok(())
}

async fn reserved_key_cannot_be_written_or_deleted(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    for version in [-1, 0, 1] {
        expect_err(
            t.put(vec![kv(GLOBAL_VERSION_KEY, version, b"x")]).await,
            Kind::InvalidRequest,
            &format!("write of the reserved key with version {version}"),
        )?;
    }
    expect_err(
        t.put_full(None, vec![], vec![kv(GLOBAL_VERSION_KEY, -1, b"")])
            .await,
        Kind::InvalidRequest,
        "delete item of the reserved key",
    )?;
    expect_err(
        t.delete(GLOBAL_VERSION_KEY, -1).await,
        Kind::InvalidRequest,
        "deleteObject of the reserved key",
    )?;
    ensure_eq!(
        t.global_version().await?,
        0,
        "global version after refused writes"
    );
    Ok(())
}

async fn reserved_key_is_never_listed(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    t.put_full(
        Some(0),
        vec![kv("global", 0, b""), kv("other", 0, b"")],
        vec![],
    )
    .await
    .map_err(|e| unexpected("put", e))?;
    t.put_full(Some(1), vec![], vec![])
        .await
        .map_err(|e| unexpected("put", e))?;
    let mut all = t.list_keys(None).await?;
    all.sort();
    ensure_eq!(all, vec!["global", "other"], "listing");
    ensure_eq!(
        t.list_keys(Some("global")).await?,
        vec!["global"],
        "listing by prefix"
    );
    ensure_eq!(
        t.list_keys(Some(GLOBAL_VERSION_KEY)).await?,
        Vec::<String>::new(),
        "listing by the reserved key as prefix"
    );
    Ok(())
}

async fn first_page_global_version_is_read_before_its_keys(s: Subject) -> TestResult {
    // A writer creates key `k{g}` in the same put that moves the global version
    // from g to g + 1. A listing reporting global version G was read after put
    // G - 1 committed, so if it was read before the keys, every `k{g}` with
    // g < G must be listed.
    let t = Ctx::new(&s);
    let writes: i64 = 40;
    let writer = {
        let t = t.clone();
        tokio::spawn(async move {
            for g in 0..writes {
                t.put_full(Some(g), vec![kv(&format!("k{g}"), 0, b"")], vec![])
                    .await
                    .map_err(|e| unexpected(&format!("put {g}"), e))?;
            }
            Ok::<(), TestError>(())
        })
    };
    let mut observed = 0;
    loop {
        let first = t
            .list_page(None, Some(1000), None)
            .await
            .map_err(|e| unexpected("first page", e))?;
        let global = first.global_version.unwrap_or(-1);
        let mut keys: HashSet<String> = first.key_versions.into_iter().map(|kv| kv.key).collect();
        if let Some(token) = first.next_page_token.filter(|t| !t.is_empty()) {
            // The rest of the listing, for stores whose pages are short.
            let mut token = Some(token);
            while let Some(tok) = token {
                let page = t
                    .list_page(None, Some(1000), Some(tok))
                    .await
                    .map_err(|e| unexpected("next page", e))?;
                keys.extend(page.key_versions.into_iter().map(|kv| kv.key));
                token = page.next_page_token.filter(|t| !t.is_empty());
            }
        }
        for g in 0..global {
            ensure!(
                keys.contains(&format!("k{g}")),
                "listing reported global version {global} but missed k{g}, written by put {g}"
            );
        }
        observed += 1;
        if global >= writes {
            break;
        }
        ensure!(observed < 100_000, "writer never finished");
        tokio::task::yield_now().await;
    }
    writer
        .await
        .map_err(|e| TestError::Failed(format!("writer task: {e}")))??;
    Ok(())
}

// ---- Listing order --------------------------------------------------------

async fn listing_is_newest_first(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    for key in ["first", "second", "third", "fourth"] {
        t.must_put(key, 0, b"").await?;
    }
    // Items of one put are created in request order.
    t.put(vec![kv("fifth", 0, b""), kv("sixth", -1, b"")])
        .await
        .map_err(|e| unexpected("put of two keys", e))?;
    ensure_eq!(
        t.list_keys(None).await?,
        vec!["sixth", "fifth", "fourth", "third", "second", "first"],
        "listing order"
    );
    Ok(())
}

async fn update_and_overwrite_keep_listing_position(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    for key in ["a", "b", "c"] {
        t.must_put(key, 0, b"").await?;
    }
    t.must_put("a", 1, b"updated").await?;
    t.must_put("b", -1, b"overwritten").await?;
    t.must_put("a", -1, b"overwritten").await?;
    ensure_eq!(
        t.list_all(None, None).await?,
        vec![
            ("c".to_string(), 1),
            ("b".to_string(), 1),
            ("a".to_string(), 1)
        ],
        "listing after updates"
    );
    t.must_put("c", 1, b"").await?;
    ensure_eq!(
        t.list_keys(None).await?,
        vec!["c", "b", "a"],
        "order after update"
    );
    Ok(())
}

async fn delete_and_recreate_moves_key_to_front(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    for key in ["a", "b", "c"] {
        t.must_put(key, 0, b"").await?;
    }
    t.delete("a", -1)
        .await
        .map_err(|e| unexpected("delete", e))?;
    t.must_put("a", 0, b"again").await?;
    ensure_eq!(
        t.list_keys(None).await?,
        vec!["a", "c", "b"],
        "after deleteObject + create"
    );
    t.put_full(None, vec![], vec![kv("b", 1, b"")])
        .await
        .map_err(|e| unexpected("put delete", e))?;
    t.must_put("b", -1, b"again").await?;
    ensure_eq!(
        t.list_keys(None).await?,
        vec!["b", "a", "c"],
        "after put delete + upsert"
    );
    Ok(())
}

async fn listing_has_versions_and_no_values(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    t.must_put("one", 0, b"value one").await?;
    t.must_put("three", 0, b"value three").await?;
    t.must_put("three", 1, b"value three").await?;
    t.must_put("three", 2, b"value three").await?;
    let page = t
        .list_page(None, None, None)
        .await
        .map_err(|e| unexpected("list", e))?;
    let got: Vec<KeyValue> = page.key_versions;
    let want = vec![
        KeyValue {
            key: "three".into(),
            version: 3,
            value: Bytes::new(),
        },
        KeyValue {
            key: "one".into(),
            version: 1,
            value: Bytes::new(),
        },
    ];
    ensure_eq!(got, want, "listed key versions");
    Ok(())
}

// ---- Pagination -----------------------------------------------------------

/// Creates `n` keys named `{prefix}{i:04}`, in puts of up to 50 items.
async fn fill(t: &Ctx, prefix: &str, n: usize) -> Result<Vec<String>, TestError> {
    let keys: Vec<String> = (0..n).map(|i| format!("{prefix}{i:04}")).collect();
    let batch = t.store.limits().max_items_per_put.clamp(1, 50);
    for chunk in keys.chunks(batch) {
        t.put(chunk.iter().map(|k| kv(k, 0, b"v")).collect())
            .await
            .map_err(|e| unexpected("filling the store", e))?;
    }
    Ok(keys)
}

/// Lists `n` keys in pages of `page_size` and checks each came once, newest first.
async fn check_every_key_once(s: Subject, page_size: Option<i32>, n: usize) -> TestResult {
    let t = Ctx::new(&s);
    let keys = fill(&t, "k", n).await?;
    let listed: Vec<String> = t
        .list_all(None, page_size)
        .await?
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    let newest_first: Vec<String> = keys.into_iter().rev().collect();
    ensure_eq!(listed, newest_first, "every key once, newest first");
    Ok(())
}

async fn pagination_page_size_1_returns_every_key_once(s: Subject) -> TestResult {
    check_every_key_once(s, Some(1), 12).await
}

async fn pagination_page_size_7_returns_every_key_once(s: Subject) -> TestResult {
    // 50 is not a multiple of 7: the last page is partial.
    check_every_key_once(s, Some(7), 50).await
}

async fn pagination_page_size_100_returns_every_key_once(s: Subject) -> TestResult {
    // Exactly two full pages: the listing must still end.
    check_every_key_once(s, Some(100), 200).await
}

async fn pagination_default_page_size_returns_every_key_once(s: Subject) -> TestResult {
    check_every_key_once(s, None, 250).await
}

async fn page_size_above_maximum_is_clamped(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    let max = usize::try_from(t.store.limits().max_page_size).unwrap_or(0);
    fill(&t, "k", max + 5).await?;
    let page = t
        .list_page(None, Some(i32::MAX), None)
        .await
        .map_err(|e| unexpected("list", e))?;
    ensure!(
        page.key_versions.len() <= max,
        "a page of {} keys exceeds the maximum page size {max}",
        page.key_versions.len()
    );
    ensure!(
        page.next_page_token
            .as_deref()
            .is_some_and(|t| !t.is_empty()),
        "a clamped page with keys left must have a next page token"
    );
    ensure_eq!(
        t.list_all(None, Some(i32::MAX)).await?.len(),
        max + 5,
        "listed keys"
    );
    Ok(())
}

async fn negative_page_size_means_default(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    let default = usize::try_from(t.store.limits().default_page_size).unwrap_or(0);
    fill(&t, "k", default + 3).await?;
    let page = t
        .list_page(None, Some(-1), None)
        .await
        .map_err(|e| unexpected("list", e))?;
    ensure!(
        !page.key_versions.is_empty() && page.key_versions.len() <= default,
        "page of negative size held {} keys, expected 1..={default}",
        page.key_versions.len()
    );
    ensure_eq!(
        t.list_all(None, Some(-1)).await?.len(),
        default + 3,
        "listed keys"
    );
    Ok(())
}

async fn last_page_token_is_empty(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    let empty = t
        .list_page(None, None, None)
        .await
        .map_err(|e| unexpected("list of an empty store", e))?;
    ensure_eq!(
        empty.next_page_token.as_deref(),
        Some(""),
        "token of an empty store"
    );
    ensure!(empty.key_versions.is_empty(), "keys of an empty store");
    fill(&t, "k", 3).await?;
    let all = t
        .list_page(None, Some(10), None)
        .await
        .map_err(|e| unexpected("list", e))?;
    ensure_eq!(all.key_versions.len(), 3, "keys on a single page");
    ensure_eq!(
        all.next_page_token.as_deref(),
        Some(""),
        "token of a single page"
    );
    // `list_all` checks that the token is always present and ends on "".
    ensure_eq!(
        t.list_all(None, Some(2)).await?.len(),
        3,
        "keys over pages of 2"
    );
    Ok(())
}

async fn page_size_zero_returns_only_global_version(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    fill(&t, "k", 3).await?;
    t.put_full(Some(0), vec![], vec![])
        .await
        .map_err(|e| unexpected("put", e))?;
    let page = t
        .list_page(None, Some(0), None)
        .await
        .map_err(|e| unexpected("list with page size 0", e))?;
    ensure!(page.key_versions.is_empty(), "page of size 0 held keys");
    ensure_eq!(
        page.global_version,
        Some(1),
        "global version on a page of size 0"
    );
    ensure!(
        page.next_page_token.is_some(),
        "page of size 0 without next_page_token"
    );
    Ok(())
}

async fn keys_created_while_paging_do_not_disturb_listing(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    let original = fill(&t, "old", 30).await?;
    let mut seen: Vec<String> = Vec::new();
    let mut token = None;
    let mut round = 0;
    loop {
        let page = t
            .list_page(None, Some(7), token)
            .await
            .map_err(|e| unexpected("list", e))?;
        seen.extend(page.key_versions.into_iter().map(|kv| kv.key));
        // Between pages, create keys and overwrite an old one.
        fill(&t, &format!("new{round}-"), 4).await?;
        t.must_put("old0003", -1, b"overwritten").await?;
        round += 1;
        match page.next_page_token {
            Some(next) if !next.is_empty() => token = Some(next),
            _ => break,
        }
        ensure!(round < 1000, "listing did not end");
    }
    let unique: HashSet<&String> = seen.iter().collect();
    ensure_eq!(unique.len(), seen.len(), "keys listed more than once");
    for key in &original {
        ensure!(
            unique.contains(key),
            "key `{key}` that existed throughout was not listed"
        );
    }
    Ok(())
}

async fn forged_page_token_is_invalid(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    fill(&t, "k", 5).await?;
    let page = t
        .list_page(None, Some(2), None)
        .await
        .map_err(|e| unexpected("list", e))?;
    let real = page.next_page_token.unwrap_or_default();
    ensure!(
        !real.is_empty(),
        "first page of 2 of 5 keys must have a token"
    );
    let mut flipped = real.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap_or_default();
    for forged in [
        "garbage".to_string(),
        "!!!not base64!!!".to_string(),
        "AAAAAAAAAAAAAAAAAAAAAAAA".to_string(),
        flipped,
        format!("{real}A"),
        "x".repeat(10_000),
    ] {
        expect_err(
            t.list_page(None, Some(2), Some(forged.clone())).await,
            Kind::InvalidRequest,
            &format!(
                "forged page token {:?}",
                forged.get(..40).unwrap_or(&forged)
            ),
        )?;
    }
    Ok(())
}

async fn foreign_page_token_is_invalid(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    fill(&t, "k", 5).await?;
    let other = t.other_store(&super::unique_name("other"));
    fill(&other, "k", 5).await?;
    let token = other
        .list_page(None, Some(2), None)
        .await
        .map_err(|e| unexpected("list", e))?
        .next_page_token
        .unwrap_or_default();
    expect_err(
        t.list_page(None, Some(2), Some(token)).await,
        Kind::InvalidRequest,
        "page token of another store",
    )?;
    let own = t
        .list_page(Some("k"), Some(2), None)
        .await
        .map_err(|e| unexpected("list", e))?
        .next_page_token
        .unwrap_or_default();
    expect_err(
        t.list_page(Some("k0"), Some(2), Some(own)).await,
        Kind::InvalidRequest,
        "page token of another prefix",
    )?;
    if s.distinct_users {
        let stranger = t.other_user();
        fill(&stranger, "k", 5).await?;
        let theirs = stranger
            .list_page(None, Some(2), None)
            .await
            .map_err(|e| unexpected("list", e))?
            .next_page_token
            .unwrap_or_default();
        expect_err(
            t.list_page(None, Some(2), Some(theirs)).await,
            Kind::InvalidRequest,
            "page token of another user's store with the same id",
        )?;
        // A well-formed token for this listing but made for the other user.
        let crafted = PageToken {
            before_sequence: i64::MAX,
        }
        .encode(&stranger.user, &t.store_id, "");
        expect_err(
            t.list_page(None, Some(2), Some(crafted)).await,
            Kind::InvalidRequest,
            "page token bound to another user",
        )?;
    }
    Ok(())
}

// ---- Prefixes -------------------------------------------------------------

/// Creates `keys`, then checks that each (prefix, expected keys) pair lists exactly those keys.
async fn check_prefixes(t: &Ctx, keys: &[&str], cases: &[(&str, &[&str])]) -> TestResult {
    for key in keys {
        t.must_put(key, 0, b"").await?;
    }
    for (prefix, want) in cases {
        let mut got = t.list_keys(Some(prefix)).await?;
        got.sort();
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        ensure_eq!(got, want, "keys listed for prefix {prefix:?}");
    }
    Ok(())
}

async fn empty_prefix_lists_every_key(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    check_prefixes(&t, &["a", "b", "%"], &[("", &["a", "b", "%"])]).await
}

async fn prefix_sql_wildcards_match_literally(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    let keys = [
        "100%", "100x", "1000", "a_b", "axb", "a\\b", "a\\\\b", "ab", "a*b", "a*", "a.b", "a[b]",
        "a%b", "%", "_",
    ];
    check_prefixes(
        &t,
        &keys,
        &[
            ("100%", &["100%"]),
            ("a_", &["a_b"]),
            ("a\\", &["a\\b", "a\\\\b"]),
            ("a\\\\", &["a\\\\b"]),
            ("a*", &["a*b", "a*"]),
            ("a.", &["a.b"]),
            ("a[", &["a[b]"]),
            ("%", &["%"]),
            ("_", &["_"]),
            ("a%", &["a%b"]),
        ],
    )
    .await
}

async fn prefix_ldk_characters_match_literally(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    let keys = [
        "ns#sub#key",
        "ns#sub#other",
        "ns#subx#key",
        "ns+sub/key",
        "ns+sub/k2",
        "ns+subs",
        "ns",
        "n/s",
    ];
    check_prefixes(
        &t,
        &keys,
        &[
            ("ns#sub#", &["ns#sub#key", "ns#sub#other"]),
            ("ns#sub", &["ns#sub#key", "ns#sub#other", "ns#subx#key"]),
            ("ns+sub/", &["ns+sub/key", "ns+sub/k2"]),
            ("ns+", &["ns+sub/key", "ns+sub/k2", "ns+subs"]),
            ("n/", &["n/s"]),
            ("nope", &[]),
        ],
    )
    .await
}

async fn prefix_unicode_matches_literally(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    let keys = [
        "ключ-1",
        "ключ-2",
        "клю",
        "键/值",
        "键",
        "🔑x",
        "🔑y",
        "e\u{301}",
        "é",
        // "п" (D0 BF) and "¿" (C2 BF) end in 0xBF: a byte-range upper bound made by
        // incrementing the last byte is not valid UTF-8 for them.
        "п1",
        "п2",
        "р",
        "¿a",
        "À",
    ];
    check_prefixes(
        &t,
        &keys,
        &[
            ("ключ", &["ключ-1", "ключ-2"]),
            ("клю", &["ключ-1", "ключ-2", "клю"]),
            ("键", &["键/值", "键"]),
            ("🔑", &["🔑x", "🔑y"]),
            // Prefixes compare bytes, not normalised text.
            ("e", &["e\u{301}"]),
            ("é", &["é"]),
            ("п", &["п1", "п2"]),
            ("¿", &["¿a"]),
        ],
    )
    .await
}

// ---- Sizes ----------------------------------------------------------------

/// A 600-character key of ldk-node's alphabet.
fn ldk_key(seed: u8) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/#";
    (0..MAX_KEY_LEN)
        .map(|i| ALPHABET[(i * 7 + usize::from(seed)) % ALPHABET.len()] as char)
        .collect()
}

async fn keys_of_600_bytes_work(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    let a = ldk_key(1);
    let b = ldk_key(2);
    // 200 three-byte characters: 600 bytes.
    let unicode = "键".repeat(200);
    t.must_put(&a, 0, b"a").await?;
    t.must_put(&b, -1, b"b").await?;
    t.must_put(&unicode, 0, b"u").await?;
    t.must_put(&a, 1, b"a2").await?;
    ensure_eq!(
        t.must_get(&a).await?,
        (2, Bytes::from_static(b"a2")),
        "600-byte key"
    );
    ensure_eq!(t.must_get(&unicode).await?.0, 1, "600-byte unicode key");
    ensure_eq!(
        t.list_keys(None).await?,
        vec![unicode.clone(), b.clone(), a.clone()],
        "listing"
    );
    ensure_eq!(
        t.list_keys(Some(&a[..599])).await?,
        vec![a.clone()],
        "599-byte prefix"
    );
    t.put_full(None, vec![], vec![kv(&b, 1, b"")])
        .await
        .map_err(|e| unexpected("delete of a 600-byte key", e))?;
    ensure_eq!(t.version_of(&b).await?, None, "deleted 600-byte key");
    Ok(())
}

async fn key_over_600_bytes_is_invalid(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    let long = format!("{}x", ldk_key(0));
    expect_err(
        t.put(vec![kv(&long, 0, b"")]).await,
        Kind::InvalidRequest,
        "601-byte write",
    )?;
    expect_err(t.get(&long).await, Kind::InvalidRequest, "601-byte get")?;
    expect_err(
        t.delete(&long, -1).await,
        Kind::InvalidRequest,
        "601-byte deleteObject",
    )?;
    // 599 ASCII bytes plus a two-byte character: 601 bytes in 600 characters.
    let sneaky = format!("{}é", &ldk_key(0)[..599]);
    expect_err(
        t.put(vec![kv(&sneaky, 0, b"")]).await,
        Kind::InvalidRequest,
        "601-byte unicode",
    )?;
    ensure_eq!(
        t.list_keys(None).await?,
        Vec::<String>::new(),
        "listing after refused writes"
    );
    Ok(())
}

async fn empty_key_is_invalid(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    expect_err(
        t.put(vec![kv("", -1, b"v")]).await,
        Kind::InvalidRequest,
        "write of empty key",
    )?;
    expect_err(t.get("").await, Kind::InvalidRequest, "get of empty key")?;
    expect_err(
        t.delete("", -1).await,
        Kind::InvalidRequest,
        "deleteObject of empty key",
    )?;
    expect_err(
        t.put_full(None, vec![], vec![kv("", -1, b"")]).await,
        Kind::InvalidRequest,
        "delete item of empty key",
    )
}

async fn store_id_limits(s: Subject) -> TestResult {
    let base = Ctx::new(&s);
    let padded = format!("{}{}", base.store_id, "s".repeat(MAX_STORE_ID_LEN));
    let longest = base.other_store(&padded[..MAX_STORE_ID_LEN]);
    longest.must_put("k", 0, b"v").await?;
    ensure_eq!(longest.must_get("k").await?.0, 1, "key in a 120-byte store");
    let too_long = base.other_store(&"s".repeat(MAX_STORE_ID_LEN + 1));
    expect_err(
        too_long.put(vec![kv("k", 0, b"")]).await,
        Kind::InvalidRequest,
        "put",
    )?;
    expect_err(too_long.get("k").await, Kind::InvalidRequest, "get")?;
    expect_err(
        too_long.delete("k", -1).await,
        Kind::InvalidRequest,
        "deleteObject",
    )?;
    expect_err(
        too_long.list_page(None, None, None).await,
        Kind::InvalidRequest,
        "list",
    )?;
    Ok(())
}

async fn put_of_maximum_item_count(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    let max = t.store.limits().max_items_per_put;
    ensure!(max >= 1, "a store must accept at least one item per put");
    let n = max.min(crate::PROTOCOL_MAX_ITEMS_PER_PUT);
    let items: Vec<KeyValue> = (0..n)
        .map(|i| kv(&format!("item{i:04}"), 0, b"v"))
        .collect();
    t.put(items)
        .await
        .map_err(|e| unexpected(&format!("put of {n} items"), e))?;
    ensure_eq!(t.list_all(None, None).await?.len(), n, "listed items");
    ensure_eq!(t.version_of("item0000").await?, Some(1), "first item");
    ensure_eq!(
        t.version_of(&format!("item{:04}", n - 1)).await?,
        Some(1),
        "last item"
    );
    // And as many deletes in one put.
    let deletes: Vec<KeyValue> = (0..n).map(|i| kv(&format!("item{i:04}"), 1, b"")).collect();
    t.put_full(None, vec![], deletes)
        .await
        .map_err(|e| unexpected(&format!("put of {n} deletes"), e))?;
    ensure_eq!(
        t.list_all(None, None).await?.len(),
        0,
        "items after deleting all"
    );
    Ok(())
}

async fn put_over_item_limit_is_invalid(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    let max = t.store.limits().max_items_per_put;
    let items: Vec<KeyValue> = (0..=max)
        .map(|i| kv(&format!("item{i:05}"), 0, b""))
        .collect();
    expect_err(
        t.put(items).await,
        Kind::InvalidRequest,
        "put over the item limit",
    )?;
    ensure_eq!(
        t.list_all(None, None).await?.len(),
        0,
        "items after refused put"
    );
    Ok(())
}

async fn large_value_round_trips(s: Subject) -> TestResult {
    let t = Ctx::new(&s);
    let value: Vec<u8> = (0..(1 << 20) + 17).map(|i: u32| (i % 251) as u8).collect();
    t.must_put("large", 0, &value).await?;
    let (version, got) = t.must_get("large").await?;
    ensure_eq!(version, 1, "version of a large value");
    ensure!(got[..] == value[..], "a 1 MiB value came back different");
    Ok(())
}

// ---- Isolation ------------------------------------------------------------

async fn empty_store_id_is_a_store_of_its_own(s: Subject) -> TestResult {
    // Other tests may use the empty store of a shared subject: work under a fresh user
    // where the subject keeps users apart, and with fresh keys either way.
    let t = Ctx::new(&s).other_store("");
    let key = super::unique_name("in-empty-store");
    t.must_put(&key, 0, b"v").await?;
    ensure_eq!(t.must_get(&key).await?.0, 1, "key in the empty store");
    let listed = t.list_keys(Some(&key)).await?;
    ensure_eq!(listed, vec![key.clone()], "listing of the empty store");
    let named = t.other_store(&super::unique_name("named"));
    ensure_eq!(
        named.version_of(&key).await?,
        None,
        "key seen from a named store"
    );
    t.delete(&key, -1)
        .await
        .map_err(|e| unexpected("delete", e))?;
    ensure_eq!(
        t.version_of(&key).await?,
        None,
        "deleted key of the empty store"
    );
    Ok(())
}

async fn stores_are_isolated(s: Subject) -> TestResult {
    let a = Ctx::new(&s);
    let b = a.other_store(&format!("{}-b", a.store_id));
    a.must_put("shared", 0, b"a").await?;
    b.must_put("shared", 0, b"b").await?;
    b.must_put("shared", 1, b"b2").await?;
    a.put_full(Some(0), vec![kv("only-a", 0, b"")], vec![])
        .await
        .map_err(|e| unexpected("put", e))?;
    ensure_eq!(
        a.must_get("shared").await?,
        (1, Bytes::from_static(b"a")),
        "a's key"
    );
    ensure_eq!(
        b.must_get("shared").await?,
        (2, Bytes::from_static(b"b2")),
        "b's key"
    );
    ensure_eq!(b.version_of("only-a").await?, None, "a's key seen from b");
    ensure_eq!(b.global_version().await?, 0, "b's global version");
    ensure_eq!(b.list_keys(None).await?, vec!["shared"], "b's listing");
    b.delete("shared", -1)
        .await
        .map_err(|e| unexpected("delete", e))?;
    ensure_eq!(
        a.version_of("shared").await?,
        Some(1),
        "a's key after b's delete"
    );
    Ok(())
}

async fn users_are_isolated(s: Subject) -> TestResult {
    if !s.distinct_users {
        return Err(TestError::Skipped(
            "the subject serves one user; run with two credentials to test isolation".into(),
        ));
    }
    let alice = Ctx::new(&s);
    let bob = alice.other_user();
    alice.must_put("k", 0, b"alice").await?;
    alice
        .put_full(Some(0), vec![kv("alice-only", 0, b"")], vec![])
        .await
        .map_err(|e| unexpected("put", e))?;
    expect_err(
        bob.get("k").await,
        Kind::NoSuchKey,
        "bob reading alice's key",
    )?;
    ensure_eq!(
        bob.list_keys(None).await?,
        Vec::<String>::new(),
        "bob's listing"
    );
    ensure_eq!(bob.global_version().await?, 0, "bob's global version");
    // Bob's writes and deletes only touch bob's data.
    expect_err(
        bob.put(vec![kv("k", 1, b"bob")]).await,
        Kind::Conflict,
        "bob updating k",
    )?;
    expect_err(
        bob.put_full(None, vec![], vec![kv("k", -1, b"")]).await,
        Kind::Conflict,
        "bob deleting alice's key in a put",
    )?;
    bob.delete("k", -1)
        .await
        .map_err(|e| unexpected("bob's delete", e))?;
    bob.must_put("k", 0, b"bob").await?;
    ensure_eq!(
        alice.must_get("k").await?,
        (1, Bytes::from_static(b"alice")),
        "alice's key"
    );
    ensure_eq!(
        bob.must_get("k").await?,
        (1, Bytes::from_static(b"bob")),
        "bob's key"
    );
    ensure_eq!(alice.global_version().await?, 1, "alice's global version");
    Ok(())
}

// ---- Races ----------------------------------------------------------------

async fn concurrent_compare_and_set_has_one_winner_per_version(s: Subject) -> TestResult {
    super::concurrency::race(
        &s,
        ConcurrencyConfig {
            tasks: 8,
            increments_per_task: 5,
        },
    )
    .await
}

// ---- Operations -----------------------------------------------------------

async fn store_reports_ready(s: Subject) -> TestResult {
    s.store
        .ready()
        .await
        .map_err(|e| unexpected("readiness check of a working store", e))?;
    // The check touches no user data.
    let t = Ctx::new(&s);
    ensure_eq!(
        t.global_version().await?,
        0,
        "global version of a new store after a readiness check"
    );
    ensure_eq!(
        t.list_all(None, None).await?.len(),
        0,
        "keys of a new store after a readiness check"
    );
    Ok(())
}
