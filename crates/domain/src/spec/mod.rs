//! The Polyaxonfile v1.1 spec: parse, check, and compile an operation with
//! its component into one run spec.
//!
//! Parsing is two-stage. [`raw`] deserializes the file as written with every
//! key checked, so a typo is reported with its field path, line, column and
//! the closest valid key. [`mod@compile`] then checks kinds, per-kind keys,
//! inputs and validation, params against inputs, the matrix, early
//! stopping, schedules, hooks, joins, DAG dependencies, and renders
//! templates. Every error is a [`SpecError`] naming the file, the path and
//! the line and column. This module does no IO: other files (`pathRef`)
//! come through a [`compile::Resolver`].

pub mod compile;
mod error;
pub mod hub;
pub mod patch;
pub mod pipeline;
pub mod raw;
pub mod stored;
mod template;
mod types;

use std::collections::BTreeMap;

pub use compile::{CompiledRun, Globals, InitStep, NoFiles, Resolver};
pub use error::{SpecError, locate};
use serde_json::Value as Json;
pub use stored::StoredSpec;

use crate::pql::closest;

/// Longest accepted Polyaxonfile, in bytes.
pub const MAX_SPEC_LEN: usize = 1024 * 1024;

/// Stage one: the file as written.
pub fn parse_raw(text: &str) -> Result<raw::RawFile, SpecError> {
    if text.len() > MAX_SPEC_LEN {
        return Err(SpecError::at(
            "",
            format!("the file is larger than {MAX_SPEC_LEN} bytes"),
        ));
    }
    let only_comments = text.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#') || line == "---"
    });
    if only_comments {
        return Err(SpecError::at(
            "",
            "the file is empty; a Polyaxonfile starts with `version: 1.1` and `kind:`",
        ));
    }
    let deserializer = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, raw::RawFile>(deserializer).map_err(|error| {
        let path = clean_path(&error.path().to_string());
        let inner = error.into_inner();
        let location = inner.location();
        let message = strip_location(&inner.to_string());
        // serde_yaml prefixes the path it knows ("run.container: ..."); the
        // path is reported on its own.
        let message = match message.find(": unknown field") {
            Some(index) => message[index + 2..].to_owned(),
            None => message
                .strip_prefix(&format!("{path}: "))
                .map_or(message.clone(), str::to_owned),
        };
        let message = if path.is_empty() && message.starts_with("invalid type") {
            format!(
                "a Polyaxonfile is a mapping (`version: 1.1`, `kind: ...`), not this: {message}"
            )
        } else {
            message
        };
        let mut spec_error = SpecError::at(path.clone(), message.clone());
        if let Some((field, expected)) = unknown_name(&message) {
            if path.is_empty() {
                spec_error.path = field.clone();
            } else if !path.ends_with(&field) {
                spec_error.path = format!("{path}.{field}");
            }
            let options: Vec<&str> = expected.iter().map(String::as_str).collect();
            spec_error = spec_error.suggest(closest(&field, &options));
            spec_error.message = format!(
                "unknown key `{field}`; expected one of: {}",
                expected.join(", ")
            );
        }
        if let Some(location) = &location {
            spec_error.line = Some(to_u32(location.line()));
            spec_error.column = Some(to_u32(location.column()));
        }
        if is_syntax_error(&spec_error.message) {
            // The file is not YAML at all: the path is meaningless.
            spec_error.path = String::new();
            let tabbed = location
                .as_ref()
                .and_then(|l| text.lines().nth(l.line().saturating_sub(1)))
                .is_some_and(|line| {
                    line.chars()
                        .take_while(|c| c.is_whitespace())
                        .any(|c| c == '\t')
                });
            spec_error.message = if tabbed {
                format!(
                    "not valid YAML: {}; YAML does not allow tabs for indentation, use spaces",
                    spec_error.message
                )
            } else {
                format!("not valid YAML: {}", spec_error.message)
            };
        }
        spec_error
    })
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Whether a serde_yaml message comes from the YAML scanner or parser
/// (broken syntax) rather than from a value of the wrong shape.
fn is_syntax_error(message: &str) -> bool {
    [
        "found character",
        "did not find expected",
        "mapping values are not allowed",
        "could not find expected",
        "found unexpected",
        "found undefined",
        "while scanning",
        "while parsing",
    ]
    .iter()
    .any(|marker| message.contains(marker))
}

