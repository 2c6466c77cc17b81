//! Distributed mode against the real brokers: `trellis server` (API only),
//! `trellis scheduler` and several `trellis worker`s sharing one PostgreSQL
//! database, a RabbitMQ work queue and Redis events, each test in its own
//! database and namespace (queue and channel names).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trellis_db::testing::TestDb;

use super::execution::job;
use super::process::{BIN, Server};

fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Everything the processes of one test share.
struct Cluster {
    database_url: String,
    namespace: String,
    _db: TestDb,
}

impl Cluster {
    async fn new() -> Self {
        let db = TestDb::postgres().await;
        db.db.close().await;
        Self {
            database_url: db.url.clone(),
            namespace: format!("trellis-test-{}", uuid::Uuid::new_v4().simple()),
            _db: db,
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DATABASE_URL", self.database_url.clone()),
            ("AMQP_URL", amqp_url()),
            ("REDIS_URL", redis_url()),
            ("TRELLIS_NAMESPACE", self.namespace.clone()),
            // Quick loss detection, so a killed worker is noticed in seconds.
            ("TRELLIS_HEARTBEAT_SECS", "1".into()),
            ("TRELLIS_LOST_AFTER_SECS", "3".into()),
            ("RUST_LOG", "warn".into()),
        ]
    }

    /// `trellis <role> <args>` with the cluster's environment.
    fn spawn(&self, role: &str, args: &[&str], data_dir: &Path) -> Role {
        let mut command = Command::new(BIN);
        command
            .arg(role)
            .args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (key, value) in self.env() {
            command.env(key, value);
        }
        Role(command.spawn().expect("start a trellis role"))
    }

    /// [`Cluster::server`] with the project `dist` the tests submit to.
    async fn server_with_project(&self, data_dir: &Path) -> Server {
        let server = self.server(data_dir).await;
        let (status, body) = server
            .request(
                "POST",
                "/api/v1/default/projects/create",
                Some(json!({ "name": "dist" })),
            )
            .await
            .unwrap();
        assert_eq!(status, 201, "{body}");
        server
    }

    async fn server(&self, data_dir: &Path) -> Server {
        let mut extra = vec![];
        for (key, value) in self.env() {
            if let Some(flag) = flag(key) {
                extra.push(format!("--{flag}={value}"));
            }
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        Server::start_with(data_dir, Some(&self.database_url), &extra).await
    }
}

/// The command-line flag of an environment variable the server reads.
fn flag(key: &str) -> Option<&'static str> {
    match key {
        "AMQP_URL" => Some("amqp-url"),
        "REDIS_URL" => Some("redis-url"),
        "TRELLIS_NAMESPACE" => Some("namespace"),
        "TRELLIS_HEARTBEAT_SECS" => Some("heartbeat-secs"),
        "TRELLIS_LOST_AFTER_SECS" => Some("lost-after-secs"),
        // The database is passed by `Server::start_with`; logs are its own.
        _ => None,
    }
}

/// A role process, killed with the test.
struct Role(Child);

