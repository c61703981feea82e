use stepwise_core::SpecError;

/// Everything a storage operation can refuse or fail with.
///
/// User errors (unknown workflow, bad spec, taken group name) are their own variants
/// so callers can map them to exit code 2/3/4 or an HTTP 4xx; only `Database` is an
/// infrastructure failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the database schema is at version {database} but this build of Stepwise expects \
         version {expected}; run `stepwise migrate` with the matching build"
    )]
    SchemaMismatch { database: i64, expected: i64 },
    #[error("unknown workflow {0:?}; register it first (`stepwise apply`)")]
    UnknownWorkflow(String),
    #[error("invalid workflow: {0}")]
    InvalidSpec(#[from] SpecError),
    #[error("group {0:?} already exists; pick another name")]
    GroupExists(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("invalid cursor {0:?}")]
    InvalidCursor(String),
    #[error("unsupported database url {0:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("stored data is not what Stepwise wrote: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // A NUL reaching PostgreSQL in text that no check caught is the caller's
        // input, not a database failure (22021: character not in repertoire).
        if let sqlx::Error::Database(db) = &e {
            if db.code().as_deref() == Some("22021") {
                return StoreError::InvalidInput(
                    "text with a NUL character (\\u0000) cannot be stored or looked up".into(),
                );
            }
        }
        StoreError::Database(Box::new(e))
    }
}

/// A database that did not answer within `after`.
pub(crate) fn unreachable(after: std::time::Duration) -> StoreError {
    StoreError::Database(Box::new(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no answer from the database within {after:?}"),
    )))
}

impl StoreError {
    /// Whether the database aborted the transaction only because of a race
    /// (deadlock, serialization failure, busy SQLite file) and a retry may succeed.
    pub(crate) fn is_transient(&self) -> bool {
        let StoreError::Database(e) = self else {
            return false;
        };
        let Some(sqlx::Error::Database(db)) = e.downcast_ref::<sqlx::Error>() else {
            return false;
        };
        matches!(
            db.code().as_deref(),
            Some("40P01") | Some("40001") | Some("5") | Some("517") | Some("6")
        )
    }

    /// Whether a statement gave up waiting: `lock_timeout` or `statement_timeout`
    /// (PostgreSQL). The transaction is void; a later try may find the way clear.
    pub(crate) fn is_timeout(&self) -> bool {
        let StoreError::Database(e) = self else {
            return false;
        };
        let Some(sqlx::Error::Database(db)) = e.downcast_ref::<sqlx::Error>() else {
            return false;
        };
        matches!(db.code().as_deref(), Some("55P03") | Some("57014"))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
