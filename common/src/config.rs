//! Configuration files read one way: TOML loaded with errors naming the file, and problems
//! reported all at once, each naming its field.

use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Why a TOML file yields no value; the text names the file.
#[derive(Debug, thiserror::Error)]
pub enum TomlFileError {
    /// The file cannot be read (missing, permissions, not UTF-8).
    #[error("{what} {}: cannot read: {source}", path.display())]
    Read {
        /// What the file is, for the message ("profile", "node map").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the expected shape.
    #[error("{what} {}: {source}", path.display())]
    Parse {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The parser's error, with line and column.
        source: Box<toml::de::Error>,
    },
}

/// Reads and parses one TOML file; `what` names it in the error ("profile", "config").
pub fn load_toml<T: DeserializeOwned>(what: &'static str, path: &Path) -> Result<T, TomlFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| TomlFileError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| TomlFileError::Parse {
        what,
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

impl From<TomlFileError> for ConfigErrors {
    fn from(e: TomlFileError) -> Self {
        ConfigErrors(vec![e.to_string()])
    }
}

/// Every problem found in a configuration, for printing all at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl ConfigErrors {
    /// `Ok(())` when `problems` is empty, else the problems as an error.
    pub fn check(problems: Vec<String>) -> Result<(), ConfigErrors> {
        if problems.is_empty() { Ok(()) } else { Err(ConfigErrors(problems)) }
    }
}

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} problem(s) in the configuration:", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_problem() {
        let e = ConfigErrors::check(vec!["a is empty".into(), "b is 0".into()]).expect_err("two");
        assert_eq!(e.to_string(), "2 problem(s) in the configuration:\n  - a is empty\n  - b is 0");
        assert!(ConfigErrors::check(Vec::new()).is_ok());
    }

    #[test]
    fn toml_errors_name_the_file() {
        #[derive(serde::Deserialize, Debug)]
        struct S {
            #[allow(dead_code)]
            port: u16,
        }
        let dir = tempfile::tempdir().expect("tmp");
        let missing = dir.path().join("none.toml");
        let e = load_toml::<S>("profile", &missing).expect_err("missing");
        assert!(matches!(e, TomlFileError::Read { .. }));
        assert!(e.to_string().starts_with(&format!("profile {}: cannot read", missing.display())), "{e}");
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "port = \"x\"").expect("write");
        let e = load_toml::<S>("config", &bad).expect_err("bad");
        assert!(matches!(e, TomlFileError::Parse { .. }), "{e}");
        std::fs::write(&bad, "port = 1883").expect("write");
        assert_eq!(load_toml::<S>("config", &bad).expect("good").port, 1883);
    }
}
