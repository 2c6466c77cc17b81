//! A project's runs table, the run page with its tabs, metric charts and
//! the Compare view.

pub mod api;
pub mod charts;
pub mod compare;
pub mod pages;
pub mod table;
pub mod tracking;
