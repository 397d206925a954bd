//! How settings are declared and read, whatever they configure.
//!
//! Every setting is declared once, as one field of a `clap::Args` struct:
//!
//! ```ignore
//! /// SQLite database file; its directory is created
//! #[arg(id = "sqlite_config.path", long = "sqlite-path", env = "VSS_SQLITE_PATH",
//!       value_name = "FILE", default_value = "./vss-data/vss.sqlite3")]
//! pub path: PathBuf,
//! ```
//!
//! The `id` is the key in the TOML file (`[sqlite_config] path = ...`), `long`
//! the flag, `env` the environment variable, the doc comment the help, the
//! value parser the one check of a single value, `default_value` the default.
//! A setting without a public flag is `hide = true` (its flag exists only to
//! carry the value from the environment or the file); a secret one is also
//! `hide_env_values = true`: it never appears on a command line, in an error
//! or in a log.
//!
//! [`Sources`] reads the three sources with one parser per setting: the
//! command line is parsed as given; then each setting it does not set takes
//! its environment variable, else its file key, passed to the same parser as
//! `--flag=value`. So every value is checked the same way wherever it comes
//! from, precedence is flags > environment > file > default, and an error
//! names the setting in all its spellings and where the value came from.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

/// One setting and its names in the three sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// `section.key` in the TOML file (sections as in the reference server).
    pub file_key: &'static str,
    /// The environment variable.
    pub env: &'static str,
    /// The command-line flag, when there is one.
    pub flag: Option<&'static str>,
    /// Whether the value is a secret, never echoed in errors or logs.
    pub secret: bool,
    /// The flag that carries the value internally (public or not).
    long: &'static str,
}

impl Setting {
    /// `ENV / file.key / --flag`, how errors name the setting.
    pub fn names(&self) -> String {
        match self.flag {
            Some(flag) => format!("{} / {} / {flag}", self.env, self.file_key),
            None => format!("{} / {}", self.env, self.file_key),
        }
    }

    /// The file section the setting belongs to (`sqlite_config`, ...).
    pub fn section(&self) -> &'static str {
        self.file_key
            .split_once('.')
            .map_or(self.file_key, |(section, _)| section)
    }
}

/// The settings a command declares: its arguments whose id is a file key
/// (`section.key`) and which have an environment variable. Computed once per
/// program (the names live as long as it does).
pub fn describe(command: &Command) -> Vec<Setting> {
    let leak = |s: &str| -> &'static str { s.to_string().leak() };
    command
        .get_arguments()
        .filter_map(|arg| {
            let file_key = arg.get_id().as_str();
            let env = arg.get_env()?.to_str()?;
            let long = arg.get_long()?;
            file_key.contains('.').then(|| Setting {
                file_key: leak(file_key),
                env: leak(env),
                flag: (!arg.is_hide_set()).then(|| leak(&format!("--{long}"))),
                secret: arg.is_hide_env_values_set(),
                long: leak(long),
            })
        })
        .collect()
}

/// How errors name the setting `file_key` of the settings struct `T`
/// (`ENV / file.key / --flag`), for messages that point an operator at it.
pub fn names_of<T: clap::Args>(file_key: &str) -> String {
    describe(&T::augment_args(Command::new("settings")))
        .iter()
        .find(|s| s.file_key == file_key)
        .map_or_else(|| file_key.to_string(), Setting::names)
}

/// The command as the sources are read with it: clap does not read the
/// environment itself (the sources do, from the variables they are given,
/// which tests choose), and each flag's help names its variable. Settings
/// without a flag are listed after the flags.
pub fn prepare(command: Command, settings: &[Setting]) -> Command {
    let flagless: Vec<String> = settings
        .iter()
        .filter(|s| s.flag.is_none())
        .map(|s| format!("  {} ({})", s.env, s.file_key))
        .collect();
    command
        .mut_args(|arg| {
            let Some(env) = arg.get_env().and_then(|e| e.to_str()).map(str::to_string) else {
                return arg;
            };
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            arg.env(None::<&'static str>)
                .help(format!("{help} [env: {env}]"))
        })
        .after_help(format!(
            "Settings without a flag (set them in the environment or the config file):\n{}\n\n\
             Every flag also has a VSS_* variable and a config file key: see CONFIG.md.",
            flagless.join("\n")
        ))
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag.
    Flag,
    /// An environment variable.
    Env,
    /// The config file.
    File(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Flag => f.write_str("from the command line"),
            Origin::Env => f.write_str("from the environment"),
            Origin::File(path) => write!(f, "from {}", path.display()),
        }
    }
}

