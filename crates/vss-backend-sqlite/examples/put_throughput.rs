//! Measures durable put throughput of the SQLite backend: single-item,
//! version -1 puts (the way ldk-node writes), from 1 and 64 concurrent
//! writers, with write batching on (max_batch 256) and off (max_batch 1).
//!
//! ```text
//! cargo run --release -p vss-backend-sqlite --example put_throughput -- \
//!     [--seconds 3] [--sync full|normal] [--writers 1,64] [--max-batch 256,1]
//! ```
//!
//! Each configuration writes to a fresh database in a temp directory for the
//! given time; each writer is its own user overwriting its own 100 keys with
//! 1 KiB values. `--sync full` (the default) is the power-loss-durable setting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use vss_backend_sqlite::{SqliteConfig, SqliteStore, Synchronous};
use vss_core::proto::{KeyValue, PutObjectRequest};
use vss_core::{KvStore, UserToken, VssError};

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Options {
    seconds: f64,
    sync: Synchronous,
    writers: Vec<usize>,
    batches: Vec<usize>,
}

fn options() -> Result<Options, Error> {
    let mut options = Options {
        seconds: 3.0,
        sync: Synchronous::Full,
        writers: vec![1, 64],
        batches: vec![SqliteConfig::DEFAULT_MAX_BATCH, 1],
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => options.seconds = value()?.parse()?,
            "--sync" => {
                options.sync = match value()?.as_str() {
                    "full" => Synchronous::Full,
                    "normal" => Synchronous::Normal,
                    other => return Err(format!("unknown --sync {other}").into()),
                }
            }
            "--writers" => options.writers = list(&value()?)?,
            "--max-batch" => options.batches = list(&value()?)?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(options)
}

fn list(value: &str) -> Result<Vec<usize>, Error> {
    Ok(value.split(',').map(str::parse).collect::<Result<_, _>>()?)
}

async fn measure(writers: usize, max_batch: usize, options: &Options) -> Result<f64, Error> {
    let dir = tempfile::tempdir()?;
    let config = SqliteConfig::new(dir.path().join("bench.sqlite3"))
        .synchronous(options.sync)
        .max_batch(max_batch);
    let store = Arc::new(SqliteStore::open(config).await?);
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(options.seconds);
    let tasks = (0..writers).map(|w| {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            // A 66-character user token, like the public keys of ldk-node's signature auth.
            let user = UserToken::new(format!("02{w:064x}"))?;
            let mut i = 0u64;
            while Instant::now() < deadline {
                // Every value differs, as client-side encrypted values do: SQLite
                // skips writing a row whose new content equals the old.
                let mut value = vec![0x5a; 1024];
                value[..8].copy_from_slice(&i.to_le_bytes());
                let req = PutObjectRequest {
                    store_id: String::new(),
                    global_version: None,
                    transaction_items: vec![KeyValue {
                        key: format!("monitors#{:060x}", i % 100),
                        version: -1,
                        value: Bytes::from(value),
                    }],
                    delete_items: vec![],
                };
                store.put(&user, req).await?;
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            Ok::<(), VssError>(())
        })
    });
    for task in futures::future::join_all(tasks).await {
        task??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    store.close().await?;
    Ok(done.load(Ordering::Relaxed) as f64 / elapsed)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let options = options()?;
    println!(
        "put throughput: synchronous={}, {} s per configuration, single-item version -1 puts of 1 KiB",
        options.sync.pragma_value(),
        options.seconds
    );
    println!("{:>8} {:>10} {:>12}", "writers", "max_batch", "puts/s");
    let mut results = Vec::new();
    for &writers in &options.writers {
        for &max_batch in &options.batches {
            let rate = measure(writers, max_batch, &options).await?;
            println!("{writers:>8} {max_batch:>10} {rate:>12.0}");
            results.push(((writers, max_batch), rate));
        }
    }
    let rate = |writers, batch| {
        results
            .iter()
            .find(|(key, _)| *key == (writers, batch))
            .map(|(_, r)| *r)
    };
    let on = SqliteConfig::DEFAULT_MAX_BATCH;
    let ratios = [
        ("batching on/off, 64 writers", (64, on), (64, 1)),
        ("batching on/off, 1 writer", (1, on), (1, 1)),
        ("64 writers/1 writer, batching on", (64, on), (1, on)),
        ("64 writers/1 writer, batching off", (64, 1), (1, 1)),
    ];
    for (label, a, b) in ratios {
        if let (Some(a), Some(b)) = (rate(a.0, a.1), rate(b.0, b.1)) {
            println!("{label:<36} {:>8.2}x", a / b);
        }
    }
    Ok(())
}
