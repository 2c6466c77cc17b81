//! The Polyaxon query language (PQL): parse a filter once, then evaluate it
//! in memory ([`Query::matches`]) or hand it to the data layer, which
//! compiles the same tree to parameterised SQL.
//!
//! ```text
//! status:running|succeeded, metrics.loss:<0.2
//! (metrics.loss:<0.1 OR metrics.accuracy:>0.95) AND status:succeeded
//! created_at:2024-01-01 .. 2024-06-30, name:%test%, tags:~debug, params.lr:>=0.01
//! ```
//!
//! Terms are `field:value`. `,` and `AND` join terms, `OR` joins
//! alternatives (AND binds tighter), parentheses group. A value may start
//! with `~` (negation), be `nil` (no value), a comparison (`<`, `<=`, `>`,
//! `>=`), a range (`a .. b`, inclusive), alternatives (`a|b`), or a pattern
//! with `%` at its start and/or end (contains, ends with, starts with).
//!
//! Semantics are two-valued, as Polyaxon's: a term on a missing value (an
//! unnamed run, an absent param, a param of another type) is false, and its
//! negation is true.

use std::fmt;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::Value as Json;

use crate::lifecycle::RunStatus;
use crate::run::RunKind;

/// Longest accepted query, in bytes.
pub const MAX_QUERY_LEN: usize = 4096;
/// Deepest accepted nesting of parentheses.
pub const MAX_DEPTH: usize = 32;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// Every part holds.
    And(Vec<Query>),
    /// At least one part holds.
    Or(Vec<Query>),
    /// One `field:value` term.
    Term(Term),
}

/// One `field:value` term.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub field: Field,
    /// `~`: the term holds when the condition does not.
    pub negated: bool,
    pub condition: Condition,
}

/// What a term looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    Status,
    Kind,
    Name,
    Description,
    Uuid,
    Tags,
    CreatedAt,
    UpdatedAt,
    StartedAt,
    FinishedAt,
    Duration,
    WaitTime,
    /// `inputs.key`, `params.key`, `in.key`.
    Input(String),
    /// `outputs.key`, `out.key`.
    Output(String),
    /// `metrics.key`: the latest tracked value of a metric.
    Metric(String),
}

/// How a field's values are typed and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Status,
    Kind,
    Text,
    Uuid,
    Tags,
    Time,
    Number,
    /// A JSON value of any type (inputs, outputs).
    Dynamic,
}

impl Field {
    /// The field's value type.
    pub fn field_type(&self) -> FieldType {
        match self {
            Field::Status => FieldType::Status,
            Field::Kind => FieldType::Kind,
            Field::Name | Field::Description => FieldType::Text,
            Field::Uuid => FieldType::Uuid,
            Field::Tags => FieldType::Tags,
            Field::CreatedAt | Field::UpdatedAt | Field::StartedAt | Field::FinishedAt => {
                FieldType::Time
            }
            Field::Duration | Field::WaitTime | Field::Metric(_) => FieldType::Number,
            Field::Input(_) | Field::Output(_) => FieldType::Dynamic,
        }
    }

    /// Parses a field name (`status`, `params.lr`, `metrics.loss`, ...).
    pub fn parse(name: &str) -> Result<Field, PqlError> {
        let simple = match name {
            "status" => Some(Field::Status),
            "kind" => Some(Field::Kind),
            "name" => Some(Field::Name),
            "description" => Some(Field::Description),
            "uuid" | "id" => Some(Field::Uuid),
            "tags" | "tag" => Some(Field::Tags),
            "created_at" => Some(Field::CreatedAt),
            "updated_at" => Some(Field::UpdatedAt),
            "started_at" => Some(Field::StartedAt),
            "finished_at" => Some(Field::FinishedAt),
            "duration" => Some(Field::Duration),
            "wait_time" => Some(Field::WaitTime),
            _ => None,
        };
        if let Some(field) = simple {
            return Ok(field);
        }
        if name == "user" {
            return Err(PqlError::new(
                "`user` is not available: runs have no user until this server has accounts",
            ));
        }
        if let Some((prefix, key)) = name.split_once('.') {
            if key.is_empty() || key.len() > 256 {
                return Err(PqlError::new(format!(
                    "`{name}` needs a key after `{prefix}.`"
                )));
            }
            // Keys are names, not JSON paths: the data layer quotes them.
            if !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
            {
                return Err(PqlError::new(format!(
                    "`{key}` may only contain letters, digits, `_`, `-`, `.` and `/`"
                )));
            }
            match prefix {
                "inputs" | "params" | "in" => return Ok(Field::Input(key.to_owned())),
                "outputs" | "out" => return Ok(Field::Output(key.to_owned())),
                "metrics" | "metric" => return Ok(Field::Metric(key.to_owned())),
                _ => {}
            }
        }
        let mut message = format!("unknown field `{name}`");
        if let Some(suggestion) = closest(name, FIELD_NAMES) {
            message.push_str(&format!("; did you mean `{suggestion}`?"));
        } else {
            message.push_str(&format!(
                "; fields are {}, and inputs.*, outputs.*, metrics.*",
                FIELD_NAMES.join(", ")
            ));
        }
        Err(PqlError::new(message))
    }
}

