//! The rules of the admin interface ([`crate::admin`]): a store's state is
//! read and written exactly, between any two backends, and per-user
//! operations touch no one else. They run against subjects made with
//! [`Subject::admin`] and are skipped for others.
//!
//! Copies go between the subject and a fresh [`MemoryStore`], both ways, so
//! every backend is shown to agree with the reference on what a state is.

use std::sync::Arc;

use bytes::Bytes;

use super::support::{ensure, ensure_eq, kv, unexpected, Ctx};
use super::{Subject, TestError, TestResult};
use crate::admin::{
    compare_store, copy_store, store_is_empty, PageSize, StoreRef, StoreTally, StoredItem,
};
use crate::{AdminStore, KvStore, MemoryStore, Usage};

/// The admin interface of a subject, or the skip of one without it.
fn admin_of(s: &Subject) -> Result<Arc<dyn AdminStore>, TestError> {
    s.admin.clone().ok_or_else(|| {
        TestError::Skipped("the subject has no admin interface (Subject::admin)".into())
    })
}

fn store_of(t: &Ctx) -> StoreRef {
    StoreRef {
        user: t.user.clone(),
        store_id: t.store_id.clone(),
    }
}

/// Small pages, so that every rule crosses page boundaries.
const SMALL: PageSize = PageSize {
    items: 3,
    bytes: 1 << 20,
};

/// Fills `t`'s store through the protocol with a state that has every
/// feature: creates, updates (versions above 1), a multi-item put, a delete
/// and re-create (a position that moved), a 600-byte key, an empty value, a
/// value of 1 MiB and a global version. Answers the keys newest first.
async fn fill(t: &Ctx) -> Result<Vec<String>, TestError> {
    let long_key = "k".repeat(crate::validate::MAX_KEY_LEN);
    t.must_put("a", 0, b"first").await?;
    t.must_put("a", 1, b"second").await?;
    t.must_put("b", 0, b"").await?;
    t.put(vec![kv("c", -1, b"three"), kv(&long_key, 0, b"long")])
        .await
        .map_err(|e| unexpected("multi-item put", e))?;
    t.must_put("big", -1, &vec![7u8; 1 << 20]).await?;
    t.delete("b", 1)
        .await
        .map_err(|e| unexpected("deleteObject", e))?;
    t.must_put("b", 0, b"again").await?;
    for expected in 0..3 {
        t.put_full(Some(expected), vec![], vec![])
            .await
            .map_err(|e| unexpected("put of the global version", e))?;
    }
    t.list_keys(None).await
}

/// A context on `store` for the same user and store id as `t`.
fn on(t: &Ctx, store: Arc<dyn KvStore>) -> Ctx {
    Ctx { store, ..t.clone() }
}

/// Asserts that two contexts answer the protocol alike: listing order,
/// versions, values and the global version.
async fn same_through_protocol(a: &Ctx, b: &Ctx) -> TestResult {
    let (listed_a, listed_b) = (
        a.list_all(None, Some(2)).await?,
        b.list_all(None, None).await?,
    );
    ensure_eq!(
        listed_b,
        listed_a,
        "listing (keys and versions, newest first)"
    );
    for (key, _) in &listed_a {
        ensure_eq!(
            b.must_get(key).await?,
            a.must_get(key).await?,
            "key `{key}`"
        );
    }
    ensure_eq!(
        b.global_version().await?,
        a.global_version().await?,
        "global version"
    );
    Ok(())
}

async fn copy(
    from: &dyn AdminStore,
    to: &dyn AdminStore,
    store: &StoreRef,
) -> Result<StoreTally, TestError> {
    copy_store(from, to, store, SMALL, None, |_, _| ())
        .await
        .map_err(|e| unexpected("copy_store", e))
}

async fn must_match(a: &dyn AdminStore, b: &dyn AdminStore, store: &StoreRef) -> TestResult {
    match compare_store(a, b, store, SMALL).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(difference)) => Err(TestError::Failed(format!("the copy differs: {difference}"))),
        Err(e) => Err(unexpected("compare_store", e)),
    }
}

