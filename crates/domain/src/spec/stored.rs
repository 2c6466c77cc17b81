//! The compiled spec a run keeps: compiled once, at submission, and read by
//! everything after it (the executor, a sweep creating trials, a dag
//! creating its operations) instead of the YAML. Versioned, so a later
//! Trellis can tell a value it no longer reads from a corrupt one.
//!
//! What only execution knows — the working directory, the ports a service
//! was given, the address it is served under — is left in the templates as
//! written (`{{ globals.run_outputs_path }}`) and filled by
//! [`StoredSpec::for_execution`].

use serde::{Deserialize, Serialize};

use super::SpecError;
use super::compile::{CompiledRun, ContainerSpec, Globals, InitStep};
use super::pipeline::{self, DagPlan, Sweep};
use super::template::render_globals;
use crate::run::RunKind;

/// The version [`StoredSpec::encode`] writes.
pub const STORED_SPEC_VERSION: u32 = 1;

/// A run's compiled spec, as stored with the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSpec {
    pub version: u32,
    pub run: CompiledRun,
    /// A sweep's matrix and the file each trial runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Sweep>,
    /// A dag's operations, in the file's order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dag: Option<DagPlan>,
}

impl StoredSpec {
    /// The stored form of `run`, compiled from `content`: a sweep keeps its
    /// matrix and trial file, a dag its operations.
    pub fn new(run: CompiledRun, content: &str) -> Result<Self, SpecError> {
        let sweep = if run.matrix.is_some() {
            pipeline::sweep(content)?
        } else {
            None
        };
        let dag = if sweep.is_none() && run.kind == RunKind::Dag {
            Some(pipeline::dag(content)?)
        } else {
            None
        };
        Ok(Self {
            version: STORED_SPEC_VERSION,
            run,
            sweep,
            dag,
        })
    }

    /// The text stored in the run's `compiled` column. Fails only for YAML
    /// that JSON cannot hold (a mapping keyed by a list, say).
    pub fn encode(&self) -> Result<String, SpecError> {
        serde_json::to_string(self).map_err(|e| {
            SpecError::at(
                "",
                format!("the compiled spec cannot be stored as JSON: {e}"),
            )
        })
    }

