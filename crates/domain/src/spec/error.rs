//! Errors a user can act on: the file, the field path, the line and column,
//! what was expected, and "did you mean" for a misspelt key or kind.

use std::fmt;

/// Why a Polyaxonfile was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    /// The file, when known (`polyaxonfile.yaml`).
    pub file: Option<String>,
    /// Dotted path of the offending field (`run.container.command`,
    /// `run.operations[1].dependencies`); empty for the whole file.
    pub path: String,
    /// 1-based line, when known. (`u32` keeps the error small enough to
    /// return by value everywhere.)
    pub line: Option<u32>,
    /// 1-based column, when known.
    pub column: Option<u32>,
    /// What is wrong and what was expected.
    pub message: String,
    /// The closest valid word for a misspelt key or kind.
    pub suggestion: Option<String>,
}

impl SpecError {
    /// An error at `path` (located later by [`super::locate`]).
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: None,
            path: path.into(),
            line: None,
            column: None,
            message: message.into(),
            suggestion: None,
        }
    }

    /// Adds a "did you mean" suggestion.
    pub fn suggest(mut self, suggestion: Option<&str>) -> Self {
        self.suggestion = suggestion.map(str::to_owned);
        self
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
        }
        match (self.line, self.column, self.file.is_some()) {
            (Some(line), Some(column), true) => write!(f, "{line}:{column}: ")?,
            (Some(line), None, true) => write!(f, "{line}: ")?,
            (_, _, true) => f.write_str(" ")?,
            // Without a file name, spell the position out.
            (Some(line), Some(column), false) => write!(f, "line {line}, column {column}: ")?,
            (Some(line), None, false) => write!(f, "line {line}: ")?,
            _ => {}
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(suggestion) = &self.suggestion {
            write!(f, "; did you mean `{suggestion}`?")?;
        }
        Ok(())
    }
}

/// The line and column (1-based) of the key at `path` in YAML `text`, found
/// by walking indentation: mapping keys by name, list items (`[i]`) by
/// their `-` markers. Best effort: flow style (`{a: 1}`) is not followed,
/// and the deepest key found is returned.
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let significant = |i: usize| {
        let t = lines[i].trim_start();
        !t.is_empty() && !t.starts_with('#')
    };
    let mut found = None;
    // The lines to search, and the indentation children must exceed.
    let (mut start, mut end, mut parent_indent) = (0usize, lines.len(), -1i64);
    for segment in split_path(path) {
        match segment {
            Segment::Key(key) => {
                let (line, key_indent) = (start..end).find_map(|i| {
                    let line = lines[i];
                    let body = line.trim_start().trim_start_matches("- ");
                    let body_indent = line.len() - body.len();
                    let name = body.split(':').next().unwrap_or("").trim();
                    let name = name.trim_matches('"').trim_matches('\'');
                    let is_key = name == key
                        && body[name.len().min(body.len())..]
                            .trim_start()
                            .starts_with(':');
                    (is_key && body_indent as i64 > parent_indent).then_some((i, body_indent))
                })?;
                found = Some((line + 1, key_indent + 1));
                // Children: following lines indented deeper, or list items
                // at the key's own indentation.
                let mut stop = line + 1;
                while stop < end
                    && (!significant(stop)
                        || indent_of(lines[stop]) > key_indent
                        || (indent_of(lines[stop]) == key_indent
                            && lines[stop].trim_start().starts_with('-')))
                {
                    stop += 1;
                }
                (start, end, parent_indent) = (line + 1, stop, key_indent as i64);
            }
            Segment::Index(index) => {
                let dash_indent = (start..end)
                    .filter(|i| significant(*i) && lines[*i].trim_start().starts_with('-'))
                    .map(|i| indent_of(lines[i]))
                    .min()?;
                let line = (start..end)
                    .filter(|i| {
                        indent_of(lines[*i]) == dash_indent
                            && lines[*i].trim_start().starts_with('-')
                    })
                    .nth(index)?;
                found = Some((line + 1, dash_indent + 3));
                let mut stop = line + 1;
                while stop < end && (!significant(stop) || indent_of(lines[stop]) > dash_indent) {
                    stop += 1;
                }
                (start, end, parent_indent) = (line, stop, dash_indent as i64);
            }
        }
    }
    found
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Segment<'_>> {
    let mut segments = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            segments.push(Segment::Key(key));
        }
        for index in rest.split('[') {
            if let Ok(i) = index.trim_end_matches(']').parse() {
                segments.push(Segment::Index(i));
            }
        }
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "version: 1.1\nkind: component\nrun:\n  kind: dag\n  operations:\n    - name: a\n      dependencies: [b]\n    - name: b\n      dependencies: [a]\n";

    #[test]
    fn keys_and_list_items_are_located() {
        assert_eq!(locate(TEXT, "kind"), Some((2, 1)));
        assert_eq!(locate(TEXT, "run.kind"), Some((4, 3)));
        assert_eq!(locate(TEXT, "run.operations[1].dependencies"), Some((9, 7)));
        assert_eq!(locate(TEXT, "run.operations[0].name"), Some((6, 7)));
        assert_eq!(locate(TEXT, "nothing.here"), None);
    }

    #[test]
    fn errors_read_as_one_line() {
        let mut error =
            SpecError::at("run.container.comand", "unknown key").suggest(Some("command"));
        error.file = Some("polyaxonfile.yaml".into());
        error.line = Some(7);
        error.column = Some(5);
        assert_eq!(
            error.to_string(),
            "polyaxonfile.yaml:7:5: run.container.comand: unknown key; did you mean `command`?"
        );
    }
}
