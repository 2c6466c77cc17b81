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

/// A piece of a log line as shown: its text and its ANSI style.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Styled {
    pub text: String,
    /// ANSI colour 0–15 (30–37 and 90–97 foregrounds), if any.
    pub color: Option<u8>,
    pub bold: bool,
}

/// A captured line as a terminal would show it: a `\r` progress bar
/// collapsed to its last state, ANSI colours and bold turned into styled
/// pieces, and other escape sequences (cursor moves, ...) dropped.
pub fn display_line(raw: &str) -> Vec<Styled> {
    // What a terminal shows after carriage returns: the last non-empty segment.
    let visible = raw.split('\r').rev().find(|s| !s.is_empty()).unwrap_or("");
    let mut pieces: Vec<Styled> = Vec::new();
    let (mut color, mut bold) = (None, false);
    let mut text = String::new();
    let mut chars = visible.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            text.push(c);
            continue;
        }
        if chars.peek() != Some(&'[') {
            chars.next();
            continue;
        }
        chars.next();
        let mut params = String::new();
        let mut end = None;
        for c in chars.by_ref() {
            if c.is_ascii_alphabetic() || c == '~' {
                end = Some(c);
                break;
            }
            params.push(c);
        }
        if end != Some('m') {
            continue;
        }
        if !text.is_empty() {
            pieces.push(Styled {
                text: std::mem::take(&mut text),
                color,
                bold,
            });
        }
        let codes: Vec<u16> = params.split(';').map(|p| p.parse().unwrap_or(0)).collect();
        for code in codes {
            match code {
                0 => (color, bold) = (None, false),
                1 => bold = true,
                22 => bold = false,
                30..=37 => color = u8::try_from(code - 30).ok(),
                90..=97 => color = u8::try_from(code - 90 + 8).ok(),
                39 => color = None,
                _ => {}
            }
        }
    }
    if !text.is_empty() || pieces.is_empty() {
        pieces.push(Styled { text, color, bold });
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(text: &str) -> Styled {
        Styled {
            text: text.into(),
            color: None,
            bold: false,
        }
    }

    #[test]
    fn progress_bars_show_their_last_state() {
        assert_eq!(display_line("10%\r50%\r100%"), vec![plain("100%")]);
        assert_eq!(display_line("loading\r"), vec![plain("loading")]);
        assert_eq!(display_line(""), vec![plain("")]);
    }

    #[test]
    fn ansi_colours_become_styled_pieces_and_other_escapes_vanish() {
        let line =
            display_line("\u{1b}[1;31mERROR\u{1b}[0m: disk \u{1b}[92mok\u{1b}[39m\u{1b}[2K done");
        assert_eq!(
            line,
            vec![
                Styled {
                    text: "ERROR".into(),
                    color: Some(1),
                    bold: true
                },
                plain(": disk "),
                Styled {
                    text: "ok".into(),
                    color: Some(10),
                    bold: false
                },
                plain(" done"),
            ]
        );
    }

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
