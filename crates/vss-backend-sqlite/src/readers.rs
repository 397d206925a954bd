//! The reader threads: a fixed set of threads, each owning one read-only
//! connection, that take read jobs from one shared queue.
//!
//! Why not tokio's blocking pool: handing every read to a pool thread costs two
//! thread switches per request, and under load the pool grows to one sleeping
//! thread per in-flight read. Measured with 64 connections on 2 cores, that
//! hand-off cost more than the SQLite read itself (`get` reached 0.4 of the
//! in-memory store's throughput). Here a woken reader drains up to
//! [`BATCH`] queued jobs before it sleeps again, so one wake-up serves many
//! requests, and the async runtime never runs SQLite code.
//!
//! Gets on the async threads themselves (an idle connection per worker, no
//! hand-off) were measured again on 2026-12-07: 1.05-1.10x the gets per
//! second of these threads, side by side. Not taken: a read whose page is not
//! cached waits for the disk on a runtime thread and stalls every task queued
//! there, and a guard that stops such reads after a slow one cannot tell a
//! disk wait from the thread being preempted (under load it tripped about once
//! a second on pages that were all cached).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};
use vss_core::VssError;

/// A read to run on a reader's connection.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Most jobs a reader takes off the queue at once. Small, so that a slow read
/// (a very large value) delays few others; the rest stay for the other readers.
const BATCH: usize = 8;

/// The sending side of the read queue and the reader threads.
pub(crate) struct Readers {
    jobs: mpsc::Sender<Job>,
    threads: Vec<JoinHandle<()>>,
}

impl Readers {
    /// Starts one thread per connection.
    pub(crate) fn start(connections: Vec<Connection>) -> std::io::Result<Readers> {
        let (jobs, queue) = mpsc::channel(connections.len().saturating_mul(256).max(1024));
        let queue = Arc::new(Mutex::new(queue));
        let mut threads = Vec::with_capacity(connections.len());
        for (i, conn) in connections.into_iter().enumerate() {
            let queue = Arc::clone(&queue);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("vss-sqlite-reader-{i}"))
                    .spawn(move || run(conn, &queue))?,
            );
        }
        Ok(Readers { jobs, threads })
    }

    /// A handle for queueing reads.
    pub(crate) fn handle(&self) -> mpsc::Sender<Job> {
        self.jobs.clone()
    }

    /// Stops taking reads; the threads finish what is queued, close their
    /// connections and end. Returns the threads to join.
    pub(crate) fn stop(self) -> Vec<JoinHandle<()>> {
        drop(self.jobs);
        self.threads
    }
}

/// Runs `f` on a reader's connection and returns its answer.
pub(crate) async fn read<T, F>(jobs: &mpsc::Sender<Job>, f: F) -> Result<T, VssError>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T, VssError> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let job: Job = Box::new(move |conn| {
        // The caller may have gone away meanwhile; nothing to answer then.
        let _ = reply.send(f(conn));
    });
    jobs.send(job).await.map_err(|_| crate::writer::closed())?;
    answer
        .await
        .map_err(|_| VssError::internal("the SQLite read stopped before answering"))?
}

fn run(mut conn: Connection, queue: &Mutex<mpsc::Receiver<Job>>) {
    let mut batch: Vec<Job> = Vec::with_capacity(BATCH);
    loop {
        {
            // One reader at a time waits on the queue; the others wait for the lock.
            let Ok(mut queue) = queue.lock() else { return };
            match queue.blocking_recv() {
                Some(job) => batch.push(job),
                // Every sender is gone: the store was closed or dropped.
                None => return,
            }
            while batch.len() < BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        // Several reads share one read transaction: SQLite takes its WAL read
        // lock (two fcntl calls) once for all of them instead of once per
        // statement. Every job was queued before this snapshot starts, so each
        // still sees every write acknowledged before its request arrived.
        let shared = batch.len() > 1 && exec(&conn, "BEGIN DEFERRED");
        for job in batch.drain(..) {
            // A panicking read drops its reply (the caller gets INTERNAL); the
            // reader and its connection keep serving.
            if catch_unwind(AssertUnwindSafe(|| job(&mut conn))).is_err() {
                tracing::error!("an SQLite read panicked; answered INTERNAL");
            }
        }
        if shared || !conn.is_autocommit() {
            exec(&conn, "ROLLBACK");
        }
    }
}

/// Runs a statement of the reader's own; logs and returns false when it fails.
fn exec(conn: &Connection, sql: &str) -> bool {
    match crate::writer::exec(conn, sql) {
        Ok(()) => true,
        Err(err) => {
            tracing::error!(error = %err, sql, "SQLite reader statement failed");
            false
        }
    }
}
