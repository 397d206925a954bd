//! `MemoryStore`: the reference implementation of the protocol.
//!
//! It favours being obviously correct over being fast: one lock around
//! plain maps, every rule spelled out in the order the contract states it.
//! The conformance suite's property test compares every backend against it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;

use crate::admin::{self, ItemsPage, PageSize, StoreRef, StoredItem, StoresPage, UsagePage};
use crate::proto::{
    DeleteObjectRequest, DeleteObjectResponse, GetObjectRequest, GetObjectResponse, KeyValue,
    ListKeyVersionsRequest, ListKeyVersionsResponse, PutObjectRequest, PutObjectResponse,
};
use crate::validate::{self, GetTarget, ListedKey};
use crate::{AdminStore, KvStore, Quota, StoreLimits, Usage, UserToken, VssError};

#[derive(Debug, Clone)]
struct Record {
    version: i64,
    value: Bytes,
    sequence: i64,
}

#[derive(Debug, Default)]
struct Store {
    global_version: i64,
    last_sequence: i64,
    records: BTreeMap<String, Record>,
    /// The listing order: (creation sequence, key) of every record, so that a
    /// page reads its own keys only. Changed with `records` by `insert` and `remove`.
    by_sequence: BTreeSet<(i64, String)>,
}

impl Store {
    fn insert(&mut self, key: String, record: Record) -> Option<Record> {
        let sequence = record.sequence;
        let old = self.records.insert(key.clone(), record);
        if let Some(old) = &old {
            self.by_sequence.remove(&(old.sequence, key.clone()));
        }
        self.by_sequence.insert((sequence, key));
        old
    }

    fn remove(&mut self, key: &str) -> Option<Record> {
        let record = self.records.remove(key)?;
        self.by_sequence.remove(&(record.sequence, key.to_string()));
        Some(record)
    }
}

/// Every store, by (user, store id), and every user's usage.
#[derive(Debug, Default)]
struct Stores {
    stores: HashMap<(UserToken, String), Store>,
    usage: HashMap<UserToken, Usage>,
}

/// An in-memory VSS store; data lives as long as the value.
#[derive(Debug)]
pub struct MemoryStore {
    stores: Mutex<Stores>,
    limits: StoreLimits,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_limits(StoreLimits {
            enforces_quotas: true,
            ..StoreLimits::default()
        })
    }
}