pub(super) async fn admin_copy_in_keeps_versions_order_values_and_global_version(
    s: Subject,
) -> TestResult {
    let admin = admin_of(&s)?;
    let memory = Arc::new(MemoryStore::new());
    let source = on(&Ctx::new(&s), memory.clone());
    let newest_first = fill(&source).await?;
    let store = store_of(&source);
    let tally = copy(&*memory, &*admin, &store).await?;
    ensure_eq!(tally.keys, newest_first.len() as u64, "keys copied");
    must_match(&*memory, &*admin, &store).await?;
    same_through_protocol(&source, &on(&source, s.store.clone())).await?;
    // The copied store lives on: a new key lists first, an update keeps its place.
    let copied = on(&source, s.store.clone());
    copied.must_put("new", 0, b"n").await?;
    copied.must_put("a", 2, b"third").await?;
    let mut expected = vec!["new".to_string()];
    expected.extend(newest_first);
    ensure_eq!(
        copied.list_keys(None).await?,
        expected,
        "listing after a create and an update on the copy"
    );
    Ok(())
}

pub(super) async fn admin_copy_out_reads_the_state_written_through_the_protocol(
    s: Subject,
) -> TestResult {
    let admin = admin_of(&s)?;
    let t = Ctx::new(&s);
    fill(&t).await?;
    let memory = Arc::new(MemoryStore::new());
    let store = store_of(&t);
    copy(&*admin, &*memory, &store).await?;
    must_match(&*admin, &*memory, &store).await?;
    same_through_protocol(&t, &on(&t, memory.clone())).await?;
    let usage = admin
        .usage(&t.user)
        .await
        .map_err(|e| unexpected("usage", e))?;
    ensure_eq!(
        usage,
        memory
            .usage(&t.user)
            .await
            .map_err(|e| unexpected("usage", e))?,
        "usage of the user on the subject and on the copy"
    );
    Ok(())
}

pub(super) async fn admin_copy_replaces_the_destination_store_and_resumes(
    s: Subject,
) -> TestResult {
    let admin = admin_of(&s)?;
    let memory = Arc::new(MemoryStore::new());
    let source = on(&Ctx::new(&s), memory.clone());
    fill(&source).await?;
    let store = store_of(&source);
    // The destination holds other keys of the same store, and a global version.
    let destination = on(&source, s.store.clone());
    destination.must_put("stale", 0, b"stale").await?;
    destination.must_put("a", 0, b"old").await?;
    destination
        .put_full(Some(0), vec![], vec![])
        .await
        .map_err(|e| unexpected("put of the global version", e))?;
    // Interrupted after its first page, then resumed from there.
    let mut first_page_end = None;
    let page = memory
        .read_items(&store, 0, SMALL)
        .await
        .map_err(|e| unexpected("read_items", e))?;
    admin
        .delete_store(&store)
        .await
        .map_err(|e| unexpected("delete_store", e))?;
    admin
        .write_items(&store, &page.items, Some(page.global_version))
        .await
        .map_err(|e| unexpected("write_items", e))?;
    if let Some(last) = page.items.last() {
        first_page_end = Some(last.position);
    }
    ensure!(first_page_end.is_some(), "the source's first page is empty");
    copy_store(&*memory, &*admin, &store, SMALL, first_page_end, |_, _| ())
        .await
        .map_err(|e| unexpected("resumed copy_store", e))?;
    must_match(&*memory, &*admin, &store).await?;
    ensure_eq!(
        destination.version_of("stale").await?,
        None,
        "a key only the destination had"
    );
    // Copying again changes nothing.
    copy(&*memory, &*admin, &store).await?;
    must_match(&*memory, &*admin, &store).await?;
    let expected = memory
        .usage(&source.user)
        .await
        .map_err(|e| unexpected("usage", e))?;
    ensure_eq!(
        admin
            .usage(&source.user)
            .await
            .map_err(|e| unexpected("usage", e))?,
        expected,
        "usage after copies over older data"
    );
    Ok(())
}

