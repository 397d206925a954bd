//! The admin interface: what operators' tools need beyond the protocol.
//!
//! The protocol cannot enumerate users, and a client that copies data with
//! puts resets every version and creation order. [`AdminStore`] can: it lists
//! the stores a backend holds, reads a store's complete state in pages, writes
//! such a state exactly, deletes a user's data and tells a user's usage. It is
//! separate from the request path ([`KvStore`]): vss-server never calls it,
//! and a custom backend may leave it out.
//!
//! A store's **state** is its global version and, for every key, its version,
//! its value and its **position**: the creation sequence that orders listings
//! (newest first). Positions are positive, distinct within a store, and only
//! their order means something to clients; backends keep the numbers as they
//! are written, so a copy keeps them exactly and the destination hands out
//! larger ones to keys created afterwards.
//!
//! [`copy_store`] and [`compare_store`] are the rules of moving a store from
//! one backend to another and of proving the result; `vss-admin` runs them
//! over every store.

use async_trait::async_trait;
use bytes::Bytes;

use crate::{validate, KvStore, StoreLimits, Usage, UserToken, VssError};

/// One store: its user and its store id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreRef {
    /// The user the store belongs to.
    pub user: UserToken,
    /// The store id.
    pub store_id: String,
}

impl std::fmt::Display for StoreRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "store `{}` of user `{}`", self.store_id, self.user)
    }
}

/// One key's complete state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    /// The key.
    pub key: String,
    /// Its version, as `getObject` answers it.
    pub version: i64,
    /// Its creation position in the store (positive; larger is newer).
    pub position: i64,
    /// Its value.
    pub value: Bytes,
}

impl StoredItem {
    /// What the item counts in its user's usage.
    pub fn usage(&self) -> Usage {
        Usage::of_item(&self.key, self.value.len())
    }
}

/// A page of [`AdminStore::list_stores`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoresPage {
    /// The stores of this page.
    pub stores: Vec<StoreRef>,
    /// Where the next page starts; `None` after the last page.
    pub next: Option<String>,
}

/// A page of [`AdminStore::list_usage`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsagePage {
    /// Users and what they store.
    pub users: Vec<(UserToken, Usage)>,
    /// Where the next page starts; `None` after the last page.
    pub next: Option<String>,
}

/// A page of a store's state: [`AdminStore::read_items`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemsPage {
    /// The store's global version (0 when never set), read with the items.
    pub global_version: i64,
    /// Items by ascending position; empty once there are no more.
    pub items: Vec<StoredItem>,
}

/// How much one page of [`AdminStore::read_items`] holds at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize {
    /// Most items.
    pub items: usize,
    /// Most bytes of values; a page always holds at least one item when any
    /// is left, whatever its size.
    pub bytes: usize,
}

impl Default for PageSize {
    /// 1000 items or 16 MiB of values.
    fn default() -> Self {
        PageSize {
            items: 1000,
            bytes: 16 << 20,
        }
    }
}

impl PageSize {
    /// Whether a page that holds `taken` items may take one more, which
    /// brings its values to `bytes`: the first always, then while the items
    /// and bytes fit.
    pub fn fits(&self, taken: usize, bytes: usize) -> bool {
        taken == 0 || (taken < self.items && bytes <= self.bytes)
    }

    /// How many of `lengths` (value lengths, in order) a page takes
    /// ([`PageSize::fits`]).
    pub fn take(&self, lengths: impl IntoIterator<Item = usize>) -> usize {
        let mut bytes = 0usize;
        let mut taken = 0;
        for len in lengths {
            bytes = bytes.saturating_add(len);
            if !self.fits(taken, bytes) {
                break;
            }
            taken += 1;
        }
        taken
    }
}

/// Operations on a backend's data as a whole, for operators' tools.
///
/// Each method should be atomic on its own (one transaction, script or
/// transactional write), and none is atomic with another; a backend that
/// cannot (DynamoDB's transactions hold 100 items) documents which are
/// several steps, each keeping usage exact. Tools that read a backend while
/// it serves see each page as of its own moment; tools that write one run
/// where no server writes.
#[async_trait]
pub trait AdminStore: KvStore {
    /// One page of the stores that hold data (a key or a global version),
    /// starting at `cursor` (`None`: the first page), at most about `limit`.
    ///
    /// Across the pages of one enumeration, every store that holds data
    /// throughout appears at least once (some backends may repeat one, and
    /// stores written meanwhile may or may not appear); a store without data
    /// may appear too. The cursor is a string the backend made; it stays
    /// valid across processes, so a tool may record it and resume.
    async fn list_stores(&self, cursor: Option<&str>, limit: usize)
        -> Result<StoresPage, VssError>;