/// serde's path of a missing or bad value ends in `?` for unknown keys; drop it.
fn clean_path(path: &str) -> String {
    let path = path.trim_end_matches('?').trim_end_matches('.');
    if path == "." {
        String::new()
    } else {
        path.to_owned()
    }
}

/// serde_yaml appends " at line L column C"; we report those separately.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// `unknown field `x`, expected one of `a`, `b`` → (`x`, [a, b]).
fn unknown_name(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect::<Vec<_>>();
    Some((field.to_owned(), expected))
}

/// Parses and compiles `text` (named `file` in errors). `overrides` are
/// `-P name=value` params; `globals` fill `{{ globals.* }}` where known.
pub fn compile(
    text: &str,
    file: Option<&str>,
    resolver: &dyn Resolver,
    overrides: &BTreeMap<String, Json>,
    globals: &Globals,
) -> Result<CompiledRun, SpecError> {
    let result =
        parse_raw(text).and_then(|raw| compile::compile_file(&raw, resolver, overrides, globals));
    result.map_err(|mut error| {
        if error.file.is_none() {
            if error.line.is_none()
                && let Some((line, column)) = locate(text, &error.path)
            {
                error.line = Some(to_u32(line));
                error.column = Some(to_u32(column));
            }
            error.file = file.map(str::to_owned);
        }
        error
    })
}

/// Parses `-P name=value`: the value as YAML (`0.1`, `true`, `[1, 2]`,
/// `adam`).
pub fn parse_override(text: &str) -> Result<(String, Json), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not `name=value`"))?;
    let value: serde_yaml::Value = serde_yaml::from_str(value)
        .map_err(|e| format!("the value of `{name}` does not parse: {e}"))?;
    let value = serde_json::to_value(value)
        .map_err(|e| format!("the value of `{name}` is not representable: {e}"))?;
    Ok((name.trim().to_owned(), value))
}

/// Replaces every `pathRef` (of the file's operation and of a DAG's
/// operations) by the referenced component, inline, so the result can be
/// submitted as one self-contained spec.
pub fn inline_path_refs(text: &str, resolver: &dyn Resolver) -> Result<String, SpecError> {
    let mut value: serde_yaml::Value = serde_yaml::from_str(text)
        .map_err(|e| SpecError::at("", strip_location(&e.to_string())))?;
    inline_in(&mut value, resolver, "", 0)?;
    serde_yaml::to_string(&value).map_err(|e| SpecError::at("", e.to_string()))
}

fn inline_in(
    value: &mut serde_yaml::Value,
    resolver: &dyn Resolver,
    at: &str,
    depth: usize,
) -> Result<(), SpecError> {
    if depth > 8 {
        return Err(SpecError::at(
            at,
            "`pathRef`s nest deeper than 8 files (a loop?)",
        ));
    }
    let Some(map) = value.as_mapping_mut() else {
        return Ok(());
    };
    if let Some(path) = map
        .get("pathRef")
        .and_then(|p| p.as_str())
        .map(str::to_owned)
    {
        let here = if at.is_empty() {
            "pathRef".to_owned()
        } else {
            format!("{at}.pathRef")
        };
        let text = resolver
            .read(&path)
            .map_err(|e| SpecError::at(here.clone(), e))?;
        let mut component: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| {
            let mut error = SpecError::at("", strip_location(&e.to_string()));
            error.file = Some(path.clone());
            error.line = e.location().map(|l| to_u32(l.line()));
            error.column = e.location().map(|l| to_u32(l.column()));
            error
        })?;
        inline_in(&mut component, resolver, "component", depth + 1)?;
        map.remove("pathRef");
        map.insert("component".into(), component);
    }
    for key in ["component", "run"] {
        if let Some(child) = map.get_mut(key) {
            inline_in(child, resolver, key, depth)?;
        }
    }
    if let Some(operations) = map.get_mut("operations").and_then(|o| o.as_sequence_mut()) {
        for (i, op) in operations.iter_mut().enumerate() {
            inline_in(op, resolver, &format!("operations[{i}]"), depth)?;
        }
    }
    Ok(())
}
