//! What a pipeline controller reads from its spec: the matrix of a sweep
//! and the Polyaxonfile each trial runs; the operations of a dag, the
//! Polyaxonfile each operation runs once its `ref` params are known, and
//! its `conditions`.
//!
//! Child files are written at the YAML level (not re-serialized from the
//! typed structs) so every key the user wrote reaches the child as
//! written: a trial is the operation without its `matrix`; a dag operation
//! becomes an operation with its component inline and its references
//! replaced by values. A child that has a `matrix` or a dag of its own is
//! a pipeline in turn, which is how nesting works.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use serde_yaml::{Mapping, Value};

use super::compile::ParamRef;
use super::raw::{RawFile, RawMatrix};
use super::{SpecError, parse_raw};
use crate::dag::{Op, Trigger};

/// The matrix of an operation and the file its trials run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sweep {
    pub matrix: RawMatrix,
    /// The operation without `matrix`; each trial adds its params.
    pub trial_content: String,
}

/// The sweep of `content`, `None` if it has no matrix.
pub fn sweep(content: &str) -> Result<Option<Sweep>, SpecError> {
    let raw = parse_raw(content)?;
    let Some(matrix) = raw.matrix else {
        return Ok(None);
    };
    let mut document = yaml(content)?;
    if let Value::Mapping(map) = &mut document {
        map.remove("matrix");
    }
    Ok(Some(Sweep {
        matrix,
        trial_content: text(&document)?,
    }))
}

/// One operation of a dag.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DagOp {
    pub name: String,
    pub op: Op,
    /// `conditions:` as written.
    pub conditions: Option<String>,
    /// Params taken from upstream operations or from the dag's inputs.
    pub refs: BTreeMap<String, ParamRef>,
    /// The operation with its component inline, references still in.
    document: Mapping,
}

/// The operations of a dag and how many may run at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DagPlan {
    pub ops: Vec<DagOp>,
    pub concurrency: Option<usize>,
}

fn yaml(content: &str) -> Result<Value, SpecError> {
    serde_yaml::from_str(content).map_err(|e| SpecError::at("", e.to_string()))
}

fn text(value: &Value) -> Result<String, SpecError> {
    serde_yaml::to_string(value).map_err(|e| SpecError::at("", e.to_string()))
}

fn key(map: &Mapping, name: &str) -> Option<Value> {
    map.get(name).cloned()
}

