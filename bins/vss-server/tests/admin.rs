//! `vss-admin` on real deployments: a SQLite deployment filled by
//! vss-client-ng through vss-server, copied to a real PostgreSQL
//! (`VSS_TEST_POSTGRES_URL`) with `copy`, proven with `verify`, and read back
//! by vss-client-ng from vss-server on the destination; a copy killed midway
//! and resumed; usage, stats and delete-user.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::path::Path;

use common::child::{command, ADMIN, GUARD};
use common::*;
use vss_client_ng::client::VssClient;
use vss_client_ng::headers::FixedHeaders;
use vss_client_ng::types::{
    DeleteObjectRequest, GetObjectRequest, KeyValue, ListKeyVersionsRequest, PutObjectRequest,
};
use vss_core::conformance;
use vss_server::{AuthConfig, Config};

const USERS: [&str; 2] = ["alice", "bob"];
const STORES: [&str; 2] = ["wallet", ""];

fn client(url: &str, user: &str) -> VssClient<ClientPolicy> {
    let headers = [(
        "Authorization".to_string(),
        format!("Bearer {}", token(user)),
    )];
    VssClient::new_with_headers(
        url.to_string(),
        client_policy(),
        std::sync::Arc::new(FixedHeaders::new(headers.into_iter().collect())),
    )
}

fn kv(key: &str, version: i64, value: &[u8]) -> KeyValue {
    KeyValue {
        key: key.into(),
        version,
        value: value.to_vec(),
    }
}

async fn put(c: &VssClient<ClientPolicy>, store: &str, gv: Option<i64>, items: Vec<KeyValue>) {
    c.put_object(&PutObjectRequest {
        store_id: store.into(),
        global_version: gv,
        transaction_items: items,
        delete_items: vec![],
    })
    .await
    .unwrap();
}

/// Writes a state with every feature into each store of each user: creates,
/// updates, 600-character keys, an empty value, a 5 MiB value (first user's
/// first store), a delete and re-create, a global version.
async fn fill(url: &str, keys_per_store: usize) {
    for (u, user) in USERS.iter().enumerate() {
        let c = client(url, user);
        for (s, store) in STORES.iter().enumerate() {
            for n in 0..keys_per_store {
                let value = format!("{user}/{store}/{n}");
                put(&c, store, None, vec![kv(&ldk_key(n), 0, value.as_bytes())]).await;
            }
            put(
                &c,
                store,
                None,
                vec![kv("empty", -1, b""), kv("updated", 0, b"1")],
            )
            .await;
            put(&c, store, None, vec![kv("updated", 1, b"2")]).await;
            c.delete_object(&DeleteObjectRequest {
                store_id: store.to_string(),
                key_value: Some(kv(&ldk_key(0), -1, b"")),
            })
            .await
            .unwrap();
            put(&c, store, None, vec![kv(&ldk_key(0), 0, b"re-created")]).await;
            if u == 0 && s == 0 {
                put(&c, store, None, vec![kv("big", -1, &vec![0xA5; 5 << 20])]).await;
            }
            for gv in 0..(u + s + 1) as i64 {
                put(&c, store, Some(gv), vec![]).await;
            }
        }
    }
}

/// Everything a client sees of every store: (user, store, global version,
/// listing newest first with versions and values).
type Seen = Vec<(String, String, i64, Vec<(String, i64, Vec<u8>)>)>;

async fn read_all(url: &str) -> Seen {
    let mut seen = Vec::new();
    for user in USERS {
        let c = client(url, user);
        for store in STORES {
            let mut keys = Vec::new();
            let mut token = None;
            let mut global_version = None;
            loop {
                let page = c
                    .list_key_versions(&ListKeyVersionsRequest {
                        store_id: store.into(),
                        key_prefix: None,
                        page_size: Some(7),
                        page_token: token.clone(),
                    })
                    .await
                    .unwrap();
                global_version = global_version.or(page.global_version);
                for item in page.key_versions {
                    let got = c
                        .get_object(&GetObjectRequest {
                            store_id: store.into(),
                            key: item.key.clone(),
                        })
                        .await
                        .unwrap()
                        .value
                        .unwrap();
                    assert_eq!(got.version, item.version);
                    keys.push((item.key, item.version, got.value));
                }
                match page.next_page_token {
                    Some(t) if !t.is_empty() => token = Some(t),
                    _ => break,
                }
            }
            seen.push((
                user.to_string(),
                store.to_string(),
                global_version.unwrap(),
                keys,
            ));
        }
    }
    seen
}

