use chrono::TimeZone;
use serde_json::json;

use super::*;

fn run() -> RunFacts {
    let created = Utc.with_ymd_and_hms(2024, 3, 10, 12, 0, 0).unwrap();
    RunFacts {
        uuid: uuid::Uuid::parse_str("8c6d7a2e2f1b4c1e9d3a0c9a1b2c3d4e").unwrap(),
        status: RunStatus::Succeeded,
        kind: Some(RunKind::Job),
        name: Some("mnist-sweep-3".into()),
        description: "".into(),
        tags: vec!["vision".into(), "baseline".into()],
        created_at: created,
        updated_at: created,
        started_at: Some(created + Duration::seconds(10)),
        finished_at: Some(created + Duration::seconds(70)),
        duration: Some(60.0),
        wait_time: Some(10.0),
        inputs: json!({ "lr": 0.01, "optimizer": "adam", "layers": 3, "augment": true })
            .as_object()
            .unwrap()
            .clone(),
        outputs: json!({ "path": "/out/model.bin" })
            .as_object()
            .unwrap()
            .clone(),
        metrics: [("loss".to_owned(), 0.15), ("accuracy".to_owned(), 0.97)]
            .into_iter()
            .collect(),
    }
}

fn matches(query: &str) -> bool {
    Query::parse(query).unwrap().unwrap().matches(&run())
}

fn error(query: &str) -> String {
    Query::parse(query).unwrap_err().message
}

#[test]
fn blank_queries_filter_nothing() {
    assert_eq!(Query::parse("  "), Ok(None));
}

#[test]
fn statuses_match_one_of_several_values() {
    assert!(matches("status:succeeded"));
    assert!(matches("status:running|succeeded"));
    assert!(!matches("status:running|failed"));
    assert!(matches("status:~running"));
    assert!(!matches("status:~succeeded"));
}

#[test]
fn and_binds_tighter_than_or() {
    assert!(matches("status:running, name:x OR kind:job"));
    assert!(!matches("status:running, (name:x OR kind:job)"));
    assert!(matches(
        "(metrics.loss:<0.1 OR metrics.accuracy:>0.95) AND status:succeeded"
    ));
    assert!(!matches(
        "(metrics.loss:<0.1 OR metrics.accuracy:>0.99) AND status:succeeded"
    ));
}

#[test]
fn patterns_match_anywhere_start_or_end_ignoring_case() {
    assert!(matches("name:%SWEEP%"));
    assert!(matches("name:mnist%"));
    assert!(matches("name:%-3"));
    assert!(!matches("name:sweep%"));
    assert!(matches("name:~%resnet%"));
}

#[test]
fn numbers_compare_and_range_inclusively() {
    assert!(matches("params.lr:>=0.01"));
    assert!(!matches("params.lr:>0.01"));
    assert!(matches("inputs.layers:1 .. 3"));
    assert!(matches("in.layers:3"));
    assert!(matches("duration:<=60, wait_time:10"));
    assert!(matches("metrics.loss:0.1..0.2"));
    assert!(matches("out.path:%model%"));
    assert!(!matches("out.loss:0.1..0.2"));
}

#[test]
fn params_of_other_types_do_not_match_and_negation_includes_them() {
    assert!(!matches("params.optimizer:>1"));
    assert!(matches("params.optimizer:adam|sgd"));
    assert!(matches("params.augment:true"));
    assert!(!matches("params.missing:1"));
    assert!(matches("params.missing:~1"));
    assert!(matches("params.missing:nil"));
    assert!(!matches("params.lr:nil"));
}

#[test]
fn tags_match_membership() {
    assert!(matches("tags:vision"));
    assert!(matches("tags:nlp|baseline"));
    assert!(matches("tags:~debug"));
    assert!(!matches("tags:~vision"));
    assert!(!matches("tags:nil"));
}

#[test]
fn dates_cover_whole_days_and_times_are_exact() {
    assert!(matches("created_at:2024-03-10"));
    assert!(matches("created_at:2024-01-01 .. 2024-03-10"));
    assert!(!matches("created_at:2024-01-01 .. 2024-03-09"));
    assert!(matches("created_at:<=2024-03-10"));
    assert!(!matches("created_at:<2024-03-10"));
    assert!(!matches("created_at:>2024-03-10"));
    assert!(matches("created_at:>=2024-03-10"));
    assert!(matches("created_at:2024-03-10 12:00"));
    assert!(matches("created_at:2024-03-10T12:00:00Z"));
    assert!(!matches("created_at:2024-03-10 12:01"));
    assert!(matches("started_at:>2024-03-10 12:00"));
    assert!(matches("finished_at:~nil"));
}

