//! Typed configuration errors. Every error names the field it is about, so an operator reading
//! `ikkuna check-config` output knows exactly which line to fix.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with the configuration. Values of secrets are never part of an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file itself could not be read.
    #[error("{path}: cannot read configuration file: {reason}")]
    Read {
        /// The configuration file.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// The file is not valid TOML.
    #[error("syntax: {message}")]
    Syntax {
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// A top-level table that Ikkuna does not know (a typo is an error, not silently ignored).
    #[error("{section}: unknown section")]
    UnknownSection {
        /// The unknown table name.
        section: String,
    },
    /// A section holds an unknown key or a value of the wrong type.
    #[error("{section}: {message}")]
    Section {
        /// The section (`server`, `dvv`, ...).
        section: &'static str,
        /// The parser's message, naming the key, with line and column.
        message: String,
    },
    /// An `IKKUNA_<SECTION>_<KEY>` environment variable holds a value of the wrong shape.
    #[error("{field}: environment variable {var} {reason}")]
    Env {
        /// The overridden field.
        field: &'static str,
        /// The environment variable's name (never its value).
        var: String,
        /// Why its value was refused.
        reason: String,
    },
    /// An `IKKUNA_…` environment variable that names no configuration key (a typo is an error,
    /// never silently ignored). Only its name is reported, never its value.
    #[error("environment variable {var} is not a configuration key{}", suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownEnv {
        /// The variable's name.
        var: String,
        /// The known variable it is probably a typo of.
        suggestion: Option<String>,
    },
    /// A required field has no value in the file nor in the environment.
    #[error("{field}: is required")]
    Missing {
        /// The missing field.
        field: &'static str,
    },
    /// A field's value is out of range or malformed.
    #[error("{field}: {reason}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A file named by a field is missing, unreadable, or does not hold what it should.
    #[error("{field}: {path}: {reason}")]
    File {
        /// The field naming the file.
        field: &'static str,
        /// The file (or directory).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    /// The field (`section.key`), section or file this error is about, for tests and tooling.
    pub fn field(&self) -> &str {
        match self {
            Self::Read { .. } | Self::Syntax { .. } => "",
            Self::UnknownEnv { var, .. } => var,
            Self::UnknownSection { section } => section,
            Self::Section { section, .. } => section,
            Self::Env { field, .. }
            | Self::Missing { field }
            | Self::Invalid { field, .. }
            | Self::File { field, .. } => field,
        }
    }
}

/// Every error found in one configuration, so that all of them can be fixed in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The individual errors, in the order they were found.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// Whether some error is about `field` (`section.key`).
    pub fn names(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field() == field)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        writeln!(
            f,
            "{count} configuration error{}:",
            if count == 1 { "" } else { "s" }
        )?;
        for error in &self.0 {
            writeln!(f, "  {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<Vec<ConfigError>> for ConfigErrors {
    fn from(errors: Vec<ConfigError>) -> Self {
        Self(errors)
    }
}
