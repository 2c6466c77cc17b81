//! Pure Trellis decisions.
//!
//! This crate never does IO: no clock, no database, no network. Callers pass
//! `now` and data in; functions return decisions. It builds for
//! `wasm32-unknown-unknown` so the dashboard can run the same rules.
//!
//! Layout:
//! - [`name`]: validated owner and project names, and the reserved words.
//! - [`lifecycle`]: [`lifecycle::RunStatus`], the one transition function and
//!   the timing fields (`started_at`, `finished_at`, `wait_time`, `duration`)
//!   that follow from transitions.
//! - [`run`]: run identifiers and kinds.
//! - [`logs`]: log lines and how processes end.
//! - [`listing`]: pagination bounds and the sort expressions of run lists.
//! - [`pql`]: the Polyaxon query language: parser and in-memory evaluation.
//! - [`spec`]: the Polyaxonfile v1.1 spec: parse, check, compile.
//! - [`dag`]: which operations of a DAG run start, skip or fail upstream.
//! - [`sweep`]: matrix search spaces and the optimizers' decisions.
//! - [`scheduling`]: which waiting runs start next (queues, priorities, limits).
//! - [`tracking`]: metric, param and tag rules, artifact paths, downsampling.
//! - [`mlflow`]: MLflow's search syntax and statuses, mapped onto Trellis.

pub mod columns;
pub mod dag;
pub mod execution;
pub mod lifecycle;
pub mod listing;
pub mod logs;
pub mod mlflow;
pub mod name;
pub mod pql;
pub mod proxy;
pub mod run;
pub mod scheduling;
pub mod series;
pub mod spec;
pub mod sweep;
pub mod tracking;
