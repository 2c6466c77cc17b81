//! The local executor: runs a job's command as a process on this host and
//! captures its output line by line.
//!
//! [`start`] spawns the command in its own process group, in a working
//! directory, with the given environment; stdout and stderr are read line
//! by line into a channel as [`LogLine`]s with their stream and time.
//! [`Process::wait`] resolves once the process has exited and every line has
//! been delivered. [`Process::stop`] sends SIGTERM to the whole group, then
//! SIGKILL after a grace period, so children the command started end too.
//!
//! The scheduler (issue 4) drives this: it decides what starts, records
//! statuses, and stores the lines.

pub mod usage;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use chrono::Utc;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, watch};
use trellis_domain::logs::{Exit, LogLine, Stream};

/// How many trailing stderr lines are kept for a failure message.
pub const STDERR_TAIL: usize = 20;
/// Longest line kept whole; longer output is split into lines of this size.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// The program and its arguments (a container's `command` + `args`).
    pub command: Vec<String>,
    /// Added to the server's environment (which provides `PATH`, ...).
    pub env: BTreeMap<String, String>,
    /// The run's working directory; it must exist.
    pub workdir: PathBuf,
}

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("the container has no command to run")]
    EmptyCommand,
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
}

/// How a process ended, with what it last wrote to stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub exit: Exit,
    pub last_stderr: Vec<String>,
}

/// A started process.
pub struct Process {
    /// Its process id, also its process group id.
    pid: i32,
    /// Becomes `Some` once it has exited and its output is fully read.
    finished: watch::Receiver<Option<Finished>>,
}

/// Starts `spec`, sending each output line to `lines`.
pub fn start(
    spec: &ProcessSpec,
    lines: mpsc::UnboundedSender<LogLine>,
) -> Result<Process, ExecError> {
    let (program, args) = spec.command.split_first().ok_or(ExecError::EmptyCommand)?;
    let mut child = Command::new(program)
        .args(args)
        .envs(&spec.env)
        .current_dir(&spec.workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so a stop reaches everything it starts.
        .process_group(0)
        .kill_on_drop(false)
        .spawn()
        .map_err(|source| ExecError::Spawn {
            program: program.clone(),
            source,
        })?;
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .unwrap_or(0);
    let stdout = child
        .stdout
        .take()
        .map(|out| tokio::spawn(read_lines(out, Stream::Stdout, lines.clone())));
    let stderr = child
        .stderr
        .take()
        .map(|err| tokio::spawn(read_lines(err, Stream::Stderr, lines)));
    let (done, finished) = watch::channel(None);
    tokio::spawn(async move {
        let status = child.wait().await;
        if let Some(reader) = stdout {
            let _ = reader.await;
        }
        let last_stderr = match stderr {
            Some(reader) => reader.await.map(Vec::from).unwrap_or_default(),
            None => Vec::new(),
        };
        let exit = match status {
            Ok(status) => exit_of(status),
            // Waiting failed: the process is gone without a status.
            Err(_) => Exit::Signal(libc::SIGKILL),
        };
        let _ = done.send(Some(Finished { exit, last_stderr }));
    });
    Ok(Process { pid, finished })
}

fn exit_of(status: std::process::ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(signal)) => Exit::Signal(signal),
        (None, None) => Exit::Signal(0),
    }
}

/// Reads `output` line by line into `lines`; returns the last stderr lines.
async fn read_lines(
    output: impl AsyncRead + Unpin,
    stream: Stream,
    lines: mpsc::UnboundedSender<LogLine>,
) -> VecDeque<String> {
    let mut reader = BufReader::new(output);
    let mut tail = VecDeque::with_capacity(STDERR_TAIL);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        // Read at most MAX_LINE_BYTES so one endless line cannot exhaust memory.
        let mut limited = (&mut reader).take(MAX_LINE_BYTES as u64);
        match limited.read_until(b'\n', &mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if buffer.ends_with(b"\n") {
            buffer.pop();
            // Keep `\r` inside a line (progress bars); drop a CRLF's.
            if buffer.ends_with(b"\r") {
                buffer.pop();
            }
        }
        let text = String::from_utf8_lossy(&buffer).into_owned();
        if stream == Stream::Stderr {
            if tail.len() == STDERR_TAIL {
                tail.pop_front();
            }
            tail.push_back(text.clone());
        }
        // A closed receiver means nobody stores logs any more; keep draining
        // so the process never blocks on a full pipe.
        let _ = lines.send(LogLine {
            at: Utc::now(),
            stream,
            text,
        });
    }
    tail
}

