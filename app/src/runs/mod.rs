//! A project's runs table, and the run page with its tabs.

pub mod api;
pub mod pages;
pub mod tracking;
