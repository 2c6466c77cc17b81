//! Runs: identifiers, kinds, and what Trellis reads from submitted content.
//!
//! The full Polyaxonfile parser is separate; here we only check that the
//! content a user submits is well-formed YAML or JSON (so broken text is
//! refused with a line and column) and read its declared run kind.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A run's public identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunId(pub Uuid);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Polyaxon prints run uuids as 32 hex digits without dashes; we print
        // the canonical form and accept both on input.
        self.0.fmt(f)
    }
}

/// A malformed run identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a run uuid (expected 32 hexadecimal digits, with or without dashes)")]
pub struct BadRunId(pub String);

impl FromStr for RunId {
    type Err = BadRunId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(RunId)
            .map_err(|_| BadRunId(s.to_owned()))
    }
}

/// What a run executes, as declared by `run.kind` in its spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RunKind {
    Job,
    Service,
    Dag,
    Matrix,
    Tfjob,
    Pytorchjob,
    Mpijob,
    Daskcluster,
    Raycluster,
}

impl RunKind {
    /// All kinds.
    pub const ALL: [RunKind; 9] = [
        RunKind::Job,
        RunKind::Service,
        RunKind::Dag,
        RunKind::Matrix,
        RunKind::Tfjob,
        RunKind::Pytorchjob,
        RunKind::Mpijob,
        RunKind::Daskcluster,
        RunKind::Raycluster,
    ];

    /// The wire and storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Job => "job",
            RunKind::Service => "service",
            RunKind::Dag => "dag",
            RunKind::Matrix => "matrix",
            RunKind::Tfjob => "tfjob",
            RunKind::Pytorchjob => "pytorchjob",
            RunKind::Mpijob => "mpijob",
            RunKind::Daskcluster => "daskcluster",
            RunKind::Raycluster => "raycluster",
        }
    }
}

impl fmt::Display for RunKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunKind {
    type Err = ContentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Polyaxon's older names for the Dask and Ray kinds.
        let canonical = match s {
            "daskjob" => "daskcluster",
            "rayjob" => "raycluster",
            other => other,
        };
        RunKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == canonical)
            .ok_or_else(|| ContentError::UnknownKind { kind: s.to_owned() })
    }
}

/// Longest accepted submitted content, in bytes.
pub const MAX_CONTENT_LEN: usize = 1024 * 1024;

/// Why submitted content was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error("content is not valid YAML or JSON{}: {message}", location(*line, *column))]
    Syntax {
        message: String,
        line: Option<usize>,
        column: Option<usize>,
    },
    #[error("content must be a mapping (`key: value` lines or a JSON object)")]
    NotAMapping,
    #[error("content is larger than {MAX_CONTENT_LEN} bytes")]
    TooLarge,
    #[error(
        "unknown run kind `{kind}`; expected one of: job, service, dag, matrix, tfjob, pytorchjob, mpijob, daskcluster, raycluster"
    )]
    UnknownKind { kind: String },
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" at line {line}, column {column}"),
        _ => String::new(),
    }
}

/// What Trellis reads from submitted content before the spec is compiled.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContentSummary {
    /// `run.kind` of a component, or `component.run.kind` of an operation.
    pub kind: Option<RunKind>,
}

/// Checks submitted content and reads its run kind. Empty content is
/// accepted (a run tracked from outside has no spec).
pub fn inspect_content(content: &str) -> Result<ContentSummary, ContentError> {
    if content.len() > MAX_CONTENT_LEN {
        return Err(ContentError::TooLarge);
    }
    if content.trim().is_empty() {
        return Ok(ContentSummary::default());
    }
    let value: serde_yaml::Value =
        serde_yaml::from_str(content).map_err(|error| ContentError::Syntax {
            message: error.to_string(),
            line: error.location().map(|l| l.line()),
            column: error.location().map(|l| l.column()),
        })?;
    let serde_yaml::Value::Mapping(root) = value else {
        return Err(ContentError::NotAMapping);
    };
    let run = root
        .get("run")
        .or_else(|| root.get("component").and_then(|c| c.get("run")));
    let kind = match run.and_then(|r| r.get("kind")).and_then(|k| k.as_str()) {
        Some(kind) => Some(kind.parse()?),
        None => None,
    };
    Ok(ContentSummary { kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_content_has_no_kind() {
        assert_eq!(inspect_content("  \n"), Ok(ContentSummary::default()));
    }

    #[test]
    fn the_kind_of_a_component_is_read() {
        let yaml =
            "version: 1.1\nkind: component\nrun:\n  kind: job\n  container:\n    image: python\n";
        assert_eq!(inspect_content(yaml).unwrap().kind, Some(RunKind::Job));
    }

    #[test]
    fn the_kind_of_an_operation_with_an_inline_component_is_read() {
        let yaml = "version: 1.1\nkind: operation\ncomponent:\n  run:\n    kind: dag\n";
        assert_eq!(inspect_content(yaml).unwrap().kind, Some(RunKind::Dag));
    }

    #[test]
    fn json_content_is_accepted() {
        let json = r#"{"version": 1.1, "kind": "component", "run": {"kind": "service"}}"#;
        assert_eq!(inspect_content(json).unwrap().kind, Some(RunKind::Service));
    }

    #[test]
    fn old_kind_names_are_aliases() {
        assert_eq!("daskjob".parse::<RunKind>(), Ok(RunKind::Daskcluster));
        assert_eq!("rayjob".parse::<RunKind>(), Ok(RunKind::Raycluster));
    }

    #[test]
    fn broken_yaml_reports_line_and_column() {
        let err = inspect_content("kind: component\nrun:\n  kind: [job\n").unwrap_err();
        let ContentError::Syntax { line, .. } = &err else {
            panic!("expected a syntax error, got {err:?}");
        };
        assert!(line.is_some());
        assert!(err.to_string().contains("at line"), "{err}");
    }

    #[test]
    fn unknown_kinds_are_refused_by_name() {
        let err = inspect_content("run:\n  kind: jbo\n").unwrap_err();
        assert_eq!(err, ContentError::UnknownKind { kind: "jbo".into() });
    }

    #[test]
    fn a_scalar_is_not_a_spec() {
        assert_eq!(inspect_content("just text"), Err(ContentError::NotAMapping));
    }

    #[test]
    fn run_ids_parse_with_or_without_dashes() {
        let a: RunId = "8c6d7a2e-2f1b-4c1e-9d3a-0c9a1b2c3d4e".parse().unwrap();
        let b: RunId = "8c6d7a2e2f1b4c1e9d3a0c9a1b2c3d4e".parse().unwrap();
        assert_eq!(a, b);
        assert!("not-a-uuid".parse::<RunId>().is_err());
    }
}