/// The dag of `content` (a component whose `run.kind` is `dag`, or an
/// operation of one), already checked by `spec::compile`.
pub fn dag(content: &str) -> Result<DagPlan, SpecError> {
    let raw = parse_raw(content)?;
    let document = yaml(content)?;
    // The component: the file itself, or the operation's inline component.
    let (component_raw, component_yaml): (&RawFile, Value) = match raw.component.as_deref() {
        Some(component) => (
            component,
            document.get("component").cloned().unwrap_or(Value::Null),
        ),
        None => (&raw, document.clone()),
    };
    let run = component_raw
        .run
        .as_ref()
        .ok_or_else(|| SpecError::at("run", "a dag needs `run`"))?;
    let run_yaml = component_yaml.get("run").cloned().unwrap_or(Value::Null);
    let operations = run.operations.as_deref().unwrap_or_default();
    let ops_yaml: Vec<Value> = run_yaml
        .get("operations")
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default();
    let components: Vec<Value> = run_yaml
        .get("components")
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default();
    let names: Vec<String> = operations
        .iter()
        .map(|op| op.name.clone().unwrap_or_default())
        .collect();
    let mut ops = Vec::new();
    for (i, (op, op_yaml)) in operations.iter().zip(&ops_yaml).enumerate() {
        let at = format!("run.operations[{i}]");
        let Value::Mapping(op_map) = op_yaml else {
            return Err(SpecError::at(at, "an operation is a mapping"));
        };
        let mut upstream: Vec<usize> = Vec::new();
        for dependency in super::compile::upstream_of(op) {
            let index = names.iter().position(|n| n == dependency).ok_or_else(|| {
                SpecError::at(
                    &at,
                    format!("`{dependency}` is not an operation of this dag"),
                )
            })?;
            if !upstream.contains(&index) {
                upstream.push(index);
            }
        }
        let mut refs = BTreeMap::new();
        for (name, param) in op.params.iter().flatten() {
            if let Some(reference) = &param.reference {
                refs.insert(
                    name.clone(),
                    ParamRef {
                        reference: reference.clone(),
                        value: param
                            .value
                            .as_ref()
                            .and_then(|v| v.as_str())
                            .map(str::to_owned),
                    },
                );
            }
        }
        // The child document: the operation's own keys that still mean
        // something for one run, and its component inline.
        let mut child = Mapping::new();
        child.insert("version".into(), Value::from(1.1));
        child.insert("kind".into(), "operation".into());
        for (k, v) in op_map {
            let drop = matches!(
                k.as_str(),
                Some(
                    "dependencies"
                        | "trigger"
                        | "conditions"
                        | "skipOnUpstreamSkip"
                        | "dagRef"
                        | "kind"
                        | "version"
                )
            );
            if !drop {
                child.insert(k.clone(), v.clone());
            }
        }
        if let Some(name) = &op.dag_ref {
            let component = components
                .iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(name.as_str()))
                .cloned()
                .ok_or_else(|| SpecError::at(&at, format!("no component named `{name}`")))?;
            child.insert("component".into(), component);
        }
        if key(&child, "component").is_none() {
            return Err(SpecError::at(
                at,
                "the operation's component must be inline or in `run.components` (`pathRef` files are inlined by `trellis run -f`)",
            ));
        }
        ops.push(DagOp {
            name: names[i].clone(),
            op: Op {
                upstream,
                trigger: op
                    .trigger
                    .as_deref()
                    .and_then(Trigger::parse)
                    .unwrap_or_default(),
                skip_on_upstream_skip: op.skip_on_upstream_skip.unwrap_or(false),
            },
            conditions: op.conditions.clone(),
            refs,
            document: child,
        });
    }
    Ok(DagPlan {
        ops,
        concurrency: run.concurrency.map(|c| c as usize),
    })
}

/// What a reference can read of a run.
#[derive(Debug, Clone, Default)]
pub struct RefTarget {
    pub uuid: String,
    pub name: Option<String>,
    pub status: String,
    pub inputs: Map<String, Json>,
    pub outputs: Map<String, Json>,
}

impl RefTarget {
    /// `outputs.x`, `inputs.x`, `status`, `globals.uuid`, `globals.name`.
    fn read(&self, path: &str, reference: &str) -> Result<Json, String> {
        let missing = |what: &str| format!("`{reference}` has no {what}");
        if let Some(name) = path.strip_prefix("outputs.") {
            return self
                .outputs
                .get(name)
                .cloned()
                .ok_or_else(|| missing(&format!("output `{name}`")));
        }
        if let Some(name) = path.strip_prefix("inputs.") {
            return self
                .inputs
                .get(name)
                .cloned()
                .ok_or_else(|| missing(&format!("input `{name}`")));
        }
        match path {
            "status" => Ok(Json::from(self.status.clone())),
            "globals.uuid" | "uuid" => Ok(Json::from(self.uuid.clone())),
            "globals.name" | "name" => Ok(self.name.clone().map_or(Json::Null, Json::from)),
            other => Err(format!(
                "`{other}` cannot be read from `{reference}`; use `outputs.<name>`, `inputs.<name>`, `status` or `globals.uuid`"
            )),
        }
    }
}

/// The runs a reference can read, by what names them.
#[derive(Debug, Clone, Copy)]
pub struct RefScope<'a> {
    /// The dag's operations' runs, by operation name (`ops.<name>`).
    pub ops: &'a BTreeMap<String, RefTarget>,
    /// Runs named by uuid (`runs.<uuid>`), as written after `runs.`; a
    /// uuid missing here names no run.
    pub runs: &'a BTreeMap<String, RefTarget>,
    /// The dag's own run (`dag`); `None` outside a dag.
    pub dag: Option<&'a RefTarget>,
}

