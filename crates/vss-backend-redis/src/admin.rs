//! The admin interface ([`vss_core::admin`]) on Redis: stores and users are
//! enumerated with `SCAN` (its cursor is the enumeration's, so a store may
//! come twice and the order is Redis's); each page read, page written and
//! store deleted is one Lua script, so atomic. Only on a standalone server,
//! where usage is kept: on Redis Cluster every method fails.

use async_trait::async_trait;
use bytes::Bytes;
use fred::interfaces::ClientLike;
use fred::types::{ClusterHash, CustomCommand, Key, Value};
use vss_core::admin::{self, ItemsPage, PageSize, StoreRef, StoredItem, StoresPage, UsagePage};
use vss_core::{AdminStore, KvStore, Usage, UserToken, VssError};

use crate::keys::{self, StoreKeys};
use crate::store::{array, bytes, decimal, next, text};
use crate::RedisStore;

/// Positions are sorted-set scores: doubles, exact up to 2^53.
const LARGEST_POSITION: i64 = 1 << 53;

impl RedisStore {
    fn admin_available(&self) -> Result<(), VssError> {
        if self.keeps_usage {
            Ok(())
        } else {
            Err(VssError::internal(
                "the admin interface needs a standalone Redis: on Redis Cluster a SCAN reaches \
                 one node and usage is not kept",
            ))
        }
    }

    /// One `SCAN` call: the next cursor (`None` at the end) and the keys found.
    async fn scan(
        &self,
        cursor: Option<&str>,
        pattern: Vec<u8>,
        count: usize,
    ) -> Result<(Option<String>, Vec<Vec<u8>>), VssError> {
        let answer: Value = self
            .pool
            .next()
            .custom(
                CustomCommand::new_static("SCAN", ClusterHash::Random, false),
                vec![
                    Value::from(cursor.unwrap_or("0")),
                    Value::from("MATCH"),
                    Value::Bytes(Bytes::from(pattern)),
                    Value::from("COUNT"),
                    Value::from(count.max(1).to_string()),
                    Value::from("TYPE"),
                    Value::from("hash"),
                ],
            )
            .await
            .map_err(|e| VssError::internal(format!("redis scan: {e}")))?;
        let (next, found) = crate::usage::scan_page(answer)
            .map_err(|e| VssError::internal(format!("redis scan: {e}")))?;
        let next = String::from_utf8(next)
            .map_err(|_| VssError::internal("redis scan: the cursor is not text"))?;
        Ok(((next != "0").then_some(next), found))
    }

    fn store_keys(&self, store: &StoreRef) -> Vec<Key> {
        let keys = StoreKeys::new(&self.namespace, &store.user, &store.store_id);
        [keys.hash, keys.order, keys.usage]
            .into_iter()
            .map(|k| Key::from(Bytes::from(k)))
            .collect()
    }
}

