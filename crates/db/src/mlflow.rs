//! MLflow's `search_runs`, compiled to SQL over `runs r`.
//!
//! As in [`crate::pql`], user text never becomes SQL text: keys, values and
//! patterns are bound. Semantics follow MLflow's SQL store: a comparison on
//! a metric, param or tag the run does not have is false, `!=` included.

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use trellis_domain::mlflow::{
    Attribute, Clause, Entity, MlflowStatus, Op, OrderKey, Value, like_matches,
};
use uuid::Uuid;

use crate::pql::Bind;
use crate::projects::ViewType;
use crate::runs::RunRow;
use crate::{Backend, Db, DbResult, with_pool};

struct Compiler {
    backend: Backend,
    binds: Vec<Bind>,
}

impl Compiler {
    fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    /// The SQL value of a text entity (param, tag, string attribute).
    fn text_value(&mut self, entity: &Entity) -> String {
        match entity {
            Entity::Param(key) => match self.backend {
                Backend::Sqlite => {
                    let path = self.bind(Bind::Text(format!("$.\"{}\"", key.replace('"', ""))));
                    format!("CAST(json_extract(r.inputs, {path}) AS TEXT)")
                }
                Backend::Postgres => {
                    let key = self.bind(Bind::Text(key.clone()));
                    format!("(r.inputs ->> {key})")
                }
            },
            Entity::Tag(key) if key == "mlflow.runName" => "r.name".to_owned(),
            Entity::Tag(key) => self.tag_value(key),
            Entity::Attribute(Attribute::RunName) => "r.name".to_owned(),
            Entity::Attribute(Attribute::UserId) => self.tag_value("mlflow.user"),
            Entity::Attribute(Attribute::Status) => "r.status".to_owned(),
            Entity::Attribute(Attribute::RunId) => "r.uuid".to_owned(),
            Entity::Attribute(Attribute::StartTime) => {
                "COALESCE(r.started_at, r.created_at)".to_owned()
            }
            Entity::Attribute(Attribute::EndTime) => "r.finished_at".to_owned(),
            Entity::Metric(key) => self.metric_value(key),
        }
    }

    fn tag_value(&mut self, key: &str) -> String {
        let key = self.bind(Bind::Text(key.to_owned()));
        format!("(SELECT t.value FROM run_tags t WHERE t.run_id = r.id AND t.key = {key})")
    }

    fn metric_value(&mut self, key: &str) -> String {
        crate::pql::latest_metric(&self.bind(Bind::Text(key.to_owned())))
    }

    fn clause(&mut self, clause: &Clause) -> String {
        let Clause { entity, op, value } = clause;
        match entity {
            Entity::Attribute(Attribute::Status) => return self.status(*op, value),
            Entity::Attribute(Attribute::RunId) => return self.run_id(*op, value),
            Entity::Attribute(Attribute::StartTime | Attribute::EndTime) => {
                let lhs = self.text_value(entity);
                let Value::Number(ms) = value else {
                    return "FALSE".to_owned();
                };
                let time = DateTime::<Utc>::from_timestamp_millis(*ms as i64).unwrap_or_default();
                let rhs = self.bind(Bind::Time(time));
                return format!("({lhs} {} {rhs})", comparator(*op));
            }
            _ => {}
        }
        let lhs = self.text_value(entity);
        match (op, value) {
            (Op::IsNull, _) => format!("({lhs} IS NULL)"),
            (Op::IsNotNull, _) => format!("({lhs} IS NOT NULL)"),
            (_, Value::Number(n)) => {
                let rhs = self.bind(Bind::Number(*n));
                format!("({lhs} {} {rhs})", comparator(*op))
            }
            (Op::Like, Value::Text(pattern)) => match self.backend {
                // SQLite's LIKE ignores case; GLOB is its case-sensitive match.
                Backend::Sqlite => {
                    let glob = self.bind(Bind::Text(like_to_glob(pattern)));
                    format!("({lhs} GLOB {glob})")
                }
                Backend::Postgres => {
                    let pattern = self.bind(Bind::Text(pattern.clone()));
                    format!("({lhs} LIKE {pattern})")
                }
            },
            (Op::ILike, Value::Text(pattern)) => {
                let pattern = self.bind(Bind::Text(pattern.clone()));
                match self.backend {
                    Backend::Sqlite => format!("({lhs} LIKE {pattern})"),
                    Backend::Postgres => format!("({lhs} ILIKE {pattern})"),
                }
            }
            (_, Value::Text(text)) => {
                let rhs = self.bind(Bind::Text(text.clone()));
                format!("({lhs} {} {rhs})", comparator(*op))
            }
            _ => "FALSE".to_owned(),
        }
    }

