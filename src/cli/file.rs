//! Config files, read strictly: an unknown key, a wrong type or a bad value
//! is an error naming the file, the line and column, and the form expected.
//! Secrets come from the file, from a file it names, or from an environment
//! variable it names, and are never printed back.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::Spanned;

/// What is wrong in a config file, and where.
#[derive(Debug)]
pub struct FileError {
    path: PathBuf,
    /// Line and column, 1-based; none when the whole file is at fault.
    at: Option<(usize, usize)>,
    message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((line, column)) => {
                write!(
                    f,
                    "{}:{line}:{column}: {}",
                    self.path.display(),
                    self.message
                )
            }
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for FileError {}

/// A config file's text.
pub struct Source {
    path: PathBuf,
    text: String,
}

impl Source {
    /// Reads the file.
    pub fn read(path: &Path) -> Result<Self, FileError> {
        let text = std::fs::read_to_string(path).map_err(|e| FileError {
            path: path.to_path_buf(),
            at: None,
            message: format!("cannot read it: {e}"),
        })?;
        Ok(Source {
            path: path.to_path_buf(),
            text,
        })
    }

    /// Parses the file as TOML into `T`, whose types say what is expected.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, FileError> {
        toml::from_str(&self.text).map_err(|e| {
            let message = e.message().trim_end().replace('\n', " ");
            match e.span() {
                Some(span) => self.error_at(span, message),
                None => self.error(message),
            }
        })
    }

    /// An error at a place in the file.
    pub fn error_at(&self, span: Range<usize>, message: impl Into<String>) -> FileError {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        FileError {
            path: self.path.clone(),
            at: Some((line, column)),
            message: message.into(),
        }
    }

    /// An error about the file as a whole.
    pub fn error(&self, message: impl Into<String>) -> FileError {
        FileError {
            path: self.path.clone(),
            at: None,
            message: message.into(),
        }
    }

    /// A path the file names, relative to the file's own directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match self.path.parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }

    /// A secret given as `KEY = "…"`, `KEY_file = "path"` (its first line)
    /// or `KEY_env = "VARIABLE"`: at most one of the three.
    pub fn secret(&self, key: &str, ways: Secret) -> Result<Option<String>, FileError> {
        let Secret { value, file, env } = ways;
        let given = [
            value.as_ref().map(Spanned::span),
            file.as_ref().map(Spanned::span),
            env.as_ref().map(Spanned::span),
        ];
        if let Some(second) = given.iter().flatten().nth(1) {
            let message = format!("give {key} one way: {key}, {key}_file or {key}_env");
            return Err(self.error_at(second.clone(), message));
        }
        if let Some(value) = value {
            return Ok(Some(value.into_inner()));
        }
        if let Some(file) = file {
            let path = self.resolve(file.get_ref());
            let text = std::fs::read_to_string(&path).map_err(|e| {
                self.error_at(file.span(), format!("cannot read {}: {e}", path.display()))
            })?;
            let first = text.lines().next().unwrap_or("").trim().to_string();
            if first.is_empty() {
                let message = format!("{} is empty", path.display());
                return Err(self.error_at(file.span(), message));
            }
            return Ok(Some(first));
        }
        if let Some(env) = env {
            return match std::env::var(env.get_ref()) {
                Ok(v) if !v.is_empty() => Ok(Some(v)),
                _ => {
                    let message = format!("the environment has no {}", env.get_ref());
                    Err(self.error_at(env.span(), message))
                }
            };
        }
        Ok(None)
    }
}

/// The three ways a secret may be given.
pub struct Secret {
    /// In the file itself.
    pub value: Option<Spanned<String>>,
    /// In a file it names.
    pub file: Option<Spanned<PathBuf>>,
    /// In an environment variable it names.
    pub env: Option<Spanned<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_line_and_column() {
        let source = Source {
            path: "a.toml".into(),
            text: "x = 1\n  yy = \"two\"\n".into(),
        };
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Two {
            x: u16,
            y: Option<String>,
        }
        let e = source.parse::<Two>().unwrap_err().to_string();
        assert!(e.starts_with("a.toml:2:3: unknown field `yy`"), "{e}");
        let wrong = Source {
            path: "b.toml".into(),
            text: "x = 70000\n".into(),
        };
        let e = wrong.parse::<Two>().unwrap_err().to_string();
        assert!(e.starts_with("b.toml:1:5: "), "{e}");
    }
}
