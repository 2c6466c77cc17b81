//! MLflow's search syntax and vocabulary, mapped onto Trellis.
//!
//! `search_runs` takes a filter such as
//! `metrics.acc > 0.9 and params.model = 'cnn' and tags."team" LIKE 'vis%'`
//! (comparisons joined by `AND`; MLflow has no `OR`) and an `order_by` list
//! such as `["metrics.acc DESC", "attributes.start_time"]`. This module
//! parses both into typed values that the data layer compiles to SQL with
//! every value bound, and maps MLflow's run statuses onto the lifecycle.

use crate::lifecycle::RunStatus;

/// Longest accepted filter, in bytes.
pub const MAX_FILTER_LEN: usize = 8192;
/// Most runs one search page may return (MLflow's threshold).
pub const MAX_SEARCH_RESULTS: u32 = 50_000;
/// Page size when a search gives none (MLflow's default).
pub const DEFAULT_SEARCH_RESULTS: u32 = 1000;

/// A refused filter or order-by clause; the message follows MLflow's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SearchError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, SearchError> {
    Err(SearchError(message.into()))
}

/// A run attribute MLflow can search or order by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute {
    RunId,
    RunName,
    Status,
    UserId,
    /// `start_time` or `created`: milliseconds since the epoch.
    StartTime,
    EndTime,
}

impl Attribute {
    fn parse(key: &str) -> Result<Self, SearchError> {
        Ok(match key {
            "run_id" => Attribute::RunId,
            "run_name" | "run name" | "Run name" | "Run Name" => Attribute::RunName,
            "status" => Attribute::Status,
            "user_id" => Attribute::UserId,
            "start_time" | "created" | "Created" => Attribute::StartTime,
            "end_time" => Attribute::EndTime,
            other => {
                return err(format!(
                    "Invalid attribute key '{other}' specified. Valid keys are \
                     'run_id', 'run_name', 'status', 'user_id', 'start_time', 'end_time', 'created'"
                ));
            }
        })
    }

    fn is_numeric(self) -> bool {
        matches!(self, Attribute::StartTime | Attribute::EndTime)
    }
}

/// What a comparison looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entity {
    /// The latest value of a metric.
    Metric(String),
    Param(String),
    Tag(String),
    Attribute(Attribute),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// SQL `LIKE` pattern (`%`, `_`).
    Like,
    /// Case-insensitive `LIKE`.
    ILike,
    In,
    NotIn,
    IsNull,
    IsNotNull,
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Text(String),
    List(Vec<String>),
    None,
}

/// One `entity op value` clause; a filter holds when all of them do.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub entity: Entity,
    pub op: Op,
    pub value: Value,
}

/// One `order_by` key.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderKey {
    pub entity: Entity,
    pub ascending: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// `entity.key` or a bare word (a keyword or an attribute).
    Ident {
        entity: Option<String>,
        key: String,
    },
    Text(String),
    Number(f64),
    Op(&'static str),
    Open,
    Close,
    Comma,
}

