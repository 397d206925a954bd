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
//! of pgbench's ceiling through the pool and 1.0 through four shared
//! connections (docs/benchmarks.md).
//!
//! The shared connections come from the pool and stay out of it while shared:
//! a quarter of the pool's connections ([`SharedReads::for_pool`]), none when it
//! has fewer than four. A shared connection that PostgreSQL closed is replaced
//! when next chosen; one that carried a large value (`LARGE_VALUE_BYTES`) is
//! replaced at once and closed once its last query is answered, so that no
//! connection keeps the buffers such a value grew (see `release`). Dropping a
//! read's future (a request past its deadline) is safe: the connection reads
//! the answer and discards it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use deadpool_postgres::Object;
use vss_core::VssError;

/// How many connections of a pool of `pool_size` reads share.
pub(crate) fn shared_count(pool_size: usize) -> usize {
    pool_size / 4
}

/// The shared connections of a store: fixed slots, each empty or holding one.
pub(crate) struct SharedReads {
    slots: Vec<Mutex<Option<Arc<SharedConnection>>>>,
    next: AtomicUsize,
}

impl SharedReads {
    /// The slots for a pool of `pool_size` connections (see [`shared_count`]).
    pub(crate) fn for_pool(pool_size: usize) -> Self {
        SharedReads {
            slots: (0..shared_count(pool_size))
                .map(|_| Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// How many connections reads share.
    pub(crate) fn count(&self) -> usize {
        self.slots.len()
    }

    /// The next slot's connection, in turn; `None` when reads share none.
    /// An empty slot, or one whose connection was closed, is filled by
    /// `open` (a connection from the pool).
    pub(crate) async fn connection<F, Fut>(
        &self,
        open: F,
    ) -> Option<Result<Arc<SharedConnection>, VssError>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Object, VssError>>,
    {
        if self.slots.is_empty() {
            return None;
        }
        let slot = &self.slots[self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()];
        if let Some(conn) = live(slot) {
            return Some(Ok(conn));
        }
        let object = match open().await {
            Ok(object) => object,
            Err(err) => return Some(Err(err)),
        };
        let Ok(mut held) = slot.lock() else {
            return Some(Err(VssError::internal(
                "PostgreSQL shared connection lock poisoned",
            )));
        };
        // Another read may have filled the slot meanwhile: use the one it holds.
        if let Some(conn) = held.as_ref().filter(|c| c.usable()) {
            return Some(Ok(Arc::clone(conn)));
        }
        let conn = Arc::new(SharedConnection {
            object: Some(object),
            retired: AtomicBool::new(false),
        });
        *held = Some(Arc::clone(&conn));
        Some(Ok(conn))
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

/// A pooled connection that reads share; see the module documentation.
pub(crate) struct SharedConnection {
    /// Always `Some` until dropped.
    object: Option<Object>,
    retired: AtomicBool,
}

impl SharedConnection {
    /// The connection's client.
    pub(crate) fn client(&self) -> Result<&Object, VssError> {
        self.object
            .as_ref()
            .ok_or_else(|| VssError::internal("PostgreSQL shared connection already released"))
    }

    fn usable(&self) -> bool {
        !self.retired.load(Ordering::Relaxed)
            && self.object.as_ref().is_some_and(|o| !o.is_closed())
    }
}

impl Drop for SharedConnection {
    fn drop(&mut self) {
        if let Some(object) = self.object.take() {
            if self.retired.load(Ordering::Relaxed) {
                drop(Object::take(object));
            }
            // Else the object goes back to the pool.
        }
    }
}