/// A configuration that cannot be used; the message names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A value that does not parse or is out of range.
    #[error("invalid value for {names} ({origin}): {reason}")]
    Invalid {
        /// The setting's names: `ENV / file.key / --flag`.
        names: String,
        /// Where the value came from.
        origin: Origin,
        /// What is wrong, with the value unless it is secret.
        reason: String,
    },
    /// The config file cannot be read or is not valid TOML.
    #[error("cannot use config file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The config file has a key no setting has (likely a typo).
    #[error(
        "unknown setting `{key}` in config file {path}{}",
        unknown_key_hint(key)
    )]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The `section.key` found.
        key: String,
    },
    /// Two settings that cannot be used together.
    #[error("{0}")]
    Conflict(String),
    /// The command line is not one the server takes (an unknown flag, a
    /// missing value), or asks for help or the version: clap's own message.
    #[error("{message}")]
    Usage {
        /// The message, with the usage line.
        message: String,
        /// Whether it is the help or the version (printed on standard output,
        /// exit code 0) rather than an error.
        informational: bool,
    },
}

impl ConfigError {
    /// Tells the error as `program` does at startup, and the exit code: help
    /// and version on standard output with 0; clap's own usage message, or
    /// `program: error`, on standard error with 2.
    pub fn report(&self, program: &str) -> std::process::ExitCode {
        match self {
            ConfigError::Usage {
                message,
                informational: true,
            } => {
                print!("{message}");
                if !message.ends_with('\n') {
                    println!();
                }
                std::process::ExitCode::SUCCESS
            }
            // clap's message already says what is wrong and shows the usage.
            ConfigError::Usage { message, .. } => {
                eprint!("{message}");
                std::process::ExitCode::from(2)
            }
            err => {
                eprintln!("{program}: {err}");
                std::process::ExitCode::from(2)
            }
        }
    }
}

/// Which setting each source set (a setting absent from it was not given
/// anywhere and has its default), among every setting the program has.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    given: HashMap<&'static str, Origin>,
    settings: &'static [Setting],
}

impl Origins {
    /// Where `setting` came from, if it was given.
    pub fn of(&self, setting: &Setting) -> Option<&Origin> {
        self.given.get(setting.file_key)
    }

    /// Whether `setting` was given (by any source, even with its default value).
    pub fn is_set(&self, setting: &Setting) -> bool {
        self.given.contains_key(setting.file_key)
    }

    /// The setting whose file key is `file_key`. Every key asked for is
    /// declared (a test loads every check).
    pub fn setting(&self, file_key: &str) -> Setting {
        match self.settings.iter().find(|s| s.file_key == file_key) {
            Some(setting) => *setting,
            None => unreachable!("the setting `{file_key}` is declared"),
        }
    }

    /// Every setting of the file section `section`.
    pub fn section(&self, section: &str) -> Vec<Setting> {
        self.settings
            .iter()
            .filter(|s| s.section() == section)
            .copied()
            .collect()
    }

    /// The given settings among `settings`.
    pub fn set_among<'s>(&self, settings: &'s [Setting]) -> Vec<&'s Setting> {
        settings.iter().filter(|s| self.is_set(s)).collect()
    }

    /// Refuses `settings` given together with `setting`: `why` says which to use.
    pub fn exclusive(
        &self,
        setting: &Setting,
        others: &[Setting],
        why: &str,
    ) -> Result<(), ConfigError> {
        if !self.is_set(setting) {
            return Ok(());
        }
        let also: Vec<String> = self.set_among(others).iter().map(|s| s.names()).collect();
        if also.is_empty() {
            return Ok(());
        }
        Err(ConfigError::Conflict(format!(
            "{} is set, so these must not be: {} ({why})",
            setting.names(),
            also.join(", ")
        )))
    }
}

/// The three sources of values: the command line, the environment and the
/// config file (named by `--config` or `VSS_CONFIG_FILE`).
pub struct Sources<'a> {
    command: Command,
    settings: &'static [Setting],
    args: Vec<OsString>,
    given: ArgMatches,
    env: &'a dyn Fn(&str) -> Option<String>,
    file: Option<(PathBuf, toml::Table)>,
}

