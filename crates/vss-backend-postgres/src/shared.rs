//! Connections that reads share.
//!
//! A request of the pool has its connection to itself: one query in flight,
//! and for each request one write to PostgreSQL's socket, one read of its
//! answer, and as many wake-ups of its backend. Reads (`getObject`, listing
//! pages) are one statement each and need no transaction, so they instead go
//! to a few connections that many requests use at once: tokio-postgres then
//! sends the queries that arrived together in one write and reads their
//! answers together, and PostgreSQL's backend runs them back to back. With
//! PostgreSQL on a CPU of its own, 64 HTTP connections of gets reached 0.71
//! of pgbench's ceiling through the pool and 1.16 (median) through four
//! shared connections (docs/benchmarks.md).
//!
//! The shared connections come from the pool and stay out of it while shared:
//! a quarter of the pool's connections ([`SharedReads::for_pool`]), none when it
//! has fewer than four. A connection leaves its slot (retired) when it carried
//! a large value (`LARGE_VALUE_BYTES`: its buffers grew to it, see `release`),
//! when a read on it failed, and when a read's future was dropped while its
//! query was in flight (a request past its deadline: the connection still
//! reads that answer); it is closed once its last read is answered. A slot
//! whose connection left, or was closed by PostgreSQL, is filled again in the
//! background while the other slots serve; reads wait for the pool only when
//! no slot has a connection. A read waits behind the reads sent before it on
//! its connection.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use deadpool_postgres::{Object, Pool};
use vss_core::VssError;

use crate::store::{too_large_to_keep, Held};

/// How many connections of a pool of `pool_size` reads share.
pub(crate) fn shared_count(pool_size: usize) -> usize {
    pool_size / 4
}

/// The shared connections of a store: fixed slots, each empty or holding one.
pub(crate) struct SharedReads {
    slots: Vec<Mutex<Option<Arc<SharedConnection>>>>,
    /// Whether a background task is filling the slot of the same index.
    refilling: Vec<AtomicBool>,
    next: AtomicUsize,
}