/// Every field name the language accepts; a trailing `.` marks a prefix
/// (`params.lr`). Errors suggest from it, the dashboard completes from it.
pub const FIELD_NAMES: &[&str] = &[
    "status",
    "kind",
    "name",
    "description",
    "uuid",
    "tags",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "duration",
    "wait_time",
    "inputs.",
    "outputs.",
    "metrics.",
    "params.",
];

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Status => f.write_str("status"),
            Field::Kind => f.write_str("kind"),
            Field::Name => f.write_str("name"),
            Field::Description => f.write_str("description"),
            Field::Uuid => f.write_str("uuid"),
            Field::Tags => f.write_str("tags"),
            Field::CreatedAt => f.write_str("created_at"),
            Field::UpdatedAt => f.write_str("updated_at"),
            Field::StartedAt => f.write_str("started_at"),
            Field::FinishedAt => f.write_str("finished_at"),
            Field::Duration => f.write_str("duration"),
            Field::WaitTime => f.write_str("wait_time"),
            Field::Input(key) => write!(f, "inputs.{key}"),
            Field::Output(key) => write!(f, "outputs.{key}"),
            Field::Metric(key) => write!(f, "metrics.{key}"),
        }
    }
}

/// A typed value from a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Text(String),
    Number(f64),
    Bool(bool),
    Status(RunStatus),
    Kind(RunKind),
    Uuid(uuid::Uuid),
    /// A half-open time interval `[start, end)`: an exact instant is
    /// `[t, t + 1µs)`, a date is the whole day.
    Time {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
}

/// What a term checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Equal to the value (a tag list contains it; a time falls in it).
    Eq(Scalar),
    /// Equal to one of the values.
    In(Vec<Scalar>),
    Lt(Scalar),
    Le(Scalar),
    Gt(Scalar),
    Ge(Scalar),
    /// Between the bounds, both included.
    Range(Scalar, Scalar),
    /// The field has no value (for tags: no tags).
    Nil,
    /// Text matching a `%` pattern.
    Like(Like),
}

/// A `%` pattern: `%x%` contains, `x%` starts with, `%x` ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Like {
    Contains(String),
    StartsWith(String),
    EndsWith(String),
}

impl Like {
    /// Whether `text` matches, ignoring ASCII case as both databases do.
    pub fn matches(&self, text: &str) -> bool {
        let text = text.to_ascii_lowercase();
        match self {
            Like::Contains(p) => text.contains(&p.to_ascii_lowercase()),
            Like::StartsWith(p) => text.starts_with(&p.to_ascii_lowercase()),
            Like::EndsWith(p) => text.ends_with(&p.to_ascii_lowercase()),
        }
    }
}

/// A query that does not parse, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid query: {message}")]
pub struct PqlError {
    /// What is wrong, naming the offending text.
    pub message: String,
}

impl PqlError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl Query {
    /// Parses a query. Blank input is `None` (no filter).
    pub fn parse(input: &str) -> Result<Option<Query>, PqlError> {
        if input.len() > MAX_QUERY_LEN {
            return Err(PqlError::new(format!(
                "the query is longer than {MAX_QUERY_LEN} bytes"
            )));
        }
        if input.trim().is_empty() {
            return Ok(None);
        }
        let mut parser = Parser {
            input,
            pos: 0,
            depth: 0,
        };
        let query = parser.or_expr()?;
        parser.skip_ws();
        if parser.pos < input.len() {
            return Err(PqlError::new(format!(
                "unexpected `{}` at position {}",
                &input[parser.pos..].chars().take(20).collect::<String>(),
                parser.pos + 1
            )));
        }
        Ok(Some(query))
    }

