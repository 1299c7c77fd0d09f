//! weir-config: the configuration file, loaded raw and validated into types
//! the runtime trusts.
//!
//! Two stages (house rule 5): [`raw`] mirrors the TOML file with serde
//! (`deny_unknown_fields`; its doc comments are the configuration
//! reference), then [`validate`] turns it into a [`Config`] in one pure step
//! that collects *every* error with its field path. `weir check` runs
//! exactly this. Syntax errors carry line and column. This crate sits before
//! the data path; it uses weir-common's vocabulary (algorithms, hash keys,
//! probes) and nothing else of ours.

#![forbid(unsafe_code)]

pub mod duration;
pub mod model;
pub mod raw;
pub mod validate;

use std::path::Path;

pub use model::{BackendConfig, Config, Listener, Pool, Protocol, Runtime};
pub use validate::{FieldError, Validated};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown or mistyped keys.
    #[error("{0}")]
    Syntax(String),
    /// The TOML parsed but its values are wrong.
    #[error("{} error(s):\n{}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FieldError>),
}

impl LoadError {
    /// Every error as one line each, for printing.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Self::Invalid(errors) => errors.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }
}

/// Parses and validates configuration text. `origin` names it in messages.
pub fn parse(text: &str, origin: &str) -> Result<Validated, LoadError> {
    let raw: raw::RawConfig =
        toml::from_str(text).map_err(|e| LoadError::Syntax(syntax_message(text, origin, &e)))?;
    validate::validate(&raw).map_err(LoadError::Invalid)
}

/// Reads, parses and validates the file at `path`.
pub fn load(path: &Path) -> Result<Validated, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

fn syntax_message(text: &str, origin: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim_end();
    match err.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before
                .rfind('\n')
                .map_or(before.len(), |nl| before.len() - nl - 1)
                + 1;
            format!("{origin}:{line}:{column}: {message}")
        }
        None => format!("{origin}: {message}"),
    }
}