impl Process {
    /// The process (and process group) id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Waits until the process has exited and all its output is read.
    pub async fn wait(&mut self) -> Finished {
        loop {
            if let Some(finished) = self.finished.borrow().clone() {
                return finished;
            }
            if self.finished.changed().await.is_err() {
                // The waiting task is gone; nothing more will arrive.
                return self.finished.borrow().clone().unwrap_or(Finished {
                    exit: Exit::Signal(libc::SIGKILL),
                    last_stderr: Vec::new(),
                });
            }
        }
    }

    /// Stops the process: SIGTERM to its group, SIGKILL after `grace` if it
    /// is still there. Returns how it ended.
    pub async fn stop(&mut self, grace: Duration) -> Finished {
        self.signal(libc::SIGTERM);
        match tokio::time::timeout(grace, self.wait()).await {
            Ok(finished) => finished,
            Err(_) => {
                self.signal(libc::SIGKILL);
                self.wait().await
            }
        }
    }

    fn signal(&self, signal: i32) {
        if self.pid <= 0 || self.finished.borrow().is_some() {
            return;
        }
        // SAFETY: kill(2) with a negative pid signals the process group we
        // created with `process_group(0)`; it has no memory effects.
        unsafe {
            libc::kill(-self.pid, signal);
        }
    }
}

