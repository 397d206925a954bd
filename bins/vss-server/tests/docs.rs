//! The operator docs name only what exists: every setting (file key or
//! environment variable) they name is one the server reads, every relative
//! link points at a file of the repository, and every `cargo run -p` they show
//! picks one binary. (config.rs checks the other way: CONFIG.md names every
//! setting.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use vss_server::config::settings_list;
use vss_server::settings::OLDER_REFERENCE_KEYS;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The docs an operator reads: the README, docs/, CONFIG.md and the crates' READMEs.
fn docs() -> Vec<(PathBuf, String)> {
    let root = repo();
    let mut paths = vec![
        root.join("README.md"),
        root.join("bins/vss-server/CONFIG.md"),
    ];
    for dir in ["docs", "crates"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let path = if path.is_dir() {
                path.join("README.md")
            } else {
                path
            };
            if path.extension().is_some_and(|e| e == "md") && path.is_file() {
                paths.push(path);
            }
        }
    }
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect()
}

/// The words of `text` that start with `prefix` and go on with characters
/// `more` accepts (the prefix included).
fn words<'t>(text: &'t str, prefix: &str, more: fn(char) -> bool) -> Vec<&'t str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at + prefix.len()..];
        let len = tail.find(|c: char| !more(c)).unwrap_or(tail.len());
        // A word starts here only if nothing of a name comes before it.
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            found.push(rest[at..at + prefix.len() + len].trim_end_matches('.'));
        }
        rest = &tail[len..];
    }
    found
}

#[test]
fn the_docs_name_only_file_keys_the_server_reads() {
    let keys: BTreeSet<&str> = settings_list().iter().map(|s| s.file_key).collect();
    let sections: BTreeSet<&str> = keys
        .iter()
        .filter_map(|k| k.split_once('.'))
        .map(|(s, _)| s)
        .collect();
    for (path, text) in docs() {
        for section in &sections {
            for word in words(&text, &format!("{section}."), |c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'
            }) {
                // `section.{a,b}`, `section.key_*` (a family), and older keys named as such.
                if word == *section || word.ends_with('_') || OLDER_REFERENCE_KEYS.contains(&word) {
                    continue;
                }
                assert!(
                    keys.contains(word),
                    "{} names `{word}`, which no setting has",
                    path.display()
                );
            }
        }
    }
}

/// Every file of the repository that is not Markdown (source, scripts,
/// packaging), as one text: a variable named there is one something reads.
fn everything_but_docs() -> String {
    fn walk(dir: &Path, all: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy();
            if path.is_dir() {
                if name != "target" && name != ".git" {
                    walk(&path, all);
                }
            } else if !name.ends_with(".md") {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    all.push_str(&text);
                }
            }
        }
    }
    let root = repo();
    let mut all = String::new();
    for dir in [
        "bins",
        "crates",
        "conformance",
        "scripts",
        "packaging",
        ".ci",
        "examples",
    ] {
        if root.join(dir).is_dir() {
            walk(&root.join(dir), &mut all);
        }
    }
    all.push_str(&std::fs::read_to_string(root.join("Dockerfile")).unwrap_or_default());
    all
}

/// A character of an environment variable's name.
fn variable_char(c: char) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
}

#[test]
fn the_docs_name_only_variables_something_reads() {
    let settings: BTreeSet<&str> = settings_list().iter().map(|s| s.env).collect();
    let elsewhere = everything_but_docs();
    let read_elsewhere: BTreeSet<&str> = words(&elsewhere, "VSS_", variable_char)
        .into_iter()
        .collect();
    for (path, text) in docs() {
        for word in words(&text, "VSS_", variable_char) {
            // `VSS_PSQL_*` names a family, not a variable.
            if word.ends_with('_') || settings.contains(word) {
                continue;
            }
            assert!(
                read_elsewhere.contains(word),
                "{} names {word}, which neither a setting nor any script or source reads",
                path.display()
            );
        }
    }
}

#[test]
fn the_docs_link_only_to_files_that_exist() {
    for (path, text) in docs() {
        let dir = path.parent().unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            let target = &rest[..end];
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            // `(<file> "title")`: the file is the first word, without brackets.
            let target = target.split_whitespace().next().unwrap_or_default();
            let target = target.trim_start_matches('<').trim_end_matches('>');
            let file = target.split('#').next().unwrap();
            assert!(
                dir.join(file).exists(),
                "{} links to {target}, which does not exist",
                path.display()
            );
        }
    }
}

/// `cargo run -p NAME` without `--bin` runs a package's only binary or its
/// `default-run`; with two binaries and neither, cargo refuses.
#[test]
fn every_cargo_run_in_the_docs_picks_one_binary() {
    let metadata = Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        metadata.status.success(),
        "{}",
        String::from_utf8_lossy(&metadata.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&metadata.stdout).unwrap();
    let packages = metadata["packages"].as_array().unwrap();
    let mut checked = 0;
    for (path, text) in docs() {
        for line in text
            .lines()
            .filter(|l| l.contains("cargo run") && !l.contains("--bin"))
        {
            let mut words = line.split_whitespace();
            let Some(name) = words
                .by_ref()
                .find(|w| *w == "-p" || *w == "--package")
                .and_then(|_| words.next())
            else {
                continue;
            };
            let name =
                name.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'));
            let package = packages
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("{}: no package {name}: {line}", path.display()));
            let binaries = package["targets"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "bin"))
                .count();
            assert!(
                binaries == 1 || !package["default_run"].is_null(),
                "{}: `{line}` names {name}, which has {binaries} binaries and no default-run",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "the README shows how to run the server");
}