pub(super) async fn admin_write_items_keeps_usage_exact(s: Subject) -> TestResult {
    let admin = admin_of(&s)?;
    let t = Ctx::new(&s);
    let store = store_of(&t);
    t.must_put("kept", 0, b"12345").await?;
    let item = |key: &str, position, len| StoredItem {
        key: key.into(),
        version: 4,
        position,
        value: Bytes::from(vec![1; len]),
    };
    let usage = || async {
        admin
            .usage(&t.user)
            .await
            .map_err(|e| unexpected("usage", e))
    };
    ensure_eq!(
        usage().await?,
        Usage { bytes: 9, keys: 1 },
        "usage after a put"
    );
    admin
        .write_items(&store, &[item("x", 100, 10), item("kept", 101, 2)], None)
        .await
        .map_err(|e| unexpected("write_items", e))?;
    ensure_eq!(
        usage().await?,
        Usage {
            bytes: 11 + 6,
            keys: 2
        },
        "usage after writing a new key and replacing one"
    );
    ensure_eq!(
        t.must_get("kept").await?,
        (4, Bytes::from(vec![1; 2])),
        "the replaced key"
    );
    // Keys created after a write get positions above it, however far it went.
    let far = t.other_store("far");
    admin
        .write_items(&store_of(&far), &[item("far", 1 << 50, 0)], None)
        .await
        .map_err(|e| unexpected("write_items at position 2^50", e))?;
    far.must_put("after", 0, b"").await?;
    ensure_eq!(
        far.list_keys(None).await?,
        vec!["after".to_string(), "far".to_string()],
        "listing after a create that follows a write at position 2^50"
    );
    for key in ["far", "after"] {
        far.delete(key, -1)
            .await
            .map_err(|e| unexpected("deleteObject", e))?;
    }
    // The quota counts what write_items wrote.
    let quota = crate::Quota {
        max_bytes: Some(18),
        max_keys: None,
    };
    if s.store.limits().enforces_quotas {
        ensure!(
            t.put_with_quota(quota, vec![kv("y", -1, b"12")], vec![])
                .await
                .is_err(),
            "a put over the quota after write_items was admitted"
        );
    }
    admin
        .delete_store(&store)
        .await
        .map_err(|e| unexpected("delete_store", e))?;
    ensure_eq!(usage().await?, Usage::default(), "usage after delete_store");
    ensure!(
        store_is_empty(&*admin, &store)
            .await
            .map_err(|e| unexpected("read_items", e))?,
        "the store holds data after delete_store"
    );
    Ok(())
}

pub(super) async fn admin_pages_are_bounded_and_ascend(s: Subject) -> TestResult {
    let admin = admin_of(&s)?;
    let t = Ctx::new(&s);
    for i in 0..7 {
        t.must_put(&format!("k{i}"), 0, &[i; 10]).await?;
    }
    let store = store_of(&t);
    let read = |after, size| {
        let admin = admin.clone();
        let store = store.clone();
        async move {
            admin
                .read_items(&store, after, size)
                .await
                .map_err(|e| unexpected("read_items", e))
        }
    };
    let page = read(
        0,
        PageSize {
            items: 3,
            bytes: 1000,
        },
    )
    .await?;
    let keys: Vec<&str> = page.items.iter().map(|i| i.key.as_str()).collect();
    ensure_eq!(
        keys,
        vec!["k0", "k1", "k2"],
        "first page of 3, oldest first"
    );
    let page = read(
        0,
        PageSize {
            items: 100,
            bytes: 25,
        },
    )
    .await?;
    ensure_eq!(
        page.items.len(),
        2,
        "items of a page of 25 bytes of 10-byte values"
    );
    let page = read(
        0,
        PageSize {
            items: 100,
            bytes: 0,
        },
    )
    .await?;
    ensure_eq!(
        page.items.len(),
        1,
        "a page takes one item whatever its size"
    );
    let positions: Vec<i64> = read(0, PageSize::default())
        .await?
        .items
        .iter()
        .map(|i| i.position)
        .collect();
    ensure!(
        positions.windows(2).all(|w| w[0] < w[1]) && positions.len() == 7,
        "positions of a whole read: {positions:?}"
    );
    let rest = read(positions[4], PageSize::default()).await?;
    ensure_eq!(rest.items.len(), 2, "items after the fifth position");
    Ok(())
}

