//! The error type at the boundary of the library: each variant maps to one exit code,
//! so `main` can turn any failure into the code the README documents. Messages name the
//! file and, where there is one, the line and column, because the person reading them
//! has to open that file next.

use std::path::{Path, PathBuf};

/// Everything that can stop a command. `Display` is the whole message a user sees.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input file is missing, unreadable or malformed (exit 2). With a location, the
    /// message reads `file:line:column: message`, the form editors jump to.
    #[error("{}{}: {message}", path.display(), Location::suffix(at.as_ref()))]
    Input {
        path: PathBuf,
        at: Option<Location>,
        message: String,
    },

    /// The command line asks for something that cannot be done (exit 2).
    #[error("{0}")]
    Usage(String),

    /// An output could not be written; nothing was left half-written (exit 4).
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
            at: None,
            message: message.into(),
        }
    }

    /// An input error at a line (1-based) and, when known, a column (1-based) of `path`.
    pub fn at(path: &Path, line: u64, column: Option<u64>, message: impl Into<String>) -> Self {
        Error::Input {
            path: path.to_path_buf(),
            at: Some(Location { line, column }),
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
        Self::at(path, err.line() as u64, Some(err.column() as u64), message)
    }

    /// A TOML error as `file:line:column: message`.
    pub fn toml(path: &Path, text: &str, err: &toml::de::Error) -> Self {
        let at = err.span().map(|s| {
            let before = &text[..s.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            Location {
                line: line as u64,
                column: Some(column as u64),
            }
        });
        Error::Input {
            path: path.to_path_buf(),
            at,
            message: err.message().to_string(),
        }
    }

    pub fn write(path: &Path, source: std::io::Error) -> Self {
        Error::Write {
            path: path.to_path_buf(),
            source,
        }
    }

    /// How a command that failed with this error ends.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Error::Input { .. } | Error::Usage(_) => ExitStatus::BadInput,
            Error::Write { .. } => ExitStatus::WriteFailed,
            Error::LlmUnavailable(_) => ExitStatus::LlmUnavailable,
        }
    }

    /// The process exit code the README documents for this error.
    pub fn exit_code(&self) -> u8 {
        self.exit_status().code()
    }
}

/// Where in an input file an error is: a 1-based line and, when the parser knows it, a
/// 1-based column. Displays as `line:column` (or `line`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: u64,
    pub column: Option<u64>,
}

impl Location {
    /// `:line:column` after a file name, or nothing without a location.
    fn suffix(at: Option<&Location>) -> String {
        at.map(|a| format!(":{a}")).unwrap_or_default()
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.column {
            Some(column) => write!(f, "{}:{column}", self.line),
            None => write!(f, "{}", self.line),
        }
    }
}

/// How a command ended. Every exit code retune uses is here, mapped in one place (the
/// README's table is this one): a scheduler or a trainer can branch on the code alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitStatus {
    /// Done: with or without changes; for `review`, every run healthy or pending.
    Success,
    /// `review` only: some runs need attention (a warning or critical finding).
    Attention,
    /// Bad input or usage; for `review`, also a run that could not be read.
    BadInput,
    /// The LLM gave no usable answer and falling back to the rules was not allowed.
    LlmUnavailable,
    /// An output could not be written; nothing was left half-written.
    WriteFailed,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Attention => 1,
            ExitStatus::BadInput => 2,
            ExitStatus::LlmUnavailable => 3,
            ExitStatus::WriteFailed => 4,
        }
    }
}

/// In JSON (a review's `exit_code`), the code itself.
impl serde::Serialize for ExitStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.code())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
