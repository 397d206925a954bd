//! `[rate_limit_config]`: requests per second per client address and per
//! user, reads and writes apart (see `vss_http::limit`). Off by default.

use std::num::NonZeroU32;

use vss_http::{Rate, RateLimits};

use crate::settings::parse;

/// `[rate_limit_config]`.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Reads (getObject, listKeyVersions) per second from one client address, checked before authentication [default: no limit]
    #[arg(id = "rate_limit_config.per_ip_reads_per_sec", long = "rate-limit-per-ip-reads-per-sec",
          env = "VSS_RATE_LIMIT_PER_IP_READS_PER_SEC", value_name = "COUNT",
          value_parser = parse::positive_u32)]
    pub per_ip_reads_per_sec: Option<u32>,

    /// Writes (putObjects, deleteObject) per second from one client address, checked before authentication [default: no limit]
    #[arg(id = "rate_limit_config.per_ip_writes_per_sec", long = "rate-limit-per-ip-writes-per-sec",
          env = "VSS_RATE_LIMIT_PER_IP_WRITES_PER_SEC", value_name = "COUNT",
          value_parser = parse::positive_u32)]
    pub per_ip_writes_per_sec: Option<u32>,

    /// Reads per second of one user, checked after authentication and before the body is read [default: no limit]
    #[arg(id = "rate_limit_config.per_user_reads_per_sec", long = "rate-limit-per-user-reads-per-sec",
          env = "VSS_RATE_LIMIT_PER_USER_READS_PER_SEC", value_name = "COUNT",
          value_parser = parse::positive_u32)]
    pub per_user_reads_per_sec: Option<u32>,

    /// Writes per second of one user, checked after authentication and before the body is read [default: no limit]
    #[arg(id = "rate_limit_config.per_user_writes_per_sec", long = "rate-limit-per-user-writes-per-sec",
          env = "VSS_RATE_LIMIT_PER_USER_WRITES_PER_SEC", value_name = "COUNT",
          value_parser = parse::positive_u32)]
    pub per_user_writes_per_sec: Option<u32>,

    /// Seconds of each rate that may come at once after a quiet time (the burst is the rate times this)
    #[arg(id = "rate_limit_config.burst_secs", long = "rate-limit-burst-secs",
          env = "VSS_RATE_LIMIT_BURST_SECS", value_name = "SECS", default_value = "10",
          value_parser = parse::positive_u32)]
    pub burst_secs: u32,

    /// Proxies (addresses or CIDR ranges, comma-separated) whose X-Forwarded-For names the client [default: none]
    #[arg(id = "rate_limit_config.trusted_proxies", long = "rate-limit-trusted-proxies",
          env = "VSS_RATE_LIMIT_TRUSTED_PROXIES", value_name = "CIDRS",
          value_parser = trusted_proxies)]
    pub trusted_proxies: Option<TrustedProxies>,
}

/// The trusted proxies' addresses and ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<ipnet::IpNet>);

/// The rate limits the settings give.
pub(crate) fn load(settings: &RateLimitSettings) -> RateLimits {
    let rate = |per_second: Option<u32>| {
        let per_second = NonZeroU32::new(per_second?)?;
        let burst = per_second.saturating_mul(NonZeroU32::new(settings.burst_secs)?);
        Some(Rate { per_second, burst })
    };
    RateLimits {
        per_ip_reads: rate(settings.per_ip_reads_per_sec),
        per_ip_writes: rate(settings.per_ip_writes_per_sec),
        per_user_reads: rate(settings.per_user_reads_per_sec),
        per_user_writes: rate(settings.per_user_writes_per_sec),
        trusted_proxies: settings
            .trusted_proxies
            .clone()
            .map(|t| t.0)
            .unwrap_or_default(),
    }
}

/// Comma-separated addresses (`10.0.0.7`, `::1`) or ranges (`10.0.0.0/8`).
fn trusted_proxies(s: &str) -> Result<TrustedProxies, String> {
    s.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<ipnet::IpNet>()
                .or_else(|_| part.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    format!("`{part}` is not an IP address or a CIDR range such as 10.0.0.0/8")
                })
        })
        .collect::<Result<_, _>>()
        .map(TrustedProxies)
}
