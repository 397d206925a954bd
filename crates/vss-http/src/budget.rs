//! A memory budget for request bodies in flight.
//!
//! Every body is charged against one budget for as long as its request is
//! served (read, decoded, stored, answered). A body that announces its length
//! (`Content-Length`, as every VSS client sends) reserves it whole before its
//! first byte is read, in arrival order; a body without one reserves each
//! piece as it arrives. A request that cannot get its share within the wait
//! is answered 503 with error code INTERNAL (clients retry) and `Retry-After`;
//! a body larger than the whole budget gets 413 at once. So N concurrent
//! large uploads hold at most the budget in memory, plus what the store's
//! driver copies while it writes (see docs/benchmarks.md).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Body;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use vss_core::VssError;

use crate::{BodyError, HttpError};

/// The budget's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyBudget {
    /// Bytes of request bodies that may be in flight at once.
    pub bytes: usize,
    /// How long a request waits for its share before it is answered 503.
    pub wait: Duration,
}

impl Default for BodyBudget {
    /// A quarter of the memory this process may use, and a 10 s wait.
    fn default() -> Self {
        BodyBudget {
            bytes: default_body_budget(),
            wait: Duration::from_secs(10),
        }
    }
}

/// The budget's unit: reservations are whole KiB, so a budget of up to 4 TiB
/// fits the semaphore's counts.
const UNIT: usize = 1024;

/// A quarter of the memory available to this process: the smaller of the
/// machine's (`MemTotal` of `/proc/meminfo`) and the cgroup's limit
/// (`/sys/fs/cgroup/memory.max`, as containers set it); 1 GiB where neither
/// can be read.
pub fn default_body_budget() -> usize {
    let mem_total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            kib.checked_mul(1024)
        });
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|max| max.trim().parse::<u64>().ok());
    let available = match (mem_total, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    available
        .map(|bytes| usize::try_from(bytes / 4).unwrap_or(usize::MAX))
        .unwrap_or(1 << 30)
}

/// The budget of one service.
pub(crate) struct Budget {
    units: Arc<Semaphore>,
    settings: BodyBudget,
}

/// A body's share of the budget, given back when dropped.
#[derive(Default)]
pub(crate) struct Reservation {
    permits: Option<OwnedSemaphorePermit>,
}

impl Reservation {
    fn add(&mut self, permit: OwnedSemaphorePermit) {
        match &mut self.permits {
            Some(held) => held.merge(permit),
            None => self.permits = Some(permit),
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(permits) = &self.permits {
            crate::measure::body_budget_released(permits.num_permits() * UNIT);
        }
    }
}

impl Budget {
    pub(crate) fn new(settings: BodyBudget) -> Budget {
        let units = (settings.bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS);
        Budget {
            units: Arc::new(Semaphore::new(units)),
            settings: BodyBudget {
                bytes: units * UNIT,
                ..settings
            },
        }
    }

    /// Takes `bytes` more of the budget for `reservation`, waiting until `deadline`.
    async fn take(
        &self,
        reservation: &mut Reservation,
        bytes: usize,
        deadline: Instant,
    ) -> Result<(), HttpError> {
        if bytes == 0 {
            return Ok(());
        }
        let held = reservation
            .permits
            .as_ref()
            .map_or(0, |p| p.num_permits() * UNIT);
        if held.saturating_add(bytes) > self.settings.bytes {
            return Err(over_budget(self.settings.bytes));
        }
        let units = u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX);
        let acquire = Arc::clone(&self.units).acquire_many_owned(units);
        match tokio::time::timeout_at(deadline, acquire).await {
            Ok(Ok(permit)) => {
                crate::measure::body_budget_taken(permit.num_permits() * UNIT);
                reservation.add(permit);
                Ok(())
            }
            Ok(Err(_closed)) => Err(HttpError::from(VssError::internal(
                "the body budget is closed",
            ))),
            Err(_) => Err(budget_exhausted(self.settings.wait)),
        }
    }
}

/// A body larger than the whole budget: it could never be served.
fn over_budget(budget: usize) -> HttpError {
    HttpError::with_status(
        StatusCode::PAYLOAD_TOO_LARGE,
        VssError::InvalidRequest(format!(
            "request body is larger than this server's memory budget for bodies of {budget} bytes"
        )),
    )
}