fn lex(input: &str) -> Result<Vec<Token>, SearchError> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let quoted = |i: &mut usize, quote: char| -> Result<String, SearchError> {
        let start = *i + 1;
        let mut j = start;
        while j < chars.len() && chars[j] != quote {
            j += 1;
        }
        if j >= chars.len() {
            return err(format!("Invalid filter: unterminated {quote} quote"));
        }
        *i = j + 1;
        Ok(chars[start..j].iter().collect())
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            '\'' | '"' => tokens.push(Token::Text(quoted(&mut i, c)?)),
            '=' | '!' | '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('!', Some('=')) => ("!=", 2),
                    ('<', Some('>')) => ("!=", 2),
                    ('<', Some('=')) => ("<=", 2),
                    ('>', Some('=')) => (">=", 2),
                    ('=', Some('=')) => ("=", 2),
                    ('=', _) => ("=", 1),
                    ('<', _) => ("<", 1),
                    ('>', _) => (">", 1),
                    _ => return err("Invalid filter: `!` must be followed by `=`"),
                };
                tokens.push(Token::Op(op));
                i += len;
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+' || c == '.')
                    && i + 1 < chars.len()
                    && chars[i + 1].is_ascii_digit()) =>
            {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || chars[i] == '.'
                        || ((chars[i] == '-' || chars[i] == '+')
                            && matches!(chars[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let number = text
                    .parse::<f64>()
                    .map_err(|_| SearchError(format!("Invalid number `{text}` in filter")))?;
                tokens.push(Token::Number(number));
            }
            c if c.is_alphabetic() || c == '_' || c == '`' => {
                let word = if c == '`' {
                    quoted(&mut i, '`')?
                } else {
                    let start = i;
                    while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                        i += 1;
                    }
                    chars[start..i].iter().collect()
                };
                if chars.get(i) == Some(&'.') {
                    i += 1;
                    let key = match chars.get(i) {
                        Some(&q @ ('`' | '"')) => quoted(&mut i, q)?,
                        _ => {
                            let start = i;
                            while i < chars.len()
                                && !chars[i].is_whitespace()
                                && !matches!(
                                    chars[i],
                                    '=' | '!' | '<' | '>' | '(' | ')' | ',' | '\'' | '"'
                                )
                            {
                                i += 1;
                            }
                            chars[start..i].iter().collect()
                        }
                    };
                    if key.is_empty() {
                        return err(format!("Invalid filter: `{word}.` needs a key"));
                    }
                    tokens.push(Token::Ident {
                        entity: Some(word),
                        key,
                    });
                } else {
                    tokens.push(Token::Ident {
                        entity: None,
                        key: word,
                    });
                }
            }
            other => return err(format!("Invalid filter: unexpected character `{other}`")),
        }
    }
    Ok(tokens)
}

fn entity(prefix: Option<&str>, key: &str) -> Result<Entity, SearchError> {
    match prefix {
        None => Attribute::parse(key).map(Entity::Attribute),
        Some("metric" | "metrics") => Ok(Entity::Metric(key.to_owned())),
        Some("param" | "params" | "parameter" | "parameters") => Ok(Entity::Param(key.to_owned())),
        Some("tag" | "tags") => Ok(Entity::Tag(key.to_owned())),
        Some("attribute" | "attributes" | "attr" | "run") => {
            Attribute::parse(key).map(Entity::Attribute)
        }
        Some("dataset" | "datasets") => {
            err("Searching runs by dataset is not supported by this server")
        }
        Some(other) => err(format!(
            "Invalid entity type '{other}'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']"
        )),
    }
}

fn keyword(token: Option<&Token>, word: &str) -> bool {
    matches!(token, Some(Token::Ident { entity: None, key }) if key.eq_ignore_ascii_case(word))
}