fn jwt(config: Config) -> Config {
    Config {
        auth: AuthConfig::jwt(PUBLIC_PEM),
        ..config
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn sqlite_file(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.toml"));
    write(
        &path,
        &format!(
            "[sqlite_config]\npath = \"{}\"\n",
            dir.join(format!("{name}.sqlite3")).display()
        ),
    );
    path
}

/// A deployment in a fresh database of the test PostgreSQL server.
fn postgres_deployment(dir: &Path, url: &str, label: &str) -> Deployment {
    let pg = vss_backend_postgres::PostgresConfig::from_url(url).unwrap();
    let mut database = conformance::unique_name(&format!("vss_admin_{label}")).replace('-', "_");
    database.truncate(63);
    let path = dir.join(format!("{label}.toml"));
    write(
        &path,
        &format!(
            "[postgresql_config]\naddress = \"{}\"\nusername = \"{}\"\ndefault_database = \"{}\"\n\
             vss_database = \"{database}\"\n",
            pg.address, pg.username, pg.database
        ),
    );
    Deployment::new(path)
}

async fn admin(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let child = command(ADMIN, dir, args, AWS_ENV).spawn().unwrap();
    let output = tokio::time::timeout(GUARD * 5, child.wait_with_output())
        .await
        .expect("vss-admin did not exit")
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `vss-admin verify` of two deployments.
async fn verify(dir: &Path, a: &Deployment, b: &Deployment) -> (Option<i32>, String, String) {
    admin(dir, &["verify", "--from", a.path(), "--to", b.path()]).await
}

fn ok(what: &str, (code, stdout, stderr): &(Option<i32>, String, String)) {
    assert_eq!(*code, Some(0), "{what}: {stdout}\n{stderr}");
}

/// A deployment: its config file, and the configuration vss-server reads
/// from it (with the local DynamoDB server's credentials).
struct Deployment {
    file: std::path::PathBuf,
    config: Config,
}

impl Deployment {
    fn new(file: std::path::PathBuf) -> Self {
        let config = config_from_file(&file);
        Deployment { file, config }
    }

    fn path(&self) -> &str {
        self.file.to_str().unwrap()
    }

    /// Fills it through vss-server and answers what clients see.
    async fn fill(&self, keys_per_store: usize) -> Seen {
        let server = start(jwt(common::config(self.config.backend.clone()))).await;
        fill(&server.url, keys_per_store).await;
        let seen = read_all(&server.url).await;
        server.stop().await;
        seen
    }

    /// What clients see through vss-server on it.
    async fn seen(&self) -> Seen {
        let server = start(jwt(common::config(self.config.backend.clone()))).await;
        let seen = read_all(&server.url).await;
        server.stop().await;
        seen
    }
}

/// A deployment in a fresh table of the local DynamoDB-API server.
fn dynamodb_deployment(dir: &Path, endpoint: &str, label: &str) -> Deployment {
    let table = conformance::unique_name(&format!("admin-{label}"));
    let path = dir.join(format!("{label}.toml"));
    write(
        &path,
        &format!(
            "[dynamodb_config]\ntable = \"{table}\"\nregion = \"us-east-1\"\n\
             endpoint_url = \"{endpoint}\"\ncreate_table = true\n"
        ),
    );
    Deployment::new(path)
}

/// A deployment on database `db` of the test Redis, emptied of the test's users.
async fn redis_deployment(dir: &Path, url: &str, db: u8, label: &str) -> Deployment {
    let path = dir.join(format!("{label}.toml"));
    write(
        &path,
        &format!(
            "[redis_config]\nurl = \"{}/{db}\"\n",
            url.trim_end_matches('/')
        ),
    );
    let deployment = Deployment::new(path);
    for user in USERS {
        ok(
            "emptying the Redis database",
            &admin(
                dir,
                &["delete-user", "--user", user, "--yes", deployment.path()],
            )
            .await,
        );
    }
    deployment
}

/// Copies `source` (filled here) to the empty `destination`, verifies, and
/// reads the destination back through vss-server.
async fn copy_and_read_back(dir: &Path, source: &Deployment, destination: &Deployment) {
    let seen = source.fill(5).await;
    let (from, to) = (source.path(), destination.path());
    let copied = admin(
        dir,
        &["copy", "--from", from, "--to", to, "--page-keys", "3"],
    )
    .await;
    ok("copy", &copied);
    assert!(copied.1.contains(" 4 stores, 29 keys"), "{}", copied.1);
    ok("verify", &verify(dir, source, destination).await);
    assert_eq!(destination.seen().await, seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_postgres_to_dynamodb() {
    let (Some(pg), Some(ddb)) = (
        conformance::service_url("VSS_TEST_POSTGRES_URL"),
        conformance::service_url("VSS_TEST_DYNAMODB_URL"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let source = postgres_deployment(d, &pg, "pg_src");
    let destination = dynamodb_deployment(d, &ddb, "ddb-dst");
    copy_and_read_back(d, &source, &destination).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_redis_to_sqlite() {
    let Some(redis) = conformance::service_url("VSS_TEST_REDIS_URL") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let source = redis_deployment(d, &redis, 5, "redis-src").await;
    let destination = Deployment::new(sqlite_file(d, "sqlite-dst"));
    copy_and_read_back(d, &source, &destination).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_dynamodb_to_redis() {
    let (Some(ddb), Some(redis)) = (
        conformance::service_url("VSS_TEST_DYNAMODB_URL"),
        conformance::service_url("VSS_TEST_REDIS_URL"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let source = dynamodb_deployment(d, &ddb, "ddb-src");
    let destination = redis_deployment(d, &redis, 6, "redis-dst").await;
    copy_and_read_back(d, &source, &destination).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_sqlite_to_postgres_then_clients_read_the_same() {
    let Some(url) = conformance::service_url("VSS_TEST_POSTGRES_URL") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let source = Deployment::new(sqlite_file(d, "source"));
    let seen = source.fill(12).await;
    let destination = postgres_deployment(d, &url, "dst");
    let (from, to) = (source.path(), destination.path());

    let copied = admin(d, &["copy", "--from", from, "--to", to, "--page-keys", "5"]).await;
    ok("copy", &copied);
    assert!(copied.1.contains("copied 4 stores"), "{}", copied.1);
    let verified = verify(d, &source, &destination).await;
    ok("verify", &verified);
    assert!(verified.1.contains("identical"), "{}", verified.1);

    // vss-client-ng reads the same from vss-server on the destination.
    let server = start(jwt(common::config(destination.config.backend.clone()))).await;
    assert_eq!(read_all(&server.url).await, seen);

    // A write on the destination is a difference verify reports, and exits 1.
    put(
        &client(&server.url, "bob"),
        "wallet",
        None,
        vec![kv("updated", 2, b"3")],
    )
    .await;
    let (code, stdout, _) = verify(d, &source, &destination).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("key `updated` has version 2 on the first side, 3"),
        "{stdout}"
    );

    // A second copy refuses the destination that holds data, unless merging;
    // merging makes it equal again.
    let refused = admin(d, &["copy", "--from", from, "--to", to]).await;
    assert_eq!(refused.0, Some(1), "{refused:?}");
    assert!(
        refused.2.contains("holds data") && refused.2.contains("--merge"),
        "{}",
        refused.2
    );
    ok(
        "merge",
        &admin(d, &["copy", "--from", from, "--to", to, "--merge"]).await,
    );
    ok(
        "verify after merge",
        &verify(d, &source, &destination).await,
    );
    assert_eq!(read_all(&server.url).await, seen);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_killed_midway_resumes_to_the_same_result() {
    let Some(url) = conformance::service_url("VSS_TEST_POSTGRES_URL") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let source = Deployment::new(sqlite_file(d, "source"));
    let seen = source.fill(30).await;
    let destination = postgres_deployment(d, &url, "resume");
    let (from, to) = (source.path(), destination.path());
    let copy = ["copy", "--from", from, "--to", to, "--page-keys", "4"];

    // Killed (abort, as a crash) after its sixth page of four keys: the
    // first store (Alice's store "", of 32 keys) is half copied.
    let mut killed: Vec<&str> = copy.to_vec();
    killed.extend(["--abort-after-pages", "6"]);
    let (code, stdout, stderr) = admin(d, &killed).await;
    assert_eq!(code, None, "the copy was not killed: {stdout}\n{stderr}");
    let (code, stdout, _) = verify(d, &source, &destination).await;
    assert_eq!(code, Some(1), "a half copy verified: {stdout}");

    let resumed = admin(d, &copy).await;
    ok("resumed copy", &resumed);
    assert!(
        resumed.1.contains("resuming an earlier run"),
        "{}",
        resumed.1
    );
    ok("verify", &verify(d, &source, &destination).await);
    assert_eq!(destination.seen().await, seen);
    // Once finished, the same command is a new copy: the destination holds data.
    let again = admin(d, &copy).await;
    assert_eq!(again.0, Some(1), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_stats_and_delete_user_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let source = Deployment::new(sqlite_file(d, "source"));
    source.fill(3).await;
    let config = source.path();
    let snapshot_deployment = Deployment::new(sqlite_file(d, "snapshot"));
    let snapshot = snapshot_deployment.path();
    ok(
        "copy",
        &admin(
            d,
            &["copy", "--from", config, "--to", snapshot, "--state", "s1"],
        )
        .await,
    );

    let (code, stdout, stderr) = admin(d, &["usage", "--json", "--sort", "user", config]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let users: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let users = users.as_array().unwrap();
    assert_eq!(users.len(), 2, "{stdout}");
    assert_eq!(users[0]["user"], "alice");
    assert_eq!(users[1]["user"], "bob");
    // Both hold 2 stores of 3 + 2 keys; Alice also the 5 MiB value.
    assert_eq!(users[0]["keys"], 11);
    assert_eq!(users[1]["keys"], 10);
    assert!(users[0]["bytes"].as_u64().unwrap() > 5 << 20);
    let (_, by_bytes, _) = admin(d, &["usage", "--limit", "1", config]).await;
    assert!(
        by_bytes.contains("alice") && !by_bytes.contains("bob"),
        "{by_bytes}"
    );

    let (code, stats, _) = admin(d, &["stats", "--json", config]).await;
    assert_eq!(code, Some(0));
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["users"], 2);
    assert_eq!(stats["keys"], 21);

    // Without --yes nothing goes.
    let (code, stdout, _) = admin(d, &["delete-user", "--user", "alice", config]).await;
    assert_eq!(code, Some(3), "{stdout}");
    assert!(
        stdout.contains("would delete user `alice`: 11 keys"),
        "{stdout}"
    );
    ok("verify", &verify(d, &source, &snapshot_deployment).await);
    ok(
        "delete-user",
        &admin(d, &["delete-user", "--user", "alice", "--yes", config]).await,
    );
    // Alice's stores are gone; Bob's are byte-identical (verify names only Alice).
    let (code, stdout, _) = verify(d, &source, &snapshot_deployment).await;
    assert_eq!(code, Some(1));
    for line in stdout.lines().filter(|l| l.starts_with("DIFFERENT")) {
        assert!(line.contains("alice"), "{line}");
    }
    assert!(
        stdout.contains("of user `alice` holds data only on the second side"),
        "{stdout}"
    );
    let (_, stats, _) = admin(d, &["stats", "--json", config]).await;
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(
        (stats["users"].clone(), stats["keys"].clone()),
        (1.into(), 10.into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_restores_exactly_and_refuses_damaged_files() {
    let Some(url) = conformance::service_url("VSS_TEST_POSTGRES_URL") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let source = Deployment::new(sqlite_file(d, "exported"));
    let seen = source.fill(8).await;
    let file = d.join("backup.vssx");
    let file = file.to_str().unwrap();
    let exported = admin(d, &["export", "--file", file, "--json", source.path()]).await;
    ok("export", &exported);
    let contents: serde_json::Value = serde_json::from_str(&exported.1).unwrap();
    assert_eq!(
        (contents["stores"].clone(), contents["keys"].clone()),
        (4.into(), 41.into())
    );
    // The file exists now: a second export does not overwrite it.
    let again = admin(d, &["export", "--file", file, source.path()]).await;
    assert_eq!(again.0, Some(1), "{again:?}");
    assert!(again.2.contains("exists"), "{}", again.2);

    let destination = postgres_deployment(d, &url, "imported");
    ok(
        "import",
        &admin(d, &["import", "--file", file, destination.path()]).await,
    );
    ok("verify", &verify(d, &source, &destination).await);
    assert_eq!(destination.seen().await, seen);
    // Into a deployment that holds data: refused, unless merging.
    let refused = admin(d, &["import", "--file", file, destination.path()]).await;
    assert_eq!(refused.0, Some(1), "{refused:?}");
    assert!(refused.2.contains("--merge"), "{}", refused.2);
    ok(
        "import --merge",
        &admin(
            d,
            &["import", "--file", file, "--merge", destination.path()],
        )
        .await,
    );
    ok(
        "verify after the merge",
        &verify(d, &source, &destination).await,
    );

    // Damaged files are refused before anything is written.
    let bytes = std::fs::read(file).unwrap();
    let truncated = d.join("truncated.vssx");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let corrupt = d.join("corrupt.vssx");
    std::fs::write(&corrupt, &flipped).unwrap();
    let empty = Deployment::new(sqlite_file(d, "untouched"));
    for damaged in [&truncated, &corrupt] {
        let (code, _, stderr) = admin(
            d,
            &["import", "--file", damaged.to_str().unwrap(), empty.path()],
        )
        .await;
        assert_eq!(code, Some(1), "{stderr}");
        let (_, stats, _) = admin(d, &["stats", "--json", empty.path()]).await;
        let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
        assert_eq!(stats["keys"], 0, "a damaged file wrote data: {stderr}");
    }
    let (code, stdout, _) = admin(d, &["import", "--file", file, "--check"]).await;
    assert_eq!(code, Some(0));
    assert!(stdout.contains("4 stores, 41 keys"), "{stdout}");
}
