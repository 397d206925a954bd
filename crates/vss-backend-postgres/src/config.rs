//! Where the database is and how to reach it.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::PostgresError;

/// Whether connections to PostgreSQL use TLS.
///
/// TLS connections always verify the server's certificate: against
/// [`PostgresConfig::ca_file`] when set, else against the Mozilla roots
/// (`webpki-roots`), and in both cases against [`PostgresConfig::ca_pem`]. The server name checked is the host of
/// [`PostgresConfig::address`] (a DNS name or an IP address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Plain TCP (or a Unix socket). For a database on the same host or a private network.
    #[default]
    Disable,
    /// TLS when the server offers it, plain text when it does not. A server that
    /// offers TLS with a certificate that does not verify is refused, not used in plain text.
    Prefer,
    /// TLS only; a server without TLS, or with a certificate that does not verify, is refused.
    Require,
}

/// How to reach PostgreSQL, and how the pool behaves.
///
/// Build it from fields (the reference server's settings: user name, password,
/// `host:port` address, default database, VSS database) or from a URL with
/// [`PostgresConfig::from_url`].
///
/// ```
/// use vss_backend_postgres::{PostgresConfig, TlsMode};
///
/// let config = PostgresConfig {
///     address: "db.internal:5432".into(),
///     username: "vss".into(),
///     password: Some("secret".into()),
///     default_database: "postgres".into(),
///     database: "vss".into(),
///     create_database: true,
///     tls: TlsMode::Require,
///     ca_file: Some("/etc/vss/db-ca.pem".into()),
///     ..PostgresConfig::default()
/// };
/// # let _ = config;
/// let from_url = PostgresConfig::from_url("postgres://vss:secret@localhost:5432/vss?sslmode=require").unwrap();
/// assert_eq!(from_url.tls, TlsMode::Require);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// The server: `host:port`, `host` (port 5432), `[ipv6]:port`, or the
    /// directory of a Unix socket (a path starting with `/`, port 5432 or `/dir:port`).
    pub address: String,
    /// The user to log in as.
    pub username: String,
    /// The password, if the server asks for one.
    pub password: Option<String>,
    /// The database holding VSS data.
    pub database: String,
    /// The database to connect to when `database` must be created (usually `postgres`).
    pub default_database: String,
    /// Whether to create `database` (connecting to `default_database`) when it is missing.
    /// The user then needs the `CREATEDB` privilege.
    pub create_database: bool,
    /// TLS to the database.
    pub tls: TlsMode,
    /// A PEM file of the CA certificate(s) that sign the server's certificate; when unset,
    /// the Mozilla roots are trusted.
    pub ca_file: Option<PathBuf>,
    /// CA certificate(s) as PEM text, trusted in addition to the others (the reference
    /// server's `crt_pem`, which adds a root certificate).
    pub ca_pem: Option<String>,
    /// Most connections the pool keeps open. A quarter of them (none below
    /// four) are shared by reads, many in flight on each; the rest serve one
    /// request at a time (see the crate documentation, "Round trips").
    pub max_connections: usize,
    /// Time allowed to open one connection (TCP, TLS and login).
    pub connect_timeout: Duration,
    /// Time a request waits for a free pooled connection before failing with an internal error.
    pub wait_timeout: Duration,
    /// Server-side limit on one statement (`statement_timeout`, sent as a startup option);
    /// `None` keeps the server's setting (needed behind poolers that refuse startup options).
    pub statement_timeout: Option<Duration>,
    /// Idle time after which TCP keepalives probe a connection, so that a dead peer is noticed.
    pub keepalive_idle: Duration,
}

