//! An operation's `runPatch`: changes to its component's `run` section
//! without copying the component, as Polyaxon applies them (a hub
//! workspace that clones the project's code first, say: `hubRef:
//! streamlit` with `runPatch: {init: [{git: {url: ...}}]}`).
//!
//! `patchStrategy` says how the patch meets the component's run, key by
//! key, recursively through mappings:
//! - `post_merge` (the default): the patch's values win; a list gets the
//!   patch's items after the component's.
//! - `pre_merge`: the component's values win; a list gets the patch's items
//!   before the component's.
//! - `replace`: the patch's values replace the component's, lists whole.
//! - `isnull`: the patch only fills what the component leaves unset.

use serde_yaml::{Mapping, Value};

use super::SpecError;
use super::raw::RawRun;

/// The strategies `patchStrategy` names.
pub const STRATEGIES: [&str; 4] = ["post_merge", "pre_merge", "replace", "isnull"];

/// How a patch meets what it patches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    PostMerge,
    PreMerge,
    Replace,
    IsNull,
}

impl Strategy {
    /// The strategy `name` names (`None`: the default, `post_merge`).
    pub fn parse(name: Option<&str>) -> Result<Self, String> {
        Ok(match name.unwrap_or("post_merge") {
            "post_merge" => Strategy::PostMerge,
            "pre_merge" => Strategy::PreMerge,
            "replace" => Strategy::Replace,
            "isnull" => Strategy::IsNull,
            other => {
                return Err(format!(
                    "unknown patchStrategy `{other}`; expected one of: {}",
                    STRATEGIES.join(", ")
                ));
            }
        })
    }
}

/// `run` with `patch` applied by `strategy`. `at` is where the patch was
/// written (`runPatch`), for errors: a patch that is not a mapping, one
/// for another kind of run, or one with a key a run does not have.
pub fn patch_run(
    run: &RawRun,
    patch: &Value,
    strategy: Strategy,
    at: &str,
) -> Result<RawRun, SpecError> {
    let Value::Mapping(patch) = patch else {
        return Err(SpecError::at(
            at,
            "`runPatch` must be a mapping of the run's keys (`init`, `container`, ...)",
        ));
    };
    if let (Some(Value::String(kind)), Some(own)) = (patch.get("kind"), run.kind.as_deref())
        && kind != own
    {
        return Err(SpecError::at(
            format!("{at}.kind"),
            format!("the patch is for a `{kind}` run; the component's run is a `{own}`"),
        ));
    }
    let base = serde_yaml::to_value(run)
        .map_err(|e| SpecError::at(at, format!("the component's run does not read: {e}")))?;
    let merged = merge(without_nulls(base), Value::Mapping(patch.clone()), strategy);
    serde_yaml::from_value(merged).map_err(|e| SpecError::at(at, e.to_string()))
}

/// `base` met by `patch` under `strategy` (see the module documentation).
fn merge(base: Value, patch: Value, strategy: Strategy) -> Value {
    match (base, patch) {
        (base, Value::Null) => base,
        (Value::Null, patch) => patch,
        (Value::Mapping(mut base), Value::Mapping(patch)) => {
            for (key, value) in patch {
                let merged = match base.remove(&key) {
                    Some(existing) => merge(existing, value, strategy),
                    None => value,
                };
                base.insert(key, merged);
            }
            Value::Mapping(base)
        }
        (Value::Sequence(mut base), Value::Sequence(mut patch)) => match strategy {
            Strategy::PostMerge => {
                base.extend(patch);
                Value::Sequence(base)
            }
            Strategy::PreMerge => {
                patch.extend(base);
                Value::Sequence(patch)
            }
            Strategy::Replace => Value::Sequence(patch),
            Strategy::IsNull => Value::Sequence(base),
        },
        (base, patch) => match strategy {
            Strategy::PostMerge | Strategy::Replace => patch,
            Strategy::PreMerge | Strategy::IsNull => base,
        },
    }
}

/// `value` without its unset keys: a key the component left out is
/// missing, not null, so `isnull` fills it and a merge does not keep it.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Mapping(map) => Value::Mapping(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect::<Mapping>(),
        ),
        Value::Sequence(items) => Value::Sequence(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(yaml: &str) -> RawRun {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn patched(base: &str, patch: &str, strategy: Strategy) -> Result<Value, SpecError> {
        let patch: Value = serde_yaml::from_str(patch).unwrap();
        patch_run(&run(base), &patch, strategy, "runPatch")
            .map(|r| without_nulls(serde_yaml::to_value(r).unwrap()))
    }

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    const BASE: &str = "kind: job\ninit:\n  - file: {content: a, filename: a.txt}\ncontainer:\n  image: python:3.11\n  command: [python, train.py]\n  env:\n    - {name: A, value: '1'}\n";

    #[test]
    fn each_strategy_meets_lists_and_values_its_own_way() {
        let patch = "init:\n  - git: {url: 'https://example.com/r.git'}\ncontainer:\n  image: python:3.12\n  workingDir: /code\n  env:\n    - {name: B, value: '2'}\n";
        let init_file = "file: {content: a, filename: a.txt}";
        let init_git = "git: {url: 'https://example.com/r.git'}";
        let cases = [
            // (strategy, init order, image, env names)
            (
                Strategy::PostMerge,
                vec![init_file, init_git],
                "python:3.12",
                vec!["A", "B"],
            ),
            (
                Strategy::PreMerge,
                vec![init_git, init_file],
                "python:3.11",
                vec!["B", "A"],
            ),
            (Strategy::Replace, vec![init_git], "python:3.12", vec!["B"]),
            (Strategy::IsNull, vec![init_file], "python:3.11", vec!["A"]),
        ];
        for (strategy, init, image, env) in cases {
            let got = patched(BASE, patch, strategy).unwrap();
            let want_init: Vec<Value> = init.iter().map(|i| yaml(i)).collect();
            assert_eq!(got["init"], Value::Sequence(want_init), "{strategy:?} init");
            assert_eq!(got["container"]["image"], yaml(image), "{strategy:?} image");
            let names: Vec<&str> = got["container"]["env"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, env, "{strategy:?} env");
            // A key the component left unset is filled by every strategy;
            // what the patch does not name is kept.
            assert_eq!(
                got["container"]["workingDir"],
                yaml("/code"),
                "{strategy:?}"
            );
            assert_eq!(
                got["container"]["command"],
                yaml("[python, train.py]"),
                "{strategy:?}"
            );
        }
    }

    #[test]
    fn bad_patches_are_refused_where_they_were_written() {
        let cases = [
            ("[1, 2]", "runPatch", "must be a mapping"),
            (
                "kind: service",
                "runPatch.kind",
                "the patch is for a `service` run",
            ),
            (
                "contianer: {image: x}",
                "runPatch",
                "unknown field `contianer`",
            ),
            ("init: {git: {url: x}}", "runPatch", "expected a sequence"),
        ];
        for (patch, path, message) in cases {
            let error = patched(BASE, patch, Strategy::PostMerge).unwrap_err();
            assert_eq!(error.path, path, "{patch}");
            assert!(
                error.message.contains(message),
                "{patch}: {}",
                error.message
            );
        }
        assert_eq!(
            Strategy::parse(Some("merge")).unwrap_err(),
            "unknown patchStrategy `merge`; expected one of: post_merge, pre_merge, replace, isnull"
        );
        assert_eq!(Strategy::parse(None), Ok(Strategy::PostMerge));
    }
}
