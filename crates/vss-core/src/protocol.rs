//! The wire contract beyond the messages of [`crate::proto`]: the four calls
//! and the protocol version header. Servers and clients of the protocol (the
//! HTTP service, the conformance runner, the load generator) take these names
//! from here, so each is written once.

use bytes::Bytes;
use prost::Message;

use crate::proto::{
    DeleteObjectRequest, GetObjectRequest, ListKeyVersionsRequest, PutObjectRequest,
};
use crate::{KvStore, UserToken, VssError};

/// The header every VSS response carries; `vss-client-ng` 0.6 rejects responses without it.
pub const PROTOCOL_VERSION_HEADER: &str = "vss-protocol-version";

/// The protocol version this implementation speaks, the value of [`PROTOCOL_VERSION_HEADER`].
pub const PROTOCOL_VERSION: &str = "0";

/// One protocol call, named by the last segment of its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `POST {base}/getObject`.
    GetObject,
    /// `POST {base}/putObjects` (plural).
    PutObjects,
    /// `POST {base}/deleteObject`.
    DeleteObject,
    /// `POST {base}/listKeyVersions`.
    ListKeyVersions,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 4] = [
        Operation::GetObject,
        Operation::PutObjects,
        Operation::DeleteObject,
        Operation::ListKeyVersions,
    ];

    /// The path segment, which is also the name logs use.
    pub const fn name(self) -> &'static str {
        match self {
            Operation::GetObject => "getObject",
            Operation::PutObjects => "putObjects",
            Operation::DeleteObject => "deleteObject",
            Operation::ListKeyVersions => "listKeyVersions",
        }
    }

    /// The operation named `name` (a path segment such as `getObject`; exact, case-sensitive).
    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.name() == name)
    }

    /// The operation at `path`, which must be exactly `{base}/{name}`.
    /// `base` is a normalized base path: empty, or starting with `/` and not
    /// ending with one (vss-http's `HttpConfig::base_path` is one).
    pub fn from_path(path: &str, base: &str) -> Option<Operation> {
        Operation::from_name(path.strip_prefix(base)?.strip_prefix('/')?)
    }

    /// Decodes the request body, calls the store as `user`, and encodes the answer.
    /// A body that does not decode as this operation's request is INVALID_REQUEST.
    pub async fn call(
        self,
        store: &dyn KvStore,
        user: &UserToken,
        body: Bytes,
    ) -> Result<Bytes, VssError> {
        let encoded = match self {
            Operation::GetObject => store
                .get(user, decode::<GetObjectRequest>(body)?)
                .await?
                .encode_to_vec(),
            Operation::PutObjects => store
                .put(user, decode::<PutObjectRequest>(body)?)
                .await?
                .encode_to_vec(),
            Operation::DeleteObject => store
                .delete(user, decode::<DeleteObjectRequest>(body)?)
                .await?
                .encode_to_vec(),
            Operation::ListKeyVersions => store
                .list_key_versions(user, decode::<ListKeyVersionsRequest>(body)?)
                .await?
                .encode_to_vec(),
        };
        Ok(Bytes::from(encoded))
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn decode<M: Message + Default>(body: Bytes) -> Result<M, VssError> {
    M::decode(body).map_err(|err| {
        VssError::InvalidRequest(format!(
            "request body is not a valid protobuf message: {err}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{GetObjectResponse, KeyValue, PutObjectResponse};
    use crate::MemoryStore;

    #[test]
    fn routes_exact_paths_under_the_base() {
        assert_eq!(
            Operation::from_path("/vss/getObject", "/vss"),
            Some(Operation::GetObject)
        );
        assert_eq!(
            Operation::from_path("/vss/putObjects", "/vss"),
            Some(Operation::PutObjects)
        );
        assert_eq!(
            Operation::from_path("/deleteObject", ""),
            Some(Operation::DeleteObject)
        );
        assert_eq!(
            Operation::from_path("/a/b/listKeyVersions", "/a/b"),
            Some(Operation::ListKeyVersions)
        );
        for path in [
            "/vss/putObject",
            "/vss/getObject/",
            "/vssgetObject",
            "/getObject",
            "/vss/GETOBJECT",
            "/vss//getObject",
            "/vss",
            "",
        ] {
            assert_eq!(Operation::from_path(path, "/vss"), None, "{path}");
        }
    }

    #[tokio::test]
    async fn calls_round_trip_through_the_wire_encoding() {
        let store = MemoryStore::new();
        let user = UserToken::new("u").unwrap();
        let put = PutObjectRequest {
            store_id: "s".into(),
            global_version: None,
            transaction_items: vec![KeyValue {
                key: "k".into(),
                version: 0,
                value: Bytes::from_static(b"v"),
            }],
            delete_items: vec![],
        };
        let answer = Operation::PutObjects
            .call(&store, &user, Bytes::from(put.encode_to_vec()))
            .await
            .unwrap();
        assert_eq!(
            PutObjectResponse::decode(answer).unwrap(),
            PutObjectResponse {}
        );
        let get = GetObjectRequest {
            store_id: "s".into(),
            key: "k".into(),
        };
        let answer = Operation::GetObject
            .call(&store, &user, Bytes::from(get.encode_to_vec()))
            .await
            .unwrap();
        let value = GetObjectResponse::decode(answer).unwrap().value.unwrap();
        assert_eq!((value.version, &value.value[..]), (1, &b"v"[..]));
    }

    #[tokio::test]
    async fn garbage_is_an_invalid_request_for_every_operation() {
        let store = MemoryStore::new();
        let user = UserToken::new("u").unwrap();
        for op in Operation::ALL {
            let err = op
                .call(&store, &user, Bytes::from_static(b"\xff\xff\xff\xff"))
                .await
                .unwrap_err();
            assert!(matches!(err, VssError::InvalidRequest(_)), "{op}: {err:?}");
        }
    }
}
