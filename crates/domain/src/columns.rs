//! The columns of a runs table, as a shareable URL keeps them:
//! `columns=kind,created_at,params.lr,metrics.loss,metrics.loss:min,tags`.
//!
//! Status and name are always shown; these are the others. A metric column
//! shows the latest value, or the minimum or maximum with `:min` / `:max`.

use std::fmt;

/// Which value of a metric a column shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Agg {
    Last,
    Min,
    Max,
}

/// One optional column of the runs table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Column {
    Kind,
    CreatedAt,
    StartedAt,
    FinishedAt,
    Duration,
    WaitTime,
    Tags,
    Param(String),
    Output(String),
    Metric(String, Agg),
}

/// Why a `columns` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown column `{0}`: use kind, created_at, started_at, finished_at, duration, wait_time, tags, params.NAME, outputs.NAME or metrics.NAME[:min|:max]"
)]
pub struct ColumnError(pub String);

/// Columns shown when the URL names none.
pub const DEFAULT_COLUMNS: [Column; 3] = [Column::Kind, Column::CreatedAt, Column::Duration];

impl Column {
    /// Parses one column name.
    pub fn parse(text: &str) -> Result<Self, ColumnError> {
        let text = text.trim();
        let refuse = || ColumnError(text.to_owned());
        Ok(match text {
            "kind" => Column::Kind,
            "created_at" => Column::CreatedAt,
            "started_at" => Column::StartedAt,
            "finished_at" => Column::FinishedAt,
            "duration" => Column::Duration,
            "wait_time" => Column::WaitTime,
            "tags" => Column::Tags,
            _ => {
                let (prefix, key) = text.split_once('.').ok_or_else(refuse)?;
                if key.is_empty() {
                    return Err(refuse());
                }
                match prefix {
                    "params" => Column::Param(key.to_owned()),
                    "outputs" => Column::Output(key.to_owned()),
                    "metrics" => match key.rsplit_once(':') {
                        Some((key, "min")) if !key.is_empty() => {
                            Column::Metric(key.to_owned(), Agg::Min)
                        }
                        Some((key, "max")) if !key.is_empty() => {
                            Column::Metric(key.to_owned(), Agg::Max)
                        }
                        Some(_) => return Err(refuse()),
                        None => Column::Metric(key.to_owned(), Agg::Last),
                    },
                    _ => return Err(refuse()),
                }
            }
        })
    }

    /// Parses a comma-separated list; empty parts are skipped, repeats kept
    /// once. `None` or an empty list gives [`DEFAULT_COLUMNS`].
    pub fn parse_list(text: Option<&str>) -> Result<Vec<Self>, ColumnError> {
        let mut out: Vec<Column> = Vec::new();
        for part in text.unwrap_or_default().split(',') {
            if part.trim().is_empty() {
                continue;
            }
            let column = Column::parse(part)?;
            if !out.contains(&column) {
                out.push(column);
            }
        }
        if out.is_empty() {
            out = DEFAULT_COLUMNS.to_vec();
        }
        Ok(out)
    }

    /// The sort field that orders by this column, where the listing can
    /// sort by it (a metric's latest value, not its min or max; not tags).
    pub fn sort_field(&self) -> Option<String> {
        Some(match self {
            Column::Kind => "kind".into(),
            Column::CreatedAt => "created_at".into(),
            Column::StartedAt => "started_at".into(),
            Column::FinishedAt => "finished_at".into(),
            Column::Duration => "duration".into(),
            Column::WaitTime => "wait_time".into(),
            Column::Param(k) => format!("params.{k}"),
            Column::Output(k) => format!("outputs.{k}"),
            Column::Metric(k, Agg::Last) => format!("metrics.{k}"),
            Column::Tags | Column::Metric(_, _) => return None,
        })
    }

    /// The header text.
    pub fn label(&self) -> String {
        match self {
            Column::Kind => "Kind".into(),
            Column::CreatedAt => "Created".into(),
            Column::StartedAt => "Started".into(),
            Column::FinishedAt => "Finished".into(),
            Column::Duration => "Duration".into(),
            Column::WaitTime => "Wait".into(),
            Column::Tags => "Tags".into(),
            Column::Param(k) => k.clone(),
            Column::Output(k) => k.clone(),
            Column::Metric(k, Agg::Last) => k.clone(),
            Column::Metric(k, Agg::Min) => format!("{k} (min)"),
            Column::Metric(k, Agg::Max) => format!("{k} (max)"),
        }
    }
}

impl fmt::Display for Column {
    /// The name the URL uses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Column::Param(k) => write!(f, "params.{k}"),
            Column::Output(k) => write!(f, "outputs.{k}"),
            Column::Metric(k, Agg::Last) => write!(f, "metrics.{k}"),
            Column::Metric(k, Agg::Min) => write!(f, "metrics.{k}:min"),
            Column::Metric(k, Agg::Max) => write!(f, "metrics.{k}:max"),
            Column::Tags => f.write_str("tags"),
            other => f.write_str(other.sort_field().as_deref().unwrap_or_default()),
        }
    }
}

/// The comma-separated form of `columns`, for the URL.
pub fn to_param(columns: &[Column]) -> String {
    columns
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip_through_the_url() {
        let text = "kind,params.lr,metrics.loss,metrics.loss:min,metrics.acc:max,outputs.f1,tags,wait_time";
        let columns = Column::parse_list(Some(text)).unwrap();
        assert_eq!(columns.len(), 8);
        assert_eq!(columns[3], Column::Metric("loss".into(), Agg::Min));
        assert_eq!(to_param(&columns), text);
    }

    #[test]
    fn defaults_repeats_and_refusals() {
        assert_eq!(Column::parse_list(None).unwrap(), DEFAULT_COLUMNS.to_vec());
        assert_eq!(
            Column::parse_list(Some(" , ")).unwrap(),
            DEFAULT_COLUMNS.to_vec()
        );
        assert_eq!(
            Column::parse_list(Some("kind,kind")).unwrap(),
            vec![Column::Kind]
        );
        for bad in [
            "nope",
            "params.",
            "metrics.loss:median",
            "metrics.:min",
            "foo.bar",
        ] {
            let error = Column::parse_list(Some(bad)).unwrap_err();
            assert!(error.to_string().contains(bad.trim()), "{error}");
        }
    }

    #[test]
    fn only_listable_values_sort() {
        assert_eq!(
            Column::Metric("loss".into(), Agg::Last)
                .sort_field()
                .as_deref(),
            Some("metrics.loss")
        );
        assert_eq!(Column::Metric("loss".into(), Agg::Min).sort_field(), None);
        assert_eq!(Column::Tags.sort_field(), None);
        assert_eq!(
            Column::Param("lr".into()).sort_field().as_deref(),
            Some("params.lr")
        );
    }
}
