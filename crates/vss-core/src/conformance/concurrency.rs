//! Races: many tasks doing compare-and-set on one key and on one global version.

use std::collections::BTreeSet;
use std::future::Future;

use super::support::{kind, kv, unexpected, Ctx, Kind};
use super::{subject_of, IntoSubject, Subject, TestError, TestResult};

/// How hard the races are.
#[derive(Debug, Clone, Copy)]
pub struct ConcurrencyConfig {
    /// Tasks racing at once.
    pub tasks: usize,
    /// Successful increments each task must make.
    pub increments_per_task: usize,
}

impl Default for ConcurrencyConfig {
    fn default() -> Self {
        ConcurrencyConfig {
            tasks: 16,
            increments_per_task: 8,
        }
    }
}

/// Races compare-and-set increments on one key and on one store's global
/// version, on a subject from `factory` (made once), asserting no update is
/// lost and each version has exactly one winner.
pub async fn run_races<F, Fut>(mut factory: F, config: ConcurrencyConfig) -> TestResult
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: IntoSubject,
{
    race(&subject_of(&mut factory).await?, config).await
}

/// Both races on one subject.
pub(super) async fn race(subject: &Subject, config: ConcurrencyConfig) -> TestResult {
    race_on_one_key(subject, config).await?;
    race_on_global_version(subject, config).await
}

/// Attempts one task may make before the race counts as livelocked.
fn attempt_budget(config: ConcurrencyConfig) -> usize {
    config.tasks * config.increments_per_task * 50
}

/// Runs `config.tasks` copies of `task` at once and gathers the versions each won.
async fn race_tasks<F, Fut>(config: ConcurrencyConfig, task: F) -> Result<Vec<i64>, TestError>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<i64>, TestError>> + Send + 'static,
{
    let handles: Vec<_> = (0..config.tasks).map(|i| tokio::spawn(task(i))).collect();
    let mut won = Vec::new();
    for handle in handles {
        let versions = handle
            .await
            .map_err(|e| TestError::Failed(format!("racing task failed: {e}")))??;
        won.extend(versions);
    }
    Ok(won)
}

/// Checks that the won versions are exactly `first..first + total`, each once.
fn check_one_winner_each(won: &[i64], first: i64, total: usize, what: &str) -> TestResult {
    let unique: BTreeSet<i64> = won.iter().copied().collect();
    if unique.len() != won.len() {
        return Err(TestError::Failed(format!(
            "{what}: some version was won by two writers ({} wins, {} distinct)",
            won.len(),
            unique.len()
        )));
    }
    let expected: BTreeSet<i64> = (first..first + total as i64).collect();
    if unique != expected {
        return Err(TestError::Failed(format!(
            "{what}: won versions {unique:?}, expected each of {first}..{}",
            first + total as i64
        )));
    }
    Ok(())
}

async fn race_on_one_key(subject: &Subject, config: ConcurrencyConfig) -> TestResult {
    let t = Ctx::new(subject);
    t.must_put("counter", 0, b"start").await?;
    let budget = attempt_budget(config);
    let won = race_tasks(config, |task| {
        let t = t.clone();
        async move {
            let mut won = Vec::new();
            for _ in 0..budget {
                if won.len() == config.increments_per_task {
                    return Ok(won);
                }
                let (version, _) = t.must_get("counter").await?;
                let value = format!("{task}:{}", version + 1);
                match t.put(vec![kv("counter", version, value.as_bytes())]).await {
                    Ok(()) => won.push(version),
                    Err(e) if kind(&e) == Kind::Conflict => {}
                    Err(e) => return Err(unexpected("compare-and-set", e)),
                }
            }
            Err(TestError::Failed(format!(
                "task {task} made only {} of {} increments in {budget} attempts",
                won.len(),
                config.increments_per_task
            )))
        }
    })
    .await?;
    let total = config.tasks * config.increments_per_task;
    check_one_winner_each(&won, 1, total, "key compare-and-set")?;
    let (version, value) = t.must_get("counter").await?;
    if version != 1 + total as i64 {
        return Err(TestError::Failed(format!(
            "final version {version}, expected {} after {total} increments: an update was lost",
            1 + total as i64
        )));
    }
    if !value.ends_with(format!(":{version}").as_bytes()) {
        return Err(TestError::Failed(format!(
            "final value {:?} was not written by the winner of version {version}",
            String::from_utf8_lossy(&value)
        )));
    }
    Ok(())
}

async fn race_on_global_version(subject: &Subject, config: ConcurrencyConfig) -> TestResult {
    let t = Ctx::new(subject);
    let budget = attempt_budget(config);
    let won = race_tasks(config, |task| {
        let t = t.clone();
        async move {
            let mut won = Vec::new();
            for _ in 0..budget {
                if won.len() == config.increments_per_task {
                    return Ok(won);
                }
                let global = t.global_version().await?;
                let key = format!("task{task}-{}", won.len());
                match t
                    .put_full(Some(global), vec![kv(&key, 0, b"")], vec![])
                    .await
                {
                    Ok(()) => won.push(global),
                    Err(e) if kind(&e) == Kind::Conflict => {}
                    Err(e) => return Err(unexpected("put with global version", e)),
                }
            }
            Err(TestError::Failed(format!(
                "task {task} made only {} of {} global increments in {budget} attempts",
                won.len(),
                config.increments_per_task
            )))
        }
    })
    .await?;
    let total = config.tasks * config.increments_per_task;
    check_one_winner_each(&won, 0, total, "global version compare-and-set")?;
    let global = t.global_version().await?;
    if global != total as i64 {
        return Err(TestError::Failed(format!(
            "final global version {global}, expected {total}: an increment was lost"
        )));
    }
    // Exactly the winners' keys exist: losers wrote nothing.
    let listed = t.list_all(None, None).await?;
    if listed.len() != total {
        return Err(TestError::Failed(format!(
            "{} keys listed after {total} winning puts",
            listed.len()
        )));
    }
    Ok(())
}