impl Default for PostgresConfig {
    /// The reference server's defaults: `postgres@localhost:5432`, database `vss`,
    /// created from `postgres` if missing, no TLS.
    fn default() -> Self {
        PostgresConfig {
            address: "localhost:5432".into(),
            username: "postgres".into(),
            password: None,
            database: "vss".into(),
            default_database: "postgres".into(),
            create_database: true,
            tls: TlsMode::Disable,
            ca_file: None,
            ca_pem: None,
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(10),
            statement_timeout: Some(Duration::from_secs(30)),
            keepalive_idle: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for PostgresConfig {
    // Written out to keep the password out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("address", &self.address)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("default_database", &self.default_database)
            .field("create_database", &self.create_database)
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<PEM>"))
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("wait_timeout", &self.wait_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("keepalive_idle", &self.keepalive_idle)
            .finish()
    }
}

impl PostgresConfig {
    /// Reads a libpq-style URL, `postgres://user:password@host:port/database?sslmode=...`
    /// (or a `key=value` connection string).
    ///
    /// Understood parameters: those of `tokio-postgres` (`sslmode` = `disable`,
    /// `prefer` or `require`, `connect_timeout`, ...), plus `sslmode=verify-ca` and
    /// `verify-full` (both mean [`TlsMode::Require`]: certificates are always verified)
    /// and `sslrootcert=<path>` ([`PostgresConfig::ca_file`]). The database defaults
    /// to the user name, as in libpq; `create_database` is off. Only the first host is used.
    pub fn from_url(url: &str) -> Result<Self, PostgresError> {
        let (rest, ca_file, verify) = take_libpq_only_params(url);
        let parsed = tokio_postgres::Config::from_str(&rest)
            .map_err(|e| PostgresError::Config(format!("invalid PostgreSQL URL: {e}")))?;
        let port = parsed.get_ports().first().copied().unwrap_or(5432);
        let address = match parsed.get_hosts().first() {
            None => format!("localhost:{port}"),
            Some(Host::Tcp(host)) if host.contains(':') => format!("[{host}]:{port}"),
            Some(Host::Tcp(host)) => format!("{host}:{port}"),
            #[cfg(unix)]
            Some(Host::Unix(path)) => format!("{}:{port}", path.display()),
        };
        let username = parsed.get_user().unwrap_or("postgres").to_string();
        let password = match parsed.get_password() {
            Some(bytes) => Some(
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| PostgresError::Config("the password is not UTF-8".into()))?,
            ),
            None => None,
        };
        let tls = match (verify, parsed.get_ssl_mode()) {
            (true, _) | (_, SslMode::Require) => TlsMode::Require,
            (_, SslMode::Prefer) => TlsMode::Prefer,
            _ => TlsMode::Disable,
        };
        let defaults = PostgresConfig::default();
        Ok(PostgresConfig {
            address,
            database: parsed.get_dbname().unwrap_or(&username).to_string(),
            username,
            password,
            create_database: false,
            tls,
            ca_file,
            connect_timeout: parsed
                .get_connect_timeout()
                .copied()
                .unwrap_or(defaults.connect_timeout),
            ..defaults
        })
    }

    /// The `tokio-postgres` configuration for a connection to `database`.
    pub(crate) fn pg_config(
        &self,
        database: &str,
    ) -> Result<tokio_postgres::Config, PostgresError> {
        let (host, port) = split_address(&self.address)?;
        let mut pg = tokio_postgres::Config::new();
        pg.host(host)
            .port(port)
            .user(&self.username)
            .dbname(database)
            .application_name("vss-rs")
            .ssl_mode(match self.tls {
                TlsMode::Disable => SslMode::Disable,
                TlsMode::Prefer => SslMode::Prefer,
                TlsMode::Require => SslMode::Require,
            })
            .connect_timeout(self.connect_timeout)
            .keepalives(true)
            .keepalives_idle(self.keepalive_idle)
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3);
        // Unacknowledged writes to a dead peer fail after this long instead of the kernel's ~15 minutes.
        #[cfg(target_os = "linux")]
        pg.tcp_user_timeout(self.keepalive_idle);
        if let Some(password) = &self.password {
            pg.password(password);
        }
        if let Some(timeout) = self.statement_timeout {
            pg.options(format!("-c statement_timeout={}", timeout.as_millis()));
        }
        Ok(pg)
    }

    /// Checks the TLS settings (the CA certificates parse) without connecting.
    pub fn check_tls(&self) -> Result<(), PostgresError> {
        self.tls_connector().map(|_| ())
    }

    /// The TLS connector: used only when [`PostgresConfig::tls`] asks for TLS.
    pub(crate) fn tls_connector(&self) -> Result<MakeRustlsConnect, PostgresError> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|iter| iter.collect::<Result<Vec<_>, _>>());
                add_roots(&mut roots, certs, &path.display().to_string())?;
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        if let Some(pem) = &self.ca_pem {
            let certs = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
            add_roots(&mut roots, certs, "the inline PEM certificate")?;
        }
        // An explicit provider: the process-wide default may be unset, or ambiguous when
        // other crates in the binary enable another rustls provider.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PostgresError::Config(format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }
}