/// The uuid a `runs.<uuid>` reference names, as written.
pub fn referenced_run(reference: &str) -> Option<&str> {
    reference
        .strip_prefix("runs.")
        .filter(|uuid| !uuid.is_empty())
}

/// The values of params given by reference: `ops.<name>` from the dag's
/// operations, `runs.<uuid>` from any run, `dag` from the dag's own run.
/// Without a `value`, a reference reads the output of the param's name.
pub fn resolve_refs(
    refs: &BTreeMap<String, ParamRef>,
    scope: RefScope<'_>,
) -> Result<Map<String, Json>, String> {
    let mut out = Map::new();
    for (name, r) in refs {
        let target = if r.reference == "dag" {
            scope.dag.ok_or_else(|| {
                format!("the param `{name}` refers to `dag`, but this operation is not in a dag")
            })?
        } else if let Some(op) = r.reference.strip_prefix("ops.") {
            if scope.dag.is_none() {
                return Err(format!(
                    "the param `{name}` refers to `{}`, but this operation is not in a dag; outside a dag, refer to a run with `runs.<uuid>`",
                    r.reference
                ));
            }
            scope
                .ops
                .get(op)
                .ok_or_else(|| format!("the param `{name}` refers to `{op}`, which has no run"))?
        } else if let Some(uuid) = referenced_run(&r.reference) {
            scope.runs.get(uuid).ok_or_else(|| {
                format!("the param `{name}` refers to the run `{uuid}`, which does not exist")
            })?
        } else {
            return Err(format!(
                "the param `{name}` refers to `{}`; refer to `ops.<name>`, `runs.<uuid>` or `dag`",
                r.reference
            ));
        };
        let path = match r.value.as_deref() {
            Some(path) if !path.is_empty() => path.to_owned(),
            _ => format!("outputs.{name}"),
        };
        let value = target
            .read(&path, &r.reference)
            .map_err(|e| format!("the param `{name}`: {e}"))?;
        out.insert(name.clone(), value);
    }
    Ok(out)
}

impl DagOp {
    /// The values of the operation's references, within its dag.
    pub fn resolve(&self, scope: RefScope<'_>) -> Result<Map<String, Json>, String> {
        resolve_refs(&self.refs, scope)
    }

    /// The uuids of the runs the operation's references name.
    pub fn referenced_runs(&self) -> impl Iterator<Item = &str> {
        self.refs
            .values()
            .filter_map(|r| referenced_run(&r.reference))
    }

    /// The Polyaxonfile the operation runs, with `values` as its params'
    /// values in place of the references.
    pub fn content(&self, values: &Map<String, Json>) -> Result<String, SpecError> {
        let mut document = self.document.clone();
        let mut params = match document.remove("params") {
            Some(Value::Mapping(params)) => params,
            _ => Mapping::new(),
        };
        for (name, value) in values {
            let mut param = Mapping::new();
            param.insert(
                "value".into(),
                serde_yaml::to_value(value).map_err(|e| SpecError::at("params", e.to_string()))?,
            );
            params.insert(name.as_str().into(), Value::Mapping(param));
        }
        if !params.is_empty() {
            document.insert("params".into(), Value::Mapping(params));
        }
        text(&Value::Mapping(document))
    }

    /// The params known before the operation runs (literal values, over
    /// the component's input defaults), for its `conditions`.
    pub fn literal_params(&self) -> Map<String, Json> {
        let mut out = Map::new();
        let inputs = self
            .document
            .get("component")
            .and_then(|c| c.get("inputs"))
            .and_then(Value::as_sequence);
        for input in inputs.into_iter().flatten() {
            if let (Some(name), Some(value)) = (
                input.get("name").and_then(Value::as_str),
                input.get("value"),
            ) {
                out.insert(
                    name.to_owned(),
                    serde_json::to_value(value).unwrap_or(Json::Null),
                );
            }
        }
        if let Some(Value::Mapping(params)) = self.document.get("params") {
            for (name, param) in params {
                if let (Some(name), Some(value)) = (name.as_str(), param.get("value"))
                    && param.get("ref").is_none()
                {
                    out.insert(
                        name.to_owned(),
                        serde_json::to_value(value).unwrap_or(Json::Null),
                    );
                }
            }
        }
        out
    }
}

