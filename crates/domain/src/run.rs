//! Runs: identifiers and kinds. Submitted specs are parsed by [`crate::spec`].

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
    type Err = UnknownKind;
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
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// An unknown run kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown run kind `{0}`; expected one of: job, service, dag, matrix, tfjob, pytorchjob, mpijob, daskcluster, raycluster"
)]
pub struct UnknownKind(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_kind_names_are_aliases() {
        assert_eq!("daskjob".parse::<RunKind>(), Ok(RunKind::Daskcluster));
        assert_eq!("rayjob".parse::<RunKind>(), Ok(RunKind::Raycluster));
        assert_eq!("jbo".parse::<RunKind>(), Err(UnknownKind("jbo".into())));
    }

    #[test]
    fn run_ids_parse_with_or_without_dashes() {
        let a: RunId = "8c6d7a2e-2f1b-4c1e-9d3a-0c9a1b2c3d4e".parse().unwrap();
        let b: RunId = "8c6d7a2e2f1b4c1e9d3a0c9a1b2c3d4e".parse().unwrap();
        assert_eq!(a, b);
        assert!("not-a-uuid".parse::<RunId>().is_err());
    }
}
