//! Results of runs, as text and JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::workload::{workload_name, Params};

/// The measurements of one run against one server.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RunResult {
    /// Which server (its label or URL).
    pub server: String,
    /// The workload's name.
    pub workload: String,
    /// Concurrent connections.
    pub connections: usize,
    /// Measured requests, successful or not.
    pub requests: u64,
    /// Failed requests by error code (`TRANSPORT` for connection failures).
    pub errors: BTreeMap<String, u64>,
    /// Measured seconds.
    pub seconds: f64,
    /// Requests per second.
    pub rps: f64,
    /// Latency percentiles and maximum, in microseconds.
    pub p50_us: u64,
    /// 90th percentile latency, microseconds.
    pub p90_us: u64,
    /// 99th percentile latency, microseconds.
    pub p99_us: u64,
    /// Slowest request, microseconds.
    pub max_us: u64,
}

impl RunResult {
    /// Adds the counts of another worker's part.
    pub fn merge(&mut self, other: RunResult) {
        self.requests += other.requests;
        for (code, n) in other.errors {
            *self.errors.entry(code).or_insert(0) += n;
        }
    }

    /// Fills in the totals once every worker has stopped.
    pub fn finish(&mut self, params: &Params, measured_for: Duration, histogram: &Histogram<u64>) {
        self.workload = workload_name(params.workload).to_string();
        self.connections = params.connections;
        self.seconds = measured_for.as_secs_f64();
        self.rps = if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        };
        self.p50_us = histogram.value_at_quantile(0.50);
        self.p90_us = histogram.value_at_quantile(0.90);
        self.p99_us = histogram.value_at_quantile(0.99);
        self.max_us = histogram.max();
    }

    /// One line for people.
    pub fn line(&self) -> String {
        let errors = if self.errors.is_empty() {
            "none".to_string()
        } else {
            self.errors
                .iter()
                .map(|(code, n)| format!("{code}={n}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "{:<24} {:<6} conns={:<4} reqs={:<8} rps={:>10.1}  p50={} p90={} p99={} max={}  errors: {errors}",
            self.server,
            self.workload,
            self.connections,
            self.requests,
            self.rps,
            ms(self.p50_us),
            ms(self.p90_us),
            ms(self.p99_us),
            ms(self.max_us),
        )
    }
}

fn ms(us: u64) -> String {
    format!("{:.2}ms", us as f64 / 1000.0)
}

/// Server B's throughput over server A's, for rounds run alternately.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Comparison {
    /// The workload's name.
    pub workload: String,
    /// Concurrent connections.
    pub connections: usize,
    /// Server A.
    pub a: String,
    /// Server B.
    pub b: String,
    /// rps(B) / rps(A) of each round.
    pub ratios: Vec<f64>,
    /// Smallest ratio.
    pub min: f64,
    /// Median ratio.
    pub median: f64,
    /// Largest ratio.
    pub max: f64,
}

impl Comparison {
    /// Summarises per-round ratios.
    pub fn new(workload: &str, connections: usize, a: &str, b: &str, ratios: Vec<f64>) -> Self {
        let (min, median, max) = spread(&ratios);
        Comparison {
            workload: workload.to_string(),
            connections,
            a: a.to_string(),
            b: b.to_string(),
            min,
            median,
            max,
            ratios,
        }
    }

    /// One line for people.
    pub fn line(&self) -> String {
        format!(
            "ratio {} / {} ({}, {} conns): median {:.3}, min {:.3}, max {:.3} over {} rounds",
            self.b,
            self.a,
            self.workload,
            self.connections,
            self.median,
            self.min,
            self.max,
            self.ratios.len()
        )
    }
}

/// Everything one invocation measured, for `--json` and for charts.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Output {
    /// Every run, in order.
    pub runs: Vec<RunResult>,
    /// Comparisons, with `--compare`.
    pub comparisons: Vec<Comparison>,
}

