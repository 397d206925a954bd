//! Rate limits: per client address before authentication, per user after it
//! (and before the body is read), each with separate budgets for reads
//! (`getObject`, `listKeyVersions`) and writes (`putObjects`, `deleteObject`).
//!
//! Budgets are governor's GCRA: a steady rate and a burst, kept in memory per
//! key and per server instance (N instances behind a balancer allow N times
//! the rate). A request over a budget is answered 429 with error code
//! INTERNAL, which clients retry with backoff, and `Retry-After` in seconds.
//!
//! The client address is the connection's peer, unless the peer is a trusted
//! proxy: then it is the right-most address of `X-Forwarded-For` that is not
//! itself a trusted proxy (addresses further left are written by the client
//! and can be forged). IPv6 clients are counted by their /64, which one host
//! usually owns whole.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{HeaderMap, StatusCode};
use ipnet::IpNet;
use vss_core::{UserToken, VssError};

use crate::HttpError;

/// The address of the peer of a request's connection, put into the
/// request's extensions by [`crate::serve`] (an embedder with an accept loop
/// of its own inserts it the same way, or per-address limits see no address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// A budget: a steady number of requests per second, and a burst that may
/// come at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per second, on average.
    pub per_second: NonZeroU32,
    /// Requests that may come at once after a quiet time.
    pub burst: NonZeroU32,
}

/// Which rate limits apply; all off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Reads per client address, checked before authentication.
    pub per_ip_reads: Option<Rate>,
    /// Writes per client address, checked before authentication.
    pub per_ip_writes: Option<Rate>,
    /// Reads per user, checked after authentication, before the body is read.
    pub per_user_reads: Option<Rate>,
    /// Writes per user, checked after authentication, before the body is read.
    pub per_user_writes: Option<Rate>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl RateLimits {
    /// Whether any limit is on.
    pub fn any(&self) -> bool {
        self.per_ip_reads.is_some()
            || self.per_ip_writes.is_some()
            || self.per_user_reads.is_some()
            || self.per_user_writes.is_some()
    }
}

/// How many checks pass between two sweeps of keys whose budget is full again.
const SWEEP_EVERY: u64 = 4096;

/// The limiters of one service.
pub(crate) struct Limiters {
    ip_reads: Option<DefaultKeyedRateLimiter<IpAddr>>,
    ip_writes: Option<DefaultKeyedRateLimiter<IpAddr>>,
    user_reads: Option<DefaultKeyedRateLimiter<String>>,
    user_writes: Option<DefaultKeyedRateLimiter<String>>,
    trusted: Vec<IpNet>,
    checks: AtomicU64,
}

fn keyed<K: std::hash::Hash + Eq + Clone>(
    rate: Option<Rate>,
) -> Option<DefaultKeyedRateLimiter<K>> {
    rate.map(|rate| RateLimiter::keyed(Quota::per_second(rate.per_second).allow_burst(rate.burst)))
}

impl Limiters {
    /// The limiters of `limits`, or `None` when every limit is off.
    pub(crate) fn new(limits: &RateLimits) -> Option<Limiters> {
        limits.any().then(|| Limiters {
            ip_reads: keyed(limits.per_ip_reads),
            ip_writes: keyed(limits.per_ip_writes),
            user_reads: keyed(limits.per_user_reads),
            user_writes: keyed(limits.per_user_writes),
            trusted: limits.trusted_proxies.clone(),
            checks: AtomicU64::new(0),
        })
    }

    /// The per-address budget of a request from `peer` with `headers`.
    pub(crate) fn check_client(
        &self,
        peer: Option<SocketAddr>,
        headers: &HeaderMap,
        write: bool,
    ) -> Result<(), HttpError> {
        let limiter = if write {
            &self.ip_writes
        } else {
            &self.ip_reads
        };
        let (Some(limiter), Some(peer)) = (limiter, peer) else {
            return Ok(());
        };
        let client = bucket(client_ip(peer.ip(), headers, &self.trusted));
        self.sweep();
        check(limiter, &client, "this address")
    }