/// Whether `conditions` hold for `params`. A condition is a comparison
/// (`==`, `!=`, `<`, `<=`, `>`, `>=`) of params and literals, or a param
/// or literal on its own, combined with `and`, `or`, `not` and
/// parentheses; `{{ }}` around it is optional (`"{{ loss < 0.5 }}"`).
pub fn condition_holds(conditions: &str, params: &Map<String, Json>) -> Result<bool, String> {
    let text = conditions.trim();
    let text = text
        .strip_prefix("{{")
        .and_then(|t| t.strip_suffix("}}"))
        .unwrap_or(text);
    let tokens = tokenize(text)?;
    let mut parser = Condition {
        tokens: &tokens,
        at: 0,
        params,
    };
    let value = parser.or()?;
    if parser.at != tokens.len() {
        return Err(format!(
            "unexpected `{}` in the condition `{conditions}`",
            tokens[parser.at]
        ));
    }
    Ok(truthy(&value))
}

fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' || c == ')' {
            tokens.push(c.to_string());
            i += 1;
        } else if "=!<>".contains(c) {
            let two = chars.get(i + 1) == Some(&'=');
            let op: String = if two { format!("{c}=") } else { c.to_string() };
            if op == "=" || op == "!" {
                return Err(format!("`{op}` is not an operator; use `==` or `!=`"));
            }
            i += op.len();
            tokens.push(op);
        } else if c == '\'' || c == '"' {
            let end = chars[i + 1..]
                .iter()
                .position(|d| *d == c)
                .ok_or("a quoted string is not closed")?;
            tokens.push(chars[i..i + end + 2].iter().collect());
            i += end + 2;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !"()=!<>'\"".contains(chars[i]) {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
        }
    }
    Ok(tokens)
}

struct Condition<'a> {
    tokens: &'a [String],
    at: usize,
    params: &'a Map<String, Json>,
}

