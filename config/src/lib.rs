//! weir-config: the configuration file, loaded raw and validated into types
//! the runtime trusts.
//!
//! Two stages (house rule 5): [`raw`] mirrors the TOML file with serde
//! (`deny_unknown_fields`; its doc comments are the configuration
//! reference), then [`validate`] turns it into a [`Config`] in one pure step
//! that collects *every* error with its field path. `weir check` runs
//! exactly this. Syntax errors carry line, column and, where the parser's
//! span can be placed in the document, the field path. This crate sits before
//! the data path; it uses weir-common's vocabulary (algorithms, hash keys,
//! probes) and nothing else of ours.

#![forbid(unsafe_code)]

pub mod auth;
pub mod duration;
pub mod http;
pub mod model;
pub mod rate_limit;
pub mod raw;
pub mod tls;
pub mod upstream_tls;
pub mod validate;

mod locate;

use std::path::Path;

pub use model::{BackendConfig, Config, Listener, Pool, Protocol, Runtime, UdpOptions};
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
/// Relative file paths in it (TLS certificates) are relative to the current
/// directory.
pub fn parse(text: &str, origin: &str) -> Result<Validated, LoadError> {
    parse_in(text, origin, Path::new(""))
}

/// Like [`parse`], with relative file paths resolved against `dir`.
pub fn parse_in(text: &str, origin: &str, dir: &Path) -> Result<Validated, LoadError> {
    let raw: raw::RawConfig =
        toml::from_str(text).map_err(|e| LoadError::Syntax(syntax_message(text, origin, &e)))?;
    validate::validate_in(&raw, dir).map_err(LoadError::Invalid)
}

/// Reads, parses and validates the file at `path`. Relative file paths in it
/// are relative to the file's directory, wherever weir is started from.
pub fn load(path: &Path) -> Result<Validated, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let dir = path.parent().unwrap_or(Path::new(""));
    parse_in(&text, &path.display().to_string(), dir)
}

/// `origin:line:column: path: message`; the path (`listeners[0].colour`)
/// when the error can be placed in the document, the column in characters.
fn syntax_message(text: &str, origin: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim_end();
    let Some(span) = err.span() else {
        return format!("{origin}: {message}");
    };
    let mut start = span.start.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    // Editors show neither a byte-order mark nor count it as a column.
    let line_start = before.rfind('\n').map_or(
        if before.starts_with('\u{feff}') {
            '\u{feff}'.len_utf8()
        } else {
            0
        },
        |nl| nl + 1,
    );
    let column = before.get(line_start..).map_or(0, |l| l.chars().count()) + 1;
    match locate::path_of(text, &span) {
        Some(path) => format!("{origin}:{line}:{column}: {path}: {message}"),
        None if message == "duplicate key" => {
            // The parser does not say which key; the span does.
            let key = text.get(span.clone()).unwrap_or_default();
            format!("{origin}:{line}:{column}: duplicate key {key:?}")
        }
        None => format!("{origin}:{line}:{column}: {message}"),
    }
}