/// The argument of the command naming the config file (`--config FILE`).
pub const CONFIG_ARG: &str = "config";
/// The positional argument naming the config file, as the reference server
/// takes it (`vss-server /etc/vss/config.toml`).
pub const CONFIG_PATH_ARG: &str = "config_path";

impl<'a> Sources<'a> {
    /// Parses the command line with `command` (see [`prepare`]), checks that
    /// no flagless setting was given on it, and reads the config file the
    /// command line (argument [`CONFIG_ARG`] or [`CONFIG_PATH_ARG`]) or
    /// `config_env` names.
    pub fn new(
        command: Command,
        settings: &'static [Setting],
        args: impl IntoIterator<Item = impl Into<OsString>>,
        env: &'a dyn Fn(&str) -> Option<String>,
        config_env: &str,
    ) -> Result<Sources<'a>, ConfigError> {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let given = command
            .clone()
            .try_get_matches_from(&args)
            .map_err(|err| from_clap(err, settings, &|_| Origin::Flag))?;
        for setting in settings.iter().filter(|s| s.flag.is_none()) {
            if given.value_source(setting.file_key) == Some(ValueSource::CommandLine) {
                let why = if setting.secret {
                    "it is a secret, and command lines are visible to other users"
                } else {
                    "its value is too long for one"
                };
                return Err(ConfigError::Conflict(format!(
                    "{} has no command-line flag ({why}): set {} or `{}` in the config file",
                    setting.names(),
                    setting.env,
                    setting.file_key
                )));
            }
        }
        let file_path = [CONFIG_ARG, CONFIG_PATH_ARG]
            .iter()
            .find_map(|id| given.try_get_one::<PathBuf>(id).ok().flatten().cloned())
            .or_else(|| non_empty_var(env, config_env).map(PathBuf::from));
        let file = match file_path {
            Some(path) => {
                let table = read_file(&path, settings)?;
                Some((path, table))
            }
            None => None,
        };
        Ok(Sources {
            command,
            settings,
            args,
            given,
            env,
            file,
        })
    }

    /// Whether a config file is read.
    pub fn has_file(&self) -> bool {
        self.file.is_some()
    }

    /// Every setting the sources are read for.
    pub fn settings(&self) -> &'static [Setting] {
        self.settings
    }

    /// The value `setting` is given, as text, and where from; `None` when no
    /// source gives it. Flags win over the environment, which wins over the file.
    pub fn raw(&self, setting: &Setting) -> Result<Option<(String, Origin)>, ConfigError> {
        if self.given.value_source(setting.file_key) == Some(ValueSource::CommandLine) {
            let value = self
                .given
                .get_raw(setting.file_key)
                .and_then(|mut values| values.next())
                .map(|v| v.to_string_lossy().into_owned());
            return Ok(value.map(|v| (v, Origin::Flag)));
        }
        // An empty variable counts as unset, as `VSS_X= vss-server` usually means.
        if let Some(value) = non_empty_var(self.env, setting.env) {
            return Ok(Some((value, Origin::Env)));
        }
        let Some((path, table)) = &self.file else {
            return Ok(None);
        };
        let Some(value) = file_value(table, setting.file_key) else {
            return Ok(None);
        };
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(x) => x.to_string(),
            // A table at a setting's key is a section of its own holding
            // sub-settings (`[postgresql_config.tls]` with `crt_pem`, as the
            // reference server writes it): its presence turns the setting on.
            toml::Value::Table(_) => "true".to_string(),
            _ => {
                return Err(ConfigError::Invalid {
                    names: setting.names(),
                    origin: Origin::File(path.clone()),
                    reason: "expected a string, a number or a boolean".into(),
                })
            }
        };
        Ok(Some((text, Origin::File(path.clone()))))
    }

    /// Every setting `read` accepts, from whichever source gives it, parsed by
    /// the command: the matches, and where each given setting came from.
    /// Settings `read` refuses keep what the command line gave, or their default.
    pub fn resolve(
        self,
        read: impl Fn(&Setting) -> bool,
    ) -> Result<(ArgMatches, Origins), ConfigError> {
        let mut origins = Origins {
            given: HashMap::new(),
            settings: self.settings,
        };
        let mut args = self.args.clone();
        for setting in self.settings {
            let from_flag =
                self.given.value_source(setting.file_key) == Some(ValueSource::CommandLine);
            if !from_flag && !read(setting) {
                continue;
            }
            if let Some((value, origin)) = self.raw(setting)? {
                if origin != Origin::Flag {
                    let mut arg = OsString::from(format!("--{}=", setting.long));
                    arg.push(value.trim());
                    args.push(arg);
                }
                origins.given.insert(setting.file_key, origin);
            }
        }
        let matches = self.command.try_get_matches_from(&args).map_err(|err| {
            from_clap(err, self.settings, &|setting| {
                origins.of(setting).cloned().unwrap_or(Origin::Flag)
            })
        })?;
        Ok((matches, origins))
    }
}