    /// Evaluates the query against one run.
    pub fn matches(&self, run: &RunFacts) -> bool {
        match self {
            Query::And(parts) => parts.iter().all(|q| q.matches(run)),
            Query::Or(parts) => parts.iter().any(|q| q.matches(run)),
            Query::Term(term) => term.negated != term.holds(run),
        }
    }
}

/// What a query can see of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFacts {
    pub uuid: uuid::Uuid,
    pub status: RunStatus,
    pub kind: Option<RunKind>,
    pub name: Option<String>,
    pub description: String,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
    pub wait_time: Option<f64>,
    pub inputs: serde_json::Map<String, Json>,
    pub outputs: serde_json::Map<String, Json>,
    /// The latest value of each tracked metric.
    pub metrics: std::collections::BTreeMap<String, f64>,
}

/// A run's value for one field, as terms compare it.
enum Actual<'a> {
    Missing,
    Text(&'a str),
    Number(f64),
    Bool(bool),
    Status(RunStatus),
    Kind(RunKind),
    Uuid(uuid::Uuid),
    Time(DateTime<Utc>),
    Tags(&'a [String]),
}

impl Term {
    /// Whether the condition (before negation) holds for `run`.
    fn holds(&self, run: &RunFacts) -> bool {
        let actual = match &self.field {
            Field::Status => Actual::Status(run.status),
            Field::Kind => run.kind.map_or(Actual::Missing, Actual::Kind),
            Field::Name => run.name.as_deref().map_or(Actual::Missing, Actual::Text),
            Field::Description => Actual::Text(&run.description),
            Field::Uuid => Actual::Uuid(run.uuid),
            Field::Tags => Actual::Tags(&run.tags),
            Field::CreatedAt => Actual::Time(run.created_at),
            Field::UpdatedAt => Actual::Time(run.updated_at),
            Field::StartedAt => run.started_at.map_or(Actual::Missing, Actual::Time),
            Field::FinishedAt => run.finished_at.map_or(Actual::Missing, Actual::Time),
            Field::Duration => run.duration.map_or(Actual::Missing, Actual::Number),
            Field::WaitTime => run.wait_time.map_or(Actual::Missing, Actual::Number),
            Field::Input(key) => json_actual(run.inputs.get(key)),
            Field::Output(key) => json_actual(run.outputs.get(key)),
            Field::Metric(key) => run
                .metrics
                .get(key)
                .copied()
                .filter(|v| !v.is_nan())
                .map_or(Actual::Missing, Actual::Number),
        };
        match (&self.condition, actual) {
            (Condition::Nil, Actual::Tags(tags)) => tags.is_empty(),
            (Condition::Nil, Actual::Missing) => true,
            (Condition::Nil, _) => false,
            (_, Actual::Missing) => false,
            (Condition::Eq(expected), actual) => equals(&actual, expected),
            (Condition::In(options), actual) => options.iter().any(|o| equals(&actual, o)),
            (Condition::Like(like), Actual::Text(text)) => like.matches(text),
            (Condition::Like(_), _) => false,
            (Condition::Lt(bound), actual) => compare(&actual, bound, Cmp::Lt),
            (Condition::Le(bound), actual) => compare(&actual, bound, Cmp::Le),
            (Condition::Gt(bound), actual) => compare(&actual, bound, Cmp::Gt),
            (Condition::Ge(bound), actual) => compare(&actual, bound, Cmp::Ge),
            (Condition::Range(low, high), actual) => {
                compare(&actual, low, Cmp::Ge) && compare(&actual, high, Cmp::Le)
            }
        }
    }
}

/// An ordering operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    /// For a time bound `[start, end)` (an instant, or a whole day): which
    /// end of the interval the run's time is compared with, and how. `<=` a
    /// day means before the day ends; `>` a day means from its end on.
    pub fn on_interval(self) -> (IntervalEnd, Cmp) {
        match self {
            Cmp::Lt => (IntervalEnd::Start, Cmp::Lt),
            Cmp::Le => (IntervalEnd::End, Cmp::Lt),
            Cmp::Gt => (IntervalEnd::End, Cmp::Ge),
            Cmp::Ge => (IntervalEnd::Start, Cmp::Ge),
        }
    }

    fn accepts(self, ordering: std::cmp::Ordering) -> bool {
        match self {
            Cmp::Lt => ordering.is_lt(),
            Cmp::Le => ordering.is_le(),
            Cmp::Gt => ordering.is_gt(),
            Cmp::Ge => ordering.is_ge(),
        }
    }
}

