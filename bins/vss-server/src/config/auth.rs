//! Authentication settings: which methods are on (`VSS_AUTH`), JWT keys,
//! the signature clock window, and the built-in LNURL-auth token issuer.

use std::time::Duration;

use crate::settings::{parse, ConfigError, Origin, Origins, Setting};

/// The authentication settings as given (`[server_config] auth`,
/// `[jwt_auth_config]`, `[sigs_auth_config]`, `[lnurl_auth_config]`);
/// [`crate::Config::from_sources`] checks them together into an [`AuthConfig`].
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// Authentication methods, comma-separated: none, or any of jwt, sigs, lnurl [default: jwt when a JWT key is set, else none]
    #[arg(id = "server_config.auth", long = "auth", env = "VSS_AUTH", value_name = "METHODS",
          value_parser = methods)]
    pub methods: Option<Methods>,

    /// The public key(s) (PEM) that verify JWTs (name kept from the reference server)
    #[arg(id = "jwt_auth_config.rsa_pem", long = "jwt-rsa-pem", env = "VSS_JWT_RSA_PEM",
          hide = true, value_parser = jwt_public_keys)]
    pub jwt_rsa_pem: Option<String>,

    /// File with the public key(s) (PEM) that verify JWTs: RSA (RS256), EC P-256 (ES256) or Ed25519 (EdDSA), several for rotation
    #[arg(id = "jwt_auth_config.rsa_pem_file", long = "jwt-rsa-pem-file",
          env = "VSS_JWT_RSA_PEM_FILE", value_name = "FILE", value_parser = jwt_public_keys_file)]
    pub jwt_rsa_pem_file: Option<String>,

    /// The `aud` JWTs may carry; without it tokens carrying `aud` are refused
    #[arg(id = "jwt_auth_config.audience", long = "jwt-audience", env = "VSS_JWT_AUDIENCE",
          value_name = "AUDIENCE", value_parser = parse::non_empty)]
    pub jwt_audience: Option<String>,

    /// The `iss` JWTs must carry [default: not checked]
    #[arg(id = "jwt_auth_config.issuer", long = "jwt-issuer", env = "VSS_JWT_ISSUER",
          value_name = "ISSUER", value_parser = parse::non_empty)]
    pub jwt_issuer: Option<String>,

    /// The JWT issuer verifies the holder of the secp256k1 key each `sub` names (an LNURL-auth server), so its tokens may name users of signature auth
    #[arg(id = "jwt_auth_config.key_holder_subjects", long = "jwt-key-holder-subjects",
          env = "VSS_JWT_KEY_HOLDER_SUBJECTS", value_name = "BOOL", value_parser = parse::boolean)]
    pub jwt_key_holder_subjects: Option<bool>,

    /// Seconds a signature header's time may be from the server's clock
    #[arg(id = "sigs_auth_config.max_clock_skew_secs", long = "sigs-max-clock-skew-secs",
          env = "VSS_SIGS_MAX_CLOCK_SKEW_SECS", value_name = "SECS",
          default_value_t = vss_auth::DEFAULT_SIGS_MAX_CLOCK_SKEW.as_secs(),
          value_parser = parse::whole_number)]
    pub sigs_max_clock_skew_secs: u64,

    /// The private key (PEM) that signs LNURL-auth tokens
    #[arg(id = "lnurl_auth_config.private_key_pem", long = "lnurl-auth-private-key-pem",
          env = "VSS_LNURL_AUTH_PRIVATE_KEY_PEM", hide = true, hide_env_values = true,
          value_parser = lnurl_private_key)]
    pub lnurl_private_key_pem: Option<String>,

    /// File with the private key (PEM) that signs LNURL-auth tokens
    #[arg(id = "lnurl_auth_config.private_key_file", long = "lnurl-auth-private-key-file",
          env = "VSS_LNURL_AUTH_PRIVATE_KEY_FILE", value_name = "FILE",
          value_parser = lnurl_private_key_file)]
    pub lnurl_private_key_file: Option<String>,

    /// Path of the LNURL-auth issuer
    #[arg(id = "lnurl_auth_config.path", long = "lnurl-auth-path", env = "VSS_LNURL_AUTH_PATH",
          value_name = "PATH", default_value = vss_auth::DEFAULT_LNURL_AUTH_PATH,
          value_parser = lnurl_path)]
    pub lnurl_path: String,

    /// Public URL of the LNURL-auth issuer, as clients reach it [default: http:// + the request's Host + the path]
    #[arg(id = "lnurl_auth_config.public_url", long = "lnurl-auth-public-url",
          env = "VSS_LNURL_AUTH_PUBLIC_URL", value_name = "URL", value_parser = lnurl_public_url)]
    pub lnurl_public_url: Option<String>,

    /// Lifetime of issued tokens in seconds
    #[arg(id = "lnurl_auth_config.token_ttl_secs", long = "lnurl-auth-token-ttl-secs",
          env = "VSS_LNURL_AUTH_TOKEN_TTL_SECS", value_name = "SECS",
          default_value_t = vss_auth::DEFAULT_TOKEN_TTL.as_secs(), value_parser = parse::positive)]
    pub lnurl_token_ttl_secs: u64,

    /// Seconds a challenge (k1) can be answered
    #[arg(id = "lnurl_auth_config.challenge_ttl_secs", long = "lnurl-auth-challenge-ttl-secs",
          env = "VSS_LNURL_AUTH_CHALLENGE_TTL_SECS", value_name = "SECS",
          default_value_t = vss_auth::DEFAULT_CHALLENGE_TTL.as_secs(), value_parser = parse::positive)]
    pub lnurl_challenge_ttl_secs: u64,

    /// No longer used: challenges are stateless (accepted so older configurations still load)
    #[arg(id = "lnurl_auth_config.max_challenges", long = "lnurl-auth-max-challenges",
          env = "VSS_LNURL_AUTH_MAX_CHALLENGES", value_name = "COUNT",
          value_parser = parse::positive_count, hide = true)]
    pub lnurl_max_challenges: Option<usize>,
}