/// Ends the process group of `pid` if it is still the process of run
/// `run_uuid` (its environment says `TRELLIS_RUN_UUID=<run_uuid>`): a run
/// whose server died keeps running unwatched, writing to closed pipes.
/// Checking the environment keeps a reused pid from being killed.
/// Returns whether a process was killed.
pub fn kill_orphan(pid: i64, run_uuid: &str) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 1 {
        return false;
    }
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let marker = format!("TRELLIS_RUN_UUID={run_uuid}");
    let ours = environ
        .split(|b| *b == 0)
        .any(|entry| entry == marker.as_bytes());
    if !ours {
        return false;
    }
    // SAFETY: kill(2) with a negative pid signals that process group; it
    // has no memory-safety preconditions.
    unsafe { libc::kill(-pid, libc::SIGKILL) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(script: &str, dir: &std::path::Path) -> ProcessSpec {
        ProcessSpec {
            command: vec!["sh".into(), "-c".into(), script.into()],
            env: BTreeMap::from([("TRELLIS_RUN_UUID".to_owned(), "run-1".to_owned())]),
            workdir: dir.to_path_buf(),
        }
    }

    async fn collect(mut rx: mpsc::UnboundedReceiver<LogLine>) -> Vec<(Stream, String)> {
        let mut out = Vec::new();
        while let Some(line) = rx.recv().await {
            out.push((line.stream, line.text));
        }
        out
    }

    #[tokio::test]
    async fn output_is_captured_line_by_line_with_its_stream() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut process = start(
            &spec(
                "echo one; echo two >&2; printf 'no newline'; echo $TRELLIS_RUN_UUID >&2",
                dir.path(),
            ),
            tx,
        )
        .unwrap();
        let finished = process.wait().await;
        let lines = collect(rx).await;
        assert_eq!(finished.exit, Exit::Code(0));
        let stdout: Vec<&str> = lines
            .iter()
            .filter(|l| l.0 == Stream::Stdout)
            .map(|l| l.1.as_str())
            .collect();
        let stderr: Vec<&str> = lines
            .iter()
            .filter(|l| l.0 == Stream::Stderr)
            .map(|l| l.1.as_str())
            .collect();
        assert_eq!(stdout, ["one", "no newline"]);
        assert_eq!(stderr, ["two", "run-1"]);
        assert_eq!(finished.last_stderr, ["two", "run-1"]);
    }

    #[tokio::test]
    async fn failures_keep_the_exit_code_and_the_last_stderr_lines() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let script = "for i in $(seq 1 30); do echo line-$i >&2; done; exit 3";
        let mut process = start(&spec(script, dir.path()), tx).unwrap();
        let finished = process.wait().await;
        assert_eq!(finished.exit, Exit::Code(3));
        assert_eq!(finished.last_stderr.len(), STDERR_TAIL);
        assert_eq!(
            finished.last_stderr.last().map(String::as_str),
            Some("line-30")
        );
        assert_eq!(collect(rx).await.len(), 30, "every line is delivered");
    }

    #[tokio::test]
    async fn the_working_directory_is_the_runs() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut process = start(&spec("pwd; touch made-here", dir.path()), tx).unwrap();
        process.wait().await;
        let lines = collect(rx).await;
        let expected = dir.path().canonicalize().unwrap();
        assert_eq!(lines[0].1, expected.to_string_lossy());
        assert!(dir.path().join("made-here").exists());
    }

    #[tokio::test]
    async fn progress_bars_keep_their_carriage_returns() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut process = start(
            &spec(
                "printf '10%%\\r50%%\\r100%%\\n'; printf 'dos\\r\\n'",
                dir.path(),
            ),
            tx,
        )
        .unwrap();
        process.wait().await;
        let lines: Vec<String> = collect(rx).await.into_iter().map(|l| l.1).collect();
        assert_eq!(lines, ["10%\r50%\r100%", "dos"]);
    }

    #[tokio::test]
    async fn stop_ends_the_process_group_gracefully() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        // The shell traps TERM and exits cleanly; its child sleep must go too.
        let script = "trap 'echo stopping; exit 0' TERM; sleep 30 & sleep 0.2; echo started; wait";
        let mut process = start(&spec(script, dir.path()), tx).unwrap();
        let mut rx = rx;
        assert_eq!(rx.recv().await.map(|l| l.text), Some("started".to_owned()));
        let begun = std::time::Instant::now();
        let finished = process.stop(Duration::from_secs(5)).await;
        assert_eq!(finished.exit, Exit::Code(0));
        assert!(
            begun.elapsed() < Duration::from_secs(4),
            "SIGTERM was enough; no SIGKILL after the grace period"
        );
        assert_eq!(rx.recv().await.map(|l| l.text), Some("stopping".to_owned()));
        // No process of the group is left running. (An ended `sleep` may
        // linger as a zombie until init reaps it; that is not running.)
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while running_in_group(process.pid()) > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the process group should be gone"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Processes of group `pgid` that are not zombies, from `/proc`.
    fn running_in_group(pgid: i32) -> usize {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return 0;
        };
        entries
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
            .filter(|stat| {
                // After the `(comm)` field: state, ppid, pgrp, ...
                let fields: Vec<&str> = stat
                    .rsplit_once(')')
                    .map_or("", |(_, rest)| rest)
                    .split_whitespace()
                    .collect();
                fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z"
            })
            .count()
    }

    #[tokio::test]
    async fn stop_kills_what_ignores_sigterm_after_the_grace_period() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let script = "trap '' TERM; echo started; while true; do sleep 1; done";
        let mut process = start(&spec(script, dir.path()), tx).unwrap();
        assert_eq!(rx.recv().await.map(|l| l.text), Some("started".to_owned()));
        let begun = std::time::Instant::now();
        let finished = process.stop(Duration::from_millis(300)).await;
        assert_eq!(finished.exit, Exit::Signal(libc::SIGKILL));
        assert!(begun.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_missing_program_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, _rx) = mpsc::unbounded_channel();
        let missing = ProcessSpec {
            command: vec!["definitely-not-a-program".into()],
            env: BTreeMap::new(),
            workdir: dir.path().to_path_buf(),
        };
        let error = start(&missing, tx.clone())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.starts_with("cannot start `definitely-not-a-program`"),
            "{error}"
        );
        let empty = ProcessSpec {
            command: vec![],
            ..missing
        };
        assert!(matches!(start(&empty, tx), Err(ExecError::EmptyCommand)));
    }
}
