//! API tests through the router; every case runs on SQLite and PostgreSQL.

// Test helpers are plain async fns (not `#[test]`), which clippy's
// allow-unwrap-in-tests does not cover; a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use leptos::config::LeptosOptions;
use serde_json::{Value, json};
use tower::ServiceExt;
use trellis_db::{Db, test_on_both_databases};
use trellis_server::startup::router;
use trellis_services::Services;

struct App {
    router: Router,
}

struct Reply {
    status: StatusCode,
    body: Value,
    text: String,
}

impl App {
    fn new(db: Db) -> Self {
        let options = LeptosOptions::builder().output_name("trellis").build();
        Self {
            router: router(Services::new(db), options),
        }
    }

    /// An app over `services` (a test's own clock, say).
    fn with_services(services: Services) -> Self {
        let options = LeptosOptions::builder().output_name("trellis").build();
        Self {
            router: router(services, options),
        }
    }

    /// An app that also keeps artifacts, under `dir`.
    fn with_artifacts(db: Db, dir: &std::path::Path) -> Self {
        let options = LeptosOptions::builder().output_name("trellis").build();
        Self {
            router: router(Services::new(db).with_artifacts(dir), options),
        }
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, body, text }
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        self.send(request.body(body).unwrap()).await
    }

    async fn get(&self, uri: &str) -> Reply {
        self.call(Method::GET, uri, None).await
    }

    async fn post(&self, uri: &str, body: Value) -> Reply {
        self.call(Method::POST, uri, Some(body)).await
    }

    async fn raw_post(&self, uri: &str, content_type: &str, body: impl Into<Body>) -> Reply {
        let request = Request::post(uri)
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .unwrap();
        self.send(request).await
    }

    async fn project(&self, name: &str) -> Value {
        let reply = self
            .post("/api/v1/default/projects/create", json!({ "name": name }))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.body
    }

    async fn run(&self, project: &str, body: Value) -> Value {
        let reply = self
            .post(&format!("/api/v1/default/{project}/runs"), body)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.body
    }

    async fn set_status(&self, project: &str, uuid: &str, status: &str) -> Reply {
        self.post(
            &format!("/api/v1/default/{project}/runs/{uuid}/statuses"),
            json!({ "condition": { "type": status, "reason": "Test", "message": format!("to {status}") } }),
        )
        .await
    }
}

/// Asserts the error envelope: status, code, and a message containing `needle`.
#[track_caller]
fn assert_error(reply: &Reply, status: StatusCode, code: &str, needle: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.body["error"]["code"], code, "{}", reply.text);
    let message = reply.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "message `{message}` should contain `{needle}`"
    );
}

test_on_both_databases!(
    projects_are_created_listed_changed_and_deleted,
    project_lists_page_with_next_and_previous_links,
    bad_project_input_gets_a_clear_4xx,
    malformed_bodies_get_the_error_envelope,
    runs_are_created_with_their_spec_and_read_back,
    runs_list_sorts_and_refuses_unknown_sort_fields,
    runs_list_filters_with_the_query_language,
    submitted_specs_are_compiled_and_their_inputs_are_queryable,
    run_logs_are_served_by_cursor,
    bad_run_input_and_unknown_ids_get_a_clear_4xx,
    statuses_follow_the_lifecycle_and_keep_their_history,
    an_external_run_reports_its_own_progress,
    stop_ends_pending_runs_and_refuses_done_ones,
    concurrent_status_posts_never_lose_a_condition,
    run_changes_and_deletion,
    health_openapi_and_unknown_routes,
    dashboard_pages_render_on_the_server,
    the_runs_table_is_paginated,
);