    /// Reads what [`StoredSpec::encode`] wrote, refusing another version.
    pub fn decode(text: &str) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let Versioned { version } = serde_json::from_str(text)
            .map_err(|e| format!("the stored compiled spec does not read: {e}"))?;
        if version != STORED_SPEC_VERSION {
            return Err(format!(
                "the stored compiled spec has version {version}; this Trellis reads version {STORED_SPEC_VERSION}"
            ));
        }
        serde_json::from_str(text)
            .map_err(|e| format!("the stored compiled spec does not read: {e}"))
    }

    /// The run with the globals known only at execution (`paths`, `ports`,
    /// `base_url`) filled into its container and `init` steps.
    pub fn for_execution(&self, late: &Globals) -> Result<CompiledRun, String> {
        let fill = |text: &str| render_globals(text, late);
        let fill_all = |items: &[String]| items.iter().map(|i| fill(i)).collect::<Result<_, _>>();
        let mut run = self.run.clone();
        if let Some(container) = &self.run.container {
            run.container = Some(ContainerSpec {
                image: container.image.as_deref().map(fill).transpose()?,
                command: fill_all(&container.command)?,
                args: fill_all(&container.args)?,
                env: container
                    .env
                    .iter()
                    .map(|(name, value)| Ok((name.clone(), fill(value)?)))
                    .collect::<Result<_, String>>()?,
            });
        }
        run.init = self
            .run
            .init
            .iter()
            .map(|step| {
                Ok(match step {
                    InitStep::Git {
                        url,
                        revision,
                        path,
                    } => InitStep::Git {
                        url: fill(url)?,
                        revision: revision.as_deref().map(fill).transpose()?,
                        path: path.as_deref().map(fill).transpose()?,
                    },
                    InitStep::File {
                        filename,
                        content,
                        chmod,
                    } => InitStep::File {
                        filename: fill(filename)?,
                        content: fill(content)?,
                        chmod: chmod.clone(),
                    },
                    InitStep::Other { what } => InitStep::Other { what: what.clone() },
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(run)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::spec::{NoFiles, compile};

    const SERVICE: &str = r#"
version: 1.1
kind: component
inputs:
  - {name: lr, type: float, value: 0.1}
run:
  kind: service
  ports: [8888]
  init:
    - file: {filename: "conf.txt", content: "out={{ globals.run_outputs_path }}"}
  container:
    image: python
    command: [python, -m, http.server, "{{ globals.ports[0] }}"]
    args: ["--lr={{ lr }}", "--base={{ globals.base_url }}", "--id={{ globals.uuid }}"]
    env:
      - {name: OUT, value: "{{ globals.run_outputs_path }}"}
"#;

    fn submitted(content: &str) -> StoredSpec {
        let globals = Globals {
            uuid: Some("abc".into()),
            ..Globals::default()
        };
        let run = compile(content, None, &NoFiles, &BTreeMap::new(), &globals).unwrap();
        StoredSpec::new(run, content).unwrap()
    }

    #[test]
    fn a_spec_compiled_at_submission_is_filled_at_execution_as_a_full_compile_would_be() {
        let stored = StoredSpec::decode(&submitted(SERVICE).encode().unwrap()).unwrap();
        let late = Globals {
            uuid: Some("abc".into()),
            run_outputs_path: Some("/d/runs/abc/outputs".into()),
            artifacts_path: Some("/d/runs/abc".into()),
            base_url: Some("/services/v1/o/p/runs/abc/8888".into()),
            ports: vec![41_234],
            ..Globals::default()
        };
        let filled = stored.for_execution(&late).unwrap();
        let full = compile(SERVICE, None, &NoFiles, &BTreeMap::new(), &late).unwrap();
        assert_eq!(filled, full);
        let container = filled.container.unwrap();
        assert_eq!(container.command[3], "41234");
        assert_eq!(
            container.args,
            [
                "--lr=0.1",
                "--base=/services/v1/o/p/runs/abc/8888",
                "--id=abc"
            ]
        );
        assert_eq!(container.env["OUT"], "/d/runs/abc/outputs");
    }

    #[test]
    fn sweeps_and_dags_keep_what_their_controllers_read() {
        let sweep = submitted(
            "version: 1.1\nkind: operation\nmatrix:\n  kind: grid\n  params:\n    lr: {kind: choice, value: [0.1, 0.2]}\ncomponent:\n  inputs: [{name: lr, type: float}]\n  run:\n    kind: job\n    container: {image: busybox, command: [echo, '{{ lr }}']}\n",
        );
        let decoded = StoredSpec::decode(&sweep.encode().unwrap()).unwrap();
        let kept = decoded.sweep.expect("a sweep");
        assert_eq!(kept.matrix.kind.as_deref(), Some("grid"));
        assert!(!kept.trial_content.contains("matrix"));
        let dag = submitted(
            "version: 1.1\nkind: component\nrun:\n  kind: dag\n  operations:\n    - name: a\n      component: {run: {kind: job, container: {image: busybox, command: ['true']}}}\n    - name: b\n      dependencies: [a]\n      trigger: all_done\n      component: {run: {kind: job, container: {image: busybox, command: ['true']}}}\n",
        );
        let plan = StoredSpec::decode(&dag.encode().unwrap())
            .unwrap()
            .dag
            .expect("a dag");
        assert_eq!(plan.ops.len(), 2);
        assert_eq!(plan.ops[1].op.upstream, [0]);
        assert_eq!(plan.ops[1].op.trigger, crate::dag::Trigger::AllDone);
    }

    #[test]
    fn another_version_or_a_corrupt_value_is_refused_saying_which() {
        let mut stored = submitted(SERVICE);
        stored.version = 99;
        assert!(
            StoredSpec::decode(&stored.encode().unwrap())
                .unwrap_err()
                .contains("version 99")
        );
        assert!(
            StoredSpec::decode("{not json")
                .unwrap_err()
                .contains("does not read")
        );
    }
}