/// The methods `server_config.auth` names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Methods {
    none: bool,
    jwt: bool,
    sigs: bool,
    lnurl: bool,
}

impl std::fmt::Display for Methods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let on = [
            (self.none, "none"),
            (self.jwt, "jwt"),
            (self.sigs, "sigs"),
            (self.lnurl, "lnurl"),
        ];
        let names: Vec<&str> = on.iter().filter(|m| m.0).map(|m| m.1).collect();
        f.write_str(&names.join(","))
    }
}

fn methods(s: &str) -> Result<Methods, String> {
    let mut chosen = Methods::default();
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

/// Public keys that verify JWTs, checked now so a bad or short key stops startup.
fn jwt_public_keys(pem: &str) -> Result<String, String> {
    vss_auth::JwtKey::parse_public_pems(pem).map_err(|e| e.to_string())?;
    Ok(pem.to_string())
}

fn jwt_public_keys_file(path: &str) -> Result<String, String> {
    jwt_public_keys(&parse::key_file(path)?)
}

/// The issuer's signing key, checked now (the reason never holds the key).
fn lnurl_private_key(pem: &str) -> Result<String, String> {
    vss_auth::JwtKey::from_private_pem(pem).map_err(|e| e.to_string())?;
    Ok(pem.to_string())
}

fn lnurl_private_key_file(path: &str) -> Result<String, String> {
    lnurl_private_key(&parse::key_file(path)?)
}

fn lnurl_path(p: &str) -> Result<String, String> {
    if p.starts_with('/') && !p.contains(['?', '#']) && !p.contains(char::is_whitespace) {
        Ok(p.to_string())
    } else {
        Err("must start with `/` and hold no `?`, `#` or whitespace".into())
    }
}

fn lnurl_public_url(s: &str) -> Result<String, String> {
    parse::http_url(s, "https://vss.example.com/lnurl-auth")
}

/// How authentication works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// None: every request is one fixed user. Loopback only unless allowed.
    Unauthenticated,
    /// Any of JWT (several keys, RS256/ES256/EdDSA), signature auth and the
    /// LNURL-auth token issuer, picked per request by the header's form.
    Methods(AuthMethods),
}

