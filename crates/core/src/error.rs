//! Errors of the ports, classified by what the caller should do.

use std::error::Error as StdError;

type Source = Box<dyn StdError + Send + Sync + 'static>;

/// What a caller should do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Try again later: the backend was busy or unreachable.
    Retry,
    /// The request itself is wrong; retrying the same thing will fail again.
    Reject,
    /// The request lost a race (a conditional write failed).
    Conflict,
    /// What was asked for does not exist.
    NotFound,
}

/// A storage or queue backend failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage backend unavailable: {context}")]
    Transient {
        context: &'static str,
        #[source]
        source: Source,
    },
    #[error("storage rejected the request: {context}")]
    Permanent {
        context: &'static str,
        #[source]
        source: Source,
    },
    #[error("conditional write failed: {0}")]
    Conflict(&'static str),
    #[error("not found: {0}")]
    NotFound(&'static str),
    #[error("stored data is corrupt: {context}")]
    Corrupt {
        context: &'static str,
        #[source]
        source: Source,
    },
}

impl StoreError {
    pub fn transient(context: &'static str, source: impl Into<Source>) -> Self {
        Self::Transient {
            context,
            source: source.into(),
        }
    }
    pub fn permanent(context: &'static str, source: impl Into<Source>) -> Self {
        Self::Permanent {
            context,
            source: source.into(),
        }
    }
    pub fn corrupt(context: &'static str, source: impl Into<Source>) -> Self {
        Self::Corrupt {
            context,
            source: source.into(),
        }
    }
    pub fn action(&self) -> Action {
        match self {
            Self::Transient { .. } => Action::Retry,
            Self::Permanent { .. } | Self::Corrupt { .. } => Action::Reject,
            Self::Conflict(_) => Action::Conflict,
            Self::NotFound(_) => Action::NotFound,
        }
    }
    pub fn is_retryable(&self) -> bool {
        self.action() == Action::Retry
    }
}

/// A key service (KMS, the local keyring) failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The workspace key is disabled, pending deletion or missing: fail closed.
    #[error("the workspace encryption key is unavailable: {0}")]
    Unavailable(String),
    #[error("key service unavailable")]
    Transient(#[source] Source),
    /// The ciphertext does not belong to this workspace or was tampered with.
    #[error("ciphertext rejected: {0}")]
    Invalid(&'static str),
}

impl KeyError {
    pub fn action(&self) -> Action {
        match self {
            Self::Transient(_) => Action::Retry,
            Self::Unavailable(_) => Action::Retry,
            Self::Invalid(_) => Action::Reject,
        }
    }
}

/// Sending a notification failed.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail service unavailable")]
    Transient(#[source] Source),
    #[error("mail rejected: {0}")]
    Rejected(String),
}