    /// The per-user budget of `user`.
    pub(crate) fn check_user(&self, user: &UserToken, write: bool) -> Result<(), HttpError> {
        let limiter = if write {
            &self.user_writes
        } else {
            &self.user_reads
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        self.sweep();
        check(limiter, &user.as_str().to_string(), "this user")
    }

    /// Now and then, forgets keys whose budget is full again (they are as if
    /// never seen), so a flood of addresses or users does not grow memory.
    fn sweep(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY != SWEEP_EVERY - 1 {
            return;
        }
        forget_full(&self.ip_reads);
        forget_full(&self.ip_writes);
        forget_full(&self.user_reads);
        forget_full(&self.user_writes);
    }
}

fn forget_full<K: std::hash::Hash + Eq + Clone>(limiter: &Option<DefaultKeyedRateLimiter<K>>) {
    if let Some(limiter) = limiter {
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
    whom: &str,
) -> Result<(), HttpError> {
    match limiter.check_key(key) {
        Ok(()) => Ok(()),
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Err(rate_limited(wait, whom))
        }
    }
}

/// The answer to a request over a budget: 429, INTERNAL (retried with
/// backoff), and when to come back.
fn rate_limited(wait: Duration, whom: &str) -> HttpError {
    let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HttpError {
        status: StatusCode::TOO_MANY_REQUESTS,
        error: VssError::internal(format!(
            "rate limited: too many requests from {whom}; retry after {retry_after} s"
        )),
        retry_after: Some(retry_after.max(1)),
    }
}

/// The client's address: the peer, or behind trusted proxies the right-most
/// untrusted address of `X-Forwarded-For`.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else {
            return peer;
        };
        for hop in value.split(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip),
                // A hop that is not an address: nothing left of it can be told.
                Err(_) => return hops.last().copied().unwrap_or(peer),
            }
        }
    }
    hops.iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(hops.first())
        .copied()
        .unwrap_or(peer)
}

/// The key an address is counted under: itself, or its /64 for IPv6.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        headers
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let headers = forwarded(&["6.6.6.6, 1.2.3.4, 10.0.0.7"]);
        // From the proxy: the right-most address that is not a proxy.
        assert_eq!(client_ip(ip("10.0.0.1"), &headers, &trusted), ip("1.2.3.4"));
        // From anyone else: the peer, whatever the header says.
        assert_eq!(client_ip(ip("5.5.5.5"), &headers, &trusted), ip("5.5.5.5"));
        // Several header lines read as one list.
        let split = forwarded(&["6.6.6.6", "1.2.3.4"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &split, &trusted), ip("1.2.3.4"));
        // No header: the proxy itself.
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
        // Garbage stops the walk.
        let garbage = forwarded(&["1.2.3.4, nonsense, 10.0.0.9"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &garbage, &trusted), ip("1.2.3.4"));
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        assert_eq!(bucket(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(bucket(ip("::ffff:1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(bucket(ip("1.2.3.4")), ip("1.2.3.4"));
    }

    #[test]
    fn a_budget_refuses_past_its_burst_with_a_retry_time() {
        let rate = Rate {
            per_second: NonZeroU32::new(1).unwrap(),
            burst: NonZeroU32::new(3).unwrap(),
        };
        let limiters = Limiters::new(&RateLimits {
            per_user_writes: Some(rate),
            ..RateLimits::default()
        })
        .unwrap();
        let user = UserToken::new("u").unwrap();
        for _ in 0..3 {
            limiters.check_user(&user, true).unwrap();
        }
        let refused = limiters.check_user(&user, true).unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(matches!(refused.error, VssError::Internal(_)));
        assert_eq!(refused.retry_after, Some(1));
        // Reads have their own budget (none here), other users theirs.
        limiters.check_user(&user, false).unwrap();
        limiters
            .check_user(&UserToken::new("v").unwrap(), true)
            .unwrap();
    }
}