impl AuthConfig {
    /// JWT only, verified by the public key(s) in `public_keys_pem`: the
    /// reference server's configuration.
    pub fn jwt(public_keys_pem: impl Into<String>) -> Self {
        AuthConfig::Methods(AuthMethods {
            jwt: Some(JwtSettings {
                public_keys_pem: Some(public_keys_pem.into()),
                ..JwtSettings::default()
            }),
            sigs: None,
            lnurl: None,
        })
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
    /// Whether the keys' issuer verifies the holder of the public key each
    /// `sub` names, so that its tokens may name signature-auth users.
    pub key_holder_subjects: bool,
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
}

/// Checks the authentication settings together: the methods chosen, and the
/// keys and options each needs or excludes. `configured` says whether the
/// server is configured at all (a config file or backend settings), which
/// decides the default. Returns the configuration and why it was chosen.
pub(super) fn load(
    s: AuthSettings,
    origins: &Origins,
    configured: bool,
) -> Result<(AuthConfig, String), ConfigError> {
    let auth = origins.setting("server_config.auth");
    let (rsa_pem, rsa_pem_file) = (
        origins.setting("jwt_auth_config.rsa_pem"),
        origins.setting("jwt_auth_config.rsa_pem_file"),
    );
    let (lnurl_pem, lnurl_file) = (
        origins.setting("lnurl_auth_config.private_key_pem"),
        origins.setting("lnurl_auth_config.private_key_file"),
    );
    let only_one = |a: &Setting, b: &Setting| {
        origins.exclusive(
            a,
            &[*b],
            "set only one of the two: the key inline or its file",
        )
    };
    only_one(&rsa_pem, &rsa_pem_file)?;
    only_one(&lnurl_pem, &lnurl_file)?;
    let keys = s.jwt_rsa_pem.or(s.jwt_rsa_pem_file);
    let lnurl_key = s.lnurl_private_key_pem.or(s.lnurl_private_key_file);
    let (audience, issuer) = (s.jwt_audience, s.jwt_issuer);

    // Unset: JWT when a key is set; else, once anything is configured,
    // signature auth (both as the reference server); else (the zero-setup
    // local run, loopback only) none.
    let (methods, why) = match s.methods {
        Some(methods) => {
            let origin = origins.of(&auth).cloned().unwrap_or(Origin::Flag);
            (
                methods,
                format!("{methods}, as {} says ({origin})", auth.names()),
            )
        }
        None if keys.is_some() => (
            Methods {
                jwt: true,
                ..Methods::default()
            },
            format!("jwt: a JWT key is set and {} is not", auth.names()),
        ),
        None if configured => (
            Methods {
                sigs: true,
                ..Methods::default()
            },
            format!(
                "sigs: the default once a config file or backend settings are given and no \
                 JWT key is (as the reference server); {} chooses others",
                auth.names()
            ),
        ),
        None => (
            Methods {
                none: true,
                ..Methods::default()
            },
            format!(
                "none: nothing is configured (the local zero-setup run); {} chooses methods",
                auth.names()
            ),
        ),
    };
    if methods.none {
        let stray = [
            rsa_pem,
            rsa_pem_file,
            lnurl_pem,
            lnurl_file,
            origins.setting("jwt_auth_config.audience"),
            origins.setting("jwt_auth_config.issuer"),
            origins.setting("jwt_auth_config.key_holder_subjects"),
        ];
        if let Some(setting) = origins.set_among(&stray).first() {
            return Err(ConfigError::Conflict(format!(
                "{} is set but authentication is off ({why}): set {} to the methods to use",
                setting.names(),
                auth.names()
            )));
        }
        return Ok((AuthConfig::Unauthenticated, why));
    }
    if methods.jwt && keys.is_none() && !methods.lnurl {
        return Err(ConfigError::Conflict(format!(
            "{} includes jwt but no JWT key is set ({} or {})",
            auth.names(),
            rsa_pem.names(),
            rsa_pem_file.names()
        )));
    }
    if !methods.jwt
        && !methods.lnurl
        && (keys.is_some()
            || audience.is_some()
            || issuer.is_some()
            || s.jwt_key_holder_subjects.is_some())
    {
        return Err(ConfigError::Conflict(format!(
            "JWT settings are set but {} includes neither jwt nor lnurl",
            auth.names()
        )));
    }
    let lnurl = match (methods.lnurl, lnurl_key) {
        (true, Some(private_key_pem)) => Some(LnurlSettings {
            private_key_pem,
            path: s.lnurl_path,
            public_url: s.lnurl_public_url,
            token_ttl: Duration::from_secs(s.lnurl_token_ttl_secs),
            challenge_ttl: Duration::from_secs(s.lnurl_challenge_ttl_secs),
        }),
        (true, None) => {
            return Err(ConfigError::Conflict(format!(
                "{} includes lnurl but no signing key is set ({} or {})",
                auth.names(),
                lnurl_pem.names(),
                lnurl_file.names()
            )))
        }
        (false, Some(_)) => {
            return Err(ConfigError::Conflict(format!(
                "an LNURL-auth signing key is set but {} does not include lnurl",
                auth.names()
            )))
        }
        (false, None) => None,
    };
    let config = AuthConfig::Methods(AuthMethods {
        jwt: (methods.jwt || methods.lnurl).then_some(JwtSettings {
            public_keys_pem: keys,
            audience,
            issuer,
            key_holder_subjects: s.jwt_key_holder_subjects.unwrap_or(false),
        }),
        sigs: methods.sigs.then_some(SigsSettings {
            max_clock_skew: Duration::from_secs(s.sigs_max_clock_skew_secs),
        }),
        lnurl,
    });
    let mut why = why;
    if s.lnurl_max_challenges.is_some() {
        why.push_str(&format!(
            "; {} is no longer used (LNURL-auth challenges are stateless) and is ignored",
            origins.setting("lnurl_auth_config.max_challenges").names()
        ));
    }
    Ok((config, why))
}