#[async_trait]
impl AdminStore for RedisStore {
    async fn list_stores(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<StoresPage, VssError> {
        self.admin_available()?;
        let (next, found) = self
            .scan(cursor, keys::store_hash_pattern(&self.namespace), limit)
            .await?;
        let stores = found
            .iter()
            .filter_map(|key| keys::store_of_hash_key(&self.namespace, key))
            .map(|(user, store_id)| StoreRef { user, store_id })
            .collect();
        Ok(StoresPage { stores, next })
    }

    async fn read_items(
        &self,
        store: &StoreRef,
        after: i64,
        size: PageSize,
    ) -> Result<ItemsPage, VssError> {
        self.admin_available()?;
        let mut redis_keys = self.store_keys(store);
        redis_keys.truncate(2);
        let args = vec![
            Value::from(after.to_string()),
            Value::from(size.items.max(1).to_string()),
            Value::from(size.bytes.to_string()),
        ];
        let answer = self
            .run(
                &self.read_items_script,
                "read items",
                redis_keys,
                args,
                false,
            )
            .await?;
        let mut parts = array(answer, "read items")?.into_iter();
        let global_version = decimal(next(&mut parts, "read items")?, "global version")?;
        let mut items = Vec::new();
        while let Some(key) = parts.next() {
            items.push(StoredItem {
                key: text(key, "key")?,
                version: decimal(next(&mut parts, "read items")?, "version")?,
                position: decimal(next(&mut parts, "read items")?, "position")?,
                value: bytes(next(&mut parts, "read items")?, "value")?,
            });
        }
        Ok(ItemsPage {
            global_version,
            items,
        })
    }

    async fn write_items(
        &self,
        store: &StoreRef,
        items: &[StoredItem],
        global_version: Option<i64>,
    ) -> Result<(), VssError> {
        self.admin_available()?;
        admin::check_items(store, items, &self.limits())?;
        if let Some(item) = items.iter().find(|i| i.position > LARGEST_POSITION) {
            return Err(VssError::InvalidRequest(format!(
                "key `{}` of {store} has position {}, more than Redis keeps exactly (2^53)",
                item.key, item.position
            )));
        }
        let mut args = Vec::with_capacity(2 + 4 * items.len());
        args.push(Value::from(
            global_version.map(|v| v.to_string()).unwrap_or_default(),
        ));
        args.push(Value::from(items.len().to_string()));
        for item in items {
            args.push(Value::from(item.key.as_str()));
            args.push(Value::from(item.version.to_string()));
            args.push(Value::from(item.position.to_string()));
            args.push(Value::Bytes(item.value.clone()));
        }
        self.run(
            &self.write_items_script,
            "write items",
            self.store_keys(store),
            args,
            true,
        )
        .await?;
        Ok(())
    }

    async fn delete_store(&self, store: &StoreRef) -> Result<(), VssError> {
        self.admin_available()?;
        self.run(
            &self.delete_store_script,
            "delete store",
            self.store_keys(store),
            vec![],
            true,
        )
        .await?;
        Ok(())
    }

    /// Finds the user's stores with `SCAN` (a walk over the whole keyspace)
    /// and deletes each, then the user's usage.
    async fn delete_user(&self, user: &UserToken) -> Result<(), VssError> {
        self.admin_available()?;
        let mut cursor: Option<String> = None;
        loop {
            let (next, found) = self
                .scan(
                    cursor.as_deref(),
                    keys::user_store_pattern(&self.namespace, user),
                    1000,
                )
                .await?;
            for (owner, store_id) in found
                .iter()
                .filter_map(|key| keys::store_of_hash_key(&self.namespace, key))
            {
                if owner == *user {
                    self.delete_store(&StoreRef {
                        user: owner,
                        store_id,
                    })
                    .await?;
                }
            }
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let _: Value = self
            .pool
            .next()
            .custom(
                CustomCommand::new_static("DEL", ClusterHash::FirstKey, false),
                vec![Value::Bytes(Bytes::from(keys::usage_key(
                    &self.namespace,
                    user,
                )))],
            )
            .await
            .map_err(|e| VssError::internal(format!("redis delete usage: {e}")))?;
        Ok(())
    }

    async fn usage(&self, user: &UserToken) -> Result<Usage, VssError> {
        self.admin_available()?;
        Ok(RedisStore::usage(self, user).await?.unwrap_or_default())
    }

    async fn list_usage(&self, cursor: Option<&str>, limit: usize) -> Result<UsagePage, VssError> {
        self.admin_available()?;
        let (next, found) = self
            .scan(cursor, keys::usage_pattern(&self.namespace), limit)
            .await?;
        let mut users = Vec::with_capacity(found.len());
        for user in found
            .iter()
            .filter_map(|key| keys::user_of_usage_key(&self.namespace, key))
        {
            let usage = RedisStore::usage(self, &user).await?.unwrap_or_default();
            users.push((user, usage));
        }
        Ok(UsagePage { users, next })
    }
}
