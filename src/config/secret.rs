//! Secret material (private keys) read from files. It never prints itself: `Debug` shows
//! `<redacted>`, and there is no `Display`, so a key cannot reach a log line by accident.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The bytes of a secret, shared cheaply and never printed.
#[derive(Clone)]
pub struct Secret(Arc<[u8]>);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes.into())
    }

    /// The secret itself, for the one place that must use it (a TLS or signing key parser).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A secret named in the configuration by its file path. The file is read when the whole
/// configuration is loaded ([`super::load`]), so a missing key is a start-up error, not a failure
/// on the first request.
#[derive(Clone)]
pub struct SecretFile {
    path: PathBuf,
    material: Option<Secret>,
}

impl SecretFile {
    /// A secret not read yet.
    pub(crate) fn unread(path: PathBuf) -> Self {
        Self {
            path,
            material: None,
        }
    }

    /// Where the secret lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The material read at load time, if the configuration was loaded with its files.
    pub fn loaded(&self) -> Option<&Secret> {
        self.material.as_ref()
    }

    /// The material: the copy read at load time, or (for a configuration built with
    /// [`super::Config::from_toml_str`] only) the file read now.
    pub fn read(&self) -> std::io::Result<Secret> {
        match &self.material {
            Some(secret) => Ok(secret.clone()),
            None => std::fs::read(&self.path).map(Secret::new),
        }
    }

    /// Reads the file now and keeps the material.
    pub(crate) fn load(&mut self) -> std::io::Result<&Secret> {
        let secret = Secret::new(std::fs::read(&self.path)?);
        Ok(self.material.insert(secret))
    }
}

impl fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretFile")
            .field("path", &self.path)
            .field(
                "material",
                &format_args!(
                    "{}",
                    if self.material.is_some() {
                        "<redacted>"
                    } else {
                        "<not loaded>"
                    }
                ),
            )
            .finish()
    }
}