/// The budget stayed taken by other requests for the whole wait.
fn budget_exhausted(wait: Duration) -> HttpError {
    HttpError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        error: VssError::internal(format!(
            "busy: other requests' bodies held the memory budget for {wait:?}; retry after 1 s"
        )),
        retry_after: Some(1),
    }
}

/// Reads a whole body of at most `limit` bytes (see [`crate::read_body`]),
/// charging it to `budget` when there is one; the reservation must be held
/// until the request is answered.
pub(crate) async fn read_charged<B>(
    body: B,
    limit: usize,
    budget: Option<&Budget>,
) -> Result<(Bytes, Reservation), HttpError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    if body.size_hint().lower() > limit_u64 {
        return Err(BodyError::TooLarge { limit }.into());
    }
    let declared = body
        .size_hint()
        .exact()
        .and_then(|n| usize::try_from(n).ok());
    let mut reservation = Reservation::default();
    let deadline = budget.map(|b| Instant::now() + b.settings.wait);
    if let (Some(budget), Some(deadline), Some(len)) = (budget, deadline, declared) {
        budget.take(&mut reservation, len, deadline).await?;
    }
    let mut body = std::pin::pin!(body);
    // One frame holding the whole body is kept as it is; more are copied into
    // one buffer of the declared size, each dropped once copied.
    let mut first: Option<Bytes> = None;
    let mut buffer: Option<BytesMut> = None;
    let mut read = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| HttpError::from(BodyError::Read(e.into().to_string())))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        read = read.saturating_add(data.len());
        if read > limit {
            return Err(BodyError::TooLarge { limit }.into());
        }
        if let (Some(budget), Some(deadline), None) = (budget, deadline, declared) {
            budget.take(&mut reservation, data.len(), deadline).await?;
        }
        match (&mut first, &mut buffer) {
            (None, None) => first = Some(data),
            (Some(head), None) => {
                let mut joined = BytesMut::with_capacity(declared.unwrap_or(read).max(read));
                joined.extend_from_slice(head);
                joined.extend_from_slice(&data);
                first = None;
                buffer = Some(joined);
            }
            (_, Some(joined)) => joined.extend_from_slice(&data),
        }
    }
    let bytes = match (first, buffer) {
        (_, Some(joined)) => joined.freeze(),
        (Some(head), None) => head,
        (None, None) => Bytes::new(),
    };
    Ok((bytes, reservation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    fn budget(bytes: usize) -> Budget {
        Budget::new(BodyBudget {
            bytes,
            wait: Duration::from_millis(50),
        })
    }

    #[tokio::test]
    async fn bodies_share_the_budget_and_give_it_back() {
        let b = budget(10 * UNIT);
        let body = || Full::new(Bytes::from(vec![1u8; 6 * UNIT]));
        let (first, held) = read_charged(body(), usize::MAX, Some(&b)).await.unwrap();
        assert_eq!(first.len(), 6 * UNIT);
        // A second one does not fit while the first is held: 503, retried.
        let Err(busy) = read_charged(body(), usize::MAX, Some(&b)).await else {
            panic!("the second body fit")
        };
        assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(matches!(busy.error, VssError::Internal(_)));
        assert_eq!(busy.retry_after, Some(1));
        drop(held);
        assert!(read_charged(body(), usize::MAX, Some(&b)).await.is_ok());
    }

    #[tokio::test]
    async fn a_body_larger_than_the_budget_is_413_at_once() {
        let b = budget(4 * UNIT);
        let body = Full::new(Bytes::from(vec![1u8; 5 * UNIT]));
        let Err(refused) = read_charged(body, usize::MAX, Some(&b)).await else {
            panic!("a body over the budget was read")
        };
        assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(matches!(refused.error, VssError::InvalidRequest(_)));
    }

    #[test]
    fn the_default_is_a_quarter_of_memory_or_a_gibibyte() {
        let budget = default_body_budget();
        assert!(budget >= 1 << 20, "{budget}");
    }
}
