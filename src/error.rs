//! The error type at the boundary of the library: each variant maps to one exit code,
//! so `main` can turn any failure into the code the README documents. Messages name the
//! file and, where there is one, the line and column, because the person reading them
//! has to open that file next.

use std::path::{Path, PathBuf};

/// Everything that can stop a command. `Display` is the whole message a user sees.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input file is missing, unreadable or malformed (exit 2).
    #[error("{}: {message}", path.display())]
    Input { path: PathBuf, message: String },

    /// The command line asks for something that cannot be done (exit 2).
    #[error("{0}")]
    Usage(String),

    /// An output could not be written; nothing was left half-written (exit 1).
    #[error("{}: could not write: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The LLM could not give a usable answer and falling back was not allowed (exit 3).
    #[error("LLM unavailable: {0}")]
    LlmUnavailable(String),
}

impl Error {
    pub fn input(path: &Path, message: impl Into<String>) -> Self {
        Error::Input {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// A read failure, worded for the common cases rather than as an OS error dump.
    pub fn read(path: &Path, err: &std::io::Error) -> Self {
        let message = match err.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            std::io::ErrorKind::IsADirectory => "is a directory, expected a file".to_string(),
            std::io::ErrorKind::InvalidData => "not UTF-8 text".to_string(),
            _ => format!("could not read: {err}"),
        };
        Self::input(path, message)
    }

    /// A serde_json error as `file:line:column: message`, the form editors jump to.
    pub fn json(path: &Path, err: &serde_json::Error) -> Self {
        let text = err.to_string();
        // serde_json appends " at line L column C"; we put the position in front instead.
        let message = match text.rfind(" at line ") {
            Some(i) => &text[..i],
            None => &text[..],
        };
        Error::Input {
            path: PathBuf::from(format!(
                "{}:{}:{}",
                path.display(),
                err.line(),
                err.column()
            )),
            message: message.to_string(),
        }
    }

    /// A TOML error as `file:line:column: message`.
    pub fn toml(path: &Path, text: &str, err: &toml::de::Error) -> Self {
        let at = err
            .span()
            .map(|s| {
                let before = &text[..s.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(":{line}:{column}")
            })
            .unwrap_or_default();
        Error::Input {
            path: PathBuf::from(format!("{}{at}", path.display())),
            message: err.message().to_string(),
        }
    }

    pub fn write(path: &Path, source: std::io::Error) -> Self {
        Error::Write {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The process exit code the README documents for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Input { .. } | Error::Usage(_) => 2,
            Error::Write { .. } => 1,
            Error::LlmUnavailable(_) => 3,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
