//! Authentication settings: which methods are on (`VSS_AUTH`), JWT keys,
//! the signature clock window, and the built-in LNURL-auth token issuer.

use std::time::Duration;

use super::{parse_u64, secret, setting, AuthConfig, ConfigError, Origin, Setting, Sources};

/// `server_config.auth`: the authentication methods, a list of `none`, `jwt`, `sigs`, `lnurl`.
pub const AUTH: Setting = setting("server_config.auth", "VSS_AUTH", "--auth");
/// `jwt_auth_config.rsa_pem`: JWT public keys in PEM form (name kept from the reference server).
pub const JWT_RSA_PEM: Setting = Setting {
    file_key: "jwt_auth_config.rsa_pem",
    env: "VSS_JWT_RSA_PEM",
    flag: None,
    secret: false,
};
/// `jwt_auth_config.rsa_pem_file`.
pub const JWT_RSA_PEM_FILE: Setting = setting(
    "jwt_auth_config.rsa_pem_file",
    "VSS_JWT_RSA_PEM_FILE",
    "--jwt-rsa-pem-file",
);
/// `jwt_auth_config.audience`.
pub const JWT_AUDIENCE: Setting = setting(
    "jwt_auth_config.audience",
    "VSS_JWT_AUDIENCE",
    "--jwt-audience",
);
/// `jwt_auth_config.issuer`.
pub const JWT_ISSUER: Setting = setting("jwt_auth_config.issuer", "VSS_JWT_ISSUER", "--jwt-issuer");
/// `sigs_auth_config.max_clock_skew_secs`.
pub const SIGS_MAX_CLOCK_SKEW_SECS: Setting = setting(
    "sigs_auth_config.max_clock_skew_secs",
    "VSS_SIGS_MAX_CLOCK_SKEW_SECS",
    "--sigs-max-clock-skew-secs",
);
/// `lnurl_auth_config.private_key_pem` (secret: no flag, never echoed).
pub const LNURL_PRIVATE_KEY_PEM: Setting = secret(
    "lnurl_auth_config.private_key_pem",
    "VSS_LNURL_AUTH_PRIVATE_KEY_PEM",
);
/// `lnurl_auth_config.private_key_file`.
pub const LNURL_PRIVATE_KEY_FILE: Setting = setting(
    "lnurl_auth_config.private_key_file",
    "VSS_LNURL_AUTH_PRIVATE_KEY_FILE",
    "--lnurl-auth-private-key-file",
);
/// `lnurl_auth_config.path`.
pub const LNURL_PATH: Setting = setting(
    "lnurl_auth_config.path",
    "VSS_LNURL_AUTH_PATH",
    "--lnurl-auth-path",
);
/// `lnurl_auth_config.public_url`.
pub const LNURL_PUBLIC_URL: Setting = setting(
    "lnurl_auth_config.public_url",
    "VSS_LNURL_AUTH_PUBLIC_URL",
    "--lnurl-auth-public-url",
);
/// `lnurl_auth_config.token_ttl_secs`.
pub const LNURL_TOKEN_TTL_SECS: Setting = setting(
    "lnurl_auth_config.token_ttl_secs",
    "VSS_LNURL_AUTH_TOKEN_TTL_SECS",
    "--lnurl-auth-token-ttl-secs",
);
/// `lnurl_auth_config.challenge_ttl_secs`.
pub const LNURL_CHALLENGE_TTL_SECS: Setting = setting(
    "lnurl_auth_config.challenge_ttl_secs",
    "VSS_LNURL_AUTH_CHALLENGE_TTL_SECS",
    "--lnurl-auth-challenge-ttl-secs",
);
/// `lnurl_auth_config.max_challenges`.
pub const LNURL_MAX_CHALLENGES: Setting = setting(
    "lnurl_auth_config.max_challenges",
    "VSS_LNURL_AUTH_MAX_CHALLENGES",
    "--lnurl-auth-max-challenges",
);

/// The authentication settings, in [`super::SETTINGS`] order.
pub(super) const AUTH_SETTINGS: [Setting; 13] = [
    AUTH,
    JWT_RSA_PEM,
    JWT_RSA_PEM_FILE,
    JWT_AUDIENCE,
    JWT_ISSUER,
    SIGS_MAX_CLOCK_SKEW_SECS,
    LNURL_PRIVATE_KEY_PEM,
    LNURL_PRIVATE_KEY_FILE,
    LNURL_PATH,
    LNURL_PUBLIC_URL,
    LNURL_TOKEN_TTL_SECS,
    LNURL_CHALLENGE_TTL_SECS,
    LNURL_MAX_CHALLENGES,
];