/// Adds the CA certificates read from `source` (a file or the inline PEM text).
fn add_roots(
    roots: &mut rustls::RootCertStore,
    certs: Result<Vec<CertificateDer<'static>>, rustls::pki_types::pem::Error>,
    source: &str,
) -> Result<(), PostgresError> {
    let certs = certs.map_err(|e| {
        PostgresError::Config(format!("cannot read CA certificates from {source}: {e}"))
    })?;
    if certs.is_empty() {
        return Err(PostgresError::Config(format!(
            "no CA certificate in {source}"
        )));
    }
    for cert in certs {
        roots.add(cert).map_err(|e| {
            PostgresError::Config(format!("invalid CA certificate in {source}: {e}"))
        })?;
    }
    Ok(())
}

/// Splits `host:port`, `[v6]:port`, `host` and socket directories.
fn split_address(address: &str) -> Result<(&str, u16), PostgresError> {
    let invalid = || {
        PostgresError::Config(format!(
            "invalid address `{address}`: expected host:port, [ipv6]:port, host, or a socket directory"
        ))
    };
    if address.is_empty() {
        return Err(invalid());
    }
    if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(invalid)?;
        let port = match after {
            "" => 5432,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or_else(invalid)?,
        };
        return Ok((host, port));
    }
    match address.rsplit_once(':') {
        // A bare IPv6 address (several colons) needs brackets to carry a port.
        Some((host, _)) if host.contains(':') => Ok((address, 5432)),
        Some((host, port)) if !host.is_empty() => Ok((host, port.parse().map_err(|_| invalid())?)),
        Some(_) => Err(invalid()),
        None => Ok((address, 5432)),
    }
}

/// Removes the libpq parameters `tokio-postgres` does not know from a URL's query:
/// `sslrootcert` (returned as a path) and `sslmode=verify-ca|verify-full` (returned as `true`,
/// replaced by `require`).
fn take_libpq_only_params(url: &str) -> (String, Option<PathBuf>, bool) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None, false);
    };
    let mut ca_file = None;
    let mut verify = false;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("sslrootcert", value)) => ca_file = Some(PathBuf::from(percent_decode(value))),
            Some(("sslmode", "verify-ca" | "verify-full")) => {
                verify = true;
                kept.push("sslmode=require");
            }
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, ca_file, verify)
}

/// Decodes `%XX` escapes (as in a URL's query); anything malformed is kept as it is.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| value.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(split_address("db:6000").unwrap(), ("db", 6000));
        assert_eq!(split_address("db").unwrap(), ("db", 5432));
        assert_eq!(split_address("[::1]:7").unwrap(), ("::1", 7));
        assert_eq!(split_address("[::1]").unwrap(), ("::1", 5432));
        assert_eq!(split_address("::1").unwrap(), ("::1", 5432));
        assert_eq!(
            split_address("/var/run/postgresql").unwrap(),
            ("/var/run/postgresql", 5432)
        );
        assert!(split_address("db:port").is_err());
        assert!(split_address(":5432").is_err());
        assert!(split_address("").is_err());
    }

    #[test]
    fn urls() {
        let c = PostgresConfig::from_url(
            "postgres://alice:p%40ss@10.0.0.5:6543/wallets?sslmode=verify-full&sslrootcert=/etc/ca%20file.pem",
        )
        .unwrap();
        assert_eq!(c.address, "10.0.0.5:6543");
        assert_eq!(c.username, "alice");
        assert_eq!(c.password.as_deref(), Some("p@ss"));
        assert_eq!(c.database, "wallets");
        assert_eq!(c.tls, TlsMode::Require);
        assert_eq!(c.ca_file, Some(PathBuf::from("/etc/ca file.pem")));
        assert!(!c.create_database);

        let c = PostgresConfig::from_url("postgres://bob@[::1]/").unwrap();
        assert_eq!(c.address, "[::1]:5432");
        assert_eq!(c.database, "bob");
        assert_eq!(c.tls, TlsMode::Prefer);

        let c = PostgresConfig::from_url("postgresql://u@h:1/d?sslmode=disable").unwrap();
        assert_eq!(c.tls, TlsMode::Disable);
        assert!(PostgresConfig::from_url("mysql://nope").is_err());
        assert!(PostgresConfig::from_url("postgres://h/d?bogus=1").is_err());
    }

    #[test]
    fn debug_hides_the_password() {
        let c = PostgresConfig {
            password: Some("hunter2".into()),
            ..PostgresConfig::default()
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn ca_file_errors_are_config_errors() {
        let c = PostgresConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..PostgresConfig::default()
        };
        assert!(matches!(c.tls_connector(), Err(PostgresError::Config(_))));
        assert!(PostgresConfig::default().tls_connector().is_ok());
    }
}
