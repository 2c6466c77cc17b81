//! `{{ name }}` templates in a component's container: inputs by name
//! (`{{ lr }}`, `{{ params.lr }}`, `{{ inputs.lr }}`) and `{{ globals.* }}`.
//! Names a matrix or a reference will fill are left as written.

use std::collections::BTreeSet;

use serde_json::{Map, Value as Json};

use super::compile::Globals;

/// What a template can see.
pub struct Scope<'a> {
    pub values: &'a Map<String, Json>,
    /// Params known later (matrix, `ref`): their templates stay as written.
    pub deferred: &'a BTreeSet<String>,
    pub globals: &'a Globals,
}

/// Renders every `{{ ... }}` in `text`.
pub fn render(text: &str, scope: &Scope<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("`{{{{` without a closing `}}}}` in `{text}`"))?;
        let expression = after[..close].trim();
        match lookup(expression, scope)? {
            Some(value) => out.push_str(&value),
            None => out.push_str(&rest[open..open + 2 + close + 2]),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Renders only the `{{ globals.* }}` templates in `text` whose values
/// `globals` knows, leaving every other template as written: what
/// execution fills in once paths and ports are known, in a spec compiled
/// at submission.
pub fn render_globals(text: &str, globals: &Globals) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            // Compilation refused unclosed templates; keep the text as is.
            out.push_str(&rest[open..]);
            return Ok(out);
        };
        let expression = after[..close].trim();
        let value = match expression.strip_prefix("globals.") {
            Some(global) => global_value(global, globals)?,
            None => None,
        };
        match value {
            Some(value) => out.push_str(&value),
            None => out.push_str(&rest[open..open + 2 + close + 2]),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The text of `expression`, `None` when it is deferred.
fn lookup(expression: &str, scope: &Scope<'_>) -> Result<Option<String>, String> {
    if let Some(global) = expression.strip_prefix("globals.") {
        return global_value(global, scope.globals);
    }
    let name = expression
        .strip_prefix("params.")
        .or_else(|| expression.strip_prefix("inputs."))
        .unwrap_or(expression);
    let name = name.strip_suffix(".value").unwrap_or(name);
    if scope.deferred.contains(name) {
        return Ok(None);
    }
    match scope.values.get(name) {
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(Json::Null) => Ok(Some(String::new())),
        Some(other) => Ok(Some(other.to_string())),
        None => {
            let known: Vec<&str> = scope.values.keys().map(String::as_str).collect();
            let mut message = format!(
                "the template `{{{{ {expression} }}}}` names `{name}`, which is not an input, a param or a global"
            );
            if let Some(suggestion) = crate::pql::closest(name, &known) {
                message.push_str(&format!("; did you mean `{suggestion}`?"));
            }
            Err(message)
        }
    }
}

/// Globals Polyaxon defines; those the server has not assigned yet (when
/// checking a file offline, or values only known at run time) stay as
/// written and are filled when the run starts.
const GLOBALS: &[&str] = &[
    "uuid",
    "name",
    "owner_name",
    "project_name",
    "project_uuid",
    "run_info",
    "context_path",
    "artifacts_path",
    "run_artifacts_path",
    "run_outputs_path",
    "namespace",
    "iteration",
    "created_at",
    "compiled_at",
    "schedule_at",
    "started_at",
    "finished_at",
    "duration",
    "cloning_kind",
    "original_uuid",
    "is_independent",
    "store_path",
    "base_url",
    "ports",
    "host",
];

fn global_value(name: &str, globals: &Globals) -> Result<Option<String>, String> {
    // `ports[0]`: one of the service's ports.
    let (base, index) = match name.split_once('[') {
        Some((base, rest)) => {
            let index = rest
                .strip_suffix(']')
                .and_then(|i| i.parse::<usize>().ok())
                .ok_or_else(|| format!("`globals.{name}` has a malformed index"))?;
            (base, Some(index))
        }
        None => (name, None),
    };
    if !GLOBALS.contains(&base) {
        let mut message = format!(
            "`globals.{base}` is not a global; globals are {}",
            GLOBALS.join(", ")
        );
        if let Some(suggestion) = crate::pql::closest(base, GLOBALS) {
            message.push_str(&format!("; did you mean `globals.{suggestion}`?"));
        }
        return Err(message);
    }
    let value = match (base, index) {
        ("uuid", None) => globals.uuid.clone(),
        ("name", None) => globals.name.clone(),
        ("owner_name", None) => globals.owner_name.clone(),
        ("project_name", None) => globals.project_name.clone(),
        ("run_outputs_path", None) => globals.run_outputs_path.clone(),
        ("artifacts_path", None) => globals.artifacts_path.clone(),
        ("base_url", None) => globals.base_url.clone(),
        ("host", None) => globals.host.clone(),
        ("ports", None) => (!globals.ports.is_empty()).then(|| {
            globals
                .ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }),
        ("ports", Some(i)) => globals.ports.get(i).map(u16::to_string),
        (_, Some(_)) => return Err(format!("`globals.{base}` cannot be indexed")),
        _ => None,
    };
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_inputs_and_globals_and_keep_deferred_ones() {
        let values: Map<String, Json> =
            serde_json::from_str(r#"{"lr": 0.1, "opt": "adam"}"#).unwrap();
        let deferred: BTreeSet<String> = ["batch".to_owned()].into();
        let globals = Globals {
            uuid: Some("u-1".into()),
            ..Globals::default()
        };
        let scope = Scope {
            values: &values,
            deferred: &deferred,
            globals: &globals,
        };
        assert_eq!(
            render("--lr={{ lr }} --opt={{params.opt}} --bs={{ batch }} --id={{ globals.uuid }} {{ globals.artifacts_path }}", &scope).unwrap(),
            "--lr=0.1 --opt=adam --bs={{ batch }} --id=u-1 {{ globals.artifacts_path }}"
        );
        assert!(
            render("{{ lrr }}", &scope)
                .unwrap_err()
                .contains("did you mean `lr`")
        );
        assert!(
            render("{{ globals.uid }}", &scope)
                .unwrap_err()
                .contains("did you mean `globals.uuid`")
        );
        assert!(render("{{ lr", &scope).is_err());
    }

    #[test]
    fn late_globals_fill_in_and_everything_else_stays_as_written() {
        let globals = Globals {
            run_outputs_path: Some("/data/runs/u/outputs".into()),
            ports: vec![40_001, 40_002],
            ..Globals::default()
        };
        assert_eq!(
            render_globals(
                "--out={{ globals.run_outputs_path }} --port={{globals.ports[1]}} --lr={{ lr }} {{ globals.base_url }}",
                &globals
            )
            .unwrap(),
            "--out=/data/runs/u/outputs --port=40002 --lr={{ lr }} {{ globals.base_url }}"
        );
        assert_eq!(
            render_globals("{{ unclosed", &globals).unwrap(),
            "{{ unclosed"
        );
    }
}