/// The command-line flags of the authentication settings.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct AuthCli {
    /// Authentication methods, comma-separated: none, or any of jwt, sigs, lnurl [env: VSS_AUTH] [default: jwt when a JWT key is set, else none]
    #[arg(long, value_name = "METHODS")]
    pub auth: Option<String>,

    /// File with the public key(s) (PEM) that verify JWTs: RSA (RS256), EC P-256 (ES256) or Ed25519 (EdDSA), several for rotation [env: VSS_JWT_RSA_PEM_FILE]
    #[arg(long, value_name = "FILE")]
    pub jwt_rsa_pem_file: Option<String>,

    /// The `aud` JWTs may carry; without it tokens carrying `aud` are refused [env: VSS_JWT_AUDIENCE]
    #[arg(long, value_name = "AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// The `iss` JWTs must carry [env: VSS_JWT_ISSUER] [default: not checked]
    #[arg(long, value_name = "ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Seconds a signature header's time may be from the server's clock [env: VSS_SIGS_MAX_CLOCK_SKEW_SECS] [default: 86400]
    #[arg(long, value_name = "SECS")]
    pub sigs_max_clock_skew_secs: Option<String>,

    /// File with the private key (PEM) that signs LNURL-auth tokens [env: VSS_LNURL_AUTH_PRIVATE_KEY_FILE]
    #[arg(long, value_name = "FILE")]
    pub lnurl_auth_private_key_file: Option<String>,

    /// Path of the LNURL-auth issuer [env: VSS_LNURL_AUTH_PATH] [default: /lnurl-auth]
    #[arg(long, value_name = "PATH")]
    pub lnurl_auth_path: Option<String>,

    /// Public URL of the LNURL-auth issuer, as clients reach it [env: VSS_LNURL_AUTH_PUBLIC_URL] [default: http:// + the request's Host + the path]
    #[arg(long, value_name = "URL")]
    pub lnurl_auth_public_url: Option<String>,

    /// Lifetime of issued tokens in seconds [env: VSS_LNURL_AUTH_TOKEN_TTL_SECS] [default: 86400]
    #[arg(long, value_name = "SECS")]
    pub lnurl_auth_token_ttl_secs: Option<String>,

    /// Seconds a challenge (k1) can be answered [env: VSS_LNURL_AUTH_CHALLENGE_TTL_SECS] [default: 300]
    #[arg(long, value_name = "SECS")]
    pub lnurl_auth_challenge_ttl_secs: Option<String>,

    /// Most unanswered challenges kept in memory [env: VSS_LNURL_AUTH_MAX_CHALLENGES] [default: 10000]
    #[arg(long, value_name = "COUNT")]
    pub lnurl_auth_max_challenges: Option<String>,
}

impl AuthCli {
    pub(super) fn flag_value(&self, setting: &Setting) -> Option<String> {
        let value = match setting.env {
            "VSS_AUTH" => &self.auth,
            "VSS_JWT_RSA_PEM_FILE" => &self.jwt_rsa_pem_file,
            "VSS_JWT_AUDIENCE" => &self.jwt_audience,
            "VSS_JWT_ISSUER" => &self.jwt_issuer,
            "VSS_SIGS_MAX_CLOCK_SKEW_SECS" => &self.sigs_max_clock_skew_secs,
            "VSS_LNURL_AUTH_PRIVATE_KEY_FILE" => &self.lnurl_auth_private_key_file,
            "VSS_LNURL_AUTH_PATH" => &self.lnurl_auth_path,
            "VSS_LNURL_AUTH_PUBLIC_URL" => &self.lnurl_auth_public_url,
            "VSS_LNURL_AUTH_TOKEN_TTL_SECS" => &self.lnurl_auth_token_ttl_secs,
            "VSS_LNURL_AUTH_CHALLENGE_TTL_SECS" => &self.lnurl_auth_challenge_ttl_secs,
            "VSS_LNURL_AUTH_MAX_CHALLENGES" => &self.lnurl_auth_max_challenges,
            _ => return None,
        };
        value.clone()
    }
}

/// Several authentication methods (see [`AuthConfig::Methods`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthMethods {
    /// `Authorization: Bearer <jwt>`, when on.
    pub jwt: Option<JwtSettings>,
    /// Signature headers, when on.
    pub sigs: Option<SigsSettings>,
    /// The LNURL-auth token issuer, when on (its tokens are accepted as JWTs).
    pub lnurl: Option<LnurlSettings>,
}

/// JWT verification.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JwtSettings {
    /// Public keys in PEM form (several blocks allowed); `None` when only the
    /// LNURL issuer's tokens are accepted.
    pub public_keys_pem: Option<String>,
    /// The accepted `aud`, if any.
    pub audience: Option<String>,
    /// The required `iss`, if any.
    pub issuer: Option<String>,
}