/// Parses a `search_runs` filter; an empty filter is no clause.
pub fn parse_filter(filter: &str) -> Result<Vec<Clause>, SearchError> {
    if filter.len() > MAX_FILTER_LEN {
        return err(format!("Filter is longer than {MAX_FILTER_LEN} bytes"));
    }
    let tokens = lex(filter)?;
    let mut clauses = Vec::new();
    let mut at = 0;
    while at < tokens.len() {
        if !clauses.is_empty() {
            if !keyword(tokens.get(at), "and") {
                if keyword(tokens.get(at), "or") {
                    return err(
                        "Invalid filter: `OR` is not supported; join comparisons with `AND`",
                    );
                }
                return err(format!(
                    "Invalid filter '{filter}': expected `AND` between comparisons"
                ));
            }
            at += 1;
        }
        let Some(Token::Ident {
            entity: prefix,
            key,
        }) = tokens.get(at)
        else {
            return err(format!(
                "Invalid filter '{filter}': expected an identifier such as `metrics.loss`"
            ));
        };
        let entity = entity(prefix.as_deref(), key)?;
        at += 1;
        let op = match tokens.get(at) {
            Some(Token::Op(op)) => {
                at += 1;
                match *op {
                    "=" => Op::Eq,
                    "!=" => Op::Ne,
                    "<" => Op::Lt,
                    "<=" => Op::Le,
                    ">" => Op::Gt,
                    _ => Op::Ge,
                }
            }
            t if keyword(t, "like") => {
                at += 1;
                Op::Like
            }
            t if keyword(t, "ilike") => {
                at += 1;
                Op::ILike
            }
            t if keyword(t, "in") => {
                at += 1;
                Op::In
            }
            t if keyword(t, "not") && keyword(tokens.get(at + 1), "in") => {
                at += 2;
                Op::NotIn
            }
            t if keyword(t, "is") => {
                if keyword(tokens.get(at + 1), "null") {
                    at += 2;
                    Op::IsNull
                } else if keyword(tokens.get(at + 1), "not") && keyword(tokens.get(at + 2), "null")
                {
                    at += 3;
                    Op::IsNotNull
                } else {
                    return err("Invalid filter: expected `IS NULL` or `IS NOT NULL`");
                }
            }
            _ => {
                return err(format!(
                    "Invalid filter '{filter}': expected a comparison operator after the identifier"
                ));
            }
        };
        let value = match op {
            Op::IsNull | Op::IsNotNull => Value::None,
            Op::In | Op::NotIn => {
                if tokens.get(at) != Some(&Token::Open) {
                    return err("Invalid filter: `IN` needs a parenthesised list of quoted values");
                }
                at += 1;
                let mut items = Vec::new();
                loop {
                    match tokens.get(at) {
                        Some(Token::Text(t)) => items.push(t.clone()),
                        _ => return err("Invalid filter: `IN` lists hold quoted strings"),
                    }
                    at += 1;
                    match tokens.get(at) {
                        Some(Token::Comma) => at += 1,
                        Some(Token::Close) => {
                            at += 1;
                            break;
                        }
                        _ => return err("Invalid filter: unterminated `IN` list"),
                    }
                }
                Value::List(items)
            }
            _ => {
                let value = match tokens.get(at) {
                    Some(Token::Number(n)) => Value::Number(*n),
                    Some(Token::Text(t)) => Value::Text(t.clone()),
                    _ => {
                        return err(format!(
                            "Invalid filter '{filter}': expected a value after the operator"
                        ));
                    }
                };
                at += 1;
                value
            }
        };
        check_clause(&entity, op, &value)?;
        clauses.push(Clause { entity, op, value });
    }
    Ok(clauses)
}

/// MLflow's rules of which operators and values go with which entity.
fn check_clause(entity: &Entity, op: Op, value: &Value) -> Result<(), SearchError> {
    let numeric_ops = [Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge];
    let string_ops = [Op::Eq, Op::Ne, Op::Like, Op::ILike];
    match entity {
        Entity::Metric(_) => {
            if !numeric_ops.contains(&op) {
                return err(format!(
                    "Invalid comparator for metric: {op:?}; use one of =, !=, <, <=, >, >="
                ));
            }
            if !matches!(value, Value::Number(_)) {
                return err("Expected numeric value type for metric.");
            }
        }
        Entity::Param(_) | Entity::Tag(_) => {
            if !(string_ops.contains(&op) || matches!(op, Op::IsNull | Op::IsNotNull)) {
                return err(format!(
                    "Invalid comparator for params and tags: {op:?}; use one of =, !=, LIKE, ILIKE, IS NULL, IS NOT NULL"
                ));
            }
            if !matches!(value, Value::Text(_) | Value::None) {
                return err(
                    "Expected a quoted string value for params and tags (e.g. 'my-value').",
                );
            }
        }
        Entity::Attribute(attribute) if attribute.is_numeric() => {
            if !numeric_ops.contains(&op) || !matches!(value, Value::Number(_)) {
                return err("Expected numeric value type and comparator for numeric attribute.");
            }
        }
        Entity::Attribute(attribute) => {
            let list_ok = *attribute == Attribute::RunId && matches!(op, Op::In | Op::NotIn);
            if !(string_ops.contains(&op) || list_ok) {
                return err(
                    "Invalid comparator for a string attribute; use =, !=, LIKE, ILIKE (and IN, NOT IN for run_id)",
                );
            }
            if matches!(value, Value::Number(_) | Value::None) {
                return err("Expected a quoted string value for attributes.");
            }
        }
    }
    Ok(())
}