impl MemoryStore {
    /// An empty store with the default limits; it enforces quotas.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store declaring `limits` (for testing how callers handle them).
    /// It enforces quotas whatever `limits` say.
    pub fn with_limits(limits: StoreLimits) -> Self {
        MemoryStore {
            stores: Mutex::default(),
            limits,
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Stores>, VssError> {
        self.stores
            .lock()
            .map_err(|_| VssError::internal("memory store lock poisoned"))
    }
}

#[async_trait]
impl KvStore for MemoryStore {
    async fn get(
        &self,
        user: &UserToken,
        req: GetObjectRequest,
    ) -> Result<GetObjectResponse, VssError> {
        let target = validate::get(&req)?;
        let stores = self.lock()?;
        let store = stores.stores.get(&(user.clone(), req.store_id));
        let value = match target {
            GetTarget::GlobalVersion => {
                validate::global_version_key_value(store.map(|s| s.global_version).unwrap_or(0))
            }
            GetTarget::Key(key) => {
                let record = store
                    .and_then(|s| s.records.get(&key))
                    .ok_or_else(|| VssError::no_such_key(&key))?;
                KeyValue {
                    key,
                    version: record.version,
                    value: record.value.clone(),
                }
            }
        };
        Ok(GetObjectResponse { value: Some(value) })
    }

    async fn put(
        &self,
        user: &UserToken,
        req: PutObjectRequest,
    ) -> Result<PutObjectResponse, VssError> {
        self.put_with_quota(user, req, Quota::UNLIMITED).await
    }

    async fn put_with_quota(
        &self,
        user: &UserToken,
        req: PutObjectRequest,
        quota: Quota,
    ) -> Result<PutObjectResponse, VssError> {
        let plan = validate::put(req, &self.limits)?;
        let mut guard = self.lock()?;
        let Stores { stores, usage } = &mut *guard;
        let store = stores
            .entry((user.clone(), plan.store_id.clone()))
            .or_default();

        // Check every condition before changing anything: all or nothing.
        plan.check(
            || Ok::<_, VssError>(store.global_version),
            |key| Ok(store.records.get(key).map(|r| r.version)),
        )?;
        // Then the quota, on the usage before and after.
        let before = usage.get(user).copied().unwrap_or_default();
        let after = plan.usage_after(before, |key| {
            Ok::<_, VssError>(store.records.get(key).map(|r| r.value.len()))
        })?;
        quota.admit(before, after)?;
        usage.insert(user.clone(), after);

        for write in plan.writes {
            let version = write.condition.new_version();
            match store.records.get_mut(&write.key) {
                // An update or overwrite keeps the key's place in the listing.
                Some(record) => {
                    record.version = version;
                    record.value = write.value;
                }
                None => {
                    store.last_sequence += 1;
                    let sequence = store.last_sequence;
                    store.insert(
                        write.key,
                        Record {
                            version,
                            value: write.value,
                            sequence,
                        },
                    );
                }
            }
        }
        for delete in plan.deletes {
            store.remove(&delete.key);
        }
        if let Some(expected) = plan.global_version {
            store.global_version = expected + 1;
        }
        Ok(PutObjectResponse {})
    }

    async fn delete(
        &self,
        user: &UserToken,
        req: DeleteObjectRequest,
    ) -> Result<DeleteObjectResponse, VssError> {
        let plan = validate::delete(req)?;
        let mut guard = self.lock()?;
        let Stores { stores, usage } = &mut *guard;
        if let Some(store) = stores.get_mut(&(user.clone(), plan.store_id.clone())) {
            if plan.matches(store.records.get(&plan.key).map(|r| r.version)) {
                if let Some(record) = store.remove(&plan.key) {
                    let freed = Usage::of_item(&plan.key, record.value.len());
                    if let Some(used) = usage.get_mut(user) {
                        *used = used.minus(freed);
                    }
                }
            }
        }
        Ok(DeleteObjectResponse {})
    }

    async fn list_key_versions(
        &self,
        user: &UserToken,
        req: ListKeyVersionsRequest,
    ) -> Result<ListKeyVersionsResponse, VssError> {
        let plan = validate::list(user, req, &self.limits)?;
        let stores = self.lock()?;
        let Some(store) = stores.stores.get(&(user.clone(), plan.store_id.clone())) else {
            return Ok(plan.respond(Vec::new(), 0));
        };
        let before = plan.before_sequence.unwrap_or(i64::MAX);
        // Newest first, from the listing order: only the page's keys are read.
        let rows: Vec<ListedKey> = store
            .by_sequence
            .range(..(before, String::new()))
            .rev()
            .filter(|(_, key)| plan.matches(key))
            .take(plan.fetch_limit())
            .filter_map(|(sequence, key)| {
                store.records.get(key).map(|record| ListedKey {
                    key: key.clone(),
                    version: record.version,
                    sequence: *sequence,
                })
            })
            .collect();
        Ok(plan.respond(rows, store.global_version))
    }

    fn limits(&self) -> StoreLimits {
        self.limits
    }
}

#[async_trait]
impl AdminStore for MemoryStore {
    async fn list_stores(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<StoresPage, VssError> {
        let after = cursor.map(admin::store_of_cursor).transpose()?;
        let limit = limit.max(1);
        let stores = self.lock()?;
        let mut names: Vec<StoreRef> = stores
            .stores
            .iter()
            .filter(|(_, store)| !store.records.is_empty() || store.global_version != 0)
            .map(|((user, store_id), _)| StoreRef {
                user: user.clone(),
                store_id: store_id.clone(),
            })
            .filter(|store| after.as_ref().is_none_or(|after| store > after))
            .collect();
        names.sort();
        let (stores, next) = admin::cut_page(names, limit, admin::cursor_after);
        Ok(StoresPage { stores, next })
    }

    async fn read_items(
        &self,
        store: &StoreRef,
        after: i64,
        size: PageSize,
    ) -> Result<ItemsPage, VssError> {
        let stores = self.lock()?;
        let Some(found) = stores
            .stores
            .get(&(store.user.clone(), store.store_id.clone()))
        else {
            return Ok(ItemsPage::default());
        };
        let mut items: Vec<StoredItem> = found
            .records
            .iter()
            .filter(|(_, record)| record.sequence > after)
            .map(|(key, record)| StoredItem {
                key: key.clone(),
                version: record.version,
                position: record.sequence,
                value: record.value.clone(),
            })
            .collect();
        items.sort_by_key(|item| item.position);
        let taken = size.take(items.iter().map(|item| item.value.len()));
        items.truncate(taken);
        Ok(ItemsPage {
            global_version: found.global_version,
            items,
        })
    }

    async fn write_items(
        &self,
        store: &StoreRef,
        items: &[StoredItem],
        global_version: Option<i64>,
    ) -> Result<(), VssError> {
        admin::check_items(store, items, &self.limits)?;
        let mut guard = self.lock()?;
        let Stores { stores, usage } = &mut *guard;
        let target = stores
            .entry((store.user.clone(), store.store_id.clone()))
            .or_default();
        let used = usage.entry(store.user.clone()).or_default();
        for item in items {
            let record = Record {
                version: item.version,
                value: item.value.clone(),
                sequence: item.position,
            };
            if let Some(old) = target.insert(item.key.clone(), record) {
                *used = used.minus(Usage::of_item(&item.key, old.value.len()));
            }
            *used = used.plus(item.usage());
            target.last_sequence = target.last_sequence.max(item.position);
        }
        if let Some(global_version) = global_version {
            target.global_version = global_version;
        }
        Ok(())
    }

    async fn delete_store(&self, store: &StoreRef) -> Result<(), VssError> {
        let mut guard = self.lock()?;
        let Stores { stores, usage } = &mut *guard;
        if let Some(removed) = stores.remove(&(store.user.clone(), store.store_id.clone())) {
            if let Some(used) = usage.get_mut(&store.user) {
                for (key, record) in &removed.records {
                    *used = used.minus(Usage::of_item(key, record.value.len()));
                }
            }
        }
        Ok(())
    }

    async fn delete_user(&self, user: &UserToken) -> Result<(), VssError> {
        let mut guard = self.lock()?;
        let Stores { stores, usage } = &mut *guard;
        stores.retain(|(owner, _), _| owner != user);
        usage.remove(user);
        Ok(())
    }

    async fn usage(&self, user: &UserToken) -> Result<Usage, VssError> {
        Ok(self.lock()?.usage.get(user).copied().unwrap_or_default())
    }

    async fn list_usage(&self, cursor: Option<&str>, limit: usize) -> Result<UsagePage, VssError> {
        let after = cursor.map(admin::user_of_cursor).transpose()?;
        let limit = limit.max(1);
        let mut users: Vec<(UserToken, Usage)> = self
            .lock()?
            .usage
            .iter()
            .filter(|(user, _)| after.as_ref().is_none_or(|after| *user > after))
            .map(|(user, usage)| (user.clone(), *usage))
            .collect();
        users.sort_by(|a, b| a.0.cmp(&b.0));
        let (users, next) =
            admin::cut_page(users, limit, |(user, _)| admin::user_cursor_after(user));
        Ok(UsagePage { users, next })
    }
}