/// Signature auth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigsSettings {
    /// How far a signing time may be from the server's clock.
    pub max_clock_skew: Duration,
}

/// The LNURL-auth token issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LnurlSettings {
    /// The signing key in PEM form.
    pub private_key_pem: String,
    /// The path it is served on.
    pub path: String,
    /// The callback URL given to clients; `None`: from the request's `Host`.
    pub public_url: Option<String>,
    /// Lifetime of issued tokens.
    pub token_ttl: Duration,
    /// How long a challenge can be answered.
    pub challenge_ttl: Duration,
    /// Most unanswered challenges kept.
    pub max_challenges: usize,
}

fn non_empty(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(s.to_string())
    }
}

fn origin_of(sources: &Sources<'_>, setting: &Setting) -> Result<Origin, ConfigError> {
    Ok(sources
        .raw(setting)?
        .map(|(_, origin)| origin)
        .unwrap_or(Origin::Env))
}

/// An inline value or a file, at most one of the two.
fn inline_or_file(
    sources: &Sources<'_>,
    inline: &Setting,
    file: &Setting,
) -> Result<Option<(String, Setting)>, ConfigError> {
    let from_inline = sources.string(inline)?;
    let from_file = sources.get(file, |path| {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read the key file: {e}"))
    })?;
    match (from_inline, from_file) {
        (Some(_), Some(_)) => Err(ConfigError::Conflict(format!(
            "set only one of {} and {}",
            inline.names(),
            file.names()
        ))),
        (Some(pem), None) => Ok(Some((pem, *inline))),
        (None, Some(pem)) => Ok(Some((pem, *file))),
        (None, None) => Ok(None),
    }
}

#[derive(Debug, Default)]
struct Chosen {
    none: bool,
    jwt: bool,
    sigs: bool,
    lnurl: bool,
}

fn parse_methods(s: &str) -> Result<Chosen, String> {
    let mut chosen = Chosen::default();
    for name in s.split([',', ' ']).filter(|n| !n.is_empty()) {
        match name.to_ascii_lowercase().as_str() {
            "none" => chosen.none = true,
            "jwt" => chosen.jwt = true,
            "sigs" => chosen.sigs = true,
            "lnurl" | "lnurl-auth" => chosen.lnurl = true,
            other => {
                return Err(format!(
                    "unknown method `{other}` (known: none, jwt, sigs, lnurl)"
                ))
            }
        }
    }
    if chosen.none && (chosen.jwt || chosen.sigs || chosen.lnurl) {
        return Err("`none` cannot be combined with other methods".into());
    }
    if !(chosen.none || chosen.jwt || chosen.sigs || chosen.lnurl) {
        return Err("name at least one method".into());
    }
    Ok(chosen)
}

fn parse_secs_allow_zero(s: &str) -> Result<Duration, String> {
    parse_u64(s).map(Duration::from_secs)
}

fn parse_positive_secs(s: &str) -> Result<Duration, String> {
    match parse_u64(s)? {
        0 => Err("must be at least 1 second".into()),
        secs => Ok(Duration::from_secs(secs)),
    }
}

