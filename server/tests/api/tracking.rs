//! Tracking: the native API through the router on both databases, and the
//! official mlflow client against a live `trellis server` on SQLite and
//! PostgreSQL, including a job that logs through mlflow into its own run.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use trellis_db::testing::TestDb;
use trellis_db::{Db, test_on_both_databases};

use super::process::Server;
use super::{App, assert_error};

async fn tracked_run(app: &App, project: &str) -> String {
    app.project(project).await;
    let run = app.run(project, json!({ "name": "tracked" })).await;
    run["uuid"].as_str().unwrap().to_owned()
}

async fn put(app: &App, uri: &str, body: impl Into<Body>) -> super::Reply {
    app.send(Request::put(uri).body(body.into()).unwrap()).await
}

async fn metrics_are_batched_summarised_downsampled_and_compared(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let app = App::with_artifacts(db, dir.path());
    let uuid = tracked_run(&app, "track").await;
    let base = format!("/api/v1/default/track/runs/{uuid}");
    // 5000 points in 5 batches: a sine with one spike and one dip.
    for batch in 0..5 {
        let metrics: Vec<Value> = (0..1000)
            .map(|i| {
                let step = batch * 1000 + i;
                let value = match step {
                    1234 => 100.0,
                    4321 => -100.0,
                    s => (f64::from(s) / 100.0).sin(),
                };
                json!({ "key": "loss", "value": value, "step": step, "timestamp": 1_700_000_000_000_i64 + i64::from(step) })
            })
            .collect();
        let reply = app
            .post(&format!("{base}/metrics"), json!({ "metrics": metrics }))
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    }
    app.post(
        &format!("{base}/metrics"),
        json!({ "metrics": [{ "key": "acc", "value": 0.5, "step": 1 }, { "key": "acc", "value": 0.75, "step": 2 }] }),
    )
    .await;

    let summary = app.get(&format!("{base}/metrics")).await;
    assert_eq!(summary.status, StatusCode::OK, "{}", summary.text);
    let metrics = summary.body["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 2);
    let loss = metrics.iter().find(|m| m["key"] == "loss").unwrap();
    assert_eq!(loss["count"], 5000);
    assert_eq!(loss["max"], 100.0);
    assert_eq!(loss["min"], -100.0);
    assert_eq!(loss["step"], 4999);
    assert_eq!(
        metrics.iter().find(|m| m["key"] == "acc").unwrap()["last"],
        0.75
    );

    let series = app
        .get(&format!("{base}/metrics/series?key=loss&points=200"))
        .await;
    assert_eq!(series.status, StatusCode::OK, "{}", series.text);
    assert_eq!(series.body["total"], 5000);
    assert_eq!(series.body["downsampled"], true);
    let points = series.body["points"].as_array().unwrap();
    assert!(points.len() <= 200, "{} points", points.len());
    let values: Vec<f64> = points
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .collect();
    assert!(
        values.contains(&100.0) && values.contains(&-100.0),
        "extremes were lost"
    );
    assert_eq!(points.first().unwrap()["step"], 0);
    assert_eq!(points.last().unwrap()["step"], 4999);
    // A zoomed range comes back at full resolution.
    let zoom = app
        .get(&format!(
            "{base}/metrics/series?key=loss&points=1000&min_step=1200&max_step=1299"
        ))
        .await;
    assert_eq!(zoom.body["total"], 100);
    assert_eq!(zoom.body["downsampled"], false);

    let other = app.run("track", json!({ "name": "other" })).await;
    let other = other["uuid"].as_str().unwrap();
    app.post(
        &format!("/api/v1/default/track/runs/{other}/metrics"),
        json!({ "metrics": [{ "key": "loss", "value": 0.1, "step": 0 }] }),
    )
    .await;
    let compare = app
        .get(&format!(
            "/api/v1/default/track/metrics/compare?runs={uuid},{other}&key=loss&points=50"
        ))
        .await;
    assert_eq!(compare.status, StatusCode::OK, "{}", compare.text);
    let series = compare.body["series"].as_array().unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(series[1]["total"], 1);

    // PQL and sorting read the tracked metrics.
    let filtered = app
        .get("/api/v1/default/track/runs?query=metrics.acc:%3E0.7")
        .await;
    assert_eq!(filtered.body["count"], 1, "{}", filtered.text);
    assert_eq!(filtered.body["results"][0]["uuid"], uuid.as_str());
    let sorted = app
        .get("/api/v1/default/track/runs?sort=-metrics.loss")
        .await;
    assert_eq!(sorted.body["results"][0]["uuid"], other, "{}", sorted.text);
}

async fn bad_tracking_input_is_refused_and_writes_nothing(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let app = App::with_artifacts(db, dir.path());
    let uuid = tracked_run(&app, "bad").await;
    let base = format!("/api/v1/default/bad/runs/{uuid}");
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({ "key": "x", "value": 1.0, "step": i }))
        .collect();
    let reply = app
        .post(&format!("{base}/metrics"), json!({ "metrics": too_many }))
        .await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "invalid",
        "at most 1000 metrics",
    );
    let reply = app
        .raw_post(
            &format!("{base}/metrics"),
            "application/json",
            r#"{"metrics":[{"key":"x","value":NaN}]}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    let reply = app
        .post(
            &format!("{base}/metrics"),
            json!({ "metrics": [{ "key": "system/cpu", "value": 1.0 }] }),
        )
        .await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "invalid",
        "kept for the metrics Trellis samples",
    );
    let reply = app
        .post(
            &format!("{base}/metrics"),
            json!({ "metrics": [{ "key": "ok", "value": 1.0 }, { "key": "../x", "value": 1.0 }] }),
        )
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid", "`../x`");
    let reply = app
        .post(
            &format!("{base}/metrics"),
            json!({ "metrics": [{ "key": "k".repeat(251), "value": 1.0 }] }),
        )
        .await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "invalid",
        "longer than 250",
    );
    assert_eq!(
        app.get(&format!("{base}/metrics")).await.body["metrics"],
        json!([])
    );

    let reply = app
        .post(
            &format!("{base}/params"),
            json!({ "params": { "lr": 0.1, "opt": "adam" } }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    let reply = app
        .post(
            &format!("{base}/params"),
            json!({ "params": { "lr": 0.1 } }),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::NO_CONTENT,
        "the same value again is fine"
    );
    let reply = app
        .post(
            &format!("{base}/params"),
            json!({ "params": { "new": 1, "lr": 0.2 } }),
        )
        .await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "invalid",
        "key='lr' was already logged with value='0.1'",
    );
    let run = app.get(&base).await;
    assert_eq!(
        run.body["inputs"],
        json!({ "lr": 0.1, "opt": "adam" }),
        "a refused batch wrote `new`"
    );

    let reply = app
        .post(
            &format!("{base}/outputs"),
            json!({ "outputs": { "path": "/m", "score": 3 } }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    app.post(
        &format!("{base}/outputs"),
        json!({ "outputs": { "score": 4 } }),
    )
    .await;
    let reply = app
        .post(&format!("{base}/tags"), json!({ "tags": ["a", "b"] }))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let run = app.get(&base).await;
    assert_eq!(run.body["outputs"], json!({ "path": "/m", "score": 4 }));
    assert_eq!(run.body["tags"], json!(["a", "b"]));

    let missing = "/api/v1/default/bad/runs/00000000-0000-0000-0000-000000000000/metrics";
    assert_error(
        &app.get(missing).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "run",
    );
    let reply = app
        .get(&format!("{base}/metrics/series?key=x&points=0"))
        .await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "invalid",
        "points must be between",
    );
}

async fn artifacts_stream_in_and_out_and_stay_inside_the_run(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let app = App::with_artifacts(db, dir.path());
    let uuid = tracked_run(&app, "arts").await;
    let base = format!("/api/v1/default/arts/runs/{uuid}/artifacts");
    // 6 MiB: above the JSON body limit, so the upload path really streams.
    let big: Vec<u8> = (0..6 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let reply = put(
        &app,
        &format!("{base}/files/model/weights.bin"),
        big.clone(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["size"], big.len());
    put(&app, &format!("{base}/files/notes.txt"), "hello").await;

    let download = app
        .router
        .clone()
        .oneshot(
            Request::get(format!("{base}/files/model/weights.bin"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(
        download.headers()["content-length"],
        big.len().to_string().as_str()
    );
    let bytes = download.into_body().collect().await.unwrap().to_bytes();
    assert!(bytes == big, "the download differs from the upload");
    let root = app.get(&format!("{base}/tree")).await;
    assert_eq!(
        root.body["files"],
        json!([
            { "path": "model", "is_dir": true, "size": null },
            { "path": "notes.txt", "is_dir": false, "size": 5 },
        ])
    );
    let inner = app.get(&format!("{base}/tree?path=model")).await;
    assert_eq!(inner.body["files"][0]["path"], "model/weights.bin");

    for bad in [
        "%2E%2E/%2E%2E/etc/passwd",
        "a/%2E%2E/%2E%2E/x",
        "%2Fetc%2Fpasswd",
    ] {
        let reply = app.get(&format!("{base}/files/{bad}")).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid", "artifact path");
        let reply = put(&app, &format!("{base}/files/{bad}"), "x").await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            reply.text
        );
    }
    let reply = app.get(&format!("{base}/tree?path=../..")).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid", "goes up");
    assert_error(
        &app.get(&format!("{base}/files/nope.txt")).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "nope.txt",
    );

    let reply = app
        .call(Method::DELETE, &format!("{base}/files/model"), None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let root = app.get(&format!("{base}/tree")).await;
    assert_eq!(root.body["files"].as_array().unwrap().len(), 1);

    // Deleting the run deletes its artifacts.
    let run_dir = dir.path().join(uuid.replace('-', ""));
    assert!(run_dir.exists());
    let reply = app
        .call(
            Method::DELETE,
            &format!("/api/v1/default/arts/runs/{uuid}"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(!run_dir.exists(), "the run's artifacts outlived it");
}

/// What the official client sends for `mlflow.log_param("layers", 3)` and
/// `set_terminated(run_id, end_time=...)`: params as strings, the end time
/// the client chose. Params read as numbers in queries and sorts; the end
/// time is kept.
async fn mlflow_params_query_as_numbers_and_end_times_are_kept(db: Db) {
    let app = super::App::new(db);
    let experiment = app
        .post(
            "/api/2.0/mlflow/experiments/create",
            json!({ "name": "mlq" }),
        )
        .await;
    assert_eq!(experiment.status, StatusCode::OK, "{}", experiment.text);
    let experiment_id = experiment.body["experiment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let start = 1_700_000_000_000_i64;
    let mut ids = Vec::new();
    for (name, layers, lr) in [
        ("a", "3", "0.01"),
        ("b", "10", "0.1"),
        ("c", "9", "1e-05"),
        ("d", "deep", "n/a"),
    ] {
        let created = app
            .post(
                "/api/2.0/mlflow/runs/create",
                json!({ "experiment_id": experiment_id, "run_name": name, "start_time": start }),
            )
            .await;
        assert_eq!(created.status, StatusCode::OK, "{}", created.text);
        let id = created.body["run"]["info"]["run_id"]
            .as_str()
            .unwrap()
            .to_owned();
        for (key, value) in [("layers", layers), ("lr", lr)] {
            let logged = app
                .post(
                    "/api/2.0/mlflow/runs/log-parameter",
                    json!({ "run_id": id, "key": key, "value": value }),
                )
                .await;
            assert_eq!(logged.status, StatusCode::OK, "{}", logged.text);
        }
        ids.push((name, id));
    }
    let names = |reply: &super::Reply| -> Vec<String> {
        reply.body["results"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", reply.text))
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let query = |q: &str| {
        format!(
            "/api/v1/default/mlq/runs?query={}&sort=name",
            q.replace(':', "%3A")
                .replace('>', "%3E")
                .replace('<', "%3C")
                .replace(' ', "%20")
        )
    };
    assert_eq!(names(&app.get(&query("params.layers:3")).await), ["a"]);
    assert_eq!(names(&app.get(&query("params.layers:>9")).await), ["b"]);
    assert_eq!(
        names(&app.get(&query("params.lr:>0.001")).await),
        ["a", "b"]
    );
    assert_eq!(names(&app.get(&query("params.lr:<0.001")).await), ["c"]);
    assert_eq!(names(&app.get(&query("params.layers:deep")).await), ["d"]);
    // Numeric order, not text order ("10" < "9"); text last.
    assert_eq!(
        names(
            &app.get("/api/v1/default/mlq/runs?sort=-params.layers")
                .await
        ),
        ["b", "c", "a", "d"]
    );
    assert_eq!(
        names(&app.get("/api/v1/default/mlq/runs?sort=params.layers").await),
        ["a", "c", "b", "d"]
    );

    // `set_terminated(run_id, end_time=...)`: the client's end time.
    let (_, first) = &ids[0];
    let end = start + 90_500;
    let updated = app
        .post(
            "/api/2.0/mlflow/runs/update",
            json!({ "run_id": first, "status": "FINISHED", "end_time": end }),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    // int64 travels as a number or a string (protobuf's JSON mapping).
    let int = |value: &Value| {
        value
            .as_i64()
            .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
    };
    assert_eq!(
        int(&updated.body["run_info"]["end_time"]),
        Some(end),
        "{}",
        updated.text
    );
    let read = app
        .get(&format!("/api/2.0/mlflow/runs/get?run_id={first}"))
        .await;
    let end_of = |reply: &super::Reply| -> i64 {
        int(&reply.body["run"]["info"]["end_time"]).unwrap_or_else(|| panic!("{}", reply.text))
    };
    assert_eq!(end_of(&read), end);
    assert_eq!(read.body["run"]["info"]["status"], "FINISHED");
    let native = app.get(&format!("/api/v1/default/mlq/runs/{first}")).await;
    assert_eq!(
        native.body["duration"].as_f64(),
        Some(90.5),
        "{}",
        native.text
    );
    // A later update of a finished run's end time (an importer) is kept too.
    let later = end + 1_000;
    let updated = app
        .post(
            "/api/2.0/mlflow/runs/update",
            json!({ "run_id": first, "end_time": later }),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    let read = app
        .get(&format!("/api/2.0/mlflow/runs/get?run_id={first}"))
        .await;
    assert_eq!(end_of(&read), later);
    let bad = app
        .post(
            "/api/2.0/mlflow/runs/update",
            json!({ "run_id": first, "end_time": i64::MAX }),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    assert!(bad.text.contains("end_time"), "{}", bad.text);
}

test_on_both_databases!(
    mlflow_params_query_as_numbers_and_end_times_are_kept,
    metrics_are_batched_summarised_downsampled_and_compared,
    bad_tracking_input_is_refused_and_writes_nothing,
    artifacts_stream_in_and_out_and_stay_inside_the_run,
);

/// The Python of the virtualenv holding the official mlflow client, which
/// `scripts/dev setup` installs from PyPI outside the clone.
fn mlflow_python() -> PathBuf {
    let venv = std::env::var_os("TRELLIS_MLFLOW_VENV").map_or_else(
        || {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache/trellis/mlflow-venv")
        },
        PathBuf::from,
    );
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `scripts/dev setup` to install the mlflow client (or set TRELLIS_MLFLOW_VENV)",
        python.display()
    );
    python
}

const CLIENT_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mlflow/client.py");

/// Runs the client script against `server`; the ids it made.
fn drive_mlflow_client(base: &str, suffix: &str) -> Value {
    let output = Command::new(mlflow_python())
        .arg(CLIENT_SCRIPT)
        .arg(suffix)
        .env("MLFLOW_TRACKING_URI", base)
        .env_remove("MLFLOW_RUN_ID")
        .env_remove("MLFLOW_EXPERIMENT_ID")
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the mlflow client script failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap();
    serde_json::from_str(last).unwrap()
}

async fn the_mlflow_client_works_against_a_live_server(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), database_url).await;
    let base = server.base.clone();
    let ids = tokio::task::spawn_blocking(move || drive_mlflow_client(&base, "live"))
        .await
        .unwrap();

    // The runs the client made are Trellis runs, in the experiment's project.
    let (status, runs) = server
        .request(
            "GET",
            "/api/v1/default/trellis-mlflow-test-live/runs?sort=name",
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{runs}");
    let names: Vec<&str> = runs["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["batch", "child", "parent"]);
    let parent = ids["parent"].as_str().unwrap();
    let (_, metrics) = server
        .request(
            "GET",
            &format!("/api/v1/default/trellis-mlflow-test-live/runs/{parent}/metrics"),
            None,
        )
        .await
        .unwrap();
    let loss = metrics["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "loss")
        .unwrap()
        .clone();
    assert_eq!(loss["count"], 10);
    assert_eq!(loss["min"], 0.1);

    // An acknowledged batch survives kill -9 of the server.
    let batch = ids["batch"].as_str().unwrap();
    let killed = Command::new("kill")
        .args(["-9", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let _ = server.child.wait();
    let restarted = Server::start(dir.path(), database_url).await;
    let (status, history) = restarted
        .request(
            "GET",
            &format!("/api/2.0/mlflow/metrics/get-history?run_id={batch}&metric_key=m"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(history["metrics"].as_array().unwrap().len(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mlflow_client_works_on_sqlite() {
    the_mlflow_client_works_against_a_live_server(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mlflow_client_works_on_postgres() {
    let test_db = TestDb::postgres().await;
    test_db.db.close().await;
    the_mlflow_client_works_against_a_live_server(Some(&test_db.url)).await;
}

/// A job launched by Trellis logs through mlflow into its own run, with no
/// configuration: the executor gives it MLFLOW_TRACKING_URI, MLFLOW_RUN_ID
/// and MLFLOW_EXPERIMENT_ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_logs_through_mlflow_into_its_own_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), None, &["--system-metrics-secs", "1"]).await;
    let script = dir.path().join("train.py");
    std::fs::write(
        &script,
        "import mlflow, time\n\
         with mlflow.start_run():\n\
         \x20   mlflow.log_param('lr', 0.1)\n\
         \x20   for step in range(5):\n\
         \x20       mlflow.log_metric('loss', 1.0 / (step + 1), step=step)\n\
         \x20   sum(i * i for i in range(3_000_000))\n\
         \x20   time.sleep(2.5)\n",
    )
    .unwrap();
    let spec = dir.path().join("train.yaml");
    std::fs::write(
        &spec,
        format!(
            "version: 1.1\nkind: component\nrun:\n  kind: job\n  container:\n    image: python\n    command: [{}, {}]\n",
            mlflow_python().display(),
            script.display()
        ),
    )
    .unwrap();
    let (server, finished) = run_job(server, spec).await;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    let uuid = finished["uuid"].as_str().unwrap();
    let run = super::execution::wait_for_status(&server, uuid, "succeeded").await;
    assert_eq!(run["inputs"]["lr"], "0.1");
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = exec_metrics(&server, uuid).await;
        let keys: Vec<String> = metrics["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["key"].as_str().unwrap().to_owned())
            .collect();
        if keys
            .iter()
            .any(|k| k == "system/cpu_utilization_percentage")
            || Instant::now() > deadline
        {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let by_key = |key: &str| {
        metrics["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["key"] == key)
            .cloned()
    };
    let loss = by_key("loss").unwrap_or_else(|| panic!("no loss in {metrics}"));
    assert_eq!(loss["count"], 5);
    assert_eq!(loss["last"], 0.2);
    // The executor sampled the job's process tree while it ran.
    let memory = by_key("system/memory_rss_megabytes")
        .unwrap_or_else(|| panic!("no memory sample in {metrics}"));
    assert!(memory["max"].as_f64().unwrap() > 1.0, "{memory}");
    assert!(
        by_key("system/cpu_utilization_percentage").is_some(),
        "{metrics}"
    );
}

/// A job logs with the dependency-free Python helper (`sdk/python`), which
/// finds its run from the TRELLIS_* variables the executor sets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_logs_with_the_python_helper() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), None, &["--system-metrics-secs", "0"]).await;
    let script = dir.path().join("train.py");
    std::fs::write(
        &script,
        "import os, trellis_sdk as trellis\n\
         trellis.log_params(lr=0.01, optimizer='adam')\n\
         for step in range(2500):\n\
         \x20   trellis.log_metrics({'loss': 1.0 / (step + 1)}, step=step)\n\
         trellis.log_outputs(best=0.5)\n\
         trellis.log_tags('sdk')\n\
         open('model.bin', 'wb').write(b'weights' * 1000)\n\
         trellis.log_artifact('model.bin', 'checkpoints/model.bin')\n\
         try:\n\
         \x20   trellis.log_params(lr=0.02)\n\
         \x20   raise SystemExit('a changed param was accepted')\n\
         except trellis.TrellisError as e:\n\
         \x20   assert 'already logged' in str(e), e\n",
    )
    .unwrap();
    let sdk = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/python");
    let spec = dir.path().join("sdk.yaml");
    std::fs::write(
        &spec,
        format!(
            "version: 1.1\nkind: component\nrun:\n  kind: job\n  container:\n    image: python\n    command: [python3, {}]\n    env:\n      - {{name: PYTHONPATH, value: {sdk}}}\n",
            script.display()
        ),
    )
    .unwrap();
    let (server, finished) = run_job(server, spec).await;
    let uuid = finished["uuid"].as_str().unwrap();
    assert_eq!(finished["status"], "succeeded", "{finished}");
    let (_, run) = server
        .request("GET", &format!("/api/v1/default/exec/runs/{uuid}"), None)
        .await
        .unwrap();
    assert_eq!(run["inputs"], json!({ "lr": 0.01, "optimizer": "adam" }));
    assert_eq!(run["outputs"], json!({ "best": 0.5 }));
    assert_eq!(run["tags"], json!(["sdk"]));
    let metrics = exec_metrics(&server, uuid).await;
    assert_eq!(metrics["metrics"][0]["key"], "loss");
    assert_eq!(metrics["metrics"][0]["count"], 2500);
    let (_, tree) = server
        .request(
            "GET",
            &format!("/api/v1/default/exec/runs/{uuid}/artifacts/tree?path=checkpoints"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(tree["files"][0]["size"], 7000);
}

/// Creates the project `exec` and runs `spec` in it with `trellis run
/// --watch`; the server back, and the finished run.
async fn run_job(server: Server, spec: PathBuf) -> (Server, Value) {
    tokio::task::spawn_blocking(move || {
        super::cli::json(&server, &["projects", "create", "exec"]);
        let spec = spec.to_str().unwrap();
        let finished = super::cli::json(&server, &["run", "-f", spec, "-p", "exec", "--watch"]);
        (server, finished)
    })
    .await
    .unwrap()
}

/// The metric summaries of run `uuid` of the project `exec`.
async fn exec_metrics(server: &Server, uuid: &str) -> Value {
    let path = format!("/api/v1/default/exec/runs/{uuid}/metrics");
    let (status, metrics) = server.request("GET", &path, None).await.unwrap();
    assert_eq!(status, 200, "{metrics}");
    metrics
}
