//! Pagination bounds and sort expressions for lists.
//!
//! A sort expression is Polyaxon's: comma-separated fields, each optionally
//! prefixed with `-` for descending order (`-created_at, name`).

use crate::pql::Field;

/// Page size when the caller gives none.
pub const DEFAULT_LIMIT: u32 = 20;
/// Largest page a caller may ask for.
pub const MAX_LIMIT: u32 = 1000;

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// How many items to return.
    pub limit: u32,
    /// How many items to skip.
    pub offset: u64,
}

/// A refused page request or sort expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListingError {
    #[error("limit must be between 1 and {MAX_LIMIT}, got {0}")]
    Limit(i64),
    #[error("offset must not be negative, got {0}")]
    Offset(i64),
    #[error(
        "cannot sort by `{field}`; sort by status, kind, name, description, uuid, created_at, updated_at, started_at, finished_at, duration, wait_time, or a param, output or metric (`-metrics.loss`)"
    )]
    SortField { field: String },
    #[error("sort expression has an empty field")]
    EmptySortField,
}

impl Page {
    /// Validates a page request, filling in defaults.
    pub fn new(limit: Option<i64>, offset: Option<i64>) -> Result<Self, ListingError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(l) if (1..=i64::from(MAX_LIMIT)).contains(&l) => l as u32,
            Some(l) => return Err(ListingError::Limit(l)),
        };
        let offset = match offset {
            None => 0,
            Some(o) if o >= 0 => o as u64,
            Some(o) => return Err(ListingError::Offset(o)),
        };
        Ok(Self { limit, offset })
    }

    /// The offset of the next page, if `total` items leave one.
    pub fn next_offset(self, total: u64) -> Option<u64> {
        let next = self.offset + u64::from(self.limit);
        (next < total).then_some(next)
    }

    /// The offset of the previous page, if this is not the first.
    pub fn previous_offset(self) -> Option<u64> {
        (self.offset > 0).then(|| self.offset.saturating_sub(u64::from(self.limit)))
    }
}

/// One key of a sort expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// What to order by: a run column, or a param / output / metric.
    pub field: Field,
    /// Largest first.
    pub descending: bool,
}

/// A parsed sort expression; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSort(pub Vec<SortKey>);

impl Default for RunSort {
    /// Newest first, as Polyaxon lists runs.
    fn default() -> Self {
        Self(vec![SortKey {
            field: Field::CreatedAt,
            descending: true,
        }])
    }
}

impl RunSort {
    /// Parses `-metrics.loss, created_at`. Fields are the query language's
    /// (except `tags`); params, outputs and metrics sort by their numeric
    /// value, runs without one last. Blank is the default.
    pub fn parse(expression: Option<&str>) -> Result<Self, ListingError> {
        let Some(expression) = expression.filter(|e| !e.trim().is_empty()) else {
            return Ok(Self::default());
        };
        let mut keys: Vec<SortKey> = Vec::new();
        for part in expression.split(',') {
            let part = part.trim();
            let (descending, name) = match part.strip_prefix('-') {
                Some(rest) => (true, rest.trim()),
                None => (false, part),
            };
            if name.is_empty() {
                return Err(ListingError::EmptySortField);
            }
            let field = Field::parse(name).map_err(|_| ListingError::SortField {
                field: name.to_owned(),
            })?;
            if field == Field::Tags {
                return Err(ListingError::SortField {
                    field: name.to_owned(),
                });
            }
            if !keys.iter().any(|k| k.field == field) {
                keys.push(SortKey { field, descending });
            }
        }
        Ok(Self(keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_default_and_validate() {
        assert_eq!(
            Page::new(None, None),
            Ok(Page {
                limit: 20,
                offset: 0
            })
        );
        assert_eq!(Page::new(Some(0), None), Err(ListingError::Limit(0)));
        assert_eq!(Page::new(Some(1001), None), Err(ListingError::Limit(1001)));
        assert_eq!(Page::new(None, Some(-1)), Err(ListingError::Offset(-1)));
    }

    #[test]
    fn next_and_previous_offsets() {
        let page = Page::new(Some(10), Some(10)).unwrap();
        assert_eq!(page.next_offset(25), Some(20));
        assert_eq!(page.next_offset(20), None);
        assert_eq!(page.previous_offset(), Some(0));
        assert_eq!(
            Page::new(Some(10), Some(0)).unwrap().previous_offset(),
            None
        );
        assert_eq!(
            Page::new(Some(10), Some(5)).unwrap().previous_offset(),
            Some(0)
        );
    }

    #[test]
    fn sort_expressions_parse_with_directions() {
        let sort = RunSort::parse(Some("-created_at, name")).unwrap();
        assert_eq!(
            sort.0,
            vec![
                SortKey {
                    field: Field::CreatedAt,
                    descending: true
                },
                SortKey {
                    field: Field::Name,
                    descending: false
                },
            ]
        );
        assert_eq!(RunSort::parse(None).unwrap(), RunSort::default());
        assert_eq!(RunSort::parse(Some(" ")).unwrap(), RunSort::default());
    }

    #[test]
    fn unknown_sort_fields_are_named_in_the_error() {
        let err = RunSort::parse(Some("-created, name")).unwrap_err();
        assert_eq!(
            err,
            ListingError::SortField {
                field: "created".into()
            }
        );
        assert!(err.to_string().contains("created_at"));
        assert_eq!(
            RunSort::parse(Some("name,,")),
            Err(ListingError::EmptySortField)
        );
        assert!(RunSort::parse(Some("tags")).is_err());
    }

    #[test]
    fn metrics_and_params_are_sortable() {
        let sort = RunSort::parse(Some("-metrics.loss, params.lr")).unwrap();
        assert_eq!(
            sort.0,
            vec![
                SortKey {
                    field: Field::Metric("loss".into()),
                    descending: true
                },
                SortKey {
                    field: Field::Input("lr".into()),
                    descending: false
                },
            ]
        );
    }
}