/// Reads the authentication settings.
pub(super) fn load(sources: &Sources<'_>) -> Result<AuthConfig, ConfigError> {
    let methods = sources.get(&AUTH, parse_methods)?;
    let keys = inline_or_file(sources, &JWT_RSA_PEM, &JWT_RSA_PEM_FILE)?;
    // Check the keys now, so a bad or short key stops startup naming the setting.
    if let Some((pem, setting)) = &keys {
        if let Err(err) = vss_auth::JwtKey::parse_public_pems(pem) {
            return Err(ConfigError::Invalid {
                names: setting.names(),
                origin: origin_of(sources, setting)?,
                reason: err.to_string(),
            });
        }
    }
    let audience = sources.get(&JWT_AUDIENCE, non_empty)?;
    let issuer = sources.get(&JWT_ISSUER, non_empty)?;
    let lnurl_key = inline_or_file(sources, &LNURL_PRIVATE_KEY_PEM, &LNURL_PRIVATE_KEY_FILE)?;

    let methods = match methods {
        Some(methods) => methods,
        // Unset: JWT when a key is configured (as before), else none.
        None => Chosen {
            none: keys.is_none(),
            jwt: keys.is_some(),
            ..Chosen::default()
        },
    };
    if methods.none {
        let stray = [
            &JWT_RSA_PEM,
            &JWT_RSA_PEM_FILE,
            &LNURL_PRIVATE_KEY_PEM,
            &LNURL_PRIVATE_KEY_FILE,
        ]
        .into_iter()
        .chain([&JWT_AUDIENCE, &JWT_ISSUER]);
        for setting in stray {
            if sources.raw(setting)?.is_some() {
                return Err(ConfigError::Conflict(format!(
                    "{} is set but authentication is off ({} is `none` or unset with no JWT key): \
                     set {} to the methods to use",
                    setting.names(),
                    AUTH.names(),
                    AUTH.names()
                )));
            }
        }
        return Ok(AuthConfig::Unauthenticated);
    }
    if methods.jwt && keys.is_none() && !methods.lnurl {
        return Err(ConfigError::Conflict(format!(
            "{} includes jwt but no JWT key is set ({} or {})",
            AUTH.names(),
            JWT_RSA_PEM.names(),
            JWT_RSA_PEM_FILE.names()
        )));
    }
    if !methods.jwt && !methods.lnurl && (keys.is_some() || audience.is_some() || issuer.is_some())
    {
        return Err(ConfigError::Conflict(format!(
            "JWT settings are set but {} includes neither jwt nor lnurl",
            AUTH.names()
        )));
    }
    let lnurl = if methods.lnurl {
        let Some((private_key_pem, key_setting)) = lnurl_key else {
            return Err(ConfigError::Conflict(format!(
                "{} includes lnurl but no signing key is set ({} or {})",
                AUTH.names(),
                LNURL_PRIVATE_KEY_PEM.names(),
                LNURL_PRIVATE_KEY_FILE.names()
            )));
        };
        if let Err(err) = vss_auth::JwtKey::from_private_pem(&private_key_pem) {
            return Err(ConfigError::Invalid {
                names: key_setting.names(),
                origin: origin_of(sources, &key_setting)?,
                // Never the key itself.
                reason: err.to_string(),
            });
        }
        Some(LnurlSettings {
            private_key_pem,
            path: sources
                .get(&LNURL_PATH, |p| {
                    if p.starts_with('/') && !p.contains(['?', '#']) && !p.contains(char::is_whitespace) {
                        Ok(p.to_string())
                    } else {
                        Err("must start with `/` and hold no `?`, `#` or whitespace".into())
                    }
                })?
                .unwrap_or_else(|| vss_auth::DEFAULT_LNURL_AUTH_PATH.to_string()),
            public_url: sources.get(&LNURL_PUBLIC_URL, |s| match s.split_once("://") {
                Some(("http" | "https", rest)) if !rest.is_empty() && !rest.starts_with('/') => {
                    Ok(s.to_string())
                }
                _ => Err("expected an http:// or https:// URL such as https://vss.example.com/lnurl-auth".into()),
            })?,
            token_ttl: sources
                .get(&LNURL_TOKEN_TTL_SECS, parse_positive_secs)?
                .unwrap_or(vss_auth::DEFAULT_TOKEN_TTL),
            challenge_ttl: sources
                .get(&LNURL_CHALLENGE_TTL_SECS, parse_positive_secs)?
                .unwrap_or(vss_auth::DEFAULT_CHALLENGE_TTL),
            max_challenges: sources
                .get(&LNURL_MAX_CHALLENGES, |s| match parse_u64(s)? {
                    0 => Err("must be at least 1".to_string()),
                    n => usize::try_from(n).map_err(|_| "too large".to_string()),
                })?
                .unwrap_or(vss_auth::DEFAULT_MAX_CHALLENGES),
        })
    } else {
        if lnurl_key.is_some() {
            return Err(ConfigError::Conflict(format!(
                "an LNURL-auth signing key is set but {} does not include lnurl",
                AUTH.names()
            )));
        }
        None
    };
    let sigs = if methods.sigs {
        Some(SigsSettings {
            max_clock_skew: sources
                .get(&SIGS_MAX_CLOCK_SKEW_SECS, parse_secs_allow_zero)?
                .unwrap_or(vss_auth::DEFAULT_SIGS_MAX_CLOCK_SKEW),
        })
    } else {
        None
    };
    let keys = keys.map(|(pem, _)| pem);

    // Only JWT with no issuer: the reference server's configuration, as before.
    if methods.jwt && !methods.sigs && !methods.lnurl && issuer.is_none() {
        if let Some(rsa_pem) = keys {
            return Ok(AuthConfig::Jwt { rsa_pem, audience });
        }
    }
    Ok(AuthConfig::Methods(AuthMethods {
        jwt: (methods.jwt || methods.lnurl).then_some(JwtSettings {
            public_keys_pem: keys,
            audience,
            issuer,
        }),
        sigs,
        lnurl,
    }))
}