    /// The items of `store` with a position above `after`, by ascending
    /// position, as many as `size` allows, with the store's global version:
    /// one consistent read.
    async fn read_items(
        &self,
        store: &StoreRef,
        after: i64,
        size: PageSize,
    ) -> Result<ItemsPage, VssError>;

    /// Writes `items` exactly (key, version, value and position; a key that
    /// exists is replaced, position included) and, when given, the store's
    /// global version; atomically, keeping the user's usage exact. Keys
    /// created afterwards get positions above every position written.
    /// Callers check the items with [`check_items`] first; the positions must
    /// not be those of other keys of the store.
    async fn write_items(
        &self,
        store: &StoreRef,
        items: &[StoredItem],
        global_version: Option<i64>,
    ) -> Result<(), VssError>;

    /// Deletes `store`: every key and its global version; its usage is freed.
    async fn delete_store(&self, store: &StoreRef) -> Result<(), VssError>;

    /// Deletes every store of `user` and their usage.
    async fn delete_user(&self, user: &UserToken) -> Result<(), VssError>;

    /// What `user` stores, as quotas count it.
    async fn usage(&self, user: &UserToken) -> Result<Usage, VssError>;

    /// One page of users and their usage, from `cursor` (`None`: the first
    /// page), at most about `limit`: every user who stores something appears
    /// once across the pages (users who store nothing may appear, with zero).
    /// The cursor is the backend's, as in [`AdminStore::list_stores`].
    async fn list_usage(&self, cursor: Option<&str>, limit: usize) -> Result<UsagePage, VssError>;
}

/// Checks items for [`AdminStore::write_items`] of a store with `limits`:
/// valid keys (not the reserved key), versions and positions that a store can
/// hold (versions from 0, positions from 1, ascending and distinct), distinct
/// keys, values no larger than the store holds (TOO_LARGE).
pub fn check_items(
    store: &StoreRef,
    items: &[StoredItem],
    limits: &StoreLimits,
) -> Result<(), VssError> {
    validate::store_id(&store.store_id)?;
    let mut keys = std::collections::HashSet::with_capacity(items.len());
    let mut last = 0;
    for item in items {
        validate::writable_key(&item.key)?;
        if item.version < 0 {
            return Err(VssError::InvalidRequest(format!(
                "key `{}` of {store} has version {}; stored versions are never negative",
                item.key, item.version
            )));
        }
        if item.position <= last {
            return Err(VssError::InvalidRequest(format!(
                "key `{}` of {store} has position {} after position {last}; positions are \
                 positive and ascending",
                item.key, item.position
            )));
        }
        last = item.position;
        if item.value.len() > limits.max_value_size {
            return Err(VssError::TooLarge(format!(
                "key `{}` of {store} has a value of {} bytes, more than the destination \
                 holds ({} bytes)",
                item.key,
                item.value.len(),
                limits.max_value_size
            )));
        }
        if !keys.insert(item.key.as_str()) {
            return Err(VssError::InvalidRequest(format!(
                "key `{}` of {store} is given twice",
                item.key
            )));
        }
    }
    Ok(())
}

/// What a copy or comparison of one store went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreTally {
    /// Keys.
    pub keys: u64,
    /// Bytes of keys plus values.
    pub bytes: u64,
}

impl StoreTally {
    fn add(&mut self, items: &[StoredItem]) {
        for item in items {
            let usage = item.usage();
            self.keys += usage.keys;
            self.bytes = self.bytes.saturating_add(usage.bytes);
        }
    }
}

