//! Read connections used on the caller's own thread, for the reads that cost
//! SQLite less than handing them to a reader thread would.
//!
//! A `get` of a value below [`crate::writer::STREAMED_VALUE`] whose pages are
//! cached is a few microseconds of SQLite's work; queueing it for a reader
//! thread and waking the caller's task again costs two thread switches, which
//! measured with 64 connections on 2 cores took more CPU than the read itself
//! (the server's SQLite get at 0.55 of its memory-store get; switches and
//! their futex wake-ups were the top of the profile). So a get takes an idle
//! connection of this set, runs on the async task's thread and gives the
//! connection back.
//!
//! What keeps that from holding up the runtime: these connections never wait
//! for a lock (their busy timeout is zero; a read that would wait goes to the
//! reader threads, which wait up to [`crate::SqliteConfig::busy_timeout`]),
//! a large value is read by a reader thread (the first read only learns that
//! it is large), and listings always go to the reader threads. What remains is
//! a page that is in neither SQLite's cache nor the operating system's: one
//! read from the disk on a runtime thread.

use std::sync::Mutex;

use rusqlite::{Connection, ErrorCode};

/// The idle connections; `None` once the store is closed.
pub(crate) struct InlineReads {
    idle: Mutex<Option<Vec<Connection>>>,
}

impl InlineReads {
    /// A set of the given connections, which must not wait on locks.
    pub(crate) fn new(connections: Vec<Connection>) -> InlineReads {
        InlineReads {
            idle: Mutex::new(Some(connections)),
        }
    }

    /// Runs `read` on an idle connection, on this thread. `None` when there is
    /// none (all in use, or the store closed) or when the read would have had
    /// to wait for a lock: the caller then queues the read for a reader thread.
    pub(crate) fn run<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Option<rusqlite::Result<T>> {
        let conn = self.idle.lock().ok()?.as_mut()?.pop()?;
        let result = read(&conn);
        // A read leaves no transaction open; a connection that did (never
        // expected) is closed rather than given to the next read.
        if conn.is_autocommit() {
            if let Ok(mut idle) = self.idle.lock() {
                if let Some(idle) = idle.as_mut() {
                    idle.push(conn);
                }
            }
        }
        match result {
            Err(rusqlite::Error::SqliteFailure(err, _))
                if matches!(
                    err.code,
                    ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked
                ) =>
            {
                None
            }
            result => Some(result),
        }
    }

    /// Closes the idle connections; reads running now close theirs when they
    /// end. Later [`InlineReads::run`] calls return `None`.
    pub(crate) fn close(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::OpenFlags;

    fn open(path: &std::path::Path) -> Connection {
        let conn = Connection::open(path).expect("open");
        conn.busy_timeout(std::time::Duration::ZERO)
            .expect("busy timeout");
        conn
    }

    fn idle(reads: &InlineReads) -> usize {
        reads
            .idle
            .lock()
            .expect("lock")
            .as_ref()
            .map_or(0, Vec::len)
    }

    #[test]
    fn a_read_that_would_wait_for_a_lock_is_left_to_the_readers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("locked.sqlite3");
        let holder = open(&path);
        holder
            .execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (7);")
            .expect("create");
        let reader = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open reader");
        reader
            .busy_timeout(std::time::Duration::ZERO)
            .expect("busy timeout");
        let reads = InlineReads::new(vec![reader]);
        let count = |conn: &Connection| conn.query_row("SELECT x FROM t", [], |row| row.get(0));

        // A rollback-journal file: an exclusive transaction keeps every reader out.
        holder.execute_batch("BEGIN EXCLUSIVE").expect("lock");
        assert!(
            reads.run(count).is_none(),
            "a locked read must not be answered here"
        );
        assert_eq!(idle(&reads), 1, "the connection stays usable");

        holder.execute_batch("COMMIT").expect("unlock");
        assert_eq!(reads.run(count).map(Result::ok), Some(Some(7_i64)));
        assert_eq!(idle(&reads), 1);
    }

    #[test]
    fn a_connection_left_in_a_transaction_is_not_reused_and_none_after_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.sqlite3");
        let reads = InlineReads::new(vec![open(&path), open(&path)]);
        assert_eq!(idle(&reads), 2);
        let left_open = reads.run(|conn| conn.execute_batch("BEGIN"));
        assert!(matches!(left_open, Some(Ok(()))));
        assert_eq!(
            idle(&reads),
            1,
            "the connection left in a transaction is closed"
        );

        reads.close();
        assert!(reads.run(|conn| conn.execute_batch("SELECT 1")).is_none());
        assert_eq!(idle(&reads), 0);
    }

    #[test]
    fn none_when_every_connection_is_in_use() {
        let reads = InlineReads::new(Vec::new());
        assert!(reads.run(|conn| conn.execute_batch("SELECT 1")).is_none());
    }
}