/// A Markdown table of throughput: one row per (server, workload), one column per connection
/// count, each cell the requests per second (the median when a point was measured more than once)
/// and, with `p99`, the 99th percentile latency in milliseconds (the median of the points').
pub fn markdown_table(outputs: &[Output], p99: bool) -> String {
    // (rps, p99 in ms) of each measurement of a point.
    type Points = BTreeMap<usize, Vec<(f64, f64)>>;
    let mut cells: BTreeMap<(String, String), Points> = BTreeMap::new();
    let mut columns = std::collections::BTreeSet::new();
    for run in outputs.iter().flat_map(|o| &o.runs) {
        columns.insert(run.connections);
        cells
            .entry((run.server.clone(), run.workload.clone()))
            .or_default()
            .entry(run.connections)
            .or_default()
            .push((run.rps, run.p99_us as f64 / 1000.0));
    }
    let mut text = String::from("| server | workload |");
    let mut rule = String::from("|---|---|");
    for connections in &columns {
        text.push_str(&format!(" {connections} |"));
        rule.push_str("---:|");
    }
    text.push('\n');
    text.push_str(&rule);
    text.push('\n');
    for ((server, workload), points) in &cells {
        text.push_str(&format!("| {server} | {workload} |"));
        for connections in &columns {
            match points.get(connections) {
                Some(points) => {
                    let rps: Vec<f64> = points.iter().map(|p| p.0).collect();
                    text.push_str(&format!(" {}", thousands(spread(&rps).1)));
                    if p99 {
                        let p99s: Vec<f64> = points.iter().map(|p| p.1).collect();
                        text.push_str(&format!(" ({:.1} ms)", spread(&p99s).1));
                    }
                    text.push_str(" |");
                }
                None => text.push_str(" |"),
            }
        }
        text.push('\n');
    }
    text
}

/// Smallest, median (the upper one of an even count) and largest of `values`; NaN when empty.
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let pick = |i: usize| sorted.get(i).copied().unwrap_or(f64::NAN);
    (
        pick(0),
        pick(sorted.len() / 2),
        pick(sorted.len().saturating_sub(1)),
    )
}

/// `12345.6` as `12,346`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 && c.is_ascii_digit() {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(server: &str, workload: &str, connections: usize, rps: f64) -> RunResult {
        RunResult {
            server: server.into(),
            workload: workload.into(),
            connections,
            rps,
            ..RunResult::default()
        }
    }

    #[test]
    fn table_has_a_column_per_connection_count_and_medians() {
        let output = Output {
            runs: vec![
                run("sqlite", "get", 1, 1000.0),
                run("sqlite", "get", 64, 20000.4),
                run("sqlite", "put", 1, 900.0),
                run("sqlite", "put", 1, 700.0),
                run("sqlite", "put", 1, 800.0),
            ],
            comparisons: vec![],
        };
        let table = markdown_table(std::slice::from_ref(&output), false);
        let lines: Vec<_> = table.lines().collect();
        assert_eq!(lines[0], "| server | workload | 1 | 64 |");
        assert_eq!(lines[2], "| sqlite | get | 1,000 | 20,000 |");
        assert_eq!(lines[3], "| sqlite | put | 800 | |");
        assert_eq!(lines.len(), 4);
        let table = markdown_table(&[output], true);
        let lines: Vec<_> = table.lines().collect();
        assert_eq!(
            lines[2],
            "| sqlite | get | 1,000 (0.0 ms) | 20,000 (0.0 ms) |"
        );
    }

    #[test]
    fn table_p99_is_the_median_of_the_points() {
        let mut runs = Vec::new();
        for (rps, p99_us) in [(900.0, 4_000), (700.0, 9_000), (800.0, 2_500)] {
            runs.push(RunResult {
                p99_us,
                ..run("pg", "put", 16, rps)
            });
        }
        let output = Output {
            runs,
            comparisons: vec![],
        };
        let table = markdown_table(&[output], true);
        assert_eq!(table.lines().nth(2), Some("| pg | put | 800 (4.0 ms) |"));
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1234567.0), "1,234,567");
    }
}
