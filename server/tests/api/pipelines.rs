//! Pipelines through a live `trellis server` and the CLI: a bayes sweep
//! that finds Branin's minimum, a dag with references, conditions and
//! trigger policies, and stopping a sweep.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use trellis_db::testing::TestDb;

use super::cli::json;
use super::process::Server;

fn example(name: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    root.join("examples")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

async fn children(server: &Server, project: &str, uuid: &str) -> Vec<Value> {
    let (status, body) = server
        .request(
            "GET",
            &format!("/api/v1/default/{project}/runs/{uuid}/children"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

/// Starts a server on `dir`, creates `project` and submits `spec` with
/// `trellis run -f`; returns the server and the new run's uuid.
async fn submit(dir: &std::path::Path, project: &'static str, spec: &str) -> (Server, String) {
    let server = Server::start_with(dir, None, &[]).await;
    let path = dir.join("spec.yaml");
    std::fs::write(&path, spec).unwrap();
    let path = path.to_string_lossy().into_owned();
    tokio::task::spawn_blocking(move || {
        json(&server, &["projects", "create", project]);
        let created = json(&server, &["run", "-f", &path, "-p", project]);
        let uuid = created["uuid"].as_str().unwrap().to_owned();
        (server, uuid)
    })
    .await
    .unwrap()
}

async fn wait_done(server: &Server, project: &str, uuid: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let run = server
            .request(
                "GET",
                &format!("/api/v1/default/{project}/runs/{uuid}"),
                None,
            )
            .await
            .unwrap()
            .1;
        let status = run["status"].as_str().unwrap_or_default();
        if ["succeeded", "failed", "stopped"].contains(&status) {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "pipeline {uuid} is still {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The issue's end-to-end goal: the bayes example reaches Branin's
/// optimum 0.397887 within 0.01 in at most 50 trials, on the embedded
/// default, with each trial a real process logging its metric.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bayes_sweep_finds_the_branin_minimum_within_fifty_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), None, &[]).await;
    let spec = example("branin-bayes.yaml");
    let server = tokio::task::spawn_blocking(move || {
        json(&server, &["projects", "create", "branin"]);
        let created = json(&server, &["run", "-f", &spec, "-p", "branin"]);
        assert_eq!(created["kind"], "matrix");
        (server, created["uuid"].as_str().unwrap().to_owned())
    })
    .await
    .unwrap();
    let (server, uuid) = server;
    let sweep = wait_done(&server, "branin", &uuid, Duration::from_secs(600)).await;
    assert_eq!(sweep["status"], "succeeded", "{sweep}");
    let trials = children(&server, "branin", &uuid).await;
    assert_eq!(trials.len(), 50);
    for (i, trial) in trials.iter().enumerate() {
        assert_eq!(trial["pipeline"], uuid.as_str());
        assert_eq!(trial["pipeline_index"], i);
        assert_eq!(trial["status"], "succeeded", "{trial}");
        let x1 = trial["inputs"]["x1"].as_f64().unwrap();
        let x2 = trial["inputs"]["x2"].as_f64().unwrap();
        assert!((-5.0..=10.0).contains(&x1) && (0.0..=15.0).contains(&x2));
    }
    let best = sweep["outputs"]["loss"].as_f64().unwrap();
    assert!(
        (best - 0.397887).abs() < 0.01,
        "the best of 50 trials is {best}: {}",
        sweep["outputs"]
    );
    // The recorded best is the best trial's own tracked metric.
    let best_run = sweep["outputs"]["best_run"].as_str().unwrap();
    let (_, metrics) = server
        .request(
            "GET",
            &format!("/api/v1/default/branin/runs/{best_run}/metrics"),
            None,
        )
        .await
        .unwrap();
    let logged = metrics.to_string();
    assert!(logged.contains("\"loss\""), "{logged}");
}

const DAG_FAILING: &str = r#"
version: 1.1
kind: component
run:
  kind: dag
  components:
    - name: sh
      inputs: [{name: code, type: int, value: 0}]
      run: {kind: job, container: {image: busybox, command: [sh, -c, "exit {{ code }}"]}}
  operations:
    - {name: ok, dagRef: sh}
    - {name: broken, dagRef: sh, dependencies: [ok], params: {code: {value: 3}}}
    - {name: after_broken, dagRef: sh, dependencies: [broken]}
    - {name: rescue, dagRef: sh, dependencies: [broken], trigger: one_failed}
    - {name: skipped, dagRef: sh, dependencies: [ok], conditions: "{{ code > 5 }}"}
    - {name: after_skipped, dagRef: sh, dependencies: [skipped], skipOnUpstreamSkip: true}
"#;

async fn dag_runs_with_refs_conditions_and_policies(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), database_url, &[]).await;
    let failing = dir.path().join("failing.yaml");
    std::fs::write(&failing, DAG_FAILING).unwrap();
    let failing = failing.to_string_lossy().into_owned();
    let spec = example("dag-pipeline.yaml");
    let (server, good, bad) = tokio::task::spawn_blocking(move || {
        json(&server, &["projects", "create", "dags"]);
        let good = json(&server, &["run", "-f", &spec, "-p", "dags", "--watch"]);
        let bad = json(&server, &["run", "-f", &failing, "-p", "dags"]);
        (server, good, bad)
    })
    .await
    .unwrap();
    assert_eq!(good["status"], "succeeded", "{good}");
    assert_eq!(good["kind"], "dag");
    let ops = children(&server, "dags", good["uuid"].as_str().unwrap()).await;
    let by_op = |ops: &[Value], name: &str| -> Value {
        ops.iter()
            .find(|o| o["pipeline_op"] == name)
            .unwrap_or_else(|| panic!("no run for {name}: {ops:?}"))
            .clone()
    };
    for name in ["prepare", "train", "evaluate", "report"] {
        assert_eq!(by_op(&ops, name)["status"], "succeeded", "{name}: {ops:?}");
    }
    // `train` got `prepare`'s output, `evaluate` the dag's input.
    assert_eq!(by_op(&ops, "train")["inputs"]["value"], "digits-v2");
    assert_eq!(by_op(&ops, "evaluate")["inputs"]["value"], 3);
    let train = by_op(&ops, "train")["uuid"].as_str().unwrap().to_owned();
    let (_, logs) = server
        .request(
            "GET",
            &format!("/api/v1/default/dags/runs/{train}/logs"),
            None,
        )
        .await
        .unwrap();
    assert!(logs.to_string().contains("training on digits-v2"), "{logs}");
    // The order respects the dependencies.
    let started = |name: &str| by_op(&ops, name)["started_at"].as_str().unwrap().to_owned();
    let finished = |name: &str| {
        by_op(&ops, name)["finished_at"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(finished("prepare") <= started("train"));
    assert!(finished("train") <= started("evaluate"));
    assert!(finished("evaluate") <= started("report"));

    // Any operation can take a param from another run (`runs.<uuid>`),
    // read when it is created; an unknown run is refused by name.
    let by_ref = |uuid: &str| {
        format!(
            "version: 1.1\nkind: operation\nparams:\n  data: {{ref: runs.{uuid}, value: inputs.value}}\ncomponent:\n  inputs: [{{name: data, type: str}}]\n  run: {{kind: job, container: {{image: busybox, command: [echo, '{{{{ data }}}}']}}}}\n"
        )
    };
    let create = |uuid: String| {
        let body = serde_json::json!({ "content": by_ref(&uuid) });
        server.request("POST", "/api/v1/default/dags/runs", Some(body))
    };
    let (status, run) = create(train.clone()).await.unwrap();
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["inputs"]["data"], "digits-v2", "{run}");
    let unknown = uuid::Uuid::new_v4().simple().to_string();
    let (status, error) = create(unknown.clone()).await.unwrap();
    assert_eq!(status, 400, "{error}");
    assert!(
        error.to_string().contains(&unknown) && error.to_string().contains("does not exist"),
        "{error}"
    );

    let bad_uuid = bad["uuid"].as_str().unwrap().to_owned();
    let bad = wait_done(&server, "dags", &bad_uuid, Duration::from_secs(60)).await;
    assert_eq!(bad["status"], "failed", "{bad}");
    let ops = children(&server, "dags", &bad_uuid).await;
    let status = |name: &str| by_op(&ops, name)["status"].as_str().unwrap().to_owned();
    assert_eq!(status("ok"), "succeeded");
    assert_eq!(status("broken"), "failed");
    assert_eq!(status("after_broken"), "upstream_failed");
    assert_eq!(status("rescue"), "succeeded");
    assert_eq!(status("skipped"), "skipped");
    assert_eq!(status("after_skipped"), "skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dag_runs_with_references_conditions_and_trigger_policies_on_sqlite() {
    dag_runs_with_refs_conditions_and_policies(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dag_runs_with_references_conditions_and_trigger_policies_on_postgres() {
    let test_db = TestDb::postgres().await;
    test_db.db.close().await;
    dag_runs_with_refs_conditions_and_policies(Some(&test_db.url)).await;
}

const SLOW_SWEEP: &str = r#"
version: 1.1
kind: operation
matrix:
  kind: grid
  concurrency: 2
  params:
    n: {kind: range, value: [0, 6, 1]}
component:
  inputs: [{name: n, type: int}]
  run: {kind: job, container: {image: busybox, command: [sh, -c, "sleep 60"]}}
"#;

/// Stopping a sweep stops its running trials and creates no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_sweep_stops_its_trials() {
    let dir = tempfile::tempdir().unwrap();
    let (server, uuid) = submit(dir.path(), "sweeps", SLOW_SWEEP).await;
    // A sweep the server cannot drive is refused at submission, by name.
    let iterative = SLOW_SWEEP.replace("kind: grid", "kind: iterative");
    let (status, body) = server
        .request(
            "POST",
            "/api/v1/default/sweeps/runs",
            Some(serde_json::json!({ "content": iterative })),
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string()
            .contains("`iterative` matrix is not supported"),
        "{body}"
    );
    // Two trials at a time (the matrix's concurrency), both running.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let trials = children(&server, "sweeps", &uuid).await;
        let running = trials.iter().filter(|t| t["status"] == "running").count();
        assert!(trials.len() <= 2, "concurrency 2 is exceeded: {trials:?}");
        if running == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "trials never ran: {trials:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) = server
        .request(
            "POST",
            &format!("/api/v1/default/sweeps/runs/{uuid}/stop"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    let sweep = wait_done(&server, "sweeps", &uuid, Duration::from_secs(60)).await;
    assert_eq!(sweep["status"], "stopped");
    let trials = children(&server, "sweeps", &uuid).await;
    assert_eq!(trials.len(), 2, "no trial is created after the stop");
    assert!(
        trials.iter().all(|t| t["status"] == "stopped"),
        "{trials:?}"
    );
}

const THRESHOLD_SWEEP: &str = r#"
version: 1.1
kind: operation
matrix:
  kind: grid
  concurrency: 2
  params:
    n: {kind: range, value: [0, 6, 1]}
  earlyStopping:
    - kind: metric_early_stopping
      metric: loss
      value: 0.5
      optimization: minimize
component:
  inputs: [{name: n, type: int}]
  run:
    kind: job
    container:
      image: python:3.11
      command: [python3, -c]
      args:
        - |
          import json, os, time, urllib.request
          url = "{}/api/v1/{}/{}/runs/{}/metrics".format(os.environ["TRELLIS_HOST"], os.environ["TRELLIS_OWNER"], os.environ["TRELLIS_PROJECT"], os.environ["TRELLIS_RUN_UUID"])
          body = json.dumps({"metrics": [{"key": "loss", "value": {{ n }} + 0.1, "step": 1}]}).encode()
          urllib.request.urlopen(urllib.request.Request(url, body, {"Content-Type": "application/json"})).read()
          time.sleep(60)
"#;

/// A metric threshold stops the sweep while its trials run: the running
/// trials are stopped, no more are created, and the sweep says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_stopping_ends_a_sweep_while_its_trials_run() {
    let dir = tempfile::tempdir().unwrap();
    let (server, uuid) = submit(dir.path(), "stopping", THRESHOLD_SWEEP).await;
    // Trial 0 logs 0.1 at once, below the goal of 0.5; the trials sleep a
    // minute, so only stopping them ends the sweep within the deadline.
    let sweep = wait_done(&server, "stopping", &uuid, Duration::from_secs(40)).await;
    assert_eq!(sweep["status"], "succeeded", "{sweep}");
    let (_, statuses) = server
        .request(
            "GET",
            &format!("/api/v1/default/stopping/runs/{uuid}/statuses"),
            None,
        )
        .await
        .unwrap();
    assert!(
        statuses
            .to_string()
            .contains("Early stopping: `loss` reached 0.1"),
        "{statuses}"
    );
    let trials = children(&server, "stopping", &uuid).await;
    assert_eq!(
        trials.len(),
        2,
        "no trial is created once the goal is met: {trials:?}"
    );
    assert!(
        trials.iter().all(|t| t["status"] == "stopped"),
        "{trials:?}"
    );
    assert_eq!(sweep["outputs"]["trials"], 2);
}