/// Parses one `order_by` entry: `metrics.acc DESC`, `attributes.start_time`.
pub fn parse_order_key(clause: &str) -> Result<OrderKey, SearchError> {
    let tokens = lex(clause)?;
    let (prefix, key) = match tokens.first() {
        Some(Token::Ident { entity, key }) => (entity.as_deref(), key.as_str()),
        _ => return err(format!("Invalid order_by clause '{clause}'")),
    };
    let entity = entity(prefix, key)?;
    let ascending = match tokens.get(1) {
        None => true,
        t if keyword(t, "asc") => true,
        t if keyword(t, "desc") => false,
        _ => {
            return err(format!(
                "Invalid order_by clause '{clause}'; expected ASC or DESC after the key"
            ));
        }
    };
    if tokens.len() > 2 {
        return err(format!("Invalid order_by clause '{clause}'"));
    }
    Ok(OrderKey { entity, ascending })
}

/// MLflow's run statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlflowStatus {
    Running,
    Scheduled,
    Finished,
    Failed,
    Killed,
}

impl MlflowStatus {
    /// `RUNNING`, `SCHEDULED`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            MlflowStatus::Running => "RUNNING",
            MlflowStatus::Scheduled => "SCHEDULED",
            MlflowStatus::Finished => "FINISHED",
            MlflowStatus::Failed => "FAILED",
            MlflowStatus::Killed => "KILLED",
        }
    }

    /// Parses MLflow's name of a status.
    pub fn parse(status: &str) -> Option<Self> {
        Some(match status {
            "RUNNING" => MlflowStatus::Running,
            "SCHEDULED" => MlflowStatus::Scheduled,
            "FINISHED" => MlflowStatus::Finished,
            "FAILED" => MlflowStatus::Failed,
            "KILLED" => MlflowStatus::Killed,
            _ => return None,
        })
    }

    /// How MLflow sees a Trellis status.
    pub fn of(status: RunStatus) -> Self {
        use RunStatus::*;
        match status {
            Starting | Running | Processing | Warning | Unknown => MlflowStatus::Running,
            Created | Resuming | OnSchedule | Compiled | Queued | Scheduled | Unschedulable
            | Retrying => MlflowStatus::Scheduled,
            Succeeded | Skipped => MlflowStatus::Finished,
            Failed | UpstreamFailed => MlflowStatus::Failed,
            Stopping | Stopped => MlflowStatus::Killed,
        }
    }

    /// The Trellis status an MLflow client means when it sets this one.
    pub fn target(self) -> RunStatus {
        match self {
            MlflowStatus::Running => RunStatus::Running,
            MlflowStatus::Scheduled => RunStatus::Queued,
            MlflowStatus::Finished => RunStatus::Succeeded,
            MlflowStatus::Failed => RunStatus::Failed,
            MlflowStatus::Killed => RunStatus::Stopped,
        }
    }

    /// The Trellis statuses MLflow shows as this one, for searches.
    pub fn statuses(self) -> Vec<RunStatus> {
        RunStatus::ALL
            .into_iter()
            .filter(|s| MlflowStatus::of(*s) == self)
            .collect()
    }
}

