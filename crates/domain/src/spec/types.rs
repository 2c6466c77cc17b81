//! Polyaxon's IO types and the validation of values against an input.

use regex::Regex;
use serde_json::Value as Json;

use super::raw::RawIo;

/// An input or output type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoType {
    Any,
    Int,
    Float,
    Bool,
    Str,
    Dict,
    DictOfDicts,
    List,
    /// A string naming something outside (uri, auth, gcs, s3, wasb, git,
    /// image, dockerfile, event, artifacts, path, metric, metadata, file,
    /// uuid, date, datetime): checked as text, with a format for some.
    Text(TextKind),
}

/// Text types with a checkable format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    Plain,
    Uuid,
    Date,
    Datetime,
}

impl IoType {
    /// Every type name Polyaxon v1.1 accepts.
    pub const NAMES: &'static [&'static str] = &[
        "any",
        "int",
        "float",
        "bool",
        "str",
        "dict",
        "dict_of_dicts",
        "list",
        "uri",
        "auth",
        "gcs",
        "s3",
        "wasb",
        "dockerfile",
        "git",
        "image",
        "event",
        "artifacts",
        "path",
        "metric",
        "metadata",
        "date",
        "datetime",
        "uuid",
        "file",
        "tensorboard",
    ];

    /// The type named `name`.
    pub fn parse(name: &str) -> Option<IoType> {
        Some(match name {
            "any" => IoType::Any,
            "int" => IoType::Int,
            "float" => IoType::Float,
            "bool" => IoType::Bool,
            "str" => IoType::Str,
            "dict" => IoType::Dict,
            "dict_of_dicts" => IoType::DictOfDicts,
            "list" => IoType::List,
            // Structured values: a mapping (`{url, revision}`, `{files, dirs}`,
            // `{image, run}`, `{content, filename}`) or a reference string.
            "git" | "dockerfile" | "artifacts" | "file" | "tensorboard" | "metadata" => IoType::Any,
            "metric" => IoType::Float,
            "uuid" => IoType::Text(TextKind::Uuid),
            "date" => IoType::Text(TextKind::Date),
            "datetime" => IoType::Text(TextKind::Datetime),
            other if Self::NAMES.contains(&other) => IoType::Text(TextKind::Plain),
            _ => return None,
        })
    }
}

fn describe(value: &Json) -> String {
    let text = value.to_string();
    if text.len() > 60 {
        format!("{}…", &text[..60])
    } else {
        text
    }
}

/// Checks `value` against the type and validation rules of `io`.
pub fn check_value(io_type: IoType, io: &RawIo, value: &Json) -> Result<(), String> {
    if io.is_list.unwrap_or(false) {
        let Some(items) = value.as_array() else {
            return Err(format!(
                "expected a list of values, got {}",
                describe(value)
            ));
        };
        for item in items {
            check_one(io_type, io, item)?;
        }
        return check_list_rules(io, items);
    }
    check_one(io_type, io, value)
}

