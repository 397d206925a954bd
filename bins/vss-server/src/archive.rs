//! The export file of `vss-admin export` and `import`: every store of a
//! deployment, exactly (keys, values, versions, positions, global versions),
//! streamed, checksummed, compressed.
//!
//! # Format, version 1
//!
//! The file is a gzip stream (RFC 1952) of:
//!
//! 1. the 10 bytes `VSSEXPORT\n`, then the format version as a 32-bit
//!    big-endian integer (`1`);
//! 2. records, each a 32-bit big-endian length followed by that many bytes of
//!    one protobuf message `Record` (below);
//! 3. as the last record, `End`, whose `sha256` is the SHA-256 of every byte
//!    of the uncompressed stream before that record's length.
//!
//! Records come in this order: for each store, `StoreStart`, its items by
//! ascending position, `StoreEnd`; then `End`. In protobuf terms:
//!
//! ```text
//! message Record { oneof kind { StoreStart store = 1; Item item = 2; StoreEnd store_end = 3; End end = 4; } }
//! message StoreStart { string user = 1; string store_id = 2; }
//! message Item { string key = 1; int64 version = 2; int64 position = 3; bytes value = 4; }
//! message StoreEnd { int64 global_version = 1; uint64 keys = 2; }
//! message End { uint64 stores = 1; uint64 keys = 2; uint64 bytes = 3; bytes sha256 = 4; }
//! ```
//!
//! `import` reads the whole file once to check it (structure, counts and
//! checksum) before it writes anything, then again to write.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use prost::Message;
use sha2::{Digest, Sha256};
use vss_core::admin::{PageSize, StoreRef, StoredItem};
use vss_core::{AdminStore, UserToken};

/// The first bytes of the uncompressed stream.
pub const MAGIC: &[u8; 10] = b"VSSEXPORT\n";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The largest record read (a value of 1 GiB and its key).
const MAX_RECORD: u32 = (1 << 30) + (1 << 20);

/// One record of the file.
#[derive(Clone, PartialEq, Message)]
pub struct Record {
    /// What it is.
    #[prost(oneof = "Kind", tags = "1, 2, 3, 4")]
    pub kind: Option<Kind>,
}

/// The kinds of record.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    /// A store begins.
    #[prost(message, tag = "1")]
    Store(StoreStart),
    /// One key of the store.
    #[prost(message, tag = "2")]
    Item(Item),
    /// The store ends.
    #[prost(message, tag = "3")]
    StoreEnd(StoreEnd),
    /// The file ends.
    #[prost(message, tag = "4")]
    End(End),
}

/// A store begins.
#[derive(Clone, PartialEq, Message)]
pub struct StoreStart {
    /// Its user.
    #[prost(string, tag = "1")]
    pub user: String,
    /// Its id.
    #[prost(string, tag = "2")]
    pub store_id: String,
}

/// One key.
#[derive(Clone, PartialEq, Message)]
pub struct Item {
    /// The key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Its version.
    #[prost(int64, tag = "2")]
    pub version: i64,
    /// Its position (creation order).
    #[prost(int64, tag = "3")]
    pub position: i64,
    /// Its value.
    #[prost(bytes = "bytes", tag = "4")]
    pub value: bytes::Bytes,
}

/// A store ends.
#[derive(Clone, PartialEq, Message)]
pub struct StoreEnd {
    /// Its global version.
    #[prost(int64, tag = "1")]
    pub global_version: i64,
    /// How many items it held.
    #[prost(uint64, tag = "2")]
    pub keys: u64,
}

/// The file ends.
#[derive(Clone, PartialEq, Message)]
pub struct End {
    /// Stores in the file.
    #[prost(uint64, tag = "1")]
    pub stores: u64,
    /// Keys in the file.
    #[prost(uint64, tag = "2")]
    pub keys: u64,
    /// Bytes of keys plus values in the file.
    #[prost(uint64, tag = "3")]
    pub bytes: u64,
    /// SHA-256 of the stream before this record.
    #[prost(bytes = "vec", tag = "4")]
    pub sha256: Vec<u8>,
}

/// What a file holds (or an export wrote).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Contents {
    /// Stores.
    pub stores: u64,
    /// Keys.
    pub keys: u64,
    /// Bytes of keys plus values.
    pub bytes: u64,
}

/// Writes records, hashing what it writes.
struct Writer<W: Write> {
    out: W,
    hash: Sha256,
}