/// One end of a time interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalEnd {
    Start,
    End,
}

fn compare(actual: &Actual<'_>, bound: &Scalar, cmp: Cmp) -> bool {
    match (actual, bound) {
        (Actual::Number(a), Scalar::Number(b)) => a.partial_cmp(b).is_some_and(|o| cmp.accepts(o)),
        (Actual::Text(a), Scalar::Number(b)) => numeric_text(a)
            .and_then(|a| a.partial_cmp(b))
            .is_some_and(|o| cmp.accepts(o)),
        (Actual::Time(a), Scalar::Time { start, end }) => {
            let (which, cmp) = cmp.on_interval();
            let edge = match which {
                IntervalEnd::Start => start,
                IntervalEnd::End => end,
            };
            cmp.accepts(a.cmp(edge))
        }
        _ => false,
    }
}

/// The longest text that can read as a number. With the exponent's two
/// digits at most, every number this grammar admits is a finite, normal
/// `f64`, so both databases convert it without an out-of-range error.
pub const NUMERIC_TEXT_MAX: usize = 40;

/// The number a JSON string spells, if it is one: JSON's number grammar
/// (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]{1,2})?`, nothing around
/// it), at most [`NUMERIC_TEXT_MAX`] bytes. MLflow sends every param as a
/// string (`"3"`, `"0.01"`, `"1e-05"`), so a query compares such a value as
/// the number it spells. The SQL that indexes params (`run_fields`) applies
/// the same grammar on both databases; the agreement property test holds
/// them to it.
pub fn numeric_text(text: &str) -> Option<f64> {
    if text.len() > NUMERIC_TEXT_MAX {
        return None;
    }
    let bytes = text.as_bytes();
    let mut at = 0;
    let digits = |at: &mut usize| {
        let start = *at;
        while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
            *at += 1;
        }
        *at - start
    };
    if bytes.first() == Some(&b'-') {
        at += 1;
    }
    match bytes.get(at) {
        Some(b'0') => at += 1,
        Some(b'1'..=b'9') => {
            digits(&mut at);
        }
        _ => return None,
    }
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        if digits(&mut at) == 0 {
            return None;
        }
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(bytes.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        if !(1..=2).contains(&digits(&mut at)) {
            return None;
        }
    }
    if at != bytes.len() {
        return None;
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A param's or output's value as a number: a JSON number, or a string
/// that spells one ([`numeric_text`]). What `<`, `>`, ranges, numeric
/// equality and sorting read.
pub fn numeric_value(value: &Json) -> Option<f64> {
    match value {
        Json::Number(n) => n.as_f64().filter(|n| n.is_finite()),
        Json::String(s) => numeric_text(s),
        _ => None,
    }
}

fn json_actual(value: Option<&Json>) -> Actual<'_> {
    match value {
        Some(Json::String(s)) => Actual::Text(s),
        Some(Json::Number(n)) => n.as_f64().map_or(Actual::Missing, Actual::Number),
        Some(Json::Bool(b)) => Actual::Bool(*b),
        _ => Actual::Missing,
    }
}

fn equals(actual: &Actual<'_>, expected: &Scalar) -> bool {
    match (actual, expected) {
        (Actual::Text(a), Scalar::Text(e)) => a == e,
        (Actual::Number(a), Scalar::Number(e)) => a == e,
        (Actual::Text(a), Scalar::Number(e)) => numeric_text(a) == Some(*e),
        (Actual::Bool(a), Scalar::Bool(e)) => a == e,
        (Actual::Status(a), Scalar::Status(e)) => a == e,
        (Actual::Kind(a), Scalar::Kind(e)) => a == e,
        (Actual::Uuid(a), Scalar::Uuid(e)) => a == e,
        (Actual::Time(a), Scalar::Time { start, end }) => start <= a && a < end,
        (Actual::Tags(tags), Scalar::Text(e)) => tags.iter().any(|t| t == e),
        _ => false,
    }
}

