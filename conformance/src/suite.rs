//! The suite over HTTP: which rules run, in what order, and how long each took.

use std::time::{Duration, Instant};

use vss_core::conformance::{all_tests, TestResult};

use crate::{HttpStore, PROTOCOL_HEADER_RULE};

/// One rule's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The rule's name.
    pub name: &'static str,
    /// Passed, or failed or skipped with the reason.
    pub result: TestResult,
    /// How long the rule took.
    pub duration: Duration,
}

/// Every rule the runner knows, in the order it runs them: the protocol
/// header's rule ([`PROTOCOL_HEADER_RULE`]), then vss-core's suite.
pub fn rule_names() -> Vec<&'static str> {
    std::iter::once(PROTOCOL_HEADER_RULE)
        .chain(all_tests().iter().map(|t| t.name))
        .collect()
}

/// A filter that leaves no rule to run, or names none.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    /// A pattern that no rule's name contains: a typo would otherwise run
    /// nothing, or everything, without a word.
    #[error("--{flag} `{pattern}` matches no rule's name (--list shows them)")]
    MatchesNothing {
        /// `only` or `skip`.
        flag: &'static str,
        /// The pattern given.
        pattern: String,
    },
    /// Every rule is filtered out.
    #[error("--only and --skip leave no rule to run")]
    Empty,
}

/// Which rules run: those whose name contains one of the `only` patterns
/// (every rule when there are none) and none of the `skip` patterns.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    only: Vec<String>,
    skip: Vec<String>,
}

impl Selection {
    /// The rules selected by `only` and `skip` (substrings of rule names);
    /// refuses a pattern that matches no rule and a selection of none.
    pub fn new(only: Vec<String>, skip: Vec<String>) -> Result<Selection, SelectionError> {
        let names = rule_names();
        for (flag, patterns) in [("only", &only), ("skip", &skip)] {
            if let Some(pattern) = patterns
                .iter()
                .find(|p| !names.iter().any(|name| name.contains(p.as_str())))
            {
                return Err(SelectionError::MatchesNothing {
                    flag,
                    pattern: pattern.clone(),
                });
            }
        }
        let selection = Selection { only, skip };
        if !names.iter().any(|name| selection.selects(name)) {
            return Err(SelectionError::Empty);
        }
        Ok(selection)
    }

    /// Whether the rule `name` runs.
    pub fn selects(&self, name: &str) -> bool {
        (self.only.is_empty() || self.only.iter().any(|p| name.contains(p.as_str())))
            && !self.skip.iter().any(|p| name.contains(p.as_str()))
    }
}

/// Runs the selected rules against `store` in order, each rule of the suite
/// on a fresh [`HttpStore::subject`], calling `progress` after each.
pub async fn run_suite(
    store: &HttpStore,
    selection: &Selection,
    mut progress: impl FnMut(&Outcome),
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    if selection.selects(PROTOCOL_HEADER_RULE) {
        let started = Instant::now();
        let result = store.check_protocol_header().await;
        outcomes.push(Outcome {
            name: PROTOCOL_HEADER_RULE,
            result,
            duration: started.elapsed(),
        });
        progress(&outcomes[outcomes.len() - 1]);
    }
    for test in all_tests() {
        if !selection.selects(test.name) {
            continue;
        }
        let started = Instant::now();
        let result = test.run(store.subject()).await;
        let outcome = Outcome {
            name: test.name,
            result,
            duration: started.elapsed(),
        };
        progress(&outcome);
        outcomes.push(outcome);
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_filter_by_substring_and_refuse_typos() {
        let names = rule_names();
        assert_eq!(names[0], PROTOCOL_HEADER_RULE);
        assert_eq!(names.len(), all_tests().len() + 1);
        let all = Selection::default();
        assert!(names.iter().all(|n| all.selects(n)));
        let pagination =
            Selection::new(vec!["pagination_".into()], vec!["page_size_7".into()]).unwrap();
        let chosen: Vec<_> = names.iter().filter(|n| pagination.selects(n)).collect();
        assert!(!chosen.is_empty());
        assert!(chosen
            .iter()
            .all(|n| n.contains("pagination_") && !n.contains("page_size_7")));
        assert!(names
            .iter()
            .any(|n| n.contains("pagination_") && n.contains("page_size_7")));
        assert!(matches!(
            Selection::new(vec!["no_such_rule".into()], vec![]),
            Err(SelectionError::MatchesNothing { flag: "only", .. })
        ));
        assert!(matches!(
            Selection::new(vec![], vec!["no_such_rule".into()]),
            Err(SelectionError::MatchesNothing { flag: "skip", .. })
        ));
        assert_eq!(
            Selection::new(vec!["users_are".into()], vec!["isolated".into()]).unwrap_err(),
            SelectionError::Empty
        );
    }
}
