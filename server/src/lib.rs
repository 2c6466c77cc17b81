//! The Trellis server: configuration, routing and wiring.
//!
//! `main.rs` only dispatches. [`cli`] defines the command line and turns it
//! into [`config::Settings`]; [`startup`] connects the database, builds the
//! [`startup::router`] (REST API, dashboard, health) and serves it until a
//! shutdown signal; [`api`] holds the thin REST handlers, [`mlflow`] the
//! MLflow tracking API, and [`streams`] the WebSocket streams, and [`proxy`] relays workspaces'
//! traffic to the services runs serve.

pub mod api;
pub mod cli;
pub mod config;
pub mod mlflow;
pub mod proxy;
pub mod roles;
pub mod startup;
pub mod streams;
pub mod telemetry;
