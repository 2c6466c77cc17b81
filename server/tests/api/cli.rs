//! The `trellis` CLI against a live `trellis server`.

use std::process::{Command, Output};

use serde_json::Value;

use super::process::{BIN, Server};

pub(crate) fn trellis(server: &Server, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("TRELLIS_HOST", &server.base)
        .env_remove("TRELLIS_PROJECT")
        .output()
        .expect("run the trellis CLI")
}

/// Runs a command that must succeed with `-o json` and parses its stdout,
/// which must hold nothing but the JSON.
#[track_caller]
pub(crate) fn json(server: &Server, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["-o", "json"]);
    let output = trellis(server, &args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?} printed more than JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_projects_and_runs_on_a_live_server() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = Server::start(data_dir.path(), None).await;
    let spec = data_dir.path().join("polyaxonfile.yaml");
    std::fs::write(
        &spec,
        "version: 1.1\nkind: component\nrun:\n  kind: job\n  container:\n    image: python:3.11\n",
    )
    .unwrap();
    let spec = spec.to_str().unwrap().to_owned();
    let server = tokio::task::spawn_blocking(move || {
        let spec = spec.as_str();
        let created = json(
            &server,
            &[
                "projects",
                "create",
                "mnist",
                "--description",
                "digits",
                "--tags",
                "cv, baseline",
            ],
        );
        assert_eq!(created["name"], "mnist");
        assert_eq!(created["tags"], serde_json::json!(["cv", "baseline"]));
        let listed = json(&server, &["projects", "ls"]);
        assert_eq!(listed.as_array().unwrap().len(), 1);
        assert_eq!(
            json(&server, &["projects", "get", "default/mnist"])["description"],
            "digits"
        );

        let mut uuids = Vec::new();
        for name in ["sweep-1", "sweep-2", "baseline"] {
            let run = json(
                &server,
                &[
                    "run", "-f", spec, "-p", "mnist", "--name", name, "--tags", "hpo",
                ],
            );
            assert_eq!(run["kind"], "job");
            assert_eq!(run["status"], "created");
            uuids.push(run["uuid"].as_str().unwrap().to_owned());
        }
        // The table form prints the uuid and the dashboard URL.
        let table = trellis(
            &server,
            &["run", "-f", spec, "-p", "mnist", "--name", "printed"],
        );
        let text = String::from_utf8_lossy(&table.stdout);
        assert!(
            text.contains(&format!("{}/default/mnist/runs/", server.base)),
            "{text}"
        );

        let stopped = json(&server, &["ops", "stop", "-p", "mnist", "--uid", &uuids[1]]);
        assert_eq!(stopped["status"], "stopped");
        let filtered = json(
            &server,
            &[
                "ops",
                "ls",
                "-p",
                "mnist",
                "-q",
                "status:created|stopped, name:%sweep%",
                "-s",
                "-created_at",
            ],
        );
        let names: Vec<&str> = filtered
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["sweep-2", "sweep-1"]);
        let statuses = json(
            &server,
            &["ops", "statuses", "-p", "mnist", "--uid", &uuids[1]],
        );
        let types: Vec<&str> = statuses["status_conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["created", "stopped"]);
        assert_eq!(
            json(&server, &["ops", "get", "-p", "mnist", "--uid", &uuids[0]])["name"],
            "sweep-1"
        );
        json(
            &server,
            &["ops", "delete", "-p", "mnist", "--uid", &uuids[2]],
        );
        assert_eq!(
            json(&server, &["ops", "ls", "-p", "mnist"])
                .as_array()
                .unwrap()
                .len(),
            3
        );
        server
    })
    .await
    .unwrap();
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_errors_are_one_readable_line_with_a_meaningful_exit_code() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = Server::start(data_dir.path(), None).await;
    let bad_spec = data_dir.path().join("broken.yaml");
    std::fs::write(&bad_spec, "run:\n  kind: [job\n").unwrap();
    let bad_spec = bad_spec.to_str().unwrap().to_owned();
    tokio::task::spawn_blocking(move || {
        let missing = trellis(&server, &["projects", "get", "nope"]);
        assert_eq!(missing.status.code(), Some(1));
        assert!(
            stderr(&missing).contains("project `default/nope` was not found"),
            "{}",
            stderr(&missing)
        );
        assert!(missing.stdout.is_empty());

        json(&server, &["projects", "create", "p"]);
        let typo = trellis(&server, &["ops", "ls", "-p", "p", "-q", "stauts:running"]);
        assert_eq!(typo.status.code(), Some(1));
        assert!(stderr(&typo).contains("did you mean `status`"));

        let broken = trellis(&server, &["run", "-f", &bad_spec, "-p", "p"]);
        assert_eq!(broken.status.code(), Some(1));
        assert!(
            stderr(&broken).contains("broken.yaml:2:9: run.kind"),
            "{}",
            stderr(&broken)
        );
        assert_eq!(
            json(&server, &["ops", "ls", "-p", "p"])
                .as_array()
                .unwrap()
                .len(),
            0
        );

        let checked = trellis(&server, &["check", "-f", &bad_spec]);
        assert_eq!(checked.status.code(), Some(1));
        let usage = trellis(&server, &["ops", "get", "-p", "p"]);
        assert_eq!(
            usage.status.code(),
            Some(2),
            "a missing --uid is a usage error"
        );

        let unreachable = Command::new(BIN)
            .args(["projects", "ls"])
            .env("TRELLIS_HOST", "http://127.0.0.1:9")
            .output()
            .unwrap();
        assert_eq!(unreachable.status.code(), Some(3));
        assert!(stderr(&unreachable).contains("cannot reach the Trellis server"));
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_watch_follows_statuses_and_exits_by_the_outcome() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = Server::start(data_dir.path(), None).await;
    let spec = data_dir.path().join("job.yaml");
    std::fs::write(
        &spec,
        "version: 1.1\nkind: component\nrun:\n  kind: job\n  container:\n    image: python:3.11\n",
    )
    .unwrap();
    let spec = spec.to_str().unwrap().to_owned();
    let base = server.base.clone();
    let server = tokio::task::spawn_blocking(move || {
        json(&server, &["projects", "create", "w"]);
        server
    })
    .await
    .unwrap();
    for (outcome, code) in [("succeeded", Some(0)), ("failed", Some(1))] {
        let child = tokio::process::Command::new(BIN)
            .args(["run", "-f", &spec, "-p", "w", "--watch", "-o", "json"])
            .env("TRELLIS_HOST", &base)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Drive the run from outside, as an executor would.
        let uuid = loop {
            let runs = tokio::task::block_in_place(|| {
                json(&server, &["ops", "ls", "-p", "w", "-q", "status:created"])
            });
            if let Some(run) = runs.as_array().and_then(|r| r.first()) {
                break run["uuid"].as_str().unwrap().to_owned();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        for status in [
            "compiled",
            "queued",
            "scheduled",
            "starting",
            "running",
            outcome,
        ] {
            let reply = server
                .request(
                    "POST",
                    &format!("/api/v1/default/w/runs/{uuid}/statuses"),
                    Some(serde_json::json!({ "condition": { "type": status } })),
                )
                .await
                .unwrap();
            assert_eq!(reply.0, 200);
        }
        let output =
            tokio::time::timeout(std::time::Duration::from_secs(20), child.wait_with_output())
                .await
                .expect("--watch returns once the run is done")
                .unwrap();
        assert_eq!(
            output.status.code(),
            code,
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let finished: Value =
            serde_json::from_slice(&output.stdout).expect("stdout is one JSON object");
        assert_eq!(finished["status"], outcome);
        assert!(String::from_utf8_lossy(&output.stderr).contains("running"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_logs_pages_and_follows_until_the_run_is_done() {
    use trellis_domain::logs::{LogLine, Stream};
    let data_dir = tempfile::tempdir().unwrap();
    let server = Server::start(data_dir.path(), None).await;
    let server = tokio::task::spawn_blocking(move || {
        json(&server, &["projects", "create", "l"]);
        server
    })
    .await
    .unwrap();
    // The run and its output are written the way an executor would: through
    // the services, on the server's own database file.
    let db = trellis_db::Db::connect_sqlite(&data_dir.path().join("trellis.db"))
        .await
        .unwrap();
    let services = trellis_services::Services::new(db.clone());
    let run = services
        .runs()
        .create(
            "default",
            "l",
            trellis_api_types::CreateRun {
                name: Some("printer".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let uuid = run.uuid.to_string();
    let at = trellis_services::runs::RunRef {
        owner: "default",
        project: "l",
        uuid: &uuid,
    };
    let lines: Vec<LogLine> = (1..=1500)
        .map(|i| LogLine {
            at: chrono::Utc::now(),
            stream: Stream::Stdout,
            text: format!("step {i}"),
        })
        .collect();
    services.runs().append_logs(at, &lines).await.unwrap();

    let printed = tokio::task::block_in_place(|| {
        trellis(&server, &["ops", "logs", "-p", "l", "--uid", &uuid])
    });
    assert!(printed.status.success(), "{}", stderr(&printed));
    let text = String::from_utf8_lossy(&printed.stdout);
    assert_eq!(text.lines().count(), 1500, "all pages are printed");
    assert_eq!(text.lines().last(), Some("step 1500"));

    // --follow keeps reading until the run is done.
    let follower = tokio::process::Command::new(BIN)
        .args([
            "ops", "logs", "-p", "l", "--uid", &uuid, "--follow", "-o", "json",
        ])
        .env("TRELLIS_HOST", &server.base)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let late = LogLine {
        at: chrono::Utc::now(),
        stream: Stream::Stderr,
        text: "late line".into(),
    };
    services.runs().append_logs(at, &[late]).await.unwrap();
    services.runs().stop(at).await.unwrap();
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        follower.wait_with_output(),
    )
    .await
    .expect("--follow returns once the run is done")
    .unwrap();
    assert!(output.status.success());
    let entries: Value = serde_json::from_slice(&output.stdout).expect("one JSON array");
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 1501);
    assert_eq!(entries[1500]["text"], "late line");
    assert_eq!(entries[1500]["stream"], "stderr");
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_components_are_listed_shown_and_run_by_name() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = Server::start(data_dir.path(), None).await;
    let server = tokio::task::spawn_blocking(move || {
        let listed = trellis(&server, &["hub", "ls"]);
        assert!(listed.status.success(), "{}", stderr(&listed));
        let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
        for name in [
            "jupyterlab",
            "notebook",
            "vscode",
            "streamlit",
            "tensorboard",
        ] {
            assert!(listed.contains(name), "{listed}");
        }
        let shown = trellis(&server, &["hub", "show", "streamlit:1"]);
        assert!(shown.status.success(), "{}", stderr(&shown));
        let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
        assert!(
            shown.contains("kind: component") && shown.contains("streamlit run"),
            "{shown}"
        );
        let unknown = trellis(&server, &["hub", "show", "jupyter-lab"]);
        assert_eq!(unknown.status.code(), Some(1));
        assert!(
            stderr(&unknown).contains("did you mean `jupyterlab`"),
            "{}",
            stderr(&unknown)
        );

        json(&server, &["projects", "create", "lab"]);
        let run = json(
            &server,
            &[
                "run",
                "-p",
                "lab",
                "--hub",
                "jupyterlab",
                "-P",
                "python=/opt/venv/bin/python",
                "--name",
                "mine",
            ],
        );
        assert_eq!(run["kind"], "service");
        assert_eq!(run["name"], "mine");
        assert_eq!(run["inputs"]["python"], "/opt/venv/bin/python");
        assert!(
            run["content"]
                .as_str()
                .unwrap()
                .contains("hubRef: jupyterlab"),
            "{run}"
        );
        // An input the component does not have is refused before submission.
        let wrong = trellis(
            &server,
            &["run", "-p", "lab", "--hub", "jupyterlab", "-P", "app=x.py"],
        );
        assert_eq!(wrong.status.code(), Some(1), "{}", stderr(&wrong));
        assert!(stderr(&wrong).contains("app"), "{}", stderr(&wrong));
        // Neither a file nor a component.
        let neither = trellis(&server, &["run", "-p", "lab"]);
        assert_eq!(neither.status.code(), Some(2), "{}", stderr(&neither));
        server
    })
    .await
    .unwrap();
    drop(server);
}
