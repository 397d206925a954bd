//! The storage trait every backend implements.

use std::sync::Arc;

use async_trait::async_trait;

use crate::proto::{
    DeleteObjectRequest, DeleteObjectResponse, GetObjectRequest, GetObjectResponse,
    ListKeyVersionsRequest, ListKeyVersionsResponse, PutObjectRequest, PutObjectResponse,
};
use crate::{StoreLimits, UserToken, VssError};

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
