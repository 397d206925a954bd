//! The time by which a store must have answered a request.
//!
//! A request that times out is answered INTERNAL, which clients retry. If its
//! write still commits after that answer, the retry of a conditional put
//! (`version` ≥ 0, or `global_version`) meets its own earlier write and gets
//! CONFLICT, which clients believe: a false CONFLICT. So the HTTP layer gives
//! the store a deadline a little before its own timeout
//! ([`with_deadline`]), and a backend reads it ([`current`]) and ends on its
//! own before it:
//!
//! - a write that has not started by the deadline is not started (its answer
//!   is [`VssError::Internal`](crate::VssError::Internal), and nothing was written);
//! - a write already sent to the database is stopped if the database can stop
//!   it (PostgreSQL: a cancel request), and the store then waits for the
//!   database's real outcome and answers it: success if it committed, an
//!   error if it did not.
//!
//! The deadline travels with the request's future (a tokio task-local), so
//! the [`KvStore`](crate::KvStore) methods keep their signatures and every
//! decorator passes it through. Outside [`with_deadline`] there is none, and
//! a store is bounded only by its own timeouts.

use std::future::Future;
use std::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `future` with `deadline` as the time its store calls must answer by.
/// An inner call narrows it: the earlier of the two holds.
pub async fn with_deadline<F: Future>(deadline: Instant, future: F) -> F::Output {
    let deadline = match current() {
        Some(outer) => outer.min(deadline),
        None => deadline,
    };
    DEADLINE.scope(deadline, future).await
}

/// The deadline of the request being served, if it has one.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// Whether the request's deadline has passed (never, without one).
pub fn passed() -> bool {
    current().is_some_and(|deadline| Instant::now() >= deadline)
}

/// `Ok` while the request's deadline has not passed (always, without one);
/// else the error [`missed`] words. Check it before starting a write.
pub fn ensure(what: &str) -> Result<(), crate::VssError> {
    if passed() {
        Err(missed(what))
    } else {
        Ok(())
    }
}

/// The error of a write not started because its deadline had passed: nothing was written.
pub fn missed(what: &str) -> crate::VssError {
    crate::VssError::internal(format!(
        "{what}: the request's deadline passed before it started; nothing was written"
    ))
}

/// Waits for `future` until the request's deadline: `None` when the deadline
/// passed first (the future is dropped), the output otherwise. Without a
/// deadline it simply waits.
pub async fn before<F: Future>(future: F) -> Option<F::Output> {
    match current() {
        Some(deadline) => tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), future)
            .await
            .ok(),
        None => Some(future.await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_deadline_is_seen_inside_its_scope_and_narrowed_by_inner_scopes() {
        assert_eq!(current(), None);
        assert!(!passed());
        let outer = Instant::now() + Duration::from_secs(60);
        let inner = outer - Duration::from_secs(30);
        let later = outer + Duration::from_secs(30);
        with_deadline(outer, async {
            assert_eq!(current(), Some(outer));
            with_deadline(inner, async { assert_eq!(current(), Some(inner)) }).await;
            with_deadline(later, async { assert_eq!(current(), Some(outer)) }).await;
            assert!(!passed());
        })
        .await;
        assert_eq!(current(), None);
        with_deadline(Instant::now(), async {
            assert!(passed());
            let err = ensure("a write").unwrap_err();
            assert!(err.to_string().contains("nothing was written"), "{err}");
        })
        .await;
        assert!(ensure("a write").is_ok());
    }

    #[tokio::test]
    async fn before_gives_up_at_the_deadline() {
        let soon = Instant::now() + Duration::from_millis(20);
        let waited = with_deadline(soon, before(std::future::pending::<()>())).await;
        assert_eq!(waited, None);
        assert_eq!(with_deadline(soon, before(async { 7 })).await, Some(7));
        assert_eq!(before(async { 8 }).await, Some(8));
    }
}