/// The closest of `options` to `word` by edit distance, if close enough to
/// be a likely typo.
pub fn closest<'a>(word: &str, options: &[&'a str]) -> Option<&'a str> {
    options
        .iter()
        .map(|o| (edit_distance(word, o.trim_end_matches('.')), *o))
        .filter(|(d, _)| *d <= 2.max(word.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, o)| o)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            current.push(
                (previous[j] + cost)
                    .min(previous[j + 1] + 1)
                    .min(current[j] + 1),
            );
        }
        previous = current;
    }
    previous[b.len()]
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &str {
        &self.input[self.pos..]
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.input.len() - trimmed.len();
    }

    /// Consumes `keyword` if it comes next as a whole word.
    fn keyword(&mut self, keyword: &str) -> bool {
        self.skip_ws();
        let Some(after) = self.rest().strip_prefix(keyword) else {
            return false;
        };
        if after.is_empty() || after.starts_with(char::is_whitespace) || after.starts_with('(') {
            self.pos += keyword.len();
            return true;
        }
        false
    }

    fn or_expr(&mut self) -> Result<Query, PqlError> {
        let mut parts = vec![self.and_expr()?];
        while self.keyword("OR") {
            parts.push(self.and_expr()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Query::Or(parts)
        })
    }

    fn and_expr(&mut self) -> Result<Query, PqlError> {
        let mut parts = vec![self.unary()?];
        loop {
            self.skip_ws();
            if self.rest().starts_with(',') {
                self.pos += 1;
            } else if !self.keyword("AND") {
                break;
            }
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Query::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Query, PqlError> {
        self.skip_ws();
        if self.rest().starts_with('(') {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(PqlError::new(format!(
                    "parentheses are nested deeper than {MAX_DEPTH}"
                )));
            }
            self.pos += 1;
            let inner = self.or_expr()?;
            self.skip_ws();
            if !self.rest().starts_with(')') {
                return Err(PqlError::new(format!(
                    "missing `)` for the `(` before position {}",
                    self.pos + 1
                )));
            }
            self.pos += 1;
            self.depth -= 1;
            return Ok(inner);
        }
        self.term().map(Query::Term)
    }

    fn term(&mut self) -> Result<Term, PqlError> {
        let start = self.pos;
        let rest = self.rest();
        if rest.is_empty() {
            return Err(PqlError::new(
                "the query ends where a `field:value` term was expected",
            ));
        }
        let Some(colon) = rest.find(':') else {
            return Err(PqlError::new(format!(
                "expected `field:value` at position {}, found `{}`",
                start + 1,
                rest.chars().take(20).collect::<String>()
            )));
        };
        let name = rest[..colon].trim();
        if name.is_empty() || name.contains([',', '(', ')', ' ']) {
            return Err(PqlError::new(format!(
                "expected a field name before `:` at position {}",
                start + colon + 1
            )));
        }
        let field = Field::parse(name)?;
        self.pos += colon + 1;
        let raw = self.value_text();
        let (negated, condition) = parse_condition(&field, raw.trim())?;
        Ok(Term {
            field,
            negated,
            condition,
        })
    }

    /// The value's text: up to a `,` or `)` or an ` AND ` / ` OR ` keyword.
    fn value_text(&mut self) -> &'a str {
        let input = self.input;
        let rest = &input[self.pos..];
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            if c == ',' || c == ')' {
                end = i;
                break;
            }
            if c.is_whitespace() {
                let after = rest[i..].trim_start();
                for keyword in ["AND", "OR"] {
                    if let Some(tail) = after.strip_prefix(keyword)
                        && (tail.is_empty()
                            || tail.starts_with(char::is_whitespace)
                            || tail.starts_with('('))
                    {
                        end = i;
                    }
                }
                if end == i {
                    break;
                }
            }
        }
        let value = &rest[..end];
        self.pos += end;
        value
    }
}

