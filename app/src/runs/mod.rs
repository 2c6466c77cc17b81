//! A project's runs table, the run page with its tabs, metric charts and
//! the Compare view.

pub mod api;
pub mod charts;
pub mod compare;
pub mod pages;
pub mod pipeline;
pub mod table;
pub mod tracking;
pub mod workspaces;

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

/// A path parameter of the current route (`owner`, `project`, `uuid`), as
/// a reactive getter.
pub(crate) fn param(name: &'static str) -> impl Fn() -> String + Copy + Send + Sync + 'static {
    let params = use_params_map();
    move || params.read().get(name).unwrap_or_default()
}
