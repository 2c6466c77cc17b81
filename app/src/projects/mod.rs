//! Projects: the list and the create form.

pub mod api;
pub mod pages;