async fn projects_are_created_listed_changed_and_deleted(db: Db) {
    let app = App::new(db);
    let created = app
        .post(
            "/api/v1/default/projects/create",
            json!({ "name": "mnist", "description": "digits", "tags": ["cv", " cv ", "baseline"] }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["owner"], "default");
    assert_eq!(created.body["name"], "mnist");
    assert_eq!(created.body["tags"], json!(["cv", "baseline"]));
    assert!(created.body["created_at"].as_str().unwrap().ends_with('Z'));

    let list = app.get("/api/v1/default/projects/list").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["count"], 1);
    assert_eq!(list.body["results"][0]["name"], "mnist");
    assert_eq!(list.body["next"], Value::Null);
    assert_eq!(list.body["previous"], Value::Null);

    let patched = app
        .call(
            Method::PATCH,
            "/api/v1/default/mnist",
            Some(json!({ "description": "handwritten digits" })),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["description"], "handwritten digits");
    assert_eq!(patched.body["tags"], json!(["cv", "baseline"]));

    let renamed = app
        .call(
            Method::PATCH,
            "/api/v1/default/mnist",
            Some(json!({ "name": "digits" })),
        )
        .await;
    assert_eq!(renamed.body["name"], "digits");
    assert_eq!(
        app.get("/api/v1/default/mnist").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/api/v1/default/digits").await.body["uuid"],
        created.body["uuid"]
    );

    let deleted = app
        .call(Method::DELETE, "/api/v1/default/digits", None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = app.get("/api/v1/default/digits").await;
    assert_error(
        &gone,
        StatusCode::NOT_FOUND,
        "not_found",
        "project `default/digits` was not found",
    );
}

async fn project_lists_page_with_next_and_previous_links(db: Db) {
    let app = App::new(db);
    for i in 0..5 {
        app.project(&format!("p{i}")).await;
    }
    let first = app.get("/api/v1/default/projects/list?limit=2").await;
    assert_eq!(first.body["count"], 5);
    assert_eq!(first.body["results"].as_array().unwrap().len(), 2);
    assert_eq!(
        first.body["next"],
        "/api/v1/default/projects/list?limit=2&offset=2"
    );
    assert_eq!(first.body["previous"], Value::Null);
    let last = app
        .get("/api/v1/default/projects/list?limit=2&offset=4")
        .await;
    assert_eq!(last.body["results"].as_array().unwrap().len(), 1);
    assert_eq!(last.body["next"], Value::Null);
    assert_eq!(
        last.body["previous"],
        "/api/v1/default/projects/list?limit=2&offset=2"
    );
    // Another owner's namespace is separate.
    assert_eq!(
        app.get("/api/v1/alice/projects/list").await.body["count"],
        0
    );
}

async fn bad_project_input_gets_a_clear_4xx(db: Db) {
    let app = App::new(db);
    app.project("taken").await;
    let cases = [
        (
            json!({ "name": "Bad Name" }),
            StatusCode::BAD_REQUEST,
            "invalid",
            "lowercase letters",
        ),
        (
            json!({ "name": "api" }),
            StatusCode::BAD_REQUEST,
            "invalid",
            "reserved",
        ),
        (
            json!({ "name": "../etc" }),
            StatusCode::BAD_REQUEST,
            "invalid",
            "lowercase letters",
        ),
        (
            json!({ "name": "" }),
            StatusCode::BAD_REQUEST,
            "invalid",
            "must not be empty",
        ),
        (
            json!({ "name": "x".repeat(65) }),
            StatusCode::BAD_REQUEST,
            "invalid",
            "longer than 64",
        ),
        (
            json!({ "name": "taken" }),
            StatusCode::CONFLICT,
            "conflict",
            "already exists",
        ),
        (
            json!({ "name": "ok", "colour": "red" }),
            StatusCode::BAD_REQUEST,
            "invalid",
            "unknown field `colour`",
        ),
        (
            json!({ "name": 7 }),
            StatusCode::BAD_REQUEST,
            "invalid",
            "name: invalid type",
        ),
        (
            json!({ "name": "ok", "tags": [1] }),
            StatusCode::BAD_REQUEST,
            "invalid",
            "tags[0]: invalid type",
        ),
        (
            json!({ "name": "ok", "tags": ["a,b"] }),
            StatusCode::BAD_REQUEST,
            "invalid",
            "tag `a,b`",
        ),
        (
            json!({ "description": "no name" }),
            StatusCode::BAD_REQUEST,
            "invalid",
            "missing field `name`",
        ),
    ];
    for (body, status, code, needle) in cases {
        let reply = app
            .post("/api/v1/default/projects/create", body.clone())
            .await;
        assert_error(&reply, status, code, needle);
    }
    let bad_owner = app
        .post(
            "/api/v1/Not%20Valid/projects/create",
            json!({ "name": "ok" }),
        )
        .await;
    assert_error(
        &bad_owner,
        StatusCode::BAD_REQUEST,
        "invalid",
        "lowercase letters",
    );
    let bad_limit = app.get("/api/v1/default/projects/list?limit=0").await;
    assert_error(
        &bad_limit,
        StatusCode::BAD_REQUEST,
        "invalid",
        "limit must be between 1 and 1000",
    );
    let not_a_number = app.get("/api/v1/default/projects/list?limit=ten").await;
    assert_error(&not_a_number, StatusCode::BAD_REQUEST, "invalid", "limit");
    // Nothing was created by the refused requests.
    assert_eq!(
        app.get("/api/v1/default/projects/list").await.body["count"],
        1
    );
}

async fn malformed_bodies_get_the_error_envelope(db: Db) {
    let app = App::new(db);
    let syntax = app
        .raw_post(
            "/api/v1/default/projects/create",
            "application/json",
            "{\"name\": ",
        )
        .await;
    assert_error(
        &syntax,
        StatusCode::BAD_REQUEST,
        "invalid",
        "malformed JSON body",
    );
    let form = app
        .raw_post("/api/v1/default/projects/create", "text/plain", "name=x")
        .await;
    assert_error(
        &form,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "application/json",
    );
    app.project("big").await;
    let huge = format!(
        "{{\"name\": \"r\", \"content\": \"{}\"}}",
        "a".repeat(5 * 1024 * 1024)
    );
    let too_large = app
        .raw_post("/api/v1/default/big/runs", "application/json", huge)
        .await;
    assert_error(
        &too_large,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "larger than",
    );
    let list = app.get("/api/v1/default/big/runs").await;
    assert_eq!(list.body["count"], 0);
}

async fn runs_are_created_with_their_spec_and_read_back(db: Db) {
    let app = App::new(db);
    app.project("mnist").await;
    let spec = "version: 1.1\nkind: operation\ncomponent:\n  run:\n    kind: job\n    container:\n      image: python:3.11\n";
    let run = app
        .run(
            "mnist",
            json!({ "name": "baseline", "description": "first try", "tags": ["a"], "content": spec }),
        )
        .await;
    for key in [
        "uuid",
        "name",
        "description",
        "tags",
        "kind",
        "status",
        "project",
        "owner",
        "content",
        "inputs",
        "outputs",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
        "wait_time",
        "duration",
    ] {
        assert!(run.get(key).is_some(), "run object lacks `{key}`: {run}");
    }
    assert_eq!(run["kind"], "job");
    assert_eq!(run["status"], "created");
    assert_eq!(run["content"], spec);
    assert_eq!(run["project"], "mnist");
    assert_eq!(run["owner"], "default");
    assert_eq!(run["inputs"], json!({}));
    let uuid = run["uuid"].as_str().unwrap();

    let fetched = app.get(&format!("/api/v1/default/mnist/runs/{uuid}")).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.body, run);
    // Polyaxon prints uuids without dashes; both spellings work.
    let simple = uuid.replace('-', "");
    assert_eq!(
        app.get(&format!("/api/v1/default/mnist/runs/{simple}"))
            .await
            .body["uuid"],
        uuid
    );

    let bare = app.run("mnist", json!({})).await;
    assert_eq!(bare["kind"], Value::Null);
    assert_eq!(bare["name"], Value::Null);
    assert_eq!(bare["content"], "");

    let json_spec = app
        .run(
            "mnist",
            json!({ "content": "{\"kind\": \"component\", \"run\": {\"kind\": \"rayjob\"}}" }),
        )
        .await;
    assert_eq!(json_spec["kind"], "raycluster");
}

