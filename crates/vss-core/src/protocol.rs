//! The wire contract beyond the messages of [`crate::proto`]: the four calls
//! and the protocol version header. Servers and clients of the protocol (the
//! HTTP service, the conformance runner, the load generator) take these names
//! from here, so each is written once.

use bytes::Bytes;
use prost::Message;

use crate::proto::{
    DeleteObjectRequest, GetObjectRequest, GetObjectResponse, KeyValue, ListKeyVersionsRequest,
    PutObjectRequest,
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
    ) -> Result<Encoded, VssError> {
        let encoded = match self {
            Operation::GetObject => {
                return Ok(Encoded::get(
                    &store.get(user, decode::<GetObjectRequest>(body)?).await?,
                ))
            }
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
        Ok(Encoded::whole(Bytes::from(encoded)))
    }
}

/// An encoded answer in two parts sent one after the other: a large value is
/// not copied into the encoding but sent from where the store put it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoded {
    /// The encoding up to the value (all of it for small answers).
    pub head: Bytes,
    /// The value's bytes, when sent apart; empty otherwise.
    pub tail: Bytes,
}

/// Values at least this long are sent apart from the rest of a `getObject`
/// answer instead of being copied into it.
pub const SEPARATE_VALUE_MIN: usize = 64 * 1024;

impl Encoded {
    /// An answer encoded in one piece.
    pub fn whole(bytes: Bytes) -> Encoded {
        Encoded {
            head: bytes,
            tail: Bytes::new(),
        }
    }

    /// The `getObject` answer. prost writes fields in tag order: the record
    /// (field 2) is the answer's only field and the value (field 3) the
    /// record's last, so the encoding ends with the value's bytes, which
    /// stay where they are.
    pub fn get(answer: &GetObjectResponse) -> Encoded {
        let Some(record) = answer
            .value
            .as_ref()
            .filter(|kv| kv.value.len() >= SEPARATE_VALUE_MIN)
        else {
            return Encoded::whole(Bytes::from(answer.encode_to_vec()));
        };
        let rest = KeyValue {
            key: record.key.clone(),
            version: record.version,
            value: Bytes::new(),
        };
        let value_len = record.value.len() as u64;
        let value_field = prost::encoding::key_len(3)
            + prost::encoding::encoded_len_varint(value_len)
            + record.value.len();
        let record_len = rest.encoded_len() + value_field;
        let mut head = Vec::with_capacity(rest.encoded_len() + 32);
        prost::encoding::encode_key(2, prost::encoding::WireType::LengthDelimited, &mut head);
        prost::encoding::encode_varint(record_len as u64, &mut head);
        rest.encode_raw(&mut head);
        prost::encoding::encode_key(3, prost::encoding::WireType::LengthDelimited, &mut head);
        prost::encoding::encode_varint(value_len, &mut head);
        Encoded {
            head: Bytes::from(head),
            tail: record.value.clone(),
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole encoding in one buffer (a copy when in two parts).
    pub fn to_bytes(&self) -> Bytes {
        if self.tail.is_empty() {
            return self.head.clone();
        }
        let mut all = Vec::with_capacity(self.len());
        all.extend_from_slice(&self.head);
        all.extend_from_slice(&self.tail);
        Bytes::from(all)
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
            PutObjectResponse::decode(answer.to_bytes()).unwrap(),
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
        let value = GetObjectResponse::decode(answer.to_bytes())
            .unwrap()
            .value
            .unwrap();
        assert_eq!((value.version, &value.value[..]), (1, &b"v"[..]));
    }

    #[test]
    fn a_large_value_is_sent_apart_and_the_parts_are_the_whole_encoding() {
        for (key, version, len) in [
            ("k", 0, 0),
            ("k", 7, SEPARATE_VALUE_MIN - 1),
            ("k", 1, SEPARATE_VALUE_MIN),
            ("", i64::MAX, SEPARATE_VALUE_MIN + 1),
            (&"long key ".repeat(60)[..], 12_345, 3 << 20),
        ] {
            let value = Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
            let answer = GetObjectResponse {
                value: Some(KeyValue {
                    key: key.into(),
                    version,
                    value: value.clone(),
                }),
            };
            let encoded = Encoded::get(&answer);
            assert_eq!(
                encoded.to_bytes(),
                Bytes::from(answer.encode_to_vec()),
                "{len}"
            );
            assert_eq!(encoded.len(), answer.encoded_len());
            if len >= SEPARATE_VALUE_MIN {
                // The value is the store's own buffer, not a copy.
                assert_eq!(encoded.tail.as_ptr(), value.as_ptr());
            } else {
                assert!(encoded.tail.is_empty());
            }
        }
        let empty = GetObjectResponse { value: None };
        assert_eq!(
            Encoded::get(&empty).to_bytes(),
            Bytes::from(empty.encode_to_vec())
        );
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
