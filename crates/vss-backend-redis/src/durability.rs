//! The durability guard: what the server's persistence settings mean for
//! acknowledged wallet writes.
//!
//! Reading the settings talks to Redis; judging them is a plain function, so
//! every rule is unit-tested without a server.

use std::collections::HashMap;

use fred::interfaces::{ClientLike, ConfigInterface};
use fred::types::InfoKind;

/// The persistence settings that decide whether an acknowledged write survives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Settings {
    pub appendonly: String,
    pub appendfsync: String,
    pub save: String,
    pub maxmemory: String,
    pub maxmemory_policy: String,
}

/// What could be learnt about one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Evidence {
    /// `CONFIG GET` answered.
    Config(Settings),
    /// `CONFIG GET` failed (disabled, renamed, or denied by an ACL, as on many
    /// managed services); `INFO persistence` answered.
    Info {
        aof_enabled: bool,
        config_error: String,
    },
    /// Neither answered.
    Unavailable {
        config_error: String,
        info_error: String,
    },
}

/// The guard's verdict on one server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Assessment {
    /// Reasons acknowledged writes may vanish; any one refuses the server unless
    /// `allow_volatile` is set.
    pub refusals: Vec<String>,
    /// Weaker guarantees that the operator should know about.
    pub warnings: Vec<String>,
}

const ENABLE_AOF: &str = "enable AOF with `appendonly yes` and `appendfsync always`";

/// Judges one server's evidence.
pub(crate) fn assess(evidence: &Evidence) -> Assessment {
    let mut out = Assessment::default();
    match evidence {
        Evidence::Config(s) => {
            let aof = s.appendonly.eq_ignore_ascii_case("yes");
            let rdb = !s.save.trim().is_empty();
            if !aof && !rdb {
                out.refusals.push(format!(
                    "it persists nothing (appendonly no, save \"\"): a restart or crash of Redis \
                     loses every wallet's data; {ENABLE_AOF}"
                ));
            } else if !aof {
                out.warnings.push(format!(
                    "AOF is off and only RDB snapshots are taken (save \"{}\"): writes acknowledged \
                     since the last snapshot are lost if Redis stops abruptly; {ENABLE_AOF}",
                    s.save.trim()
                ));
            } else {
                match s.appendfsync.to_ascii_lowercase().as_str() {
                    "always" => {}
                    "everysec" => out.warnings.push(
                        "appendfsync everysec: up to about 1 s of acknowledged writes can be lost \
                         if the Redis host crashes or loses power; use `appendfsync always` for \
                         wallet data"
                            .to_string(),
                    ),
                    "no" => out.warnings.push(
                        "appendfsync no: the operating system decides when AOF writes reach the \
                         disk (often after 30 s), so that much acknowledged data can be lost if the \
                         Redis host crashes; use `appendfsync always` for wallet data"
                            .to_string(),
                    ),
                    other => out.warnings.push(format!(
                        "unrecognised appendfsync `{other}`; use `appendfsync always` for wallet data"
                    )),
                }
            }
            let bounded = !matches!(s.maxmemory.trim(), "" | "0");
            if bounded
                && s.maxmemory_policy
                    .to_ascii_lowercase()
                    .starts_with("allkeys-")
            {
                out.refusals.push(format!(
                    "maxmemory-policy {} with maxmemory {}: Redis evicts keys when memory runs \
                     out, which would silently drop wallet data; use `maxmemory-policy noeviction`",
                    s.maxmemory_policy, s.maxmemory
                ));
            }
        }
        Evidence::Info {
            aof_enabled: true,
            config_error,
        } => out.warnings.push(format!(
            "CONFIG GET is not available ({config_error}); INFO persistence shows AOF on, but \
             appendfsync and the eviction policy could not be checked: make sure they are \
             `appendfsync always` and `maxmemory-policy noeviction`"
        )),
        Evidence::Info {
            aof_enabled: false,
            config_error,
        } => out.refusals.push(format!(
            "CONFIG GET is not available ({config_error}) and INFO persistence shows AOF off, so \
             it cannot be checked that anything is persisted (RDB snapshot settings are not shown \
             by INFO); {ENABLE_AOF}, or allow this user `CONFIG GET`, or set allow_volatile if \
             losing wallet data is acceptable"
        )),
        Evidence::Unavailable {
            config_error,
            info_error,
        } => out.refusals.push(format!(
            "its persistence settings cannot be read (CONFIG GET: {config_error}; INFO \
             persistence: {info_error}); allow this user `CONFIG GET` (or INFO), or set \
             allow_volatile if losing wallet data is acceptable"
        )),
    }
    out
}