    fn status(&mut self, op: Op, value: &Value) -> String {
        let Value::Text(name) = value else {
            return "FALSE".to_owned();
        };
        let statuses: Vec<MlflowStatus> = match op {
            Op::Eq | Op::Ne => MlflowStatus::parse(name).into_iter().collect(),
            Op::Like | Op::ILike => [
                MlflowStatus::Running,
                MlflowStatus::Scheduled,
                MlflowStatus::Finished,
                MlflowStatus::Failed,
                MlflowStatus::Killed,
            ]
            .into_iter()
            .filter(|s| like_matches(name, s.as_str(), op == Op::ILike))
            .collect(),
            _ => return "FALSE".to_owned(),
        };
        let names: Vec<String> = statuses
            .iter()
            .flat_map(|s| s.statuses())
            .map(|s| self.bind(Bind::Text(s.as_str().to_owned())))
            .collect();
        let inside = if names.is_empty() {
            "FALSE".to_owned()
        } else {
            format!("r.status IN ({})", names.join(", "))
        };
        if op == Op::Ne {
            format!("(NOT ({inside}))")
        } else {
            format!("({inside})")
        }
    }

    fn run_id(&mut self, op: Op, value: &Value) -> String {
        let ids: Vec<Uuid> = match value {
            Value::Text(t) => t.parse().ok().into_iter().collect(),
            Value::List(items) => items.iter().filter_map(|t| t.parse().ok()).collect(),
            _ => Vec::new(),
        };
        let names: Vec<String> = ids.into_iter().map(|u| self.bind(Bind::Uuid(u))).collect();
        let inside = if names.is_empty() {
            "FALSE".to_owned()
        } else {
            format!("r.uuid IN ({})", names.join(", "))
        };
        match op {
            Op::Ne | Op::NotIn => format!("(NOT ({inside}))"),
            Op::Eq | Op::In => format!("({inside})"),
            _ => "FALSE".to_owned(),
        }
    }

    fn order(&mut self, key: &OrderKey) -> String {
        let value = self.text_value(&key.entity);
        let direction = if key.ascending { "ASC" } else { "DESC" };
        // Missing values last in both directions, as MLflow orders them
        // (both databases take NULLS LAST; one evaluation per row).
        format!("{value} {direction} NULLS LAST")
    }
}

fn comparator(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "<>",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
        _ => "=",
    }
}

/// A SQL `LIKE` pattern as a SQLite `GLOB` pattern: `%` → `*`, `_` → `?`,
/// and GLOB's own special characters matched literally.
fn like_to_glob(pattern: &str) -> String {
    let mut glob = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '%' => glob.push('*'),
            '_' => glob.push('?'),
            '*' => glob.push_str("[*]"),
            '?' => glob.push_str("[?]"),
            '[' => glob.push_str("[[]"),
            other => glob.push(other),
        }
    }
    glob
}

/// Runs of projects `project_ids` in `view` matching every clause, in
/// `order` (then newest first), `limit` from `offset`.
pub async fn search_runs(
    db: &Db,
    project_ids: &[i64],
    view: ViewType,
    clauses: &[Clause],
    order: &[OrderKey],
    limit: u32,
    offset: u64,
) -> DbResult<Vec<RunRow>> {
    if project_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut compiler = Compiler {
        backend: db.backend(),
        binds: Vec::new(),
    };
    let projects: Vec<String> = project_ids
        .iter()
        .map(|id| compiler.bind(Bind::Number(*id as f64)))
        .collect();
    let mut conditions = vec![
        format!("r.project_id IN ({})", projects.join(", ")),
        view.condition("r."),
    ];
    conditions.extend(clauses.iter().map(|c| compiler.clause(c)));
    let mut order_by: Vec<String> = order.iter().map(|k| compiler.order(k)).collect();
    order_by.push("COALESCE(r.started_at, r.created_at) DESC, r.id DESC".to_owned());
    let limit_at = compiler.bind(Bind::Number(f64::from(limit)));
    let offset_at = compiler.bind(Bind::Number(offset as f64));
    let sql = format!(
        "{} WHERE {} ORDER BY {} LIMIT {limit_at} OFFSET {offset_at}",
        crate::runs::RUN_SELECT,
        conditions.join(" AND "),
        order_by.join(", ")
    );
    let binds = compiler.binds;
    let rows = with_pool!(db, |pool| {
        let mut query = sqlx::query(AssertSqlSafe(sql.clone()));
        for (i, value) in binds.iter().enumerate() {
            // Project ids, limit and offset are integers; the rest as typed.
            let is_integer = i < project_ids.len() || i + 2 >= binds.len();
            query = match value {
                Bind::Number(n) if is_integer => query.bind(*n as i64),
                Bind::Number(n) => query.bind(*n),
                Bind::Text(t) => query.bind(t.clone()),
                Bind::Time(t) => query.bind(*t),
                Bind::Uuid(u) => query.bind(*u),
            };
        }
        let rows = query.fetch_all(pool).await?;
        rows.iter()
            .map(crate::runs::decode_run)
            .collect::<DbResult<Vec<_>>>()?
    });
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_become_globs() {
        assert_eq!(like_to_glob("a%b_c*"), "a*b?c[*]");
    }
}