/// Whether `text` matches SQL `LIKE` `pattern` (`%`, `_`), for the values
/// matched in memory (status names, experiment names).
pub fn like_matches(pattern: &str, text: &str, ignore_case: bool) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some(('_', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    let fold = |s: &str| -> Vec<char> {
        if ignore_case {
            s.to_uppercase().chars().collect()
        } else {
            s.chars().collect()
        }
    };
    go(&fold(pattern), &fold(text))
}

/// A search page token: the offset of the next page, as opaque text.
pub fn page_token(offset: u64) -> String {
    format!("o{offset}")
}

/// Reads a page token written by [`page_token`].
pub fn parse_page_token(token: &str) -> Result<u64, SearchError> {
    token
        .strip_prefix('o')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| SearchError(format!("Invalid page token '{token}'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mlflow_filters() {
        let clauses = parse_filter(
            "metrics.acc > 0.9 and params.model = 'cnn' AND tags.`my tag` LIKE 'a%' \
             and attributes.status != \"FAILED\" and run_id IN ('a', 'b') and metrics.\"val loss\" <= -1e-3 \
             and tags.x IS NOT NULL and attribute.start_time >= 1700000000000",
        )
        .unwrap();
        assert_eq!(clauses.len(), 8);
        assert_eq!(clauses[0].entity, Entity::Metric("acc".into()));
        assert_eq!(clauses[0].op, Op::Gt);
        assert_eq!(clauses[0].value, Value::Number(0.9));
        assert_eq!(clauses[1].value, Value::Text("cnn".into()));
        assert_eq!(clauses[2].entity, Entity::Tag("my tag".into()));
        assert_eq!(clauses[2].op, Op::Like);
        assert_eq!(clauses[3].entity, Entity::Attribute(Attribute::Status));
        assert_eq!(clauses[4].value, Value::List(vec!["a".into(), "b".into()]));
        assert_eq!(clauses[5].entity, Entity::Metric("val loss".into()));
        assert_eq!(clauses[5].value, Value::Number(-1e-3));
        assert_eq!(clauses[6].op, Op::IsNotNull);
        assert_eq!(clauses[7].entity, Entity::Attribute(Attribute::StartTime));
        assert_eq!(parse_filter("  ").unwrap(), vec![]);
        let dotted = parse_filter("tags.mlflow.runName = 'x'").unwrap();
        assert_eq!(dotted[0].entity, Entity::Tag("mlflow.runName".into()));
    }

    #[test]
    fn refuses_what_mlflow_refuses() {
        for bad in [
            "metrics.acc > 'x'",
            "params.lr > 0.1",
            "metrics.acc = 1 or metrics.b = 2",
            "foo.bar = 1",
            "attributes.nope = 'x'",
            "metrics.acc >",
            "params.a = 'unterminated",
            "status IN ('A')",
            "metrics.a = 1 metrics.b = 2",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_order_keys() {
        let key = parse_order_key("metrics.acc DESC").unwrap();
        assert_eq!(key.entity, Entity::Metric("acc".into()));
        assert!(!key.ascending);
        assert!(parse_order_key("attributes.start_time").unwrap().ascending);
        assert!(parse_order_key("metrics.acc sideways").is_err());
    }

    #[test]
    fn every_status_maps_back_to_itself() {
        for status in [
            MlflowStatus::Running,
            MlflowStatus::Scheduled,
            MlflowStatus::Finished,
            MlflowStatus::Failed,
            MlflowStatus::Killed,
        ] {
            assert_eq!(MlflowStatus::of(status.target()), status);
            assert!(status.statuses().contains(&status.target()));
            assert_eq!(MlflowStatus::parse(status.as_str()), Some(status));
        }
    }

    #[test]
    fn like_matches_sql_patterns() {
        assert!(like_matches("FIN%", "FINISHED", false));
        assert!(!like_matches("fin%", "FINISHED", false));
        assert!(like_matches("fin%", "FINISHED", true));
        assert!(like_matches("R_NNING", "RUNNING", false));
    }

    #[test]
    fn page_tokens_round_trip() {
        assert_eq!(parse_page_token(&page_token(1234)).unwrap(), 1234);
        assert!(parse_page_token("garbage").is_err());
    }
}