fn non_empty_var(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.is_empty())
}

/// A clap error: a refused value names its setting and source; anything else
/// is a usage error, with clap's message.
fn from_clap(
    err: clap::Error,
    settings: &[Setting],
    origin_of: &dyn Fn(&Setting) -> Origin,
) -> ConfigError {
    if matches!(
        err.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        let text = |kind| match err.get(kind) {
            Some(ContextValue::String(s)) => Some(s.clone()),
            _ => None,
        };
        // The argument as clap shows it: `--name <VALUE>` or `--name[=<VALUE>]`.
        let shown = text(ContextKind::InvalidArg).unwrap_or_default();
        let long = shown
            .trim_start_matches('-')
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .next()
            .unwrap_or_default();
        if let Some(setting) = settings.iter().find(|s| s.long == long) {
            let cause = std::error::Error::source(&err)
                .map(ToString::to_string)
                .unwrap_or_else(|| "not an accepted value".into());
            let reason = match (setting.secret, text(ContextKind::InvalidValue)) {
                (false, Some(value)) => format!("`{value}`: {cause}"),
                _ => cause,
            };
            return ConfigError::Invalid {
                names: setting.names(),
                origin: origin_of(setting),
                reason,
            };
        }
    }
    ConfigError::Usage {
        informational: matches!(
            err.kind(),
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
        ),
        message: err.render().to_string(),
    }
}

/// Keys of the reference server's older config format (before `bind_address`
/// and `address`), which this server does not read: they stop startup with a
/// message that names the keys replacing them.
pub const OLDER_REFERENCE_KEYS: [&str; 6] = [
    "server_config.host",
    "server_config.port",
    "server_config.store_type",
    "postgresql_config.host",
    "postgresql_config.port",
    "postgresql_config.database",
];

/// What to do about an unknown key. For a key of the reference's older
/// format, the keys that replace it; the database matters most, because a
/// server pointed at another database shows the wallets empty stores.
fn unknown_key_hint(key: &str) -> &'static str {
    if OLDER_REFERENCE_KEYS.contains(&key) {
        ": the reference server's older config format, which this server does not read; write \
         `server_config.bind_address = \"HOST:PORT\"`, `postgresql_config.address = \"HOST:PORT\"`, \
         `postgresql_config.vss_database = \"DATABASE\"` naming the database that holds the table \
         `vss_db` (the old `database`), and `server_config.backend` instead of `store_type` \
         (`\"postgres\"` or `\"memory\"`); see CONFIG.md, \"Coming from the reference server\""
    } else {
        " (known settings: see CONFIG.md)"
    }
}

/// The value at `file_key` (`section.key`, or `section.key.sub` inside a
/// nested table) of the file's table.
fn file_value<'t>(table: &'t toml::Table, file_key: &str) -> Option<&'t toml::Value> {
    let mut parts = file_key.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

/// Reads the TOML file, refusing keys no setting has (likely typos).
fn read_file(path: &Path, settings: &[Setting]) -> Result<toml::Table, ConfigError> {
    let file_error = |reason: String| ConfigError::File {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| file_error(toml_error(&text, &e, settings)))?;
    let known: BTreeSet<&str> = settings.iter().map(|s| s.file_key).collect();
    check_keys(&table, "", &known).map_err(|key| ConfigError::UnknownKey {
        path: path.to_path_buf(),
        key,
    })?;
    Ok(table)
}