impl SharedReads {
    /// The slots for a pool of `pool_size` connections (see [`shared_count`]).
    pub(crate) fn for_pool(pool_size: usize) -> Self {
        let count = shared_count(pool_size);
        SharedReads {
            slots: (0..count).map(|_| Mutex::new(None)).collect(),
            refilling: (0..count).map(|_| AtomicBool::new(false)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// How many connections reads share.
    pub(crate) fn count(&self) -> usize {
        self.slots.len()
    }

    /// The next slot's connection, in turn; `None` when reads share none.
    /// When that slot is empty, or its connection closed or retired, another
    /// slot's connection serves this read and a background task fills the
    /// slot from `pool`; only when no slot has a connection does this read
    /// wait for one, from `open` (the pool, within the request's deadline).
    pub(crate) async fn connection<F, Fut>(
        self: &Arc<Self>,
        pool: &Pool,
        open: F,
    ) -> Option<Result<SharedRead, VssError>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Object, VssError>>,
    {
        if self.slots.is_empty() {
            return None;
        }
        let chosen = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        if let Some(conn) = live(&self.slots[chosen]) {
            return Some(Ok(self.read_on(conn)));
        }
        if let Some(conn) = self.slots.iter().find_map(live) {
            self.refill(chosen, pool);
            return Some(Ok(self.read_on(conn)));
        }
        let object = match open().await {
            Ok(object) => object,
            Err(err) => return Some(Err(err)),
        };
        Some(Ok(self.read_on(self.fill(chosen, object))))
    }

    fn read_on(self: &Arc<Self>, conn: Arc<SharedConnection>) -> SharedRead {
        SharedRead {
            conn,
            reads: Arc::clone(self),
            released: false,
        }
    }

    /// Puts `object` in slot `index`, unless the slot got a usable connection
    /// meanwhile (then `object` goes back to the pool); returns the slot's.
    fn fill(&self, index: usize, object: Object) -> Arc<SharedConnection> {
        let fresh = Arc::new(SharedConnection {
            held: Held::new(object),
            retired: AtomicBool::new(false),
        });
        let Some(Ok(mut held)) = self.slots.get(index).map(Mutex::lock) else {
            return fresh; // used once, then pooled
        };
        if let Some(conn) = held.as_ref().filter(|c| c.usable()) {
            return Arc::clone(conn);
        }
        *held = Some(Arc::clone(&fresh));
        fresh
    }

    /// Fills slot `index` from `pool` in the background, unless that is
    /// under way already.
    fn refill(self: &Arc<Self>, index: usize, pool: &Pool) {
        let Some(flag) = self.refilling.get(index) else {
            return;
        };
        if flag.swap(true, Ordering::AcqRel) {
            return;
        }
        let (reads, pool) = (Arc::clone(self), pool.clone());
        tokio::spawn(async move {
            // A closed pool (the store closed) or an unreachable database
            // leaves the slot empty; a later read tries again.
            if let Ok(object) = pool.get().await {
                reads.fill(index, object);
            }
            if let Some(flag) = reads.refilling.get(index) {
                flag.store(false, Ordering::Release);
            }
        });
    }

    /// Takes `conn` out of its slot (the next read there opens another) and
    /// has it closed, not pooled, when its last user drops it.
    pub(crate) fn retire(&self, conn: &Arc<SharedConnection>) {
        conn.retired.store(true, Ordering::Relaxed);
        for slot in &self.slots {
            if let Ok(mut held) = slot.lock() {
                if held.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
                    *held = None;
                }
            }
        }
    }

    /// Empties every slot: each connection goes back to the pool (or is
    /// closed, if retired) once the reads using it are answered.
    pub(crate) fn clear(&self) {
        for slot in &self.slots {
            if let Ok(mut held) = slot.lock() {
                *held = None;
            }
        }
    }
}

/// The slot's connection, if it holds one that can still be used.
fn live(slot: &Mutex<Option<Arc<SharedConnection>>>) -> Option<Arc<SharedConnection>> {
    let held = slot.lock().ok()?;
    held.as_ref().filter(|c| c.usable()).map(Arc::clone)
}

/// One read's use of a shared connection. Dropped without [`SharedRead::release`]
/// (the read failed, or its future was dropped while its query was in flight,
/// whose answer, however large, the connection still reads), it retires the
/// connection: nothing that went wrong on it is shared further.
pub(crate) struct SharedRead {
    conn: Arc<SharedConnection>,
    reads: Arc<SharedReads>,
    released: bool,
}

impl SharedRead {
    /// The connection's client.
    pub(crate) fn client(&self) -> Result<&Object, VssError> {
        self.conn.client()
    }

    /// The read is answered, having carried `carried_bytes` of values: the
    /// connection stays shared, unless that was a large value.
    pub(crate) fn release(mut self, carried_bytes: usize) {
        self.released = true;
        if too_large_to_keep(carried_bytes) {
            self.reads.retire(&self.conn);
        }
    }
}

impl Drop for SharedRead {
    fn drop(&mut self) {
        if !self.released {
            self.reads.retire(&self.conn);
        }
    }
}

/// A pooled connection that reads share; see the module documentation. Like
/// any [`Held`] connection it is closed when dropped, unless it was never
/// retired: then it goes back to the pool.
pub(crate) struct SharedConnection {
    held: Held,
    retired: AtomicBool,
}

impl SharedConnection {
    /// The connection's client.
    pub(crate) fn client(&self) -> Result<&Object, VssError> {
        self.held.client()
    }

    fn usable(&self) -> bool {
        !self.retired.load(Ordering::Relaxed) && self.client().is_ok_and(|o| !o.is_closed())
    }
}

impl Drop for SharedConnection {
    fn drop(&mut self) {
        if !self.retired.load(Ordering::Relaxed) {
            std::mem::replace(&mut self.held, Held::released()).release(0);
        }
        // A retired one is closed by `Held`.
    }
}