fn check_one(io_type: IoType, io: &RawIo, value: &Json) -> Result<(), String> {
    let expected = match io_type {
        IoType::Any => None,
        IoType::Int => (!(value.is_i64() || value.is_u64())).then_some("an integer"),
        IoType::Float => (!value.is_number()).then_some("a number"),
        IoType::Bool => (!value.is_boolean()).then_some("true or false"),
        IoType::Str => (!value.is_string()).then_some("a string"),
        IoType::Dict => (!value.is_object()).then_some("a mapping"),
        IoType::DictOfDicts => (!value
            .as_object()
            .is_some_and(|m| m.values().all(Json::is_object)))
        .then_some("a mapping of mappings"),
        IoType::List => (!value.is_array()).then_some("a list"),
        IoType::Text(kind) => match (kind, value.as_str()) {
            (_, None) => Some("a string"),
            (TextKind::Plain, Some(_)) => None,
            (TextKind::Uuid, Some(s)) => uuid::Uuid::parse_str(s).is_err().then_some("a uuid"),
            (TextKind::Date, Some(s)) => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .is_err()
                .then_some("a date (YYYY-MM-DD)"),
            (TextKind::Datetime, Some(s)) => (chrono::DateTime::parse_from_rfc3339(s).is_err()
                && chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").is_err()
                && chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").is_err())
            .then_some("a date and time"),
        },
    };
    if let Some(expected) = expected {
        let type_name = io.kind.as_deref().unwrap_or("any");
        return Err(format!(
            "expected {expected} (type `{type_name}`), got {}",
            describe(value)
        ));
    }
    let options = io
        .options
        .as_ref()
        .or(io.validation.as_ref().and_then(|v| v.options.as_ref()));
    if let Some(options) = options {
        let allowed: Vec<Json> = options
            .iter()
            .map(|o| serde_json::to_value(o).unwrap_or(Json::Null))
            .collect();
        if !allowed
            .iter()
            .any(|o| o == value || (o.as_f64().is_some() && o.as_f64() == value.as_f64()))
        {
            let listed: Vec<String> = allowed.iter().map(describe).collect();
            return Err(format!(
                "{} is not one of the options: {}",
                describe(value),
                listed.join(", ")
            ));
        }
    }
    let Some(rules) = &io.validation else {
        return Ok(());
    };
    if let Some(number) = value.as_f64() {
        for (name, bound, ok) in [
            ("gt", rules.gt, rules.gt.is_none_or(|b| number > b)),
            ("ge", rules.ge, rules.ge.is_none_or(|b| number >= b)),
            ("lt", rules.lt, rules.lt.is_none_or(|b| number < b)),
            ("le", rules.le, rules.le.is_none_or(|b| number <= b)),
        ] {
            if !ok {
                return Err(format!(
                    "{number} breaks the rule `{name}: {}`",
                    bound.unwrap_or_default()
                ));
            }
        }
        if let Some(step) = rules.multiple_of
            && step != 0.0
            && ((number / step).round() * step - number).abs() > 1e-9
        {
            return Err(format!("{number} is not a multiple of {step}"));
        }
    }
    if let Some(text) = value.as_str() {
        let length = text.chars().count();
        if rules.min_length.is_some_and(|min| length < min) {
            return Err(format!(
                "{} is shorter than `minLength: {}`",
                describe(value),
                rules.min_length.unwrap_or(0)
            ));
        }
        if rules.max_length.is_some_and(|max| length > max) {
            return Err(format!(
                "{} is longer than `maxLength: {}`",
                describe(value),
                rules.max_length.unwrap_or(0)
            ));
        }
        if let Some(pattern) = &rules.regex {
            let regex = Regex::new(pattern)
                .map_err(|e| format!("the `regex` rule is not a valid pattern: {e}"))?;
            if !regex.is_match(text) {
                return Err(format!(
                    "{} does not match `regex: {pattern}`",
                    describe(value)
                ));
            }
        }
        if let Some(needle) = rules.contains.as_ref().and_then(|c| c.as_str())
            && !text.contains(needle)
        {
            return Err(format!("{} does not contain `{needle}`", describe(value)));
        }
        if let Some(needle) = rules.excludes.as_ref().and_then(|c| c.as_str())
            && text.contains(needle)
        {
            return Err(format!(
                "{} contains the excluded `{needle}`",
                describe(value)
            ));
        }
    }
    if let Some(map) = value.as_object() {
        for key in rules.contains_keys.iter().flatten() {
            if !map.contains_key(key) {
                return Err(format!("the mapping lacks the key `{key}`"));
            }
        }
        for key in rules.excludes_keys.iter().flatten() {
            if map.contains_key(key) {
                return Err(format!("the mapping has the excluded key `{key}`"));
            }
        }
        if let Some(keys) = &rules.keys
            && let Some(extra) = map.keys().find(|k| !keys.contains(k))
        {
            return Err(format!(
                "the key `{extra}` is not allowed; allowed keys: {}",
                keys.join(", ")
            ));
        }
    }
    if let Some(items) = value.as_array() {
        check_list_rules(io, items)?;
    }
    Ok(())
}

fn check_list_rules(io: &RawIo, items: &[Json]) -> Result<(), String> {
    let Some(rules) = &io.validation else {
        return Ok(());
    };
    if rules.min_items.is_some_and(|min| items.len() < min) {
        return Err(format!(
            "the list has {} items, fewer than `minItems`",
            items.len()
        ));
    }
    if rules.max_items.is_some_and(|max| items.len() > max) {
        return Err(format!(
            "the list has {} items, more than `maxItems`",
            items.len()
        ));
    }
    Ok(())
}

/// Checks a `regex` rule compiles.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    Regex::new(pattern)
        .map(|_| ())
        .map_err(|e| format!("not a valid pattern: {e}"))
}

/// Checks a five-field cron expression (`minute hour day month weekday`),
/// or a `@daily`-style shorthand.
pub fn check_cron(expression: &str) -> Result<(), String> {
    const SHORTHANDS: &[&str] = &[
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
    ];
    if SHORTHANDS.contains(&expression.trim()) {
        return Ok(());
    }
    let fields: Vec<&str> = expression.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "`{expression}` has {} fields; a cron expression has 5 (minute hour day-of-month month day-of-week)",
            fields.len()
        ));
    }
    let limits = [
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day of month", 1, 31),
        ("month", 1, 12),
        ("day of week", 0, 7),
    ];
    for (field, (name, low, high)) in fields.iter().zip(limits) {
        for part in field.split(',') {
            let (range, step) = part
                .split_once('/')
                .map_or((part, None), |(r, s)| (r, Some(s)));
            if let Some(step) = step
                && step.parse::<u32>().map_or(true, |s| s == 0)
            {
                return Err(format!(
                    "`{part}`: the step of the {name} field must be a positive number"
                ));
            }
            if range == "*" {
                continue;
            }
            let bounds: Vec<&str> = range.split('-').collect();
            let ok = bounds.len() <= 2
                && bounds.iter().all(|b| {
                    b.parse::<u32>()
                        .is_ok_and(|v| (low..=high).contains(&v) || is_named(name, b))
                });
            if !ok && !bounds.iter().all(|b| is_named(name, b)) {
                return Err(format!(
                    "`{part}` is not a valid {name} (expected {low}-{high})"
                ));
            }
        }
    }
    Ok(())
}

fn is_named(field: &str, value: &str) -> bool {
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let value = value.to_ascii_lowercase();
    match field {
        "month" => MONTHS.contains(&value.as_str()),
        "day of week" => DAYS.contains(&value.as_str()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_expressions_are_checked_field_by_field() {
        assert!(check_cron("*/15 0-6 * * mon-fri").is_ok());
        assert!(check_cron("0 0 1 jan *").is_ok());
        assert!(check_cron("@daily").is_ok());
        assert!(check_cron("61 * * * *").unwrap_err().contains("minute"));
        assert!(check_cron("* * *").unwrap_err().contains("5"));
        assert!(check_cron("*/0 * * * *").is_err());
    }
}