/// Where and why the file is not valid TOML, without the line's text (the
/// parser quotes it), and without the parser's reason when the line sets a
/// secret (the reason may quote the value).
fn toml_error(text: &str, err: &toml::de::Error, settings: &[Setting]) -> String {
    let Some(span) = err.span() else {
        return format!("not valid TOML: {}", err.message());
    };
    let before = text.get(..span.start).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let at = format!("not valid TOML at line {line}, column {column}");
    // The `section.key` the line sets, as far as a plain reading tells.
    let mut section = "";
    for earlier in text.lines().take(line - 1) {
        let earlier = earlier.trim();
        if let Some(name) = earlier.strip_prefix('[').and_then(|r| r.split(']').next()) {
            section = name.trim();
        }
    }
    let key = text
        .lines()
        .nth(line - 1)
        .and_then(|l| l.split('=').next())
        .map(|k| k.trim().trim_matches('"'))
        .unwrap_or_default();
    let full = format!("{section}.{key}");
    let secret = settings
        .iter()
        .any(|s| s.secret && (s.file_key == full || s.file_key.starts_with(&format!("{full}."))));
    if secret {
        format!("{at} (a secret setting: the reason is not shown, as it may quote the value)")
    } else {
        format!("{at}: {}", err.message())
    }
}

/// Finds the first key of `table` (at `prefix`) that is neither a setting nor
/// a table holding settings.
fn check_keys(table: &toml::Table, prefix: &str, known: &BTreeSet<&str>) -> Result<(), String> {
    for (key, value) in table {
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let holds_settings = known.iter().any(|k| {
            k.strip_prefix(full.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
        });
        match value.as_table() {
            // Top-level keys are sections; a table may also hold sub-settings.
            Some(sub) if prefix.is_empty() || holds_settings => check_keys(sub, &full, known)?,
            _ if !prefix.is_empty() && known.contains(full.as_str()) => {}
            _ => return Err(full),
        }
    }
    Ok(())
}

/// Value parsers shared by settings: each answers the reason a value is
/// refused, without repeating the value (the error adds it unless secret).
pub mod parse {
    use std::path::PathBuf;
    use std::time::Duration;

    /// A whole number; `_` may group digits.
    pub fn whole_number(s: &str) -> Result<u64, String> {
        s.trim()
            .replace('_', "")
            .parse::<u64>()
            .map_err(|e| format!("not a whole number: {e}"))
    }

    /// A whole number of at least 1.
    pub fn positive(s: &str) -> Result<u64, String> {
        match whole_number(s)? {
            0 => Err("must be at least 1".into()),
            n => Ok(n),
        }
    }

    /// A count of at least 1 that fits this machine.
    pub fn positive_count(s: &str) -> Result<usize, String> {
        usize::try_from(positive(s)?).map_err(|_| "too large for this machine".to_string())
    }

    /// A count, 0 allowed, that fits this machine.
    pub fn count(s: &str) -> Result<usize, String> {
        usize::try_from(whole_number(s)?).map_err(|_| "too large for this machine".to_string())
    }

    /// A whole number from 1 to 2^32 - 1.
    pub fn positive_u32(s: &str) -> Result<u32, String> {
        u32::try_from(positive(s)?).map_err(|_| "must be below 4294967296".to_string())
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`), any case.
    pub fn boolean(s: &str) -> Result<bool, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err("expected true or false".into()),
        }
    }

    /// Whole seconds, 0 allowed.
    pub fn secs(s: &str) -> Result<Duration, String> {
        whole_number(s).map(Duration::from_secs)
    }

    /// Whole seconds, at least 1.
    pub fn positive_secs(s: &str) -> Result<Duration, String> {
        match whole_number(s)? {
            0 => Err("must be at least 1 second".into()),
            secs => Ok(Duration::from_secs(secs)),
        }
    }

    /// Text that is not empty.
    pub fn non_empty(s: &str) -> Result<String, String> {
        match s.trim() {
            "" => Err("must not be empty".into()),
            s => Ok(s.to_string()),
        }
    }

    /// A path to a file that exists now (a CA file read when the backend connects).
    pub fn existing_file(s: &str) -> Result<PathBuf, String> {
        match std::fs::metadata(s) {
            Ok(meta) if meta.is_file() => Ok(PathBuf::from(s)),
            Ok(_) => Err("not a file".into()),
            Err(e) => Err(format!("cannot read the file: {e}")),
        }
    }

    /// The contents of a key file.
    pub fn key_file(s: &str) -> Result<String, String> {
        std::fs::read_to_string(s).map_err(|e| format!("cannot read the key file: {e}"))
    }

    /// An `http://` or `https://` URL with a host; `example` shows one.
    pub fn http_url(s: &str, example: &str) -> Result<String, String> {
        match s.split_once("://") {
            Some(("http" | "https", rest)) if !rest.is_empty() && !rest.starts_with('/') => {
                Ok(s.to_string())
            }
            _ => Err(format!(
                "expected an http:// or https:// URL such as {example}"
            )),
        }
    }
}