impl<W: Write> Writer<W> {
    fn raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hash.update(bytes);
        self.out.write_all(bytes)
    }

    fn record(&mut self, kind: Kind) -> std::io::Result<()> {
        let bytes = Record { kind: Some(kind) }.encode_to_vec();
        let len =
            u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("a record over 4 GiB"))?;
        self.raw(&len.to_be_bytes())?;
        self.raw(&bytes)
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// Exports every store of `admin` to `path` (created; an existing file is
/// refused), a page at a time.
pub async fn export(
    admin: &dyn AdminStore,
    path: &Path,
    page: PageSize,
) -> Result<Contents, String> {
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io(path))?;
    let mut writer = Writer {
        out: GzEncoder::new(BufWriter::new(file), Compression::fast()),
        hash: Sha256::new(),
    };
    writer.raw(MAGIC).map_err(io(path))?;
    writer
        .raw(&FORMAT_VERSION.to_be_bytes())
        .map_err(io(path))?;
    let mut contents = Contents::default();
    let mut cursor: Option<String> = None;
    loop {
        let stores = admin
            .list_stores(cursor.as_deref(), crate::admin::STORES_PER_PAGE)
            .await
            .map_err(|e| format!("listing stores: {}", vss_core::error_chain(&e)))?;
        for store in &stores.stores {
            let mut after = 0;
            let mut started = false;
            let mut keys = 0;
            loop {
                let page = admin
                    .read_items(store, after, page)
                    .await
                    .map_err(|e| format!("reading {store}: {}", vss_core::error_chain(&e)))?;
                if page.items.is_empty() {
                    // A store without data is left out; one with only a global version is kept.
                    if started || page.global_version != 0 {
                        if !started {
                            writer.record(store_start(store)).map_err(io(path))?;
                            contents.stores += 1;
                        }
                        writer
                            .record(Kind::StoreEnd(StoreEnd {
                                global_version: page.global_version,
                                keys,
                            }))
                            .map_err(io(path))?;
                    }
                    break;
                }
                if !started {
                    writer.record(store_start(store)).map_err(io(path))?;
                    contents.stores += 1;
                    started = true;
                }
                for item in page.items {
                    let usage = item.usage();
                    contents.keys += 1;
                    contents.bytes = contents.bytes.saturating_add(usage.bytes);
                    keys += 1;
                    after = item.position;
                    writer
                        .record(Kind::Item(Item {
                            key: item.key,
                            version: item.version,
                            position: item.position,
                            value: item.value,
                        }))
                        .map_err(io(path))?;
                }
            }
        }
        match stores.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let sha256 = writer.hash.clone().finalize().to_vec();
    writer
        .record(Kind::End(End {
            stores: contents.stores,
            keys: contents.keys,
            bytes: contents.bytes,
            sha256,
        }))
        .map_err(io(path))?;
    let file = writer.out.finish().map_err(io(path))?;
    let file = file.into_inner().map_err(|e| io(path)(e.into_error()))?;
    file.sync_all().map_err(io(path))?;
    Ok(contents)
}

fn store_start(store: &StoreRef) -> Kind {
    Kind::Store(StoreStart {
        user: store.user.to_string(),
        store_id: store.store_id.clone(),
    })
}

/// Reads records of a file, checking its header, and hashing what it reads.
struct Reader {
    input: GzDecoder<BufReader<File>>,
    hash: Sha256,
}

impl Reader {
    fn open(path: &Path) -> Result<Reader, String> {
        let file = File::open(path).map_err(io(path))?;
        let mut reader = Reader {
            input: GzDecoder::new(BufReader::new(file)),
            hash: Sha256::new(),
        };
        let mut header = [0u8; 14];
        reader
            .input
            .read_exact(&mut header)
            .map_err(|e| format!("{} is not a vss-admin export: {e}", path.display()))?;
        if &header[..10] != MAGIC {
            return Err(format!("{} is not a vss-admin export", path.display()));
        }
        let version = u32::from_be_bytes([header[10], header[11], header[12], header[13]]);
        if version != FORMAT_VERSION {
            return Err(format!(
                "{} is an export of format {version}; this vss-admin reads format \
                 {FORMAT_VERSION}",
                path.display()
            ));
        }
        reader.hash.update(header);
        Ok(reader)
    }