fn parse_condition(field: &Field, raw: &str) -> Result<(bool, Condition), PqlError> {
    let (negated, raw) = match raw.strip_prefix('~') {
        Some(rest) => (true, rest.trim()),
        None => (false, raw),
    };
    if raw.is_empty() {
        return Err(PqlError::new(format!("`{field}` needs a value")));
    }
    let kind = field.field_type();
    let ordered = matches!(
        kind,
        FieldType::Time | FieldType::Number | FieldType::Dynamic
    );
    if raw == "nil" {
        return Ok((negated, Condition::Nil));
    }
    for (op, make) in [
        ("<=", Condition::Le as fn(Scalar) -> Condition),
        (">=", Condition::Ge),
        ("<", Condition::Lt),
        (">", Condition::Gt),
    ] {
        if let Some(value) = raw.strip_prefix(op) {
            if !ordered {
                return Err(PqlError::new(format!(
                    "`{field}` cannot be compared with `{op}`"
                )));
            }
            return Ok((negated, make(ordered_scalar(field, value.trim())?)));
        }
    }
    if let Some((low, high)) = raw.split_once("..") {
        if !ordered {
            return Err(PqlError::new(format!("`{field}` cannot be given a range")));
        }
        let (low, high) = (
            ordered_scalar(field, low.trim())?,
            ordered_scalar(field, high.trim())?,
        );
        return Ok((negated, Condition::Range(low, high)));
    }
    if raw.contains('|') {
        let options = raw
            .split('|')
            .map(|v| scalar(field, v.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok((negated, Condition::In(options)));
    }
    if raw.contains('%') {
        if !matches!(kind, FieldType::Text | FieldType::Dynamic) {
            return Err(PqlError::new(format!(
                "`{field}` cannot be matched with `%`"
            )));
        }
        let inner = raw.trim_matches('%');
        if inner.is_empty() || inner.contains('%') {
            return Err(PqlError::new(format!(
                "`%` may only start or end the value of `{field}` (`%x%`, `x%`, `%x`)"
            )));
        }
        let like = match (raw.starts_with('%'), raw.ends_with('%')) {
            (true, true) => Like::Contains(inner.to_owned()),
            (false, true) => Like::StartsWith(inner.to_owned()),
            _ => Like::EndsWith(inner.to_owned()),
        };
        return Ok((negated, Condition::Like(like)));
    }
    Ok((negated, Condition::Eq(scalar(field, raw)?)))
}

fn scalar(field: &Field, raw: &str) -> Result<Scalar, PqlError> {
    if raw.is_empty() {
        return Err(PqlError::new(format!("`{field}` has an empty value")));
    }
    let bad = |expected: &str| PqlError::new(format!("`{raw}` is not {expected} (in `{field}`)"));
    match field.field_type() {
        FieldType::Status => {
            raw.parse()
                .map(Scalar::Status)
                .map_err(|e: crate::lifecycle::UnknownStatus| {
                    let names: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
                    match closest(raw, &names) {
                        Some(s) => PqlError::new(format!("{e}; did you mean `{s}`?")),
                        None => PqlError::new(e.to_string()),
                    }
                })
        }
        FieldType::Kind => raw
            .parse()
            .map(Scalar::Kind)
            .map_err(|e| PqlError::new(e.to_string())),
        FieldType::Text | FieldType::Tags => Ok(Scalar::Text(raw.to_owned())),
        FieldType::Uuid => uuid::Uuid::parse_str(raw)
            .map(Scalar::Uuid)
            .map_err(|_| bad("a uuid")),
        FieldType::Number => parse_number(raw)
            .map(Scalar::Number)
            .ok_or_else(|| bad("a number")),
        FieldType::Time => parse_time(raw).ok_or_else(|| {
            bad("a date or time (`2024-01-31`, `2024-01-31 12:30`, `2024-01-31T12:30:00Z`)")
        }),
        FieldType::Dynamic => Ok(match raw {
            "true" => Scalar::Bool(true),
            "false" => Scalar::Bool(false),
            _ => parse_number(raw).map_or_else(|| Scalar::Text(raw.to_owned()), Scalar::Number),
        }),
    }
}

/// A bound of `<`, `>`, or a range: numbers and times only (text order
/// differs between databases' collations, so it is not offered).
fn ordered_scalar(field: &Field, raw: &str) -> Result<Scalar, PqlError> {
    match scalar(field, raw)? {
        value @ (Scalar::Number(_) | Scalar::Time { .. }) => Ok(value),
        _ => Err(PqlError::new(format!(
            "`{raw}` is not a number; `<`, `>` and ranges compare numbers and times (in `{field}`)"
        ))),
    }
}

fn parse_number(raw: &str) -> Option<f64> {
    raw.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn parse_time(raw: &str) -> Option<Scalar> {
    if let Ok(date) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let start = Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0)?);
        return Some(Scalar::Time {
            start,
            end: start + Duration::days(1),
        });
    }
    let exact = DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            [
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%d %H:%M",
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%dT%H:%M",
            ]
            .iter()
            .find_map(|format| NaiveDateTime::parse_from_str(raw, format).ok())
            .map(|t| Utc.from_utc_datetime(&t))
        })?;
    Some(Scalar::Time {
        start: exact,
        end: exact + Duration::microseconds(1),
    })
}

#[cfg(test)]
mod tests;
