//! Owner and project names.
//!
//! Names appear in dashboard URLs (`/{owner}/{project}`) and API routes, so a
//! name must be URL-safe and must not shadow a path the server uses itself.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The owner used when Trellis runs without accounts (the embedded default).
pub const DEFAULT_OWNER: &str = "default";

/// Longest accepted name, in bytes (names are ASCII).
pub const MAX_NAME_LEN: usize = 64;

/// Path segments the server routes itself; an owner or project with one of
/// these names would be unreachable in the dashboard or the API.
pub const RESERVED_NAMES: &[&str] = &[
    "api",
    "streams",
    "services",
    "rewrite-services",
    "pkg",
    "healthz",
    "readyz",
    "metrics",
    "static",
    "assets",
    "favicon.ico",
    "projects",
    "queues",
    "runs",
    "settings",
    "admin",
    "login",
    "logout",
    "new",
];

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name must not be empty")]
    Empty,
    #[error("name `{name}` is longer than {MAX_NAME_LEN} characters")]
    TooLong { name: String },
    #[error(
        "name `{name}` may only contain lowercase letters, digits, `-` and `_`, and must start with a letter or digit"
    )]
    InvalidCharacters { name: String },
    #[error("name `{name}` is reserved by Trellis; choose another")]
    Reserved { name: String },
}

/// A validated owner or project name: `[a-z0-9][a-z0-9_-]*`, at most
/// [`MAX_NAME_LEN`] bytes, not reserved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    /// Validates `raw` as a name.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        if raw.is_empty() {
            return Err(NameError::Empty);
        }
        if raw.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong {
                name: raw.to_owned(),
            });
        }
        let mut chars = raw.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let rest_ok = raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !first_ok || !rest_ok {
            return Err(NameError::InvalidCharacters {
                name: raw.to_owned(),
            });
        }
        if RESERVED_NAMES.contains(&raw) {
            return Err(NameError::Reserved {
                name: raw.to_owned(),
            });
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Name> for String {
    fn from(value: Name) -> Self {
        value.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest accepted description, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 10_000;
/// Most tags on one entity.
pub const MAX_TAGS: usize = 64;
/// Longest tag, in characters.
pub const MAX_TAG_LEN: usize = 128;

/// Why a description or a tag list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("description is longer than {MAX_DESCRIPTION_LEN} characters")]
    DescriptionTooLong,
    #[error("run name must be one non-blank line of at most {MAX_RUN_NAME_LEN} characters")]
    InvalidRunName,
    #[error("at most {MAX_TAGS} tags are allowed")]
    TooManyTags,
    #[error(
        "tag `{tag}` is empty, longer than {MAX_TAG_LEN} characters, or contains a comma or a control character"
    )]
    InvalidTag { tag: String },
}

/// Longest accepted run name, in characters.
pub const MAX_RUN_NAME_LEN: usize = 128;

/// Checks a run's display name: free text, but one line and not blank.
pub fn check_run_name(name: &str) -> Result<(), TextError> {
    if name.trim().is_empty()
        || name.chars().count() > MAX_RUN_NAME_LEN
        || name.chars().any(char::is_control)
    {
        return Err(TextError::InvalidRunName);
    }
    Ok(())
}

/// Checks a free-text description.
pub fn check_description(description: &str) -> Result<(), TextError> {
    if description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(TextError::DescriptionTooLong);
    }
    Ok(())
}

/// Normalises a tag list: trims each tag, drops duplicates keeping the first
/// occurrence, and refuses empty or malformed tags. Commas are refused because
/// the query language uses them to separate terms.
pub fn normalize_tags(tags: &[String]) -> Result<Vec<String>, TextError> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = tag.trim();
        if tag.is_empty()
            || tag.chars().count() > MAX_TAG_LEN
            || tag.chars().any(|c| c == ',' || c.is_control())
        {
            return Err(TextError::InvalidTag {
                tag: tag.to_owned(),
            });
        }
        if !out.iter().any(|t| t == tag) {
            out.push(tag.to_owned());
        }
    }
    if out.len() > MAX_TAGS {
        return Err(TextError::TooManyTags);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_names_are_accepted() {
        for ok in [
            "mnist",
            "a",
            "my-project_2",
            "0day",
            &"x".repeat(MAX_NAME_LEN),
        ] {
            assert_eq!(Name::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn malformed_names_are_refused_with_the_reason() {
        assert_eq!(Name::parse(""), Err(NameError::Empty));
        assert!(matches!(
            Name::parse(&"x".repeat(65)),
            Err(NameError::TooLong { .. })
        ));
        for bad in [
            "-lead", "_lead", "Upper", "sp ace", "dot.ted", "..", "a/b", "é",
        ] {
            assert!(
                matches!(Name::parse(bad), Err(NameError::InvalidCharacters { .. })),
                "{bad} should be refused"
            );
        }
    }

    #[test]
    fn names_the_server_routes_are_reserved() {
        for reserved in ["api", "streams", "services", "pkg", "healthz"] {
            assert_eq!(
                Name::parse(reserved),
                Err(NameError::Reserved {
                    name: reserved.into()
                })
            );
        }
    }

    #[test]
    fn run_names_are_free_text_on_one_line() {
        assert!(check_run_name("ResNet 50, lr=0.1").is_ok());
        assert_eq!(check_run_name(" "), Err(TextError::InvalidRunName));
        assert_eq!(check_run_name("a\nb"), Err(TextError::InvalidRunName));
        assert_eq!(
            check_run_name(&"x".repeat(129)),
            Err(TextError::InvalidRunName)
        );
    }

    #[test]
    fn tags_are_trimmed_and_deduplicated() {
        let tags = vec![" a ".to_owned(), "b".to_owned(), "a".to_owned()];
        assert_eq!(normalize_tags(&tags).unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn tags_with_commas_or_empty_are_refused() {
        assert!(normalize_tags(&["a,b".to_owned()]).is_err());
        assert!(normalize_tags(&["  ".to_owned()]).is_err());
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| i.to_string()).collect();
        assert_eq!(normalize_tags(&many), Err(TextError::TooManyTags));
    }
}
