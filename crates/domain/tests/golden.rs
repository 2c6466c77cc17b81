//! Golden tests. The query language: every line of `tests/pql/queries.txt`
//! parses to the tree (or error) reviewed in `tests/pql/queries.snap`.
//! Polyaxonfiles, over `tests/specs`: every file in `valid/` compiles to its
//! reviewed snapshot (`<name>.snap.json`), every file in `invalid/` fails
//! with the path and words its header declares (`# error-path:`,
//! `# error-contains:`) and matches its reviewed error snapshot
//! (`<name>.snap.txt`). Run with `TRELLIS_UPDATE_SNAPSHOTS=1` to write
//! missing or changed snapshots, then review the diff.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use trellis_domain::spec::{Globals, Resolver, compile};

struct Files(PathBuf);

impl Resolver for Files {
    fn read(&self, path: &str) -> Result<String, String> {
        if path.contains("..") || path.starts_with('/') {
            return Err(format!(
                "`{path}` must be a relative path inside the project"
            ));
        }
        std::fs::read_to_string(self.0.join(path)).map_err(|e| format!("cannot read `{path}`: {e}"))
    }
}

fn specs(folder: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/specs")
        .join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .filter(|p| !p.to_string_lossy().contains(".snap."))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no specs in {}", dir.display());
    files
}

/// Compares `actual` with the snapshot at `path`, or writes it.
fn snapshot(path: &Path, actual: &str, failures: &mut Vec<String>) {
    let update = std::env::var_os("TRELLIS_UPDATE_SNAPSHOTS").is_some();
    match std::fs::read_to_string(path) {
        Ok(expected) if expected == actual => {}
        Ok(_) | Err(_) if update => std::fs::write(path, actual).unwrap(),
        Ok(expected) => failures.push(format!(
            "{}: snapshot differs\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        )),
        Err(_) => failures.push(format!(
            "{}: no snapshot (run with TRELLIS_UPDATE_SNAPSHOTS=1 and review)",
            path.display()
        )),
    }
}

fn compile_file(
    path: &Path,
) -> Result<trellis_domain::spec::CompiledRun, trellis_domain::spec::SpecError> {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    let resolver = Files(path.parent().unwrap().to_path_buf());
    compile(
        &text,
        Some(name),
        &resolver,
        &BTreeMap::new(),
        &Globals::default(),
    )
}

#[test]
fn queries_parse_to_their_snapshot() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pql");
    let queries = std::fs::read_to_string(dir.join("queries.txt")).unwrap();
    let mut rendered = String::new();
    for query in queries
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let result = match trellis_domain::pql::Query::parse(query) {
            Ok(parsed) => format!("{parsed:?}"),
            Err(error) => format!("error: {error}"),
        };
        rendered.push_str(&format!("{query}\n  => {result}\n"));
    }
    let mut failures = Vec::new();
    snapshot(&dir.join("queries.snap"), &rendered, &mut failures);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn valid_polyaxonfiles_compile_to_their_snapshots() {
    let mut failures = Vec::new();
    for path in specs("valid") {
        match compile_file(&path) {
            Ok(compiled) => {
                let json = serde_json::to_string_pretty(&compiled).unwrap() + "\n";
                snapshot(&path.with_extension("snap.json"), &json, &mut failures);
            }
            Err(error) => {
                failures.push(format!("{}: should compile, got: {error}", path.display()))
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn invalid_polyaxonfiles_fail_where_their_headers_say() {
    let mut failures = Vec::new();
    for path in specs("invalid") {
        let text = std::fs::read_to_string(&path).unwrap();
        let header = |key: &str| -> Vec<String> {
            text.lines()
                .filter_map(|line| line.trim().strip_prefix('#').map(str::trim))
                .filter_map(|line| line.strip_prefix(key).map(|v| v.trim().to_owned()))
                .collect()
        };
        match compile_file(&path) {
            Ok(_) => failures.push(format!("{}: should fail, but compiled", path.display())),
            Err(error) => {
                let rendered = error.to_string();
                for expected in header("error-path:") {
                    if error.path != expected {
                        failures.push(format!(
                            "{}: error path `{}`, expected `{expected}` ({rendered})",
                            path.display(),
                            error.path
                        ));
                    }
                }
                for needle in header("error-contains:") {
                    if !rendered.to_lowercase().contains(&needle.to_lowercase()) {
                        failures.push(format!(
                            "{}: error `{rendered}` lacks `{needle}`",
                            path.display()
                        ));
                    }
                }
                if error.line.is_none() && !error.path.is_empty() {
                    failures.push(format!("{}: error has no line: {rendered}", path.display()));
                }
                snapshot(
                    &path.with_extension("snap.txt"),
                    &(rendered + "\n"),
                    &mut failures,
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn any_text_gives_a_result_not_a_panic(text in "\\PC{0,200}") {
            let _ = compile(&text, None, &Files(PathBuf::from("/nonexistent")), &BTreeMap::new(), &Globals::default());
        }

        #[test]
        fn polyaxonfile_shaped_text_gives_a_result_not_a_panic(
            lines in proptest::collection::vec(
                "( {0,6})(version: 1.1|kind: (component|operation|job|dag)|run:|container:|image: x|inputs:|- name: [a-z]{1,3}|type: (int|float|str)|value: [0-9a-z.]{0,4}|params:|[a-z]{1,4}:|matrix:|operations:|dependencies: \\[[a-z]\\]|command: \\[\"\\{\\{ [a-z]{1,3} \\}\\}\"\\])",
                0..20,
            )
        ) {
            let text = lines.join("\n");
            let _ = compile(&text, None, &Files(PathBuf::from("/nonexistent")), &BTreeMap::new(), &Globals::default());
        }
    }
}
