//! `[quota_config]`: per-user quotas (see `vss_core::quota` for what counts
//! and the rule), a default for every user and overrides from a file.

use std::path::{Path, PathBuf};

use vss_core::{Quota, QuotaPolicy, UserToken};

use crate::settings::{names_of, parse, ConfigError, Origin, Origins};

/// `[quota_config]`.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct QuotaSettings {
    /// Most bytes (keys plus values, over all stores) each user may store; puts past it get 507 [default: no limit]
    #[arg(id = "quota_config.max_bytes_per_user", long = "quota-max-bytes-per-user",
          env = "VSS_QUOTA_MAX_BYTES_PER_USER", value_name = "BYTES",
          value_parser = parse::whole_number)]
    pub max_bytes_per_user: Option<u64>,

    /// Most keys (over all stores) each user may store; puts past it get 507 [default: no limit]
    #[arg(id = "quota_config.max_keys_per_user", long = "quota-max-keys-per-user",
          env = "VSS_QUOTA_MAX_KEYS_PER_USER", value_name = "COUNT",
          value_parser = parse::whole_number)]
    pub max_keys_per_user: Option<u64>,

    /// TOML file of per-user quotas: a table per user token with max_bytes and max_keys (a measure left out keeps the default, "unlimited" lifts it); read at startup
    #[arg(id = "quota_config.overrides_file", long = "quota-overrides-file",
          env = "VSS_QUOTA_OVERRIDES_FILE", value_name = "FILE",
          value_parser = parse::existing_file)]
    pub overrides_file: Option<PathBuf>,
}

/// The policy the settings give.
pub(crate) fn load(settings: QuotaSettings, origins: &Origins) -> Result<QuotaPolicy, ConfigError> {
    let default = Quota {
        max_bytes: settings.max_bytes_per_user,
        max_keys: settings.max_keys_per_user,
    };
    let mut policy = QuotaPolicy {
        default,
        users: Default::default(),
    };
    if let Some(path) = &settings.overrides_file {
        let invalid = |reason: String| ConfigError::Invalid {
            names: names_of::<QuotaSettings>("quota_config.overrides_file"),
            origin: origins
                .of(&origins.setting("quota_config.overrides_file"))
                .cloned()
                .unwrap_or(Origin::Flag),
            reason: format!("{}: {reason}", path.display()),
        };
        policy.users = overrides(path, default).map_err(invalid)?;
    }
    Ok(policy)
}

/// Reads the overrides file: `["<user token>"]` tables with `max_bytes` and
/// `max_keys`, each a whole number or `"unlimited"`; a measure left out keeps
/// `default`'s.
fn overrides(
    path: &Path,
    default: Quota,
) -> Result<std::collections::HashMap<String, Quota>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    let table: toml::Table = text.parse().map_err(|e| format!("not valid TOML: {e}"))?;
    let mut users = std::collections::HashMap::with_capacity(table.len());
    for (user, limits) in table {
        UserToken::new(user.as_str())
            .map_err(|e| format!("[\"{user}\"] is not a user token: {e}"))?;
        let limits = limits.as_table().ok_or_else(|| {
            format!("[\"{user}\"] must be a table with max_bytes and/or max_keys")
        })?;
        let mut quota = default;
        for (name, value) in limits {
            let limit =
                measure(value).map_err(|reason| format!("[\"{user}\"] {name}: {reason}"))?;
            match name.as_str() {
                "max_bytes" => quota.max_bytes = limit,
                "max_keys" => quota.max_keys = limit,
                other => {
                    return Err(format!(
                        "[\"{user}\"] has `{other}`; a user's quota has max_bytes and max_keys"
                    ))
                }
            }
        }
        users.insert(user, quota);
    }
    Ok(users)
}

fn measure(value: &toml::Value) -> Result<Option<u64>, String> {
    match value {
        toml::Value::Integer(n) => u64::try_from(*n)
            .map(Some)
            .map_err(|_| "must not be negative".to_string()),
        toml::Value::String(s) if s == "unlimited" => Ok(None),
        _ => Err("expected a whole number or \"unlimited\"".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(
        text: &str,
        default: Quota,
    ) -> Result<std::collections::HashMap<String, Quota>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quotas.toml");
        std::fs::write(&path, text).unwrap();
        overrides(&path, default)
    }

    #[test]
    fn an_override_keeps_the_default_of_a_measure_it_leaves_out() {
        let default = Quota {
            max_bytes: Some(100),
            max_keys: Some(10),
        };
        let users = read(
            "[\"02aa\"]\nmax_bytes = 5000\n\n[\"big\"]\nmax_bytes = \"unlimited\"\nmax_keys = \"unlimited\"\n",
            default,
        )
        .unwrap();
        assert_eq!(
            users["02aa"],
            Quota {
                max_bytes: Some(5000),
                max_keys: Some(10)
            }
        );
        assert_eq!(users["big"], Quota::UNLIMITED);
    }

    #[test]
    fn mistakes_in_the_overrides_file_are_named() {
        for (text, says) in [
            ("[\"u\"]\nmax_byte = 1\n", "max_byte"),
            ("[\"u\"]\nmax_bytes = -1\n", "negative"),
            ("[\"u\"]\nmax_bytes = \"lots\"\n", "unlimited"),
            ("u = 3\n", "must be a table"),
            ("[\"\"]\nmax_bytes = 1\n", "not a user token"),
            ("[u\n", "not valid TOML"),
        ] {
            let err = read(text, Quota::UNLIMITED).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }
}