pub(super) async fn admin_list_stores_enumerates_every_store(s: Subject) -> TestResult {
    let admin = admin_of(&s)?;
    let t = Ctx::new(&s);
    let other_user = t.other_user();
    let mut expected = Vec::new();
    for ctx in [&t, &t.other_store(""), &other_user] {
        ctx.must_put("k", 0, b"v").await?;
        expected.push(store_of(ctx));
    }
    // A store with only a global version holds data too.
    let versioned = t.other_store("versioned-only");
    versioned
        .put_full(Some(0), vec![], vec![])
        .await
        .map_err(|e| unexpected("put of the global version", e))?;
    expected.push(store_of(&versioned));
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1_000_000 {
        let page = admin
            .list_stores(cursor.as_deref(), 50)
            .await
            .map_err(|e| unexpected("list_stores", e))?;
        seen.extend(page.stores.into_iter().filter(|s| expected.contains(s)));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    for store in &expected {
        ensure!(seen.contains(store), "{store} was not enumerated");
    }
    Ok(())
}

pub(super) async fn admin_delete_user_leaves_other_users_untouched(s: Subject) -> TestResult {
    let admin = admin_of(&s)?;
    let gone = Ctx::new(&s);
    let kept = gone.other_user();
    fill(&gone).await?;
    gone.other_store("second").must_put("x", 0, b"y").await?;
    fill(&kept).await?;
    let snapshot = Arc::new(MemoryStore::new());
    copy(&*admin, &*snapshot, &store_of(&kept)).await?;
    admin
        .delete_user(&gone.user)
        .await
        .map_err(|e| unexpected("delete_user", e))?;
    for ctx in [&gone, &gone.other_store("second")] {
        ensure!(
            store_is_empty(&*admin, &store_of(ctx))
                .await
                .map_err(|e| unexpected("read_items", e))?,
            "{} holds data after delete_user",
            store_of(ctx)
        );
        ensure_eq!(
            ctx.list_keys(None).await?,
            Vec::<String>::new(),
            "listing after delete_user"
        );
    }
    ensure_eq!(
        admin
            .usage(&gone.user)
            .await
            .map_err(|e| unexpected("usage", e))?,
        Usage::default(),
        "usage of a deleted user"
    );
    must_match(&*snapshot, &*admin, &store_of(&kept)).await?;
    // The usage listing has the kept user, as counted, and not the other.
    let kept_usage = admin
        .usage(&kept.user)
        .await
        .map_err(|e| unexpected("usage", e))?;
    ensure_eq!(
        kept_usage,
        snapshot
            .usage(&kept.user)
            .await
            .map_err(|e| unexpected("usage", e))?,
        "usage of the kept user"
    );
    let (mut listed_kept, mut listed_gone) = (None, None);
    let mut cursor: Option<String> = None;
    for _ in 0..1_000_000 {
        let page = admin
            .list_usage(cursor.as_deref(), 100)
            .await
            .map_err(|e| unexpected("list_usage", e))?;
        for (user, usage) in page.users {
            if user == kept.user {
                listed_kept = Some(usage);
            } else if user == gone.user {
                listed_gone = Some(usage);
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    ensure_eq!(
        listed_kept,
        Some(kept_usage),
        "usage listed for the kept user"
    );
    ensure!(
        listed_gone.is_none_or(|usage| usage == Usage::default()),
        "usage listed for a deleted user: {listed_gone:?}"
    );
    // The user may come back, from nothing.
    gone.must_put("a", 0, b"v").await?;
    ensure_eq!(
        gone.must_get("a").await?.0,
        1,
        "version of a key of the returning user"
    );
    Ok(())
}