/// Copies `store` from `from` to `to`, exactly, page by page (each page one
/// atomic [`AdminStore::write_items`], with the global version read with it).
/// The destination's store is deleted first, so it ends as the source's was
/// read; `resume_after` continues a copy interrupted after the page that
/// ended at that position (the store is then not deleted again). `progress`
/// hears each page written and the position it ended at. Memory holds one page.
pub async fn copy_store(
    from: &dyn AdminStore,
    to: &dyn AdminStore,
    store: &StoreRef,
    size: PageSize,
    resume_after: Option<i64>,
    mut progress: impl FnMut(&[StoredItem], i64) + Send,
) -> Result<StoreTally, VssError> {
    let mut after = match resume_after {
        Some(position) => position,
        None => {
            to.delete_store(store).await?;
            0
        }
    };
    let mut tally = StoreTally::default();
    loop {
        let page = from.read_items(store, after, size).await?;
        check_items(store, &page.items, &to.limits())?;
        if page
            .items
            .first()
            .is_some_and(|item| item.position <= after)
        {
            return Err(VssError::internal(format!(
                "the source answered a position at or below {after} for {store} when asked \
                 for positions above it"
            )));
        }
        // The last, empty, page writes the global version as it is by then.
        to.write_items(store, &page.items, Some(page.global_version))
            .await?;
        let Some(last) = page.items.last() else {
            return Ok(tally);
        };
        tally.add(&page.items);
        after = last.position;
        progress(&page.items, after);
    }
}

/// How two stores differ: the first difference found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference(pub String);

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One side of [`compare_store`]: the items read and not yet compared.
struct Side<'a> {
    admin: &'a dyn AdminStore,
    after: i64,
    pending: std::collections::VecDeque<StoredItem>,
    done: bool,
    global_version: i64,
}

impl Side<'_> {
    /// Reads the next page when every item read is compared.
    async fn refill(&mut self, store: &StoreRef, size: PageSize) -> Result<(), VssError> {
        if self.pending.is_empty() && !self.done {
            let page = self.admin.read_items(store, self.after, size).await?;
            self.global_version = page.global_version;
            self.done = page.items.is_empty();
            if let Some(last) = page.items.last() {
                self.after = last.position;
            }
            self.pending.extend(page.items);
        }
        Ok(())
    }
}

/// Compares `store` on two backends item by item, in listing order: keys,
/// versions, positions (so the order), values, and the global version.
/// `Ok(Err(difference))` names the first difference; memory holds a page of
/// each side.
pub async fn compare_store(
    a: &dyn AdminStore,
    b: &dyn AdminStore,
    store: &StoreRef,
    size: PageSize,
) -> Result<Result<StoreTally, Difference>, VssError> {
    let side = |admin| Side {
        admin,
        after: 0,
        pending: Default::default(),
        done: false,
        global_version: 0,
    };
    let (mut a, mut b) = (side(a), side(b));
    let mut tally = StoreTally::default();
    loop {
        a.refill(store, size).await?;
        b.refill(store, size).await?;
        match (a.pending.pop_front(), b.pending.pop_front()) {
            (Some(x), Some(y)) if x == y => tally.add(std::slice::from_ref(&x)),
            (Some(x), Some(y)) => return Ok(Err(Difference(describe(store, &x, &y)))),
            (Some(x), None) => {
                return Ok(Err(Difference(format!(
                    "{store}: key `{}` (position {}) is only on the first side",
                    x.key, x.position
                ))))
            }
            (None, Some(y)) => {
                return Ok(Err(Difference(format!(
                    "{store}: key `{}` (position {}) is only on the second side",
                    y.key, y.position
                ))))
            }
            (None, None) => break,
        }
    }
    if a.global_version != b.global_version {
        return Ok(Err(Difference(format!(
            "{store}: global version {} on the first side, {} on the second",
            a.global_version, b.global_version
        ))));
    }
    Ok(Ok(tally))
}

fn describe(store: &StoreRef, x: &StoredItem, y: &StoredItem) -> String {
    if x.key != y.key || x.position != y.position {
        format!(
            "{store}: in listing order, key `{}` (position {}) on the first side meets key `{}` \
             (position {}) on the second",
            x.key, x.position, y.key, y.position
        )
    } else if x.version != y.version {
        format!(
            "{store}: key `{}` has version {} on the first side, {} on the second",
            x.key, x.version, y.version
        )
    } else {
        format!(
            "{store}: key `{}` has different values ({} and {} bytes)",
            x.key,
            x.value.len(),
            y.value.len()
        )
    }
}