impl Condition<'_> {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn or(&mut self) -> Result<Json, String> {
        let mut left = self.and()?;
        while self.peek() == Some("or") {
            self.at += 1;
            let right = self.and()?;
            left = Json::Bool(truthy(&left) || truthy(&right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Json, String> {
        let mut left = self.not()?;
        while self.peek() == Some("and") {
            self.at += 1;
            let right = self.not()?;
            left = Json::Bool(truthy(&left) && truthy(&right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Json, String> {
        if self.peek() == Some("not") {
            self.at += 1;
            return Ok(Json::Bool(!truthy(&self.not()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Json, String> {
        let left = self.atom()?;
        let Some(op) = self
            .peek()
            .filter(|t| ["==", "!=", "<", "<=", ">", ">="].contains(t))
        else {
            return Ok(left);
        };
        let op = op.to_owned();
        self.at += 1;
        let right = self.atom()?;
        let ordering = match (left.as_f64(), right.as_f64()) {
            (Some(a), Some(b)) => a.partial_cmp(&b),
            _ => match (&left, &right) {
                (Json::String(a), Json::String(b)) => Some(a.cmp(b)),
                _ if op == "==" || op == "!=" => None,
                _ => return Err(format!("cannot compare {left} and {right} with `{op}`")),
            },
        };
        use std::cmp::Ordering::*;
        let holds = match op.as_str() {
            "==" => ordering == Some(Equal) || (ordering.is_none() && left == right),
            "!=" => !(ordering == Some(Equal) || (ordering.is_none() && left == right)),
            "<" => ordering == Some(Less),
            "<=" => matches!(ordering, Some(Less | Equal)),
            ">" => ordering == Some(Greater),
            _ => matches!(ordering, Some(Greater | Equal)),
        };
        Ok(Json::Bool(holds))
    }

    fn atom(&mut self) -> Result<Json, String> {
        let token = self
            .peek()
            .ok_or("the condition ends too early")?
            .to_owned();
        self.at += 1;
        if token == "(" {
            let value = self.or()?;
            if self.peek() != Some(")") {
                return Err("a `(` is not closed".into());
            }
            self.at += 1;
            return Ok(value);
        }
        if let Some(quoted) = token
            .strip_prefix('\'')
            .and_then(|t| t.strip_suffix('\''))
            .or_else(|| token.strip_prefix('"').and_then(|t| t.strip_suffix('"')))
        {
            return Ok(Json::from(quoted));
        }
        match token.to_ascii_lowercase().as_str() {
            "true" => return Ok(Json::Bool(true)),
            "false" => return Ok(Json::Bool(false)),
            "none" | "null" => return Ok(Json::Null),
            _ => {}
        }
        if let Ok(number) = token.parse::<f64>() {
            return Ok(Json::from(number));
        }
        let name = token
            .strip_prefix("params.")
            .or_else(|| token.strip_prefix("inputs."))
            .unwrap_or(&token);
        let name = name.strip_suffix(".value").unwrap_or(name);
        self.params.get(name).cloned().ok_or_else(|| {
            format!("the condition names `{name}`, which is not a param of the operation")
        })
    }
}

fn truthy(value: &Json) -> bool {
    match value {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Json::String(s) => !s.is_empty() && s != "false",
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAG: &str = r#"
version: 1.1
kind: component
inputs:
  - {name: rate, type: float}
run:
  kind: dag
  concurrency: 2
  components:
    - name: echo
      inputs: [{name: x, type: str}]
      outputs: [{name: y, type: str, isOptional: true}]
      run: {kind: job, container: {image: alpine, command: [echo, "{{ x }}"]}}
  operations:
    - name: prep
      dagRef: echo
      params: {x: {value: hello}}
    - name: train
      dagRef: echo
      trigger: all_done
      conditions: "{{ x != 'skip' }}"
      params:
        x: {ref: ops.prep, value: outputs.y}
    - name: report
      dagRef: echo
      dependencies: [train]
      params:
        x: {ref: dag, value: inputs.rate}
"#;

    #[test]
    fn a_dag_lists_its_operations_with_upstream_from_dependencies_and_refs() {
        let plan = dag(DAG).unwrap();
        assert_eq!(plan.concurrency, Some(2));
        let names: Vec<&str> = plan.ops.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["prep", "train", "report"]);
        assert_eq!(plan.ops[1].op.upstream, vec![0]);
        assert_eq!(plan.ops[1].op.trigger, Trigger::AllDone);
        assert_eq!(plan.ops[2].op.upstream, vec![1]);
    }

    #[test]
    fn references_become_values_in_a_child_file_that_compiles() {
        let plan = dag(DAG).unwrap();
        let mut upstream = BTreeMap::new();
        let mut prep = RefTarget::default();
        prep.outputs.insert("y".into(), Json::from("from-prep"));
        upstream.insert("prep".to_owned(), prep);
        let mut dag_run = RefTarget::default();
        dag_run.inputs.insert("rate".into(), Json::from(0.5));
        let none = BTreeMap::new();
        let scope = |ops| RefScope {
            ops,
            runs: &none,
            dag: Some(&dag_run),
        };
        let values = plan.ops[1].resolve(scope(&upstream)).unwrap();
        assert_eq!(values["x"], Json::from("from-prep"));
        let content = plan.ops[1].content(&values).unwrap();
        let compiled = super::super::compile(
            &content,
            None,
            &super::super::NoFiles,
            &BTreeMap::new(),
            &super::super::Globals::default(),
        )
        .unwrap();
        assert_eq!(compiled.container.unwrap().command, ["echo", "from-prep"]);
        // A missing output is an error naming it.
        let bare = BTreeMap::from([("prep".to_owned(), RefTarget::default())]);
        let err = plan.ops[1].resolve(scope(&bare)).unwrap_err();
        assert!(err.contains("output `y`"), "{err}");
        let report = plan.ops[2].resolve(scope(&upstream)).unwrap();
        assert_eq!(report["x"], Json::from(0.5));
    }

    #[test]
    fn a_reference_to_a_run_reads_that_run_inside_or_outside_a_dag() {
        let uuid = "9f3c0b5e2a4d4c1e8f6a7b8c9d0e1f2a";
        let refs = BTreeMap::from([
            (
                "lr".to_owned(),
                ParamRef {
                    reference: format!("runs.{uuid}"),
                    value: Some("outputs.best_lr".into()),
                },
            ),
            (
                "acc".to_owned(),
                ParamRef {
                    reference: format!("runs.{uuid}"),
                    value: None,
                },
            ),
        ]);
        let mut earlier = RefTarget::default();
        earlier.outputs.insert("best_lr".into(), Json::from(0.01));
        earlier.outputs.insert("acc".into(), Json::from(0.9));
        let runs = BTreeMap::from([(uuid.to_owned(), earlier)]);
        let none = BTreeMap::new();
        let scope = RefScope {
            ops: &none,
            runs: &runs,
            dag: None,
        };
        let values = resolve_refs(&refs, scope).unwrap();
        assert_eq!(values["lr"], Json::from(0.01));
        assert_eq!(values["acc"], Json::from(0.9));
        // An unknown run, and `ops.` outside a dag, are errors naming them.
        let missing = RefScope {
            runs: &none,
            ..scope
        };
        let err = resolve_refs(&refs, missing).unwrap_err();
        assert!(
            err.contains(uuid) && err.contains("does not exist"),
            "{err}"
        );
        let ops_ref = BTreeMap::from([(
            "x".to_owned(),
            ParamRef {
                reference: "ops.prep".into(),
                value: None,
            },
        )]);
        let err = resolve_refs(&ops_ref, scope).unwrap_err();
        assert!(err.contains("not in a dag"), "{err}");
        assert_eq!(referenced_run("runs."), None);
    }

    #[test]
    fn a_trial_is_the_operation_without_its_matrix() {
        let content = "version: 1.1\nkind: operation\nmatrix:\n  kind: random\n  numRuns: 3\n  params:\n    x: {kind: uniform, value: [0, 1]}\ncomponent:\n  inputs: [{name: x, type: float}]\n  run: {kind: job, container: {image: alpine, command: [echo, '{{ x }}']}}\n";
        let sweep = sweep(content).unwrap().unwrap();
        assert_eq!(sweep.matrix.num_runs, Some(3));
        let params = BTreeMap::from([("x".to_owned(), Json::from(0.25))]);
        let compiled = super::super::compile(
            &sweep.trial_content,
            None,
            &super::super::NoFiles,
            &params,
            &super::super::Globals::default(),
        )
        .unwrap();
        assert!(compiled.matrix.is_none());
        assert_eq!(compiled.container.unwrap().command, ["echo", "0.25"]);
    }

    #[test]
    fn conditions_compare_params_and_literals() {
        let params: Map<String, Json> =
            serde_json::from_str(r#"{"loss": 0.3, "mode": "fast", "on": true}"#).unwrap();
        let holds = |c: &str| condition_holds(c, &params).unwrap();
        assert!(holds("{{ loss < 0.5 }}"));
        assert!(!holds("loss >= 0.5"));
        assert!(holds("mode == 'fast' and on"));
        assert!(holds("not (mode == \"slow\") or loss > 1"));
        assert!(!holds("false"));
        assert!(
            condition_holds("missing > 1", &params)
                .unwrap_err()
                .contains("missing")
        );
        assert!(
            condition_holds("loss = 1", &params)
                .unwrap_err()
                .contains("==")
        );
    }
}
