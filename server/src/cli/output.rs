//! Tables and details for people. Scripts use `-o json` instead.

use serde_json::Value;

/// Left-aligned columns separated by two spaces.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut text = line(headers.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        text.push_str(&line(row.clone()));
    }
    text
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) if s.is_empty() => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// `2026-11-26T21:40:05.123Z` as `2026-11-26 21:40:05`.
fn time(value: &Value) -> String {
    match value.as_str() {
        Some(t) if t.len() >= 19 => t[..19].replace('T', " "),
        _ => "-".to_owned(),
    }
}

fn seconds(value: &Value) -> String {
    match value.as_f64() {
        Some(s) if s < 60.0 => format!("{s:.1}s"),
        Some(s) => format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64),
        None => "-".to_owned(),
    }
}

fn footer(page: &Value, shown: usize) -> String {
    let count = page["count"].as_u64().unwrap_or(0);
    if count as usize > shown {
        format!("{shown} of {count} shown; use --limit and --offset for more\n")
    } else {
        String::new()
    }
}

/// `trellis projects ls`.
pub fn projects_table(results: &Value, page: &Value) -> String {
    let rows: Vec<Vec<String>> = results
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|p| {
            vec![
                format!("{}/{}", text(&p["owner"]), text(&p["name"])),
                text(&p["description"]),
                text(&p["tags"]),
                time(&p["updated_at"]),
            ]
        })
        .collect();
    format!(
        "{}{}",
        table(&["PROJECT", "DESCRIPTION", "TAGS", "UPDATED"], &rows),
        footer(page, rows.len())
    )
}

/// `trellis ops ls`.
pub fn runs_table(results: &Value, page: &Value) -> String {
    let rows: Vec<Vec<String>> = results
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            vec![
                text(&r["uuid"]),
                text(&r["name"]),
                text(&r["status"]),
                text(&r["kind"]),
                time(&r["created_at"]),
                seconds(&r["duration"]),
            ]
        })
        .collect();
    format!(
        "{}{}",
        table(
            &["UUID", "NAME", "STATUS", "KIND", "CREATED", "DURATION"],
            &rows
        ),
        footer(page, rows.len())
    )
}

/// `trellis ops statuses`.
pub fn statuses_table(statuses: &Value) -> String {
    let rows: Vec<Vec<String>> = statuses["status_conditions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|c| {
            vec![
                text(&c["type"]),
                time(&c["last_transition_time"]),
                text(&c["reason"]),
                text(&c["message"]),
            ]
        })
        .collect();
    table(&["STATUS", "TIME", "REASON", "MESSAGE"], &rows)
}

/// One object as `key: value` lines (multi-line values indented below).
pub fn details(object: &Value) -> String {
    let Some(map) = object.as_object() else {
        return format!("{object}\n");
    };
    let width = map.keys().map(String::len).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in map {
        let rendered = match value {
            Value::Object(inner) if inner.is_empty() => "-".to_owned(),
            Value::Object(_) => value.to_string(),
            other => text(other),
        };
        if rendered.contains('\n') {
            out.push_str(&format!("{key}:\n"));
            for line in rendered.lines() {
                out.push_str(&format!("  {line}\n"));
            }
        } else {
            out.push_str(&format!("{key:<width$}  {rendered}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tables_align_columns() {
        let text = table(&["A", "LONG"], &[vec!["xxxx".into(), "y".into()]]);
        assert_eq!(text, "A     LONG\nxxxx  y\n");
    }

    #[test]
    fn runs_tables_show_times_and_durations_readably() {
        let page = json!({ "count": 2, "results": [
            { "uuid": "u1", "name": "a", "status": "running", "kind": null, "created_at": "2026-11-26T21:40:05.123Z", "duration": 75.0 }
        ]});
        let text = runs_table(&page["results"], &page);
        assert!(text.contains("2026-11-26 21:40:05"), "{text}");
        assert!(text.contains("1m15s"), "{text}");
        assert!(text.contains("1 of 2 shown"), "{text}");
    }
}
