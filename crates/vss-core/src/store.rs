//! The storage trait every backend implements.

use std::sync::Arc;

use async_trait::async_trait;

use crate::proto::{
    DeleteObjectRequest, DeleteObjectResponse, GetObjectRequest, GetObjectResponse,
    ListKeyVersionsRequest, ListKeyVersionsResponse, PutObjectRequest, PutObjectResponse,
};
use crate::{Quota, StoreLimits, UserToken, VssError};

/// A VSS store: the four protocol operations, each scoped to one user.
///
/// Implementations validate each request with [`crate::validate`] first, then
/// apply the returned plan atomically. Everything a user stores lives under
/// their [`UserToken`]; nothing may be read, listed or changed across users.
/// Database failures are [`VssError::Internal`], never a conflict or a missing key.
#[async_trait]
pub trait KvStore: Send + Sync + 'static {
    /// `getObject`: one key, or the global version for the reserved key.
    async fn get(
        &self,
        user: &UserToken,
        req: GetObjectRequest,
    ) -> Result<GetObjectResponse, VssError>;

    /// `putObjects`: an all-or-nothing transaction of writes, deletes and an
    /// optional global version check.
    async fn put(
        &self,
        user: &UserToken,
        req: PutObjectRequest,
    ) -> Result<PutObjectResponse, VssError>;

    /// `putObjects` judged by a [`Quota`] as well: in the same transaction as
    /// the write, the user's usage before and after the put go through
    /// [`Quota::admit`], and a refusal writes nothing. Stores that enforce
    /// quotas keep every user's usage exact across all writes (puts with or
    /// without a quota, `deleteObject`), and declare it in
    /// [`StoreLimits::enforces_quotas`]; [`KvStore::put`] is then this with
    /// [`Quota::UNLIMITED`].
    ///
    /// The default, for stores without quotas, is [`KvStore::put`] when the
    /// quota limits nothing and an internal error otherwise.
    async fn put_with_quota(
        &self,
        user: &UserToken,
        req: PutObjectRequest,
        quota: Quota,
    ) -> Result<PutObjectResponse, VssError> {
        if quota.is_unlimited() {
            self.put(user, req).await
        } else {
            Err(VssError::internal(
                "a put carries a quota, but this store does not enforce quotas",
            ))
        }
    }

    /// `deleteObject`: an idempotent delete of one key.
    async fn delete(
        &self,
        user: &UserToken,
        req: DeleteObjectRequest,
    ) -> Result<DeleteObjectResponse, VssError>;

    /// `listKeyVersions`: one page of keys, newest first.
    async fn list_key_versions(
        &self,
        user: &UserToken,
        req: ListKeyVersionsRequest,
    ) -> Result<ListKeyVersionsResponse, VssError>;

    /// What this store supports.
    fn limits(&self) -> StoreLimits {
        StoreLimits::default()
    }

    /// Whether the store can serve now: a cheap check that its database
    /// answers (`SELECT 1`, `PING`, a table description, a read transaction),
    /// touching no user data. Readiness probes call it, with a time bound of
    /// their own. The default, for stores without a remote part, is ready.
    async fn ready(&self) -> Result<(), VssError> {
        Ok(())
    }

    /// Finishes pending work and releases resources; called once at shutdown,
    /// after the last request.
    async fn close(&self) -> Result<(), VssError> {
        Ok(())
    }
}

#[async_trait]
impl<T: KvStore + ?Sized> KvStore for Arc<T> {
    async fn get(
        &self,
        user: &UserToken,
        req: GetObjectRequest,
    ) -> Result<GetObjectResponse, VssError> {
        (**self).get(user, req).await
    }

    async fn put(
        &self,
        user: &UserToken,
        req: PutObjectRequest,
    ) -> Result<PutObjectResponse, VssError> {
        (**self).put(user, req).await
    }

    async fn put_with_quota(
        &self,
        user: &UserToken,
        req: PutObjectRequest,
        quota: Quota,
    ) -> Result<PutObjectResponse, VssError> {
        (**self).put_with_quota(user, req, quota).await
    }

    async fn delete(
        &self,
        user: &UserToken,
        req: DeleteObjectRequest,
    ) -> Result<DeleteObjectResponse, VssError> {
        (**self).delete(user, req).await
    }

    async fn list_key_versions(
        &self,
        user: &UserToken,
        req: ListKeyVersionsRequest,
    ) -> Result<ListKeyVersionsResponse, VssError> {
        (**self).list_key_versions(user, req).await
    }

    fn limits(&self) -> StoreLimits {
        (**self).limits()
    }

    async fn ready(&self) -> Result<(), VssError> {
        (**self).ready().await
    }

    async fn close(&self) -> Result<(), VssError> {
        (**self).close().await
    }
}
