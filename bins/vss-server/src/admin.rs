//! What `vss-admin` does to a deployment's data: copy and verify between two
//! backends, usage, stats, deleting a user. The binary parses arguments,
//! opens the backends ([`crate::backend::open_admin`]) and prints; the rules
//! of a store's copy and comparison are vss-core's ([`vss_core::admin`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use vss_core::admin::{compare_store, copy_store, store_is_empty, PageSize, StoreRef};
use vss_core::{AdminStore, Usage, UserToken, VssError};

/// Stores asked for per enumeration page.
pub(crate) const STORES_PER_PAGE: usize = 100;
/// Users asked for per usage page.
const USERS_PER_PAGE: usize = 1000;

fn failed(what: &str) -> impl Fn(VssError) -> String + '_ {
    move |err| format!("{what}: {}", vss_core::error_chain(&err))
}

/// Calls `f` with every user who stores something, page by page.
async fn each_user(
    admin: &dyn AdminStore,
    mut f: impl FnMut(UserToken, Usage),
) -> Result<(), String> {
    let mut cursor: Option<String> = None;
    loop {
        let page = admin
            .list_usage(cursor.as_deref(), USERS_PER_PAGE)
            .await
            .map_err(failed("listing users' usage"))?;
        for (user, usage) in page.users {
            if usage != Usage::default() {
                f(user, usage);
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// Every user who stores something, and what (all in memory, for sorting).
pub async fn all_usage(admin: &dyn AdminStore) -> Result<Vec<(UserToken, Usage)>, String> {
    let mut users = Vec::new();
    each_user(admin, |user, usage| users.push((user, usage))).await?;
    Ok(users)
}

/// Totals of a deployment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Users who store something.
    pub users: u64,
    /// Keys.
    pub keys: u64,
    /// Bytes of keys plus values.
    pub bytes: u64,
}

/// The deployment's totals, from its users' usage (one pass, a page of users
/// in memory).
pub async fn totals(admin: &dyn AdminStore) -> Result<Totals, String> {
    let mut totals = Totals::default();
    each_user(admin, |_, usage| {
        totals.users += 1;
        totals.keys += usage.keys;
        totals.bytes = totals.bytes.saturating_add(usage.bytes);
    })
    .await?;
    Ok(totals)
}

/// The first store of `admin` that holds data, if any.
pub async fn first_store_with_data(admin: &dyn AdminStore) -> Result<Option<StoreRef>, String> {
    let mut cursor: Option<String> = None;
    loop {
        let page = admin
            .list_stores(cursor.as_deref(), STORES_PER_PAGE)
            .await
            .map_err(failed("listing stores"))?;
        for store in page.stores {
            if !store_is_empty(admin, &store)
                .await
                .map_err(failed("reading a store"))?
            {
                return Ok(Some(store));
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(None),
        }
    }
}

/// How `copy` runs.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Copy into a destination that holds data: each store the source has
    /// replaces the destination's store of the same user and id; other
    /// stores of the destination are kept.
    pub merge: bool,
    /// Where the copy records how far it got.
    pub state: PathBuf,
    /// The size of a page read and written at once.
    pub page: PageSize,
    /// Whether to draw a progress bar (on stderr).
    pub progress: bool,
    /// For tests of resuming: abort the process (as a crash would) once this
    /// many pages are written and recorded.
    pub abort_after_pages: Option<u64>,
}

/// Where a copy is: written to the state file after every page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct CopyState {
    /// The state file's format.
    format: u32,
    /// What was copied, as given (`--from`, `--to`).
    from: String,
    to: String,
    /// The enumeration page being copied (its cursor; `None`: the first).
    page_cursor: Option<String>,
    /// Stores of that page already copied whole (user, store id): by name,
    /// since an enumeration by `SCAN` may answer the same cursor with its
    /// stores in another order.
    done_in_page: Vec<(String, String)>,
    /// The store being copied and the position its last written page ended at.
    current: Option<(String, String, i64)>,
    /// What was copied so far.
    stores: u64,
    keys: u64,
    bytes: u64,
    /// The copy ended.
    complete: bool,
}

const STATE_FORMAT: u32 = 1;

impl CopyState {
    fn load(path: &Path) -> Result<Option<CopyState>, String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                format!(
                    "the copy's state file {} is not one this vss-admin wrote ({e}); remove it \
                     to start over",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!(
                "cannot read the state file {}: {e}",
                path.display()
            )),
        }
    }

    /// Writes the state to a temporary file and renames it over the old one,
    /// so a crash leaves either state whole.
    fn save(&self, path: &Path) -> Result<(), String> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| format!("cannot encode the copy's state: {e}"))?;
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("cannot write the state file {}: {e}", path.display()))
    }
}

