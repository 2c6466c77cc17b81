//! Runs that really run: the embedded scheduler and the local executor,
//! through a live `trellis server` and the CLI.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::cli::{json, trellis as cli};
use super::process::Server;

pub(crate) fn job(dir: &std::path::Path, name: &str, script: &str) -> String {
    let path = dir.join(format!("{name}.yaml"));
    let spec = format!(
        "version: 1.1\nkind: component\ninputs:\n  - {{name: greeting, type: str, value: hello}}\nrun:\n  kind: job\n  container:\n    image: busybox\n    command: [sh, -c]\n    args: [\"{script}\"]\n"
    );
    std::fs::write(&path, spec).unwrap();
    path.to_string_lossy().into_owned()
}

pub(crate) async fn wait_for_status(server: &Server, uuid: &str, wanted: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let run = server
            .request("GET", &format!("/api/v1/default/exec/runs/{uuid}"), None)
            .await
            .unwrap()
            .1;
        if run["status"] == wanted {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "run {uuid} never became {wanted}; it is {}",
            run["status"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_to_success_with_its_output_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), None, &[]).await;
    let spec = job(
        dir.path(),
        "ok",
        "echo {{ greeting }} $TRELLIS_RUN_UUID from $PWD; echo careful >&2",
    );
    let server = tokio::task::spawn_blocking(move || {
        json(&server, &["projects", "create", "exec"]);
        let finished = json(&server, &["run", "-f", &spec, "-p", "exec", "--watch"]);
        assert_eq!(finished["status"], "succeeded");
        let uuid = finished["uuid"].as_str().unwrap().to_owned();
        let statuses = json(&server, &["ops", "statuses", "-p", "exec", "--uid", &uuid]);
        let types: Vec<&str> = statuses["status_conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "created",
                "compiled",
                "queued",
                "scheduled",
                "starting",
                "running",
                "succeeded"
            ]
        );
        let logs = json(&server, &["ops", "logs", "-p", "exec", "--uid", &uuid]);
        // Order holds within a stream; stdout and stderr are separate pipes.
        let of = |stream: &str| -> Vec<String> {
            logs.as_array()
                .unwrap()
                .iter()
                .filter(|l| l["stream"] == stream)
                .map(|l| l["text"].as_str().unwrap().to_owned())
                .collect()
        };
        let stdout = of("stdout");
        assert_eq!(stdout.len(), 1, "{stdout:?}");
        assert!(
            stdout[0].starts_with(&format!("hello {uuid} from ")),
            "{stdout:?}"
        );
        assert!(
            stdout[0].ends_with(&uuid.replace('-', "")),
            "runs in its own working directory: {stdout:?}"
        );
        assert_eq!(of("stderr"), ["careful"]);
        assert!(finished["duration"].as_f64().unwrap() >= 0.0);
        server
    })
    .await
    .unwrap();
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_fails_with_its_exit_code_and_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), None, &[]).await;
    let spec = job(
        dir.path(),
        "bad",
        "echo loading; echo ValueError: bad lr >&2; exit 3",
    );
    tokio::task::spawn_blocking(move || {
        json(&server, &["projects", "create", "exec"]);
        let output = cli(
            &server,
            &["run", "-f", &spec, "-p", "exec", "--watch", "-o", "json"],
        );
        assert_eq!(
            output.status.code(),
            Some(1),
            "--watch exits non-zero unless the run succeeded"
        );
        let finished: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(finished["status"], "failed");
        let uuid = finished["uuid"].as_str().unwrap();
        let statuses = json(&server, &["ops", "statuses", "-p", "exec", "--uid", uuid]);
        let last = statuses["status_conditions"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        let message = last["message"].as_str().unwrap();
        assert!(message.contains("exited with code 3"), "{message}");
        assert!(message.contains("ValueError: bad lr"), "{message}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_log_streams_the_output_live_and_exits_with_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), None, &[]).await;
    let good = job(
        dir.path(),
        "good",
        "for i in 1 2 3; do echo tick $i; sleep 0.3; done",
    );
    let bad = job(dir.path(), "bad", "echo trying; exit 2");
    tokio::task::spawn_blocking(move || {
        json(&server, &["projects", "create", "exec"]);
        let output = cli(&server, &["run", "-f", &good, "-p", "exec", "--log"]);
        assert!(output.status.success(), "{output:?}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(stdout, "tick 1\ntick 2\ntick 3\n");
        assert!(String::from_utf8_lossy(&output.stderr).contains("ended succeeded"));
        let output = cli(&server, &["run", "-f", &bad, "-p", "exec", "--log"]);
        assert_eq!(output.status.code(), Some(1));
        assert_eq!(String::from_utf8_lossy(&output.stdout), "trying\n");
        assert!(String::from_utf8_lossy(&output.stderr).contains("ended `failed`"));
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_a_running_job_and_a_restart_fails_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(dir.path(), None, &[]).await;
    let long = job(dir.path(), "long", "echo started; sleep 30");
    let (returned, stopped_uuid, orphan_uuid) = tokio::task::spawn_blocking(move || {
        json(&server, &["projects", "create", "exec"]);
        let first = json(&server, &["run", "-f", &long, "-p", "exec"]);
        let second = json(&server, &["run", "-f", &long, "-p", "exec"]);
        (
            server,
            first["uuid"].as_str().unwrap().to_owned(),
            second["uuid"].as_str().unwrap().to_owned(),
        )
    })
    .await
    .unwrap();
    server = returned;
    wait_for_status(&server, &stopped_uuid, "running").await;
    wait_for_status(&server, &orphan_uuid, "running").await;

    let begun = Instant::now();
    let reply = server
        .request(
            "POST",
            &format!("/api/v1/default/exec/runs/{stopped_uuid}/stop"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply.1["status"], "stopping");
    wait_for_status(&server, &stopped_uuid, "stopped").await;
    assert!(
        begun.elapsed() < Duration::from_secs(10),
        "sleep ends on SIGTERM, well before its 30 s"
    );

    // kill -9 the server while the other job runs; after a restart the run
    // is failed with the reason, never left `running`.
    assert!(
        Command::new("kill")
            .args(["-9", &server.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let _ = server.child.wait();
    let restarted = Server::start_with(dir.path(), None, &[]).await;
    let run = wait_for_status(&restarted, &orphan_uuid, "failed").await;
    assert_eq!(run["status"], "failed");
    let statuses = restarted
        .request(
            "GET",
            &format!("/api/v1/default/exec/runs/{orphan_uuid}/statuses"),
            None,
        )
        .await
        .unwrap()
        .1;
    let last = statuses["status_conditions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["reason"], "ServerRestarted");
    // The job's process outlived the killed server; the restart ended it.
    let message = last["message"].as_str().unwrap();
    assert!(message.contains("was killed"), "{message}");
    let marker = format!("TRELLIS_RUN_UUID={orphan_uuid}");
    let survivors: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|entry| {
            std::fs::read(entry.path().join("environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|e| e == marker.as_bytes()))
        })
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        survivors.is_empty(),
        "orphaned processes survive: {survivors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_steps_clone_git_and_write_files_before_the_container_runs() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("models");
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(args)
            .current_dir(dir.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        String::from_utf8_lossy(&status.stdout).trim().to_owned()
    };
    git(&["init", "-q", "models"]);
    std::fs::write(repo.join("README"), "first\n").unwrap();
    git(&["-C", "models", "add", "README"]);
    git(&["-C", "models", "commit", "-qm", "first"]);
    let first = git(&["-C", "models", "rev-parse", "HEAD"]);
    std::fs::write(repo.join("README"), "second\n").unwrap();
    git(&["-C", "models", "commit", "-qam", "second"]);

    let spec = dir.path().join("init.yaml");
    std::fs::write(
        &spec,
        format!(
            "version: 1.1\nkind: component\ninputs:\n  - {{name: lr, type: float, value: 0.1}}\nrun:\n  kind: job\n  init:\n    - git: {{url: \"{}\", revision: \"{first}\"}}\n    - file: {{filename: conf/params.txt, content: \"lr={{{{ lr }}}}\", chmod: \"0600\"}}\n  container:\n    image: busybox\n    command: [sh, -c]\n    args: [\"cat models/README; cat conf/params.txt; echo; stat -c %a conf/params.txt\"]\n",
            repo.display()
        ),
    )
    .unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "version: 1.1\nkind: component\nrun:\n  kind: job\n  init:\n    - git: {url: /nonexistent/repo}\n  container:\n    image: busybox\n    command: [\"true\"]\n",
    )
    .unwrap();
    let server = Server::start_with(dir.path(), None, &[]).await;
    let (spec, broken) = (
        spec.to_string_lossy().into_owned(),
        broken.to_string_lossy().into_owned(),
    );
    tokio::task::spawn_blocking(move || {
        json(&server, &["projects", "create", "exec"]);
        let finished = json(&server, &["run", "-f", &spec, "-p", "exec", "--watch"]);
        assert_eq!(finished["status"], "succeeded");
        let uuid = finished["uuid"].as_str().unwrap();
        let logs = json(&server, &["ops", "logs", "-p", "exec", "--uid", uuid]);
        let texts: Vec<&str> = logs
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            texts[0],
            "init: cloned ".to_owned()
                + &repo.display().to_string()
                + " at "
                + &first
                + " into models"
        );
        assert_eq!(texts[1], "init: wrote conf/params.txt");
        assert_eq!(
            &texts[2..],
            ["first", "lr=0.1", "600"],
            "the revision was checked out, the file templated and chmod-ed"
        );

        let output = cli(
            &server,
            &["run", "-f", &broken, "-p", "exec", "--watch", "-o", "json"],
        );
        assert_eq!(output.status.code(), Some(1));
        let failed: Value = serde_json::from_slice(&output.stdout).unwrap();
        let statuses = json(
            &server,
            &[
                "ops",
                "statuses",
                "-p",
                "exec",
                "--uid",
                failed["uuid"].as_str().unwrap(),
            ],
        );
        let last = statuses["status_conditions"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(last["reason"], "InitFailed");
        assert!(
            last["message"]
                .as_str()
                .unwrap()
                .contains("init: git clone failed"),
            "{last}"
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempts_are_retried_up_to_max_retries() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("flaky.yaml");
    // Fails twice, then succeeds: a counter file in the run's directory.
    std::fs::write(
        &spec,
        "version: 1.1\nkind: component\ntermination:\n  maxRetries: 2\nrun:\n  kind: job\n  container:\n    image: busybox\n    command: [sh, -c]\n    args: [\"n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo attempt $n; [ $n -ge 3 ]\"]\n",
    )
    .unwrap();
    let always = dir.path().join("always.yaml");
    std::fs::write(
        &always,
        "version: 1.1\nkind: component\ntermination:\n  maxRetries: 1\nrun:\n  kind: job\n  container:\n    image: busybox\n    command: [sh, -c, \"echo no >&2; exit 4\"]\n",
    )
    .unwrap();
    let server = Server::start_with(dir.path(), None, &[]).await;
    let (spec, always) = (
        spec.to_string_lossy().into_owned(),
        always.to_string_lossy().into_owned(),
    );
    tokio::task::spawn_blocking(move || {
        json(&server, &["projects", "create", "exec"]);
        let finished = json(&server, &["run", "-f", &spec, "-p", "exec", "--watch"]);
        assert_eq!(finished["status"], "succeeded");
        let uuid = finished["uuid"].as_str().unwrap();
        let statuses = json(&server, &["ops", "statuses", "-p", "exec", "--uid", uuid]);
        let types: Vec<&str> = statuses["status_conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types.iter().filter(|t| **t == "retrying").count(),
            2,
            "{types:?}"
        );
        assert_eq!(types.last(), Some(&"succeeded"));
        let logs = json(&server, &["ops", "logs", "-p", "exec", "--uid", uuid]);
        let texts: Vec<&str> = logs
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["attempt 1", "attempt 2", "attempt 3"]);

        let output = cli(
            &server,
            &["run", "-f", &always, "-p", "exec", "--watch", "-o", "json"],
        );
        assert_eq!(output.status.code(), Some(1));
        let failed: Value = serde_json::from_slice(&output.stdout).unwrap();
        let statuses = json(
            &server,
            &[
                "ops",
                "statuses",
                "-p",
                "exec",
                "--uid",
                failed["uuid"].as_str().unwrap(),
            ],
        );
        let conditions = statuses["status_conditions"].as_array().unwrap();
        assert_eq!(
            conditions
                .iter()
                .filter(|c| c["type"] == "retrying")
                .count(),
            1
        );
        assert_eq!(conditions.last().unwrap()["type"], "failed");
        assert!(
            conditions.last().unwrap()["message"]
                .as_str()
                .unwrap()
                .contains("exited with code 4")
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_queues_limit_their_runs_and_unknown_queues_are_unschedulable() {
    let dir = tempfile::tempdir().unwrap();
    let queued_spec = |name: &str, queue: &str| {
        let path = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &path,
            format!("version: 1.1\nkind: component\nqueue: {queue}\nrun:\n  kind: job\n  container:\n    image: busybox\n    command: [sh, -c, \"sleep 1\"]\n"),
        )
        .unwrap();
        path.to_string_lossy().into_owned()
    };
    let solo = queued_spec("solo", "solo");
    let nowhere = queued_spec("nowhere", "nowhere");
    let server = Server::start_with(
        dir.path(),
        None,
        &["--concurrency", "4", "--queue", "solo=1:5"],
    )
    .await;
    let (server, first, second, lost) = tokio::task::spawn_blocking(move || {
        json(&server, &["projects", "create", "exec"]);
        let first = json(&server, &["run", "-f", &solo, "-p", "exec"])["uuid"]
            .as_str()
            .unwrap()
            .to_owned();
        let second = json(&server, &["run", "-f", &solo, "-p", "exec"])["uuid"]
            .as_str()
            .unwrap()
            .to_owned();
        let lost = json(&server, &["run", "-f", &nowhere, "-p", "exec"])["uuid"]
            .as_str()
            .unwrap()
            .to_owned();
        (server, first, second, lost)
    })
    .await
    .unwrap();
    // The queue `solo` runs one at a time, though the server has 4 slots.
    wait_for_status(&server, &first, "running").await;
    let other = server
        .request("GET", &format!("/api/v1/default/exec/runs/{second}"), None)
        .await
        .unwrap()
        .1;
    assert!(
        ["created", "queued"].contains(&other["status"].as_str().unwrap()),
        "the second run of `solo` waits for the first: {}",
        other["status"]
    );
    let first_run = wait_for_status(&server, &first, "succeeded").await;
    let second_run = wait_for_status(&server, &second, "succeeded").await;
    let (finished, started) = (
        first_run["finished_at"].as_str().unwrap().to_owned(),
        second_run["started_at"].as_str().unwrap().to_owned(),
    );
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap();
    assert!(
        parse(&started) >= parse(&finished),
        "second started {started}, before the first finished {finished}"
    );

    wait_for_status(&server, &lost, "unschedulable").await;
    let statuses = server
        .request(
            "GET",
            &format!("/api/v1/default/exec/runs/{lost}/statuses"),
            None,
        )
        .await
        .unwrap()
        .1;
    let last = statuses["status_conditions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("queues: default, solo"),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_reruns_a_done_run_and_restart_and_copy_make_linked_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), None, &[]).await;
    let spec = job(dir.path(), "again", "echo said {{ greeting }}");
    tokio::task::spawn_blocking(move || {
        json(&server, &["projects", "create", "exec"]);
        let first = json(
            &server,
            &[
                "run",
                "-f",
                &spec,
                "-p",
                "exec",
                "-P",
                "greeting=hi",
                "--watch",
            ],
        );
        let uuid = first["uuid"].as_str().unwrap().to_owned();

        // Resume: the same run runs again, keeping its history and logs.
        let resumed = json(&server, &["ops", "resume", "-p", "exec", "--uid", &uuid]);
        assert_eq!(resumed["status"], "resuming");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let statuses = json(&server, &["ops", "statuses", "-p", "exec", "--uid", &uuid]);
            let types: Vec<&str> = statuses["status_conditions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["type"].as_str().unwrap())
                .collect();
            if types.ends_with(&[
                "resuming",
                "compiled",
                "queued",
                "scheduled",
                "starting",
                "running",
                "succeeded",
            ]) {
                break;
            }
            assert!(Instant::now() < deadline, "{types:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let logs = json(&server, &["ops", "logs", "-p", "exec", "--uid", &uuid]);
        let texts: Vec<&str> = logs
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["said hi", "said hi"]);

        // Resuming a run that is not done is refused.
        let long = job(dir_path(&spec), "long", "sleep 30");
        let active = json(&server, &["run", "-f", &long, "-p", "exec"]);
        let active_uuid = active["uuid"].as_str().unwrap();
        let refused = cli(
            &server,
            &["ops", "resume", "-p", "exec", "--uid", active_uuid],
        );
        assert_eq!(refused.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("only a done run can be resumed"),
            "{refused:?}"
        );
        json(
            &server,
            &["ops", "stop", "-p", "exec", "--uid", active_uuid],
        );

        // Restart and copy: new runs with the same params, pointing back.
        for verb in ["restart", "copy"] {
            let made = json(&server, &["ops", verb, "-p", "exec", "--uid", &uuid]);
            assert_ne!(made["uuid"], first["uuid"]);
            assert_eq!(made["original"], first["uuid"]);
            assert_eq!(made["cloning_kind"], verb);
            assert_eq!(made["inputs"]["greeting"], "hi");
        }
    })
    .await
    .unwrap();
}

fn dir_path(spec: &str) -> &std::path::Path {
    std::path::Path::new(spec).parent().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_gets_a_free_port_runs_once_it_listens_and_stops_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), None, &[]).await;
    let spec = |name: &str, command: &str| {
        let path = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &path,
            format!(
                "version: 1.1\nkind: component\nrun:\n  kind: service\n  ports: [8000]\n  container:\n    image: python:3.11\n    command: {command}\n"
            ),
        )
        .unwrap();
        std::fs::read_to_string(path).unwrap()
    };
    let web = spec(
        "web",
        "[sh, -c, \"sleep 1; echo base $TRELLIS_SERVICE_BASE_URL; exec python3 -m http.server {{ globals.ports[0] }} --bind 127.0.0.1\"]",
    );
    server
        .request(
            "POST",
            "/api/v1/default/projects/create",
            Some(serde_json::json!({"name": "exec"})),
        )
        .await
        .unwrap();
    let run = server
        .request(
            "POST",
            "/api/v1/default/exec/runs",
            Some(serde_json::json!({"content": web})),
        )
        .await
        .unwrap()
        .1;
    let uuid = run["uuid"].as_str().unwrap().to_owned();
    // `starting` while it has not bound its port yet (the sleep), then
    // `running` with the address it listens on.
    wait_for_status(&server, &uuid, "starting").await;
    wait_for_status(&server, &uuid, "running").await;
    let statuses = server
        .request(
            "GET",
            &format!("/api/v1/default/exec/runs/{uuid}/statuses"),
            None,
        )
        .await
        .unwrap()
        .1;
    let message = statuses["status_conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "running")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    let address = message
        .split("listening on http://")
        .nth(1)
        .unwrap_or_else(|| panic!("{message}"))
        .to_owned();
    let page = super::process::request_to(&format!("http://{address}"), "GET", "/", None)
        .await
        .unwrap();
    assert_eq!(page.0, 200, "the service answers on its port");
    // The executor recorded where the declared port listens: what the
    // workspace proxy and `Executor::address` read.
    let db = trellis_db::Db::connect_sqlite(&dir.path().join("trellis.db"))
        .await
        .unwrap();
    let services = trellis_services::Services::new(db);
    let handle = services
        .runs()
        .handle(uuid.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let endpoints = handle.endpoints().await.unwrap();
    assert_eq!(
        endpoints.get(&8000).map(ToString::to_string).as_deref(),
        Some(address.as_str()),
        "declared port 8000 → the address it listens on"
    );

    let stopped = server
        .request(
            "POST",
            &format!("/api/v1/default/exec/runs/{uuid}/stop"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(stopped.0, 200);
    wait_for_status(&server, &uuid, "stopped").await;
    assert!(
        handle.endpoints().await.unwrap().is_empty(),
        "a stopped service is no longer reachable"
    );
    let logs = server
        .request(
            "GET",
            &format!("/api/v1/default/exec/runs/{uuid}/logs"),
            None,
        )
        .await
        .unwrap()
        .1;
    let hex = uuid.replace('-', "");
    assert_eq!(
        logs["logs"][0]["text"],
        format!("base /services/v1/default/exec/runs/{hex}/8000")
    );

    // A service that dies before it listens fails with its error.
    let broken = spec("broken", "[sh, -c, \"echo cannot bind >&2; exit 4\"]");
    let run = server
        .request(
            "POST",
            "/api/v1/default/exec/runs",
            Some(serde_json::json!({"content": broken})),
        )
        .await
        .unwrap()
        .1;
    let uuid = run["uuid"].as_str().unwrap().to_owned();
    wait_for_status(&server, &uuid, "failed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_are_listed_and_defined_through_the_api_and_the_scheduler_obeys() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), None, &["--queue", "gpu=1:5"]).await;
    let list = server.request("GET", "/api/v1/queues", None).await.unwrap();
    assert_eq!(list.0, 200);
    let names: Vec<(&str, u64, &str)> = list
        .1
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["name"].as_str().unwrap(),
                q["concurrency"].as_u64().unwrap(),
                q["source"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(names, [("default", 4, "config"), ("gpu", 1, "config")]);

    // Bad definitions are refused, naming the problem.
    for (path, body, field) in [
        (
            "/api/v1/queues/bad%20name",
            json!({"concurrency": 1}),
            "name",
        ),
        (
            "/api/v1/queues/cpu",
            json!({"concurrency": 0}),
            "concurrency",
        ),
        (
            "/api/v1/queues/cpu",
            json!({"concurrency": 1, "size": 3}),
            "size",
        ),
    ] {
        let reply = server.request("PUT", path, Some(body)).await.unwrap();
        assert_eq!(reply.0, 400, "{path}: {}", reply.1);
        assert!(
            reply.1["error"]["message"]
                .as_str()
                .unwrap()
                .contains(field),
            "{}",
            reply.1
        );
    }
    let missing = server
        .request("DELETE", "/api/v1/queues/cpu", None)
        .await
        .unwrap();
    assert_eq!(missing.0, 404);

    // A queue defined through the API takes runs at the scheduler's next
    // tick; one defined in the config can be overridden.
    let cpu = server
        .request(
            "PUT",
            "/api/v1/queues/cpu",
            Some(json!({"concurrency": 1, "priority": 2})),
        )
        .await
        .unwrap();
    assert_eq!(cpu.0, 200, "{}", cpu.1);
    assert_eq!(cpu.1["source"], "api");
    let gpu = server
        .request("PUT", "/api/v1/queues/gpu", Some(json!({"concurrency": 3})))
        .await
        .unwrap();
    assert_eq!(gpu.1["concurrency"], 3);
    assert_eq!(gpu.1["source"], "api");

    let spec = "version: 1.1\nkind: component\nqueue: cpu\nrun:\n  kind: job\n  container:\n    image: busybox\n    command: [sleep, '2']\n";
    server
        .request(
            "POST",
            "/api/v1/default/projects/create",
            Some(json!({"name": "exec"})),
        )
        .await
        .unwrap();
    let mut uuids = Vec::new();
    for _ in 0..2 {
        let run = server
            .request(
                "POST",
                "/api/v1/default/exec/runs",
                Some(json!({"content": spec})),
            )
            .await
            .unwrap()
            .1;
        uuids.push(run["uuid"].as_str().unwrap().to_owned());
    }
    wait_for_status(&server, &uuids[0], "running").await;
    // One slot in `cpu`: the second waits, and the list says so.
    let list = server
        .request("GET", "/api/v1/queues", None)
        .await
        .unwrap()
        .1;
    let cpu = list
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "cpu")
        .unwrap()
        .clone();
    assert_eq!(
        (cpu["active"].as_u64(), cpu["queued"].as_u64()),
        (Some(1), Some(1)),
        "{cpu}"
    );
    wait_for_status(&server, &uuids[1], "succeeded").await;

    // A run naming a queue nobody defined waits as unschedulable, and runs
    // once the queue is defined.
    let later = spec.replace("queue: cpu", "queue: later");
    let waiting = server
        .request(
            "POST",
            "/api/v1/default/exec/runs",
            Some(json!({"content": later})),
        )
        .await
        .unwrap()
        .1["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for_status(&server, &waiting, "unschedulable").await;
    server
        .request(
            "PUT",
            "/api/v1/queues/later",
            Some(json!({"concurrency": 1})),
        )
        .await
        .unwrap();
    wait_for_status(&server, &waiting, "succeeded").await;

    let removed = server
        .request("DELETE", "/api/v1/queues/gpu", None)
        .await
        .unwrap();
    assert_eq!(removed.0, 204);
    let list = server
        .request("GET", "/api/v1/queues", None)
        .await
        .unwrap()
        .1;
    let gpu = list
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "gpu")
        .unwrap()
        .clone();
    assert_eq!(
        (gpu["concurrency"].as_u64(), gpu["source"].as_str()),
        (Some(1), Some("config"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_command_or_an_unusable_workdir_fails_the_run_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), None, &[]).await;
    server
        .request(
            "POST",
            "/api/v1/default/projects/create",
            Some(json!({"name": "exec"})),
        )
        .await
        .unwrap();
    let submit = |command: &'static str| {
        let server = &server;
        async move {
            let spec = format!(
                "version: 1.1\nkind: component\nrun:\n  kind: job\n  container:\n    image: busybox\n    command: {command}\n"
            );
            server
                .request(
                    "POST",
                    "/api/v1/default/exec/runs",
                    Some(json!({"content": spec})),
                )
                .await
                .unwrap()
                .1["uuid"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let last_message = |uuid: String| {
        let server = &server;
        async move {
            let statuses = server
                .request(
                    "GET",
                    &format!("/api/v1/default/exec/runs/{uuid}/statuses"),
                    None,
                )
                .await
                .unwrap()
                .1;
            statuses["status_conditions"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    let missing = submit("[no-such-program-anywhere, --flag]").await;
    wait_for_status(&server, &missing, "failed").await;
    let message = last_message(missing).await;
    assert!(message.contains("no-such-program-anywhere"), "{message}");

    // The runs directory is a file: no working directory can be made.
    let runs = dir.path().join("runs");
    std::fs::remove_dir_all(&runs).unwrap();
    std::fs::write(&runs, "in the way").unwrap();
    let blocked = submit("[echo, hi]").await;
    wait_for_status(&server, &blocked, "failed").await;
    let message = last_message(blocked).await;
    assert!(message.contains("working directory"), "{message}");

    let health = server.request("GET", "/healthz", None).await.unwrap();
    assert_eq!(health.0, 200, "the server keeps serving");
}