async fn runs_list_sorts_and_refuses_unknown_sort_fields(db: Db) {
    let app = App::new(db);
    app.project("p").await;
    for name in ["b", "c", "a"] {
        app.run("p", json!({ "name": name })).await;
    }
    let names = |reply: &Reply| {
        reply.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let newest_first = app.get("/api/v1/default/p/runs").await;
    assert_eq!(names(&newest_first), ["a", "c", "b"]);
    let by_name = app.get("/api/v1/default/p/runs?sort=name").await;
    assert_eq!(names(&by_name), ["a", "b", "c"]);
    let by_name_desc = app.get("/api/v1/default/p/runs?sort=-name&limit=2").await;
    assert_eq!(names(&by_name_desc), ["c", "b"]);
    assert_eq!(
        by_name_desc.body["next"],
        "/api/v1/default/p/runs?limit=2&offset=2&sort=-name"
    );

    let bad_sort = app.get("/api/v1/default/p/runs?sort=-loss").await;
    assert_error(
        &bad_sort,
        StatusCode::BAD_REQUEST,
        "invalid",
        "cannot sort by `loss`",
    );
}

async fn runs_list_filters_with_the_query_language(db: Db) {
    let app = App::new(db);
    app.project("p").await;
    let mut uuids = Vec::new();
    for name in ["sweep-1", "sweep-2", "baseline"] {
        let tag = if name == "baseline" { "ref" } else { "hpo" };
        let run = app.run("p", json!({ "name": name, "tags": [tag] })).await;
        uuids.push(run["uuid"].as_str().unwrap().to_owned());
    }
    for status in ["compiled", "queued", "scheduled", "running"] {
        app.set_status("p", &uuids[0], status).await;
    }
    let names = |reply: &Reply| {
        let mut names: Vec<String> = reply.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    let query = |q: &str| {
        let encoded = serde_urlencoded::to_string([("query", q)]).unwrap();
        format!("/api/v1/default/p/runs?{encoded}")
    };
    let sweeps = app.get(&query("name:sweep%")).await;
    assert_eq!(sweeps.status, StatusCode::OK, "{}", sweeps.text);
    assert_eq!(names(&sweeps), ["sweep-1", "sweep-2"]);
    assert_eq!(sweeps.body["count"], 2);
    let running_or_ref = app.get(&query("status:running OR tags:ref")).await;
    assert_eq!(names(&running_or_ref), ["baseline", "sweep-1"]);
    let not_running = app.get(&query("status:~running, tags:hpo|ref")).await;
    assert_eq!(names(&not_running), ["baseline", "sweep-2"]);
    let never_started = app
        .get(&query("created_at:>=2000-01-01, started_at:nil"))
        .await;
    assert_eq!(names(&never_started), ["baseline", "sweep-2"]);

    let typo = app.get(&query("stauts:running")).await;
    assert_error(
        &typo,
        StatusCode::BAD_REQUEST,
        "invalid",
        "did you mean `status`",
    );
    assert_eq!(typo.body["error"]["details"]["field"], "query");
    let bad_value = app.get(&query("duration:>soon")).await;
    assert_error(
        &bad_value,
        StatusCode::BAD_REQUEST,
        "invalid",
        "`soon` is not a number",
    );
}

async fn bad_run_input_and_unknown_ids_get_a_clear_4xx(db: Db) {
    let app = App::new(db);
    app.project("p").await;
    let cases = [
        (
            json!({ "content": "kind: component\nrun:\n  kind: [job\n" }),
            "line 3, column 9: run.kind",
        ),
        (
            json!({ "content": "kind: component\nrun:\n  kind: jbo\n" }),
            "unknown run kind `jbo`",
        ),
        (
            json!({ "content": "kind: component\nrun:\n  kind: job\n  container: {image: x, comand: [a]}\n" }),
            "did you mean `command`",
        ),
        (json!({ "content": "just words" }), "is a mapping"),
        (json!({ "name": "two\nlines" }), "one non-blank line"),
        (
            json!({ "name": "n", "parameters": {} }),
            "unknown field `parameters`",
        ),
        (json!({ "params": { "lr": 0.1 } }), "`params` need a spec"),
        (json!({ "tags": "not-a-list" }), "tags: invalid type"),
    ];
    for (body, needle) in cases {
        let reply = app.post("/api/v1/default/p/runs", body).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid", needle);
    }
    assert_eq!(app.get("/api/v1/default/p/runs").await.body["count"], 0);

    let missing_project = app.post("/api/v1/default/nope/runs", json!({})).await;
    assert_error(
        &missing_project,
        StatusCode::NOT_FOUND,
        "not_found",
        "project `default/nope`",
    );
    let bad_uuid = app.get("/api/v1/default/p/runs/..%2F..%2Fetc").await;
    assert_error(
        &bad_uuid,
        StatusCode::BAD_REQUEST,
        "invalid",
        "is not a run uuid",
    );
    let unknown = app
        .get("/api/v1/default/p/runs/8c6d7a2e2f1b4c1e9d3a0c9a1b2c3d4e")
        .await;
    assert_error(
        &unknown,
        StatusCode::NOT_FOUND,
        "not_found",
        "run `8c6d7a2e2f1b4c1e9d3a0c9a1b2c3d4e`",
    );
    // A run is only reachable through its own project.
    app.project("other").await;
    let run = app.run("p", json!({})).await;
    let uuid = run["uuid"].as_str().unwrap();
    let elsewhere = app.get(&format!("/api/v1/default/other/runs/{uuid}")).await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);
}

/// A run created without a spec is not executed by Trellis: whatever runs
/// it reports its progress, so it may go straight from `created` to
/// `running` (and finish). A run Trellis executes keeps the strict table.
async fn an_external_run_reports_its_own_progress(db: Db) {
    let app = App::new(db);
    app.project("p").await;
    let run = app.run("p", json!({ "name": "outside" })).await;
    let uuid = run["uuid"].as_str().unwrap();
    let running = app.set_status("p", uuid, "running").await;
    assert_eq!(running.status, StatusCode::OK, "{}", running.text);
    assert_eq!(running.body["status"], "running");
    let done = app.set_status("p", uuid, "succeeded").await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    let read = app
        .get(&format!("/api/v1/default/p/runs/{uuid}"))
        .await
        .body;
    assert!(
        read["started_at"].is_string() && read["finished_at"].is_string(),
        "{read}"
    );
    // Still a lifecycle: nothing leaves a done status but a resume.
    assert_error(
        &app.set_status("p", uuid, "running").await,
        StatusCode::CONFLICT,
        "invalid_transition",
        "final",
    );
    // One that only reports its end.
    let quick = app.run("p", json!({ "name": "quick" })).await;
    let quick = quick["uuid"].as_str().unwrap();
    assert_eq!(
        app.set_status("p", quick, "succeeded").await.status,
        StatusCode::OK
    );

    let managed = app
        .run(
            "p",
            json!({ "name": "managed", "content": "version: 1.1\nkind: component\nrun:\n  kind: job\n  container:\n    image: alpine\n" }),
        )
        .await;
    let managed = managed["uuid"].as_str().unwrap();
    let status = app
        .get(&format!("/api/v1/default/p/runs/{managed}"))
        .await
        .body["status"]
        .clone();
    assert_ne!(status, "running");
    assert_error(
        &app.set_status("p", managed, "running").await,
        StatusCode::CONFLICT,
        "invalid_transition",
        "cannot go from",
    );
}

async fn statuses_follow_the_lifecycle_and_keep_their_history(db: Db) {
    let app = App::new(db);
    app.project("p").await;
    let run = app.run("p", json!({ "name": "r" })).await;
    let uuid = run["uuid"].as_str().unwrap();
    for status in ["compiled", "queued", "scheduled", "starting", "running"] {
        let reply = app.set_status("p", uuid, status).await;
        assert_eq!(reply.status, StatusCode::OK, "{status}: {}", reply.text);
        assert_eq!(reply.body["status"], status);
    }
    let illegal = app.set_status("p", uuid, "queued").await;
    assert_error(
        &illegal,
        StatusCode::CONFLICT,
        "invalid_transition",
        "cannot go from `running` to `queued`",
    );
    let unknown = app.set_status("p", uuid, "exploded").await;
    assert_error(
        &unknown,
        StatusCode::BAD_REQUEST,
        "invalid",
        "unknown variant `exploded`",
    );
    assert_eq!(
        app.set_status("p", uuid, "succeeded").await.status,
        StatusCode::OK
    );
    let after_done = app.set_status("p", uuid, "running").await;
    assert_error(
        &after_done,
        StatusCode::CONFLICT,
        "invalid_transition",
        "final",
    );

    let statuses = app
        .get(&format!("/api/v1/default/p/runs/{uuid}/statuses"))
        .await;
    assert_eq!(statuses.body["status"], "succeeded");
    let conditions = statuses.body["status_conditions"].as_array().unwrap();
    let types: Vec<_> = conditions
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
    assert_eq!(conditions[1]["reason"], "Test");
    assert_eq!(conditions[1]["message"], "to compiled");
    assert_eq!(conditions[1]["status"], "True");

    let finished = app
        .get(&format!("/api/v1/default/p/runs/{uuid}"))
        .await
        .body;
    assert!(finished["started_at"].is_string());
    assert!(finished["finished_at"].is_string());
    assert!(finished["wait_time"].as_f64().unwrap() >= 0.0);
    assert!(finished["duration"].as_f64().unwrap() >= 0.0);

    // Polyaxon clients repeat the coordinates; a mismatch is refused.
    let other = app.run("p", json!({})).await;
    let misrouted = app
        .post(
            &format!("/api/v1/default/p/runs/{}/statuses", other["uuid"].as_str().unwrap()),
            json!({ "condition": { "type": "compiled", "status": "True" }, "uuid": uuid, "owner": "default", "project": "p" }),
        )
        .await;
    assert_error(
        &misrouted,
        StatusCode::BAD_REQUEST,
        "invalid",
        "`uuid` in the body does not match",
    );
}

async fn stop_ends_pending_runs_and_refuses_done_ones(db: Db) {
    let app = App::new(db);
    app.project("p").await;
    let queued = app.run("p", json!({})).await;
    let queued_uuid = queued["uuid"].as_str().unwrap();
    app.set_status("p", queued_uuid, "compiled").await;
    app.set_status("p", queued_uuid, "queued").await;
    let stopped = app
        .post(
            &format!("/api/v1/default/p/runs/{queued_uuid}/stop"),
            json!({}),
        )
        .await;
    assert_eq!(stopped.status, StatusCode::OK, "{}", stopped.text);
    assert_eq!(stopped.body["status"], "stopped");
    assert!(stopped.body["finished_at"].is_string());

    let again = app
        .call(
            Method::POST,
            &format!("/api/v1/default/p/runs/{queued_uuid}/stop"),
            None,
        )
        .await;
    assert_error(
        &again,
        StatusCode::BAD_REQUEST,
        "invalid",
        "nothing to stop",
    );

    let running = app.run("p", json!({})).await;
    let running_uuid = running["uuid"].as_str().unwrap();
    for status in ["compiled", "queued", "scheduled", "running"] {
        app.set_status("p", running_uuid, status).await;
    }
    let stopping = app
        .call(
            Method::POST,
            &format!("/api/v1/default/p/runs/{running_uuid}/stop"),
            None,
        )
        .await;
    assert_eq!(stopping.body["status"], "stopping");
}

async fn concurrent_status_posts_never_lose_a_condition(db: Db) {
    let app = App::new(db);
    app.project("p").await;
    let run = app.run("p", json!({})).await;
    let uuid = run["uuid"].as_str().unwrap().to_owned();
    for status in ["compiled", "queued", "scheduled", "running"] {
        app.set_status("p", &uuid, status).await;
    }
    // Running <-> warning flips are legal in both directions, so every post
    // that reads the current status right may apply; each one that does must
    // leave exactly one condition.
    let mut tasks = Vec::new();
    for i in 0..24 {
        let router = app.router.clone();
        let uuid = uuid.clone();
        let target = if i % 2 == 0 { "warning" } else { "running" };
        tasks.push(tokio::spawn(async move {
            let app = App { router };
            app.set_status("p", &uuid, target).await.status
        }));
    }
    let mut applied = 0;
    for task in tasks {
        let status = task.await.unwrap();
        assert!(
            status == StatusCode::OK || status == StatusCode::CONFLICT,
            "unexpected status {status}"
        );
        if status == StatusCode::OK {
            applied += 1;
        }
    }
    assert!(applied >= 1);
    let statuses = app
        .get(&format!("/api/v1/default/p/runs/{uuid}/statuses"))
        .await
        .body;
    let conditions = statuses["status_conditions"].as_array().unwrap();
    assert_eq!(
        conditions.len(),
        5 + applied,
        "one condition per accepted change"
    );
    let last = conditions.last().unwrap()["type"].as_str().unwrap();
    assert_eq!(
        statuses["status"], last,
        "the stored status is the last condition"
    );
    // No two consecutive conditions repeat a status: every change was real.
    for pair in conditions.windows(2) {
        assert_ne!(pair[0]["type"], pair[1]["type"]);
    }
}

async fn run_changes_and_deletion(db: Db) {
    let app = App::new(db);
    app.project("p").await;
    let run = app.run("p", json!({ "name": "before" })).await;
    let uuid = run["uuid"].as_str().unwrap();
    let path = format!("/api/v1/default/p/runs/{uuid}");
    let patched = app
        .call(
            Method::PATCH,
            &path,
            Some(json!({ "name": "after", "tags": ["x"] })),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["name"], "after");
    assert_eq!(patched.body["tags"], json!(["x"]));
    assert_eq!(patched.body["status"], "created");
    let refused = app
        .call(Method::PATCH, &path, Some(json!({ "status": "running" })))
        .await;
    assert_error(
        &refused,
        StatusCode::BAD_REQUEST,
        "invalid",
        "unknown field `status`",
    );
    assert_eq!(
        app.call(Method::DELETE, &path, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get(&path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.call(Method::DELETE, &path, None).await.status,
        StatusCode::NOT_FOUND
    );
}

async fn health_openapi_and_unknown_routes(db: Db) {
    let backend = db.backend().as_str();
    let app = App::new(db);
    let health = app.get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");
    assert_eq!(health.body["database"], backend);

    let doc = app.get("/api/v1/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/{owner}/projects/list",
        "/api/v1/{owner}/projects/create",
        "/api/v1/{owner}/{project}",
        "/api/v1/{owner}/{project}/runs",
        "/api/v1/{owner}/{project}/runs/{uuid}",
        "/api/v1/{owner}/{project}/runs/{uuid}/stop",
        "/api/v1/{owner}/{project}/runs/{uuid}/statuses",
    ] {
        assert!(
            doc.body["paths"].get(path).is_some(),
            "OpenAPI lacks {path}"
        );
    }
    assert!(doc.body["components"]["schemas"].get("Run").is_some());

    let unknown = app.get("/api/v1/default/p/runs/x/y/z").await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "not_found", "no API route");
    let method = app
        .call(Method::PUT, "/api/v1/default/projects/list", None)
        .await;
    assert_error(
        &method,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "does not accept",
    );
}

async fn dashboard_pages_render_on_the_server(db: Db) {
    let app = App::new(db);
    app.project("vision").await;
    let run = app.run("vision", json!({ "name": "resnet" })).await;
    let home = app.get("/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.text.contains("vision"), "{}", home.text);
    let project = app.get("/default/vision").await;
    assert_eq!(project.status, StatusCode::OK);
    assert!(project.text.contains("resnet"));
    let run_page = app
        .get(&format!(
            "/default/vision/runs/{}",
            run["uuid"].as_str().unwrap()
        ))
        .await;
    assert_eq!(run_page.status, StatusCode::OK);
    assert!(run_page.text.contains("resnet"));
    assert!(run_page.text.contains("data-status=\"created\""));
    let missing = app.get("/default/nothing-here").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.text.contains("was not found"));
    let no_route = app.get("/a/b/c/d/e/f").await;
    assert_eq!(no_route.status, StatusCode::NOT_FOUND);
}

async fn the_runs_table_is_paginated(db: Db) {
    let app = App::new(db);
    app.project("many").await;
    for i in 0..51 {
        app.run("many", json!({ "name": format!("run-{i:02}") }))
            .await;
    }
    let first = app.get("/default/many").await;
    assert!(first.text.contains("Page 1 of 2"), "{}", first.text);
    assert!(first.text.contains("run-50"));
    assert!(!first.text.contains("run-00"));
    assert!(first.text.contains("href=\"/default/many?page=2\""));
    let second = app.get("/default/many?page=2").await;
    assert!(second.text.contains("Page 2 of 2"));
    assert!(second.text.contains("run-00"));
    assert!(!second.text.contains("run-50"));
}

mod cli;
mod process;

async fn submitted_specs_are_compiled_and_their_inputs_are_queryable(db: Db) {
    let app = App::new(db);
    app.project("p").await;
    let spec = "version: 1.1\nkind: component\ninputs:\n  - {name: lr, type: float, value: 0.01, validation: {gt: 0}}\n  - {name: optimizer, type: str, value: adam}\nrun:\n  kind: job\n  container:\n    image: python:3.11\n    command: [python, train.py, \"--lr={{ lr }}\"]\n";
    let default = app
        .run("p", json!({ "name": "default-lr", "content": spec }))
        .await;
    assert_eq!(
        default["inputs"],
        json!({ "lr": 0.01, "optimizer": "adam" })
    );
    let overridden = app
        .run(
            "p",
            json!({ "name": "big-lr", "content": spec, "params": { "lr": 0.5 } }),
        )
        .await;
    assert_eq!(overridden["inputs"]["lr"], 0.5);
    assert_eq!(overridden["content"], spec, "the spec is kept as submitted");

    let refused = app
        .post(
            "/api/v1/default/p/runs",
            json!({ "content": spec, "params": { "lr": -1 } }),
        )
        .await;
    assert_error(
        &refused,
        StatusCode::BAD_REQUEST,
        "invalid",
        "breaks the rule `gt: 0`",
    );
    let unknown = app
        .post(
            "/api/v1/default/p/runs",
            json!({ "content": spec, "params": { "lrr": 1 } }),
        )
        .await;
    assert_error(
        &unknown,
        StatusCode::BAD_REQUEST,
        "invalid",
        "did you mean `lr`",
    );

    let big = app
        .get("/api/v1/default/p/runs?query=params.lr:%3E0.1")
        .await;
    assert_eq!(big.body["count"], 1, "{}", big.text);
    assert_eq!(big.body["results"][0]["name"], "big-lr");
    let sorted = app.get("/api/v1/default/p/runs?sort=-params.lr").await;
    assert_eq!(sorted.body["results"][0]["name"], "big-lr");
}

async fn run_logs_are_served_by_cursor(db: Db) {
    use trellis_domain::logs::{LogLine, Stream};
    let services = Services::new(db.clone());
    let app = App::new(db);
    app.project("p").await;
    let run = app.run("p", json!({ "name": "r" })).await;
    let uuid = run["uuid"].as_str().unwrap().to_owned();
    let at = trellis_services::runs::RunRef {
        owner: "default",
        project: "p",
        uuid: &uuid,
    };
    let lines: Vec<LogLine> = (0..5)
        .map(|i| LogLine {
            at: chrono::Utc::now(),
            stream: if i == 4 {
                Stream::Stderr
            } else {
                Stream::Stdout
            },
            text: format!("epoch {i}"),
        })
        .collect();
    services.runs().append_logs(at, &lines).await.unwrap();

    // The dashboard's logs tab renders them, ANSI colours and all.
    let colored = [
        LogLine {
            at: chrono::Utc::now(),
            stream: Stream::Stdout,
            text: "\u{1b}[31mred alert\u{1b}[0m".into(),
        },
        LogLine {
            at: chrono::Utc::now(),
            stream: Stream::Stdout,
            text: "downloading 10%\rdownloading 100%".into(),
        },
    ];
    let page_before = app.get(&format!("/default/p/runs/{uuid}/logs")).await;
    assert_eq!(page_before.status, StatusCode::OK);
    assert!(page_before.text.contains("epoch 4"), "{}", page_before.text);
    assert!(page_before.text.contains("data-stream=\"stderr\""));

    let path = format!("/api/v1/default/p/runs/{uuid}/logs");
    let first = app.get(&format!("{path}?limit=3")).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.body["logs"].as_array().unwrap().len(), 3);
    assert_eq!(first.body["logs"][0]["text"], "epoch 0");
    assert_eq!(first.body["done"], false);
    let cursor = first.body["next_cursor"].as_i64().unwrap();
    let rest = app.get(&format!("{path}?after={cursor}")).await;
    let texts: Vec<&str> = rest.body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["epoch 3", "epoch 4"]);
    assert_eq!(rest.body["logs"][1]["stream"], "stderr");
    let end = app
        .get(&format!("{path}?after={}", rest.body["next_cursor"]))
        .await;
    assert_eq!(end.body["logs"], json!([]));
    assert_eq!(end.body["next_cursor"], rest.body["next_cursor"]);

    assert_error(
        &app.get(&format!("{path}?limit=0")).await,
        StatusCode::BAD_REQUEST,
        "invalid",
        "`limit`",
    );
    assert_error(
        &app.get(&format!("{path}?after=-1")).await,
        StatusCode::BAD_REQUEST,
        "invalid",
        "`after`",
    );
    let missing = app
        .get("/api/v1/default/p/runs/8c6d7a2e2f1b4c1e9d3a0c9a1b2c3d4e/logs")
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    app.post(&format!("/api/v1/default/p/runs/{uuid}/stop"), json!({}))
        .await;
    assert_eq!(app.get(&path).await.body["done"], true);
    services.runs().append_logs(at, &colored).await.unwrap();
    let page = app.get(&format!("/default/p/runs/{uuid}/logs")).await;
    assert!(
        page.text
            .contains("<span class=\"text-red-400\">red alert</span>"),
        "{}",
        page.text
    );
    assert!(
        // (The raw text is also in the page, serialized for hydration.)
        page.text.contains(">downloading 100%</span>") && !page.text.contains(">downloading 10%"),
        "progress bars collapse"
    );
}

mod distributed;
mod execution;
mod pipelines;
mod proxy;
mod scheduler;
mod streams;
mod tracking;
mod workspaces;
