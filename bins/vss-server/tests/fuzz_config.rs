//! Property tests ("fuzzing") of every configuration value parser: each
//! setting is given arbitrary text through its environment variable, its
//! flag and the config file, and the file arbitrary contents. Loading never
//! panics; a value refused as invalid is named by its setting and where it
//! came from, and a secret is never echoed. `VSS_FUZZ_CASES` sets the number
//! of cases (default 400).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

use std::collections::HashMap;

use proptest::prelude::*;
use vss_core::conformance::fuzz_runner;
use vss_server::config::settings_list;
use vss_server::{Config, ConfigError};

fn load(args: &[String], env: &HashMap<String, String>) -> Result<Config, ConfigError> {
    let mut argv = vec!["vss-server".to_string()];
    argv.extend_from_slice(args);
    Config::from_sources(argv, &|name| env.get(name).cloned())
}

/// Values near what parsers expect, and anything at all.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[0-9]{0,25}",
        "-?[0-9]{1,20}(\\.[0-9]{0,5})?",
        "(true|false|yes|no|on|off|TRUE|1|0)",
        "[a-z]{1,8}://[ -~]{0,30}",
        "[0-9.:\\[\\]a-f]{0,45}",
        "(/|\\./)?[a-zA-Z0-9_./-]{0,30}",
    ]
}

/// A refusal names the setting it is about; a secret's value never shows.
fn check(
    result: Result<Config, ConfigError>,
    setting: &vss_server::config::Setting,
    value: &str,
) -> Result<(), TestCaseError> {
    if let Err(err) = result {
        let message = err.to_string();
        prop_assert!(!message.is_empty());
        if let ConfigError::Invalid { names, .. } = &err {
            prop_assert!(
                names.contains(setting.env),
                "{message} does not name {}",
                setting.env
            );
        }
        if setting.secret && value.len() >= 6 {
            prop_assert!(!message.contains(value), "{message} echoes a secret");
        }
    }
    Ok(())
}

#[test]
fn every_setting_takes_arbitrary_text_through_its_variable_and_flag() {
    let settings = settings_list();
    let strategy = (0..settings.len(), value(), any::<bool>());
    fuzz_runner()
        .run(&strategy, |(index, value, by_flag)| {
            let setting = &settings[index];
            let result = match (by_flag, setting.flag) {
                (true, Some(flag)) => load(&[format!("{flag}={value}")], &HashMap::new()),
                _ => load(
                    &[],
                    &HashMap::from([(setting.env.to_string(), value.clone())]),
                ),
            };
            check(result, setting, &value)
        })
        .unwrap();
}

#[test]
fn every_setting_takes_arbitrary_text_in_the_config_file() {
    let settings = settings_list();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vss.toml");
    let strategy = (0..settings.len(), value(), any::<bool>());
    fuzz_runner()
        .run(&strategy, |(index, value, quoted)| {
            let setting = &settings[index];
            let (section, key) = setting.file_key.split_once('.').unwrap();
            // A TOML string, or the text as it is (a number, a bool, or a syntax error).
            let written = if quoted {
                toml_string(&value)
            } else {
                value.clone()
            };
            std::fs::write(&path, format!("[{section}]\n{key} = {written}\n")).unwrap();
            let result = load(
                &["--config".to_string(), path.to_str().unwrap().to_string()],
                &HashMap::new(),
            );
            check(result, setting, &value)
        })
        .unwrap();
}

#[test]
fn an_arbitrary_config_file_is_refused_or_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vss.toml");
    let strategy = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        "(\\[[a-z_]{0,20}\\]\n)?([a-z_.]{0,20} = [ -~]{0,30}\n){0,5}".prop_map(String::into_bytes),
    ];
    fuzz_runner()
        .run(&strategy, |contents| {
            std::fs::write(&path, &contents).unwrap();
            let _ = load(
                &["--config".to_string(), path.to_str().unwrap().to_string()],
                &HashMap::new(),
            );
            Ok(())
        })
        .unwrap();
}

fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