impl Role {
    fn kill_9(&mut self) {
        assert!(
            Command::new("kill")
                .args(["-9", &self.0.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        let _ = self.0.wait();
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn submit(server: &Server, spec_path: &str) -> String {
    let spec = std::fs::read_to_string(spec_path).unwrap();
    let (status, run) = server
        .request(
            "POST",
            "/api/v1/default/dist/runs",
            Some(json!({ "content": spec })),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{run}");
    run["uuid"].as_str().unwrap().to_owned()
}

async fn run_of(server: &Server, uuid: &str) -> Value {
    server
        .request("GET", &format!("/api/v1/default/dist/runs/{uuid}"), None)
        .await
        .unwrap()
        .1
}

async fn conditions(server: &Server, uuid: &str) -> Vec<Value> {
    server
        .request(
            "GET",
            &format!("/api/v1/default/dist/runs/{uuid}/statuses"),
            None,
        )
        .await
        .unwrap()
        .1["status_conditions"]
        .as_array()
        .unwrap()
        .clone()
}

async fn wait_until(server: &Server, uuid: &str, wanted: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let status = run_of(server, uuid).await["status"].clone();
        if status == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "run {uuid} never became {wanted}; it is {status}; conditions: {:#?}",
            conditions(server, uuid).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The worker that started the run's latest attempt, from its conditions.
async fn executor_of(server: &Server, uuid: &str) -> String {
    conditions(server, uuid)
        .await
        .iter()
        .rev()
        .find(|c| c["type"] == "running")
        .and_then(|c| c["message"].as_str())
        .and_then(|m| m.split("started by ").nth(1))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_share_the_queue_and_a_killed_worker_loses_no_run() {
    let cluster = Cluster::new().await;
    let dir = tempfile::tempdir().unwrap();
    let server = cluster.server_with_project(dir.path()).await;
    let mut scheduler = cluster.spawn("scheduler", &["--concurrency", "8"], dir.path());
    let mut worker_a = cluster.spawn(
        "worker",
        &["--name", "a", "--concurrency", "2"],
        &dir.path().join("a"),
    );
    let _worker_b = cluster.spawn(
        "worker",
        &["--name", "b", "--concurrency", "2"],
        &dir.path().join("b"),
    );

    // Several short jobs spread over both workers and all succeed, their
    // output stored and streamed by the API process.
    let quick = job(
        dir.path(),
        "quick",
        "echo hello from $TRELLIS_RUN_UUID; sleep 1",
    );
    let mut quick_runs = Vec::new();
    for _ in 0..6 {
        quick_runs.push(submit(&server, &quick).await);
    }
    let mut executors = std::collections::BTreeSet::new();
    for uuid in &quick_runs {
        wait_until(&server, uuid, "succeeded", Duration::from_secs(60)).await;
        executors.insert(executor_of(&server, uuid).await);
        let logs = server
            .request(
                "GET",
                &format!("/api/v1/default/dist/runs/{uuid}/logs"),
                None,
            )
            .await
            .unwrap()
            .1;
        assert_eq!(
            logs["logs"][0]["text"],
            format!("hello from {uuid}"),
            "{logs}"
        );
    }
    assert_eq!(
        executors,
        ["worker:a".to_owned(), "worker:b".to_owned()].into(),
        "both workers took work"
    );

    // kill -9 the worker running a long job: the run is noticed as lost,
    // queued again and finished by the other worker.
    let long = job(dir.path(), "long", "echo begin; sleep 4; echo end");
    let uuid = submit(&server, &long).await;
    wait_until(&server, &uuid, "running", Duration::from_secs(30)).await;
    let first = executor_of(&server, &uuid).await;
    if first == "worker:a" {
        worker_a.kill_9();
    } else {
        // Keep `a` for later; kill `b` by leaving only `a` alive.
        drop(_worker_b);
    }
    wait_until(&server, &uuid, "succeeded", Duration::from_secs(60)).await;
    let history = conditions(&server, &uuid).await;
    assert!(
        history
            .iter()
            .any(|c| c["type"] == "retrying" && c["reason"] == "ExecutorLost"),
        "{history:#?}"
    );
    let second = executor_of(&server, &uuid).await;
    assert_ne!(first, second, "another worker finished the run");

    // kill -9 the scheduler: runs submitted meanwhile wait, durable, and
    // start once a scheduler is back.
    scheduler.kill_9();
    let late = submit(&server, &quick).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(run_of(&server, &late).await["status"], "created");
    if first == "worker:a" {
        // `a` is gone; bring a worker back.
        let _worker_c = cluster.spawn("worker", &["--name", "c"], &dir.path().join("c"));
        let _scheduler = cluster.spawn("scheduler", &[], dir.path());
        wait_until(&server, &late, "succeeded", Duration::from_secs(60)).await;
    } else {
        let _scheduler = cluster.spawn("scheduler", &[], dir.path());
        wait_until(&server, &late, "succeeded", Duration::from_secs(60)).await;
    }
    drop(worker_a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_distributed_roles_refuse_to_start_without_a_work_queue() {
    let dir = tempfile::tempdir().unwrap();
    for role in ["scheduler", "worker"] {
        let output = Command::new(BIN)
            .arg(role)
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("AMQP_URL")
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("AMQP_URL"), "{role}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_with_sigterm_hands_its_run_back_to_the_queue() {
    let cluster = Cluster::new().await;
    let dir = tempfile::tempdir().unwrap();
    let server = cluster.server_with_project(dir.path()).await;
    let _scheduler = cluster.spawn("scheduler", &[], dir.path());
    let mut leaving = cluster.spawn("worker", &["--name", "leaving"], &dir.path().join("l"));
    let long = job(dir.path(), "long", "echo begin; sleep 3; echo end");
    let uuid = submit(&server, &long).await;
    wait_until(&server, &uuid, "running", Duration::from_secs(30)).await;
    assert_eq!(executor_of(&server, &uuid).await, "worker:leaving");

    // SIGTERM: the worker stops its process and hands the run back at once
    // (no waiting for the heartbeat timeout), then exits cleanly.
    assert!(
        Command::new("kill")
            .args(["-TERM", &leaving.0.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let exited = leaving.0.wait().unwrap();
    assert!(
        exited.success(),
        "the worker exits 0 on SIGTERM: {exited:?}"
    );
    let history = conditions(&server, &uuid).await;
    let handed_back = history
        .iter()
        .any(|c| c["type"] == "retrying" && c["reason"] == "WorkerShutdown");
    assert!(handed_back, "{history:#?}");
    // Waiting for a worker: queued, or already scheduled again (the
    // scheduler wakes on the `queued` event).
    let status = run_of(&server, &uuid).await["status"].clone();
    assert!(status == "queued" || status == "scheduled", "{status}");

    let _staying = cluster.spawn("worker", &["--name", "staying"], &dir.path().join("s"));
    wait_until(&server, &uuid, "succeeded", Duration::from_secs(60)).await;
    assert_eq!(executor_of(&server, &uuid).await, "worker:staying");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_reaches_a_service_on_a_worker_at_its_advertised_host() {
    let cluster = Cluster::new().await;
    let dir = tempfile::tempdir().unwrap();
    let server = cluster.server_with_project(dir.path()).await;
    let _scheduler = cluster.spawn("scheduler", &[], dir.path());
    // 127.0.0.2 is this host too, but only a service listening on every
    // interface answers there: the worker must bind wide and record the
    // advertised address, and the proxy must dial what was recorded.
    let _worker = cluster.spawn(
        "worker",
        &["--name", "far", "--advertise-host", "127.0.0.2"],
        &dir.path().join("w"),
    );
    let spec = dir.path().join("web.yaml");
    std::fs::write(
        &spec,
        "version: 1.1\nkind: component\nrun:\n  kind: service\n  ports: [8000]\n  rewritePath: true\n  container:\n    image: python\n    command: [python3, -m, http.server, --bind, '{{ globals.host }}', '{{ globals.ports[0] }}']\n",
    )
    .unwrap();
    let uuid = submit(&server, spec.to_str().unwrap()).await;
    wait_until(&server, &uuid, "running", Duration::from_secs(30)).await;
    let hex = uuid.replace('-', "");
    let (status, _) = server
        .request(
            "GET",
            &format!("/rewrite-services/v1/default/dist/runs/{hex}/8000/"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        status, 200,
        "the worker's service answers through the proxy"
    );
    let (listed, workspaces) = server
        .request("GET", "/api/v1/default/dist/workspaces", None)
        .await
        .unwrap();
    assert_eq!(listed, 200);
    assert_eq!(
        workspaces[0]["url"],
        format!("/rewrite-services/v1/default/dist/runs/{hex}/8000/")
    );
    server
        .request(
            "POST",
            &format!("/api/v1/default/dist/runs/{uuid}/stop"),
            None,
        )
        .await
        .unwrap();
    wait_until(&server, &uuid, "stopped", Duration::from_secs(30)).await;
}