    /// The next record, and the hash of the stream before it.
    fn next(&mut self, path: &Path) -> Result<(Kind, Sha256), String> {
        let before = self.hash.clone();
        let mut len = [0u8; 4];
        self.input.read_exact(&mut len).map_err(|e| {
            format!(
                "{} ends before its last record (truncated?): {e}",
                path.display()
            )
        })?;
        let len = u32::from_be_bytes(len);
        if len > MAX_RECORD {
            return Err(format!(
                "{} holds a record of {len} bytes: corrupt",
                path.display()
            ));
        }
        let mut bytes = vec![0u8; len as usize];
        self.input
            .read_exact(&mut bytes)
            .map_err(|e| format!("{} ends inside a record (truncated?): {e}", path.display()))?;
        self.hash.update(len.to_be_bytes());
        self.hash.update(&bytes);
        let record = Record::decode(&bytes[..]).map_err(|e| {
            format!(
                "{} holds a record that does not decode: {e}",
                path.display()
            )
        })?;
        let kind = record
            .kind
            .ok_or_else(|| format!("{} holds an empty record", path.display()))?;
        Ok((kind, before))
    }
}

/// Checks a whole file: its structure, its counts and its checksum.
pub fn check(path: &Path) -> Result<Contents, String> {
    let mut reader = Reader::open(path)?;
    let mut contents = Contents::default();
    let mut in_store: Option<u64> = None;
    let corrupt = |what: &str| format!("{} is corrupt: {what}", path.display());
    loop {
        let (kind, before) = reader.next(path)?;
        match kind {
            Kind::Store(store) => {
                if in_store.is_some() {
                    return Err(corrupt("a store starts inside another"));
                }
                UserToken::new(store.user).map_err(|e| corrupt(&e.to_string()))?;
                contents.stores += 1;
                in_store = Some(0);
            }
            Kind::Item(item) => {
                let Some(keys) = in_store.as_mut() else {
                    return Err(corrupt("an item outside a store"));
                };
                *keys += 1;
                contents.keys += 1;
                contents.bytes = contents
                    .bytes
                    .saturating_add((item.key.len() + item.value.len()) as u64);
            }
            Kind::StoreEnd(end) => match in_store.take() {
                Some(keys) if keys == end.keys => {}
                Some(_) => return Err(corrupt("a store's item count does not match")),
                None => return Err(corrupt("a store ends that did not start")),
            },
            Kind::End(end) => {
                if in_store.is_some() {
                    return Err(corrupt("the file ends inside a store"));
                }
                if (end.stores, end.keys, end.bytes)
                    != (contents.stores, contents.keys, contents.bytes)
                {
                    return Err(corrupt("its counts do not match its records"));
                }
                if before.finalize().as_slice() != end.sha256.as_slice() {
                    return Err(corrupt("its SHA-256 does not match"));
                }
                return Ok(contents);
            }
        }
    }
}

/// Imports a checked file into `admin`: each store is written exactly, in
/// pages of `page` (each page one `write_items`). Checks the whole file first.
pub async fn import(
    admin: &dyn AdminStore,
    path: &Path,
    page: PageSize,
) -> Result<Contents, String> {
    let contents = check(path)?;
    let mut reader = Reader::open(path)?;
    let mut store: Option<StoreRef> = None;
    let mut pending: Vec<StoredItem> = Vec::new();
    let mut pending_bytes = 0usize;
    let write = |store: &StoreRef, items: Vec<StoredItem>, global_version: Option<i64>| {
        let store = store.clone();
        async move {
            admin
                .write_items(&store, &items, global_version)
                .await
                .map_err(|e| format!("writing {store}: {}", vss_core::error_chain(&e)))
        }
    };
    loop {
        match reader.next(path)?.0 {
            Kind::Store(start) => {
                let next = StoreRef {
                    user: UserToken::new(start.user).map_err(|e| e.to_string())?,
                    store_id: start.store_id,
                };
                admin
                    .delete_store(&next)
                    .await
                    .map_err(|e| format!("emptying {next}: {}", vss_core::error_chain(&e)))?;
                store = Some(next);
            }
            Kind::Item(item) => {
                let Some(current) = &store else {
                    return Err(format!("{}: an item outside a store", path.display()));
                };
                pending_bytes = pending_bytes.saturating_add(item.value.len());
                pending.push(StoredItem {
                    key: item.key,
                    version: item.version,
                    position: item.position,
                    value: item.value,
                });
                if pending.len() >= page.items || pending_bytes >= page.bytes {
                    write(current, std::mem::take(&mut pending), None).await?;
                    pending_bytes = 0;
                }
            }
            Kind::StoreEnd(end) => {
                let Some(current) = store.take() else {
                    return Err(format!(
                        "{}: a store ends that did not start",
                        path.display()
                    ));
                };
                write(
                    &current,
                    std::mem::take(&mut pending),
                    Some(end.global_version),
                )
                .await?;
                pending_bytes = 0;
            }
            Kind::End(_) => return Ok(contents),
        }
    }
}
