//! Secrets in config: given inline, by environment variable name or by file path,
//! and impossible to print by accident.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize, Serializer};

/// How a secret is written in the config file.
#[derive(Clone, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum SecretSource {
    /// The value itself.
    Inline(String),
    /// The name of an environment variable holding the value.
    Env {
        /// Variable name.
        env: String,
    },
    /// A file holding the value (surrounding whitespace is trimmed).
    File {
        /// File path, e.g. a mounted Kubernetes Secret.
        file: PathBuf,
    },
}

impl SecretSource {
    /// Reads the secret's value. The error names the source, never the value.
    pub fn resolve(&self) -> Result<Secret, String> {
        match self {
            SecretSource::Inline(value) => Ok(Secret(value.clone())),
            SecretSource::Env { env } => std::env::var(env)
                .map(Secret)
                .map_err(|_| format!("environment variable {env} is not set or not UTF-8")),
            SecretSource::File { file } => std::fs::read_to_string(file)
                .map(|text| Secret(text.trim().to_owned()))
                .map_err(|err| format!("cannot read secret file {}: {err}", file.display())),
        }
    }
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A resolved secret value. Debug, Display-free and Serialize all show `***`.
/// In config it is written as a [`SecretSource`] and resolved while loading, so a
/// missing variable or file is an error naming the key.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SecretSource")]
pub struct Secret(String);

impl TryFrom<SecretSource> for Secret {
    type Error = String;

    fn try_from(source: SecretSource) -> Result<Self, Self::Error> {
        source.resolve()
    }
}

impl Secret {
    /// Wraps a value read from somewhere other than the config file.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret value; call only where the value is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

impl Serialize for SecretSource {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = SecretSource::Inline("hunter2".into()).resolve().unwrap();
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"***\"");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn file_secrets_are_trimmed_and_missing_files_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "abc\n").unwrap();
        let source = SecretSource::File { file: path.clone() };
        assert_eq!(source.resolve().unwrap().expose(), "abc");
        let missing = SecretSource::File {
            file: dir.path().join("nope"),
        };
        let err = missing.resolve().unwrap_err();
        assert!(err.contains("nope"), "{err}");
    }
}