/// Whether `store` holds no data on `admin` (no key, global version 0): a
/// store without data equals an absent one.
pub async fn store_is_empty(admin: &dyn AdminStore, store: &StoreRef) -> Result<bool, VssError> {
    let page = admin
        .read_items(store, 0, PageSize { items: 1, bytes: 0 })
        .await?;
    Ok(page.items.is_empty() && page.global_version == 0)
}

/// Cuts a page of an ordered enumeration fetched with up to `limit + 1`
/// entries: at most `limit` of them, and the cursor after the last one
/// (`cursor_of` makes it) when there were more.
pub fn cut_page<T>(
    mut entries: Vec<T>,
    limit: usize,
    cursor_of: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let more = entries.len() > limit;
    entries.truncate(limit);
    let next = match entries.last() {
        Some(last) if more => Some(cursor_of(last)),
        _ => None,
    };
    (entries, next)
}

/// The cursor of an enumeration ordered by `(user, store id)` that continues
/// after `store`: both names, base64url-encoded, joined by a `.`. The
/// backends that enumerate in that order (SQL ones, [`crate::MemoryStore`])
/// share it.
pub fn cursor_after(store: &StoreRef) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}",
        b64.encode(store.user.as_str()),
        b64.encode(&store.store_id)
    )
}

/// The cursor of an enumeration of users in order that continues after `user`.
pub fn user_cursor_after(user: &UserToken) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(user.as_str())
}

/// The user a [`user_cursor_after`] cursor continues after.
pub fn user_of_cursor(cursor: &str) -> Result<UserToken, VssError> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|user| UserToken::new(user).ok())
        .ok_or_else(|| VssError::InvalidRequest(format!("`{cursor}` is not a cursor of users")))
}

/// The store a [`cursor_after`] cursor continues after.
pub fn store_of_cursor(cursor: &str) -> Result<StoreRef, VssError> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let invalid = || VssError::InvalidRequest(format!("`{cursor}` is not a cursor of this store"));
    let (user, store_id) = cursor.split_once('.').ok_or_else(invalid)?;
    let text = |part: &str| {
        b64.decode(part)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(invalid)
    };
    Ok(StoreRef {
        user: UserToken::new(text(user)?).map_err(|_| invalid())?,
        store_id: text(store_id)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn item(key: &str, position: i64, len: usize) -> StoredItem {
        StoredItem {
            key: key.into(),
            version: 1,
            position,
            value: Bytes::from(vec![0; len]),
        }
    }

    #[test]
    fn a_page_takes_at_least_one_item_then_what_fits() {
        let size = PageSize {
            items: 3,
            bytes: 10,
        };
        assert_eq!(size.take([100, 1]), 1);
        assert_eq!(size.take([4, 4, 4]), 2);
        assert_eq!(size.take([1, 1, 1, 1]), 3);
        assert_eq!(size.take([]), 0);
    }

    #[test]
    fn items_must_ascend_and_be_distinct() {
        let store = StoreRef {
            user: UserToken::new("u").unwrap(),
            store_id: "s".into(),
        };
        let limits = StoreLimits {
            max_value_size: 4,
            ..StoreLimits::default()
        };
        assert!(matches!(
            check_items(&store, &[item("a", 1, 5)], &limits),
            Err(VssError::TooLarge(_))
        ));
        assert!(check_items(&store, &[item("a", 1, 0), item("b", 5, 3)], &limits).is_ok());
        for bad in [
            vec![item("a", 0, 0)],
            vec![item("a", 2, 0), item("b", 2, 0)],
            vec![item("a", 1, 0), item("a", 2, 0)],
            vec![item(validate::GLOBAL_VERSION_KEY, 1, 0)],
            vec![StoredItem {
                version: -1,
                ..item("a", 1, 0)
            }],
        ] {
            assert!(
                matches!(
                    check_items(&store, &bad, &limits),
                    Err(VssError::InvalidRequest(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn cursors_name_any_store() {
        for (user, store_id) in [("u", ""), ("a.b", "c.d"), ("ü", "x/y")] {
            let store = StoreRef {
                user: UserToken::new(user).unwrap(),
                store_id: store_id.into(),
            };
            assert_eq!(store_of_cursor(&cursor_after(&store)).unwrap(), store);
        }
        assert!(store_of_cursor("nope").is_err());
    }
}