#[test]
fn errors_name_the_problem() {
    assert!(
        error("stauts:running").contains("did you mean `status`"),
        "{}",
        error("stauts:running")
    );
    assert!(error("status:runing").contains("did you mean `running`"));
    assert!(error("name:<3").contains("cannot be compared"));
    assert!(error("duration:long").contains("`long` is not a number"));
    assert!(error("created_at:yesterday").contains("is not a date"));
    assert!(error("params.lr:>high").contains("compare numbers"));
    assert!(error("status:running,").contains("ends where"));
    assert!(error("(status:running").contains("missing `)`"));
    assert!(error("status:running)").contains("unexpected `)`"));
    assert!(error("running").contains("expected `field:value`"));
    assert!(error("name:a%b").contains("may only start or end"));
    assert!(error("params.:1").contains("needs a key"));
    assert!(error(&"(".repeat(40)).contains("nested deeper"));
    assert!(error(&"a".repeat(5000)).contains("longer than"));
}

#[test]
fn values_may_contain_spaces_and_keywords_inside_words() {
    assert!(matches("created_at:2024-03-10 12:00 AND status:succeeded"));
    let query = Query::parse("name:ORACLE run").unwrap().unwrap();
    let Query::Term(term) = query else {
        panic!("expected a term")
    };
    assert_eq!(
        term.condition,
        Condition::Eq(Scalar::Text("ORACLE run".into()))
    );
}

mod properties {
    use proptest::prelude::*;

    use super::super::*;

    proptest! {
        // Whatever the text, parsing returns a value or an error, never a
        // panic, and evaluating a parsed query never panics either.
        #[test]
        fn parsing_never_panics(text in "\\PC{0,80}") {
            if let Ok(Some(query)) = Query::parse(&text) {
                let _ = query.matches(&super::run());
            }
        }

        #[test]
        fn parsing_query_shaped_text_never_panics(
            parts in proptest::collection::vec(
                "(status|name|tags|params\\.lr|created_at|duration|\\(|\\)|,| OR | AND |~|<=|>|\\.\\.|\\||%|nil|:|[a-z0-9]{1,4}|2024-01-0[1-9]| )",
                0..16,
            )
        ) {
            let text: String = parts.concat();
            if let Ok(Some(query)) = Query::parse(&text) {
                let _ = query.matches(&super::run());
            }
        }
    }
}

#[test]
fn text_reads_as_a_number_only_in_json_number_grammar() {
    let table: &[(&str, Option<f64>)] = &[
        ("3", Some(3.0)),
        ("-3", Some(-3.0)),
        ("0", Some(0.0)),
        ("0.01", Some(0.01)),
        ("2.50", Some(2.5)),
        ("1e-05", Some(1e-5)),
        ("1E+10", Some(1e10)),
        ("1.2345678901234567e-05", Some(1.234_567_890_123_456_7e-5)),
        ("", None),
        ("-", None),
        ("01", None),
        ("+1", None),
        (".5", None),
        ("-.5", None),
        ("1.", None),
        (" 1", None),
        ("1 ", None),
        ("1e", None),
        ("1e400", None),
        ("1e-123", None),
        ("0x10", None),
        ("Infinity", None),
        ("NaN", None),
        ("1_000", None),
        ("١", None),
        (
            "1234567890123456789012345678901234567890",
            Some(1.234_567_890_123_456_8e39),
        ),
        ("12345678901234567890123456789012345678901", None),
    ];
    for (text, expected) in table {
        assert_eq!(numeric_text(text), *expected, "`{text}`");
    }
}

#[test]
fn params_logged_as_strings_compare_as_the_numbers_they_spell() {
    // What MLflow stores after `log_param("layers", 3)`, `log_param("lr", 0.01)`.
    let mut facts = run();
    facts.inputs = json!({ "layers": "3", "lr": "0.01", "name": "resnet", "big": "10" })
        .as_object()
        .unwrap()
        .clone();
    let holds = |q: &str| Query::parse(q).unwrap().unwrap().matches(&facts);
    assert!(holds("params.layers:3"));
    assert!(holds("params.layers:3.0"));
    assert!(holds("params.layers:2|3"));
    assert!(!holds("params.layers:4"));
    assert!(holds("params.lr:>0.001"));
    assert!(!holds("params.lr:>0.01"));
    assert!(holds("params.lr:0.001 .. 0.1"));
    // Numeric, not text order: "10" > "9".
    assert!(holds("params.big:>9"));
    // Text still matches as text.
    assert!(holds("params.name:resnet"));
    assert!(holds("params.layers:%3%"));
    assert!(!holds("params.name:>1"));
}