/// What a copy did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CopySummary {
    /// Stores of the source enumerated and copied, by this run and the runs it resumed.
    pub stores: u64,
    /// Keys copied.
    pub keys: u64,
    /// Bytes of keys plus values copied.
    pub bytes: u64,
    /// Whether this run resumed an interrupted copy.
    pub resumed: bool,
    /// Seconds this run took.
    pub seconds: f64,
}

/// Copies every store of `from` into `to` (see [`CopyOptions`]), resuming
/// the copy the state file records when it is unfinished and of the same
/// `from_name` and `to_name`.
pub async fn copy(
    from: &dyn AdminStore,
    to: &dyn AdminStore,
    from_name: &str,
    to_name: &str,
    options: &CopyOptions,
) -> Result<CopySummary, String> {
    let started = Instant::now();
    let mut state = match CopyState::load(&options.state)? {
        Some(state) if !state.complete => {
            if state.from != from_name || state.to != to_name || state.format != STATE_FORMAT {
                return Err(format!(
                    "the state file {} records an unfinished copy from `{}` to `{}`: finish it \
                     with the same --from and --to, or remove the file to start over",
                    options.state.display(),
                    state.from,
                    state.to
                ));
            }
            state
        }
        _ => {
            if let Some(store) = first_store_with_data(to).await? {
                if !options.merge {
                    return Err(format!(
                        "the destination `{to_name}` holds data ({store}, and maybe more): copy \
                         into an empty deployment, or pass --merge to replace each store the \
                         source has and keep the others"
                    ));
                }
            }
            CopyState {
                format: STATE_FORMAT,
                from: from_name.to_string(),
                to: to_name.to_string(),
                ..CopyState::default()
            }
        }
    };
    let resumed = state.stores > 0 || state.current.is_some() || state.page_cursor.is_some();
    state.save(&options.state)?;

    // The source's totals (a walk over its users) only for a bar that is drawn.
    let bar = if options.progress {
        progress_bar(totals(from).await?, &state)
    } else {
        ProgressBar::hidden()
    };
    let mut pages = 0u64;
    loop {
        let page = from
            .list_stores(state.page_cursor.as_deref(), STORES_PER_PAGE)
            .await
            .map_err(failed("listing the source's stores"))?;
        let done = |state: &CopyState, store: &StoreRef| {
            state
                .done_in_page
                .iter()
                .any(|(user, id)| user == store.user.as_str() && *id == store.store_id)
        };
        for store in &page.stores {
            if done(&state, store) {
                continue;
            }
            let resume_after = match &state.current {
                Some((user, id, after)) if user == store.user.as_str() && *id == store.store_id => {
                    Some(*after)
                }
                _ => None,
            };
            let mut saved = Ok(());
            copy_store(
                from,
                to,
                store,
                options.page,
                resume_after,
                |items, after| {
                    for item in items {
                        let usage = item.usage();
                        state.keys += usage.keys;
                        state.bytes = state.bytes.saturating_add(usage.bytes);
                        bar.inc(usage.bytes);
                    }
                    state.current = Some((store.user.to_string(), store.store_id.clone(), after));
                    if saved.is_ok() {
                        saved = state.save(&options.state);
                    }
                    pages += 1;
                    if saved.is_ok() && options.abort_after_pages == Some(pages) {
                        std::process::abort();
                    }
                    bar.set_message(message(&state));
                },
            )
            .await
            .map_err(|e| format!("copying {store}: {}", vss_core::error_chain(&e)))?;
            saved?;
            state.stores += 1;
            state.current = None;
            state
                .done_in_page
                .push((store.user.to_string(), store.store_id.clone()));
            state.save(&options.state)?;
            bar.set_message(message(&state));
        }
        match page.next {
            Some(next) => {
                state.page_cursor = Some(next);
                state.done_in_page.clear();
                state.save(&options.state)?;
            }
            None => break,
        }
    }
    state.complete = true;
    state.save(&options.state)?;
    bar.finish_and_clear();
    Ok(CopySummary {
        stores: state.stores,
        keys: state.keys,
        bytes: state.bytes,
        resumed,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn message(state: &CopyState) -> String {
    format!("{} stores, {} keys", state.stores, state.keys)
}

/// A bar over the source's bytes (from its usage), with keys, stores, rate
/// and ETA.
fn progress_bar(totals: Totals, state: &CopyState) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(totals.bytes), ProgressDrawTarget::stderr());
    let template = format!(
        "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{bytes}}/{{total_bytes}} \
         ({{bytes_per_sec}}, ETA {{eta}}) of {} users: {{msg}}",
        totals.users
    );
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar.set_position(state.bytes.min(totals.bytes));
    bar.set_message(message(state));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Stores compared (those of the source).
    pub stores: u64,
    /// Keys that matched.
    pub keys: u64,
    /// Bytes of keys plus values that matched.
    pub bytes: u64,
    /// Every difference found (at most `max_differences`).
    pub differences: Vec<String>,
}

/// Compares two deployments: every store of `a` item by item with `b`'s
/// (versions, positions, values, global version), every store of `b` that
/// holds data must hold data in `a`, and every user's usage must agree.
pub async fn verify(
    a: &dyn AdminStore,
    b: &dyn AdminStore,
    page: PageSize,
    max_differences: usize,
) -> Result<VerifyReport, String> {
    let mut report = VerifyReport::default();
    let full = |report: &VerifyReport| report.differences.len() >= max_differences;
    let mut cursor: Option<String> = None;
    'stores: loop {
        let stores = a
            .list_stores(cursor.as_deref(), STORES_PER_PAGE)
            .await
            .map_err(failed("listing the first side's stores"))?;
        for store in &stores.stores {
            match compare_store(a, b, store, page)
                .await
                .map_err(|e| format!("comparing {store}: {}", vss_core::error_chain(&e)))?
            {
                Ok(tally) => {
                    report.stores += 1;
                    report.keys += tally.keys;
                    report.bytes = report.bytes.saturating_add(tally.bytes);
                }
                Err(difference) => report.differences.push(difference.to_string()),
            }
            if full(&report) {
                break 'stores;
            }
        }
        match stores.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut cursor: Option<String> = None;
    while !full(&report) {
        let stores = b
            .list_stores(cursor.as_deref(), STORES_PER_PAGE)
            .await
            .map_err(failed("listing the second side's stores"))?;
        for store in &stores.stores {
            let empty_in = |admin| store_is_empty(admin, store);
            if !empty_in(b).await.map_err(failed("reading a store"))?
                && empty_in(a).await.map_err(failed("reading a store"))?
            {
                report
                    .differences
                    .push(format!("{store} holds data only on the second side"));
            }
        }
        match stores.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut cursor: Option<String> = None;
    while !full(&report) {
        let users = a
            .list_usage(cursor.as_deref(), USERS_PER_PAGE)
            .await
            .map_err(failed("listing the first side's usage"))?;
        for (user, usage) in &users.users {
            let other = b.usage(user).await.map_err(failed("reading a usage"))?;
            if *usage != other {
                report.differences.push(format!(
                    "user `{user}` stores {} keys, {} bytes on the first side, {} keys, {} bytes \
                     on the second",
                    usage.keys, usage.bytes, other.keys, other.bytes
                ));
            }
        }
        match users.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(report)
}