/// Reads one server's persistence settings.
pub(crate) async fn read<C>(client: &C) -> Evidence
where
    C: ConfigInterface + ClientLike + Sync,
{
    match read_config(client).await {
        Ok(settings) => Evidence::Config(settings),
        Err(config_error) => match client.info::<String>(Some(InfoKind::Persistence)).await {
            Ok(info) => Evidence::Info {
                aof_enabled: info_field(&info, "aof_enabled") == Some("1"),
                config_error: config_error.to_string(),
            },
            Err(info_error) => Evidence::Unavailable {
                config_error: config_error.to_string(),
                info_error: info_error.to_string(),
            },
        },
    }
}

async fn read_config<C>(client: &C) -> Result<Settings, fred::error::Error>
where
    C: ConfigInterface + Sync,
{
    async fn one<C: ConfigInterface + Sync>(
        client: &C,
        name: &'static str,
    ) -> Result<String, fred::error::Error> {
        let mut answer: HashMap<String, String> = client.config_get(name).await?;
        Ok(answer.remove(name).unwrap_or_default())
    }
    Ok(Settings {
        appendonly: one(client, "appendonly").await?,
        appendfsync: one(client, "appendfsync").await?,
        save: one(client, "save").await?,
        maxmemory: one(client, "maxmemory").await?,
        maxmemory_policy: one(client, "maxmemory-policy").await?,
    })
}

/// The value of `name:value` in an INFO reply.
pub(crate) fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then(|| value.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(appendonly: &str, appendfsync: &str, save: &str) -> Evidence {
        Evidence::Config(Settings {
            appendonly: appendonly.into(),
            appendfsync: appendfsync.into(),
            save: save.into(),
            maxmemory: "0".into(),
            maxmemory_policy: "noeviction".into(),
        })
    }

    #[test]
    fn aof_always_is_clean() {
        assert_eq!(
            assess(&settings("yes", "always", "")),
            Assessment::default()
        );
    }

    #[test]
    fn nothing_persisted_is_refused() {
        let a = assess(&settings("no", "everysec", ""));
        assert_eq!(a.refusals.len(), 1);
        assert!(a.refusals[0].contains("persists nothing"));
    }

    #[test]
    fn weaker_settings_warn() {
        let a = assess(&settings("yes", "everysec", ""));
        assert!(a.refusals.is_empty());
        assert!(a.warnings[0].contains("1 s"));
        let a = assess(&settings("yes", "no", "3600 1"));
        assert!(a.refusals.is_empty());
        assert!(a.warnings[0].contains("appendfsync no"));
        let a = assess(&settings("no", "always", "3600 1 300 100"));
        assert!(a.refusals.is_empty());
        assert!(a.warnings[0].contains("RDB"));
    }

    #[test]
    fn eviction_is_refused_only_when_memory_is_bounded() {
        let evict = |maxmemory: &str, policy: &str| {
            assess(&Evidence::Config(Settings {
                appendonly: "yes".into(),
                appendfsync: "always".into(),
                save: String::new(),
                maxmemory: maxmemory.into(),
                maxmemory_policy: policy.into(),
            }))
        };
        assert_eq!(evict("104857600", "allkeys-lru").refusals.len(), 1);
        assert!(evict("0", "allkeys-lru").refusals.is_empty());
        assert!(evict("104857600", "noeviction").refusals.is_empty());
        assert!(evict("104857600", "volatile-lru").refusals.is_empty());
    }

    #[test]
    fn info_fallback() {
        let on = assess(&Evidence::Info {
            aof_enabled: true,
            config_error: "ERR unknown command".into(),
        });
        assert!(on.refusals.is_empty() && on.warnings.len() == 1);
        let off = assess(&Evidence::Info {
            aof_enabled: false,
            config_error: "ERR unknown command".into(),
        });
        assert!(off.refusals[0].contains("allow_volatile"));
        let none = assess(&Evidence::Unavailable {
            config_error: "a".into(),
            info_error: "b".into(),
        });
        assert!(none.refusals[0].contains("allow_volatile"));
    }

    #[test]
    fn info_fields() {
        let info = "# Persistence\r\nloading:0\r\naof_enabled:1\r\naof_rewrite_in_progress:0\r\n";
        assert_eq!(info_field(info, "aof_enabled"), Some("1"));
        assert_eq!(info_field(info, "aof"), None);
    }
}
