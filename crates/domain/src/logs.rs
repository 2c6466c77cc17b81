//! Log lines of runs, as captured and as shown.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line a run printed, without its newline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub at: DateTime<Utc>,
    pub stream: Stream,
    pub text: String,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it (a stop, an out-of-memory kill, ...).
    Signal(i32),
}

impl Exit {
    /// Whether the run succeeded.
    pub fn is_success(self) -> bool {
        self == Exit::Code(0)
    }

    /// The condition message of a failed run: how it ended and the last
    /// lines it wrote to stderr, which usually say why.
    pub fn failure_message(self, last_stderr: &[String]) -> String {
        let ended = match self {
            Exit::Code(code) => format!("exited with code {code}"),
            Exit::Signal(9) => {
                "was killed (signal 9; out of memory, or stopped without a grace period)".to_owned()
            }
            Exit::Signal(signal) => format!("was ended by signal {signal}"),
        };
        if last_stderr.is_empty() {
            format!("The process {ended}.")
        } else {
            format!(
                "The process {ended}. Last lines of stderr:\n{}",
                last_stderr.join("\n")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_messages_say_how_and_why() {
        assert!(Exit::Code(0).is_success());
        assert!(!Exit::Signal(15).is_success());
        assert_eq!(
            Exit::Code(2).failure_message(&[]),
            "The process exited with code 2."
        );
        let message =
            Exit::Code(1).failure_message(&["Traceback".into(), "ValueError: bad lr".into()]);
        assert!(
            message.ends_with("Traceback\nValueError: bad lr"),
            "{message}"
        );
        assert!(
            Exit::Signal(9)
                .failure_message(&[])
                .contains("out of memory")
        );
    }
}
