//! The `trellis` binary as a process: migrations, durability across a
//! `kill -9`, and graceful shutdown on SIGTERM.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trellis_db::testing::TestDb;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_trellis");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
}

impl Server {
    /// Starts `trellis server` that only tracks runs (`--executor none`),
    /// so tests can drive statuses themselves.
    pub(crate) async fn start(data_dir: &Path, database_url: Option<&str>) -> Self {
        Self::start_with(data_dir, database_url, &["--executor", "none"]).await
    }

    /// Starts `trellis server` with `extra` arguments and waits until
    /// `/healthz` answers.
    pub(crate) async fn start_with(
        data_dir: &Path,
        database_url: Option<&str>,
        extra: &[&str],
    ) -> Self {
        let port = free_port();
        let mut command = Command::new(BIN);
        command
            .args(["server", "--port", &port.to_string(), "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .env_remove("DATABASE_URL")
            // Embedded unless a test passes brokers explicitly.
            .env_remove("AMQP_URL")
            .env_remove("REDIS_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(url) = database_url {
            command.env("DATABASE_URL", url);
        }
        let child = command.spawn().expect("start trellis server");
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(reply) = server.request("GET", "/healthz", None).await
                && reply.0 == 200
            {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "trellis server did not become healthy"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A minimal HTTP/1.1 client over a raw socket, so the tests need no
    /// HTTP client crate.
    pub(crate) async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> std::io::Result<(u16, Value)> {
        request_to(&self.base, method, path, body).await
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

/// One HTTP/1.1 request to `base` (`http://host:port`), without a client
/// crate; the body is parsed as JSON when it is JSON.
pub(crate) async fn request_to(
    base: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> std::io::Result<(u16, Value)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null);
    Ok((status, json))
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An acknowledged write survives `kill -9` of the server, on both databases.
async fn acknowledged_writes_survive_a_kill(database_url: Option<&str>) {
    let data_dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(data_dir.path(), database_url).await;
    let (status, _) = server
        .request(
            "POST",
            "/api/v1/default/projects/create",
            Some(json!({ "name": "durable" })),
        )
        .await
        .unwrap();
    assert_eq!(status, 201);
    let (status, run) = server
        .request(
            "POST",
            "/api/v1/default/durable/runs",
            Some(json!({ "name": "kept" })),
        )
        .await
        .unwrap();
    assert_eq!(status, 201);
    let uuid = run["uuid"].as_str().unwrap().to_owned();
    let (status, _) = server
        .request(
            "POST",
            &format!("/api/v1/default/durable/runs/{uuid}/statuses"),
            Some(json!({ "condition": { "type": "compiled" } })),
        )
        .await
        .unwrap();
    assert_eq!(status, 200);

    let killed = Command::new("kill")
        .args(["-9", &server.pid()])
        .status()
        .unwrap();
    assert!(killed.success());
    let _ = server.child.wait();

    let restarted = Server::start(data_dir.path(), database_url).await;
    let (status, run) = restarted
        .request("GET", &format!("/api/v1/default/durable/runs/{uuid}"), None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(run["name"], "kept");
    assert_eq!(run["status"], "compiled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_kill_on_sqlite() {
    acknowledged_writes_survive_a_kill(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_kill_on_postgres() {
    let test_db = TestDb::postgres().await;
    test_db.db.close().await;
    acknowledged_writes_survive_a_kill(Some(&test_db.url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_the_server_down_cleanly() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(data_dir.path(), None).await;
    let sent = Command::new("kill")
        .args(["-TERM", &server.pid()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status {exit:?}");
}

#[test]
fn migrate_prepares_both_databases() {
    let data_dir = tempfile::tempdir().unwrap();
    let sqlite = Command::new(BIN)
        .args(["migrate", "--data-dir"])
        .arg(data_dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        sqlite.status.success(),
        "{}",
        String::from_utf8_lossy(&sqlite.stderr)
    );
    assert!(data_dir.path().join("trellis.db").exists());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let test_db = runtime.block_on(TestDb::postgres());
    let postgres = Command::new(BIN)
        .arg("migrate")
        .env("DATABASE_URL", &test_db.url)
        .output()
        .unwrap();
    assert!(
        postgres.status.success(),
        "{}",
        String::from_utf8_lossy(&postgres.stderr)
    );
    drop(test_db);

    let refused = Command::new(BIN)
        .arg("migrate")
        .env("DATABASE_URL", "mysql://localhost/db")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("DATABASE_URL must start with"));
}
