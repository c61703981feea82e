//! Resource locks and API tokens.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Who holds a resource lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HolderKind {
    /// A running step (the holder id is the step id).
    Step,
    /// A client of the HTTP API.
    Api,
    /// `stepwise locks acquire`.
    Cli,
}

impl HolderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HolderKind::Step => "step",
            HolderKind::Api => "api",
            HolderKind::Cli => "cli",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "step" => Some(HolderKind::Step),
            "api" => Some(HolderKind::Api),
            "cli" => Some(HolderKind::Cli),
            _ => None,
        }
    }
}

/// Take a resource lock for an operator or a client.
#[derive(Clone, Debug)]
pub struct LockRequest {
    pub key: String,
    pub ttl: Duration,
    pub holder_kind: HolderKind,
    /// Who asks, e.g. `cli:alice@host`.
    pub holder_id: String,
}

/// A resource lock as stored (the token is only shown to whoever acquired it).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LockView {
    /// The name steps give as their `resource` and clients as `/v1/locks/{key}`.
    pub key: String,
    pub holder_kind: HolderKind,
    pub holder_id: String,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What asking for a lock did.
#[derive(Clone, Debug, PartialEq)]
pub enum LockOutcome {
    /// Taken: release it with `token`.
    Acquired { lock: LockView, token: uuid::Uuid },
    /// Someone holds it (a held lock is refused even to its holder).
    Held(LockView),
}

/// What releasing a lock did.
#[derive(Clone, Debug, PartialEq)]
pub enum ReleaseOutcome {
    Released,
    /// Nobody holds it (it may have expired and been swept).
    NotHeld,
    /// It is held under another token; nothing changed.
    WrongToken(LockView),
}

/// What an API token may do (docs/design.md "Outside interfaces": read < write < admin).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// Every GET, `/metrics`, the OpenAPI document.
    Read,
    /// Also start, cancel and retry runs and groups.
    Write,
    /// Everything: workflows, locks, queues, tokens.
    Admin,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Write => "write",
            TokenScope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(TokenScope::Read),
            "write" => Some(TokenScope::Write),
            "admin" => Some(TokenScope::Admin),
            _ => None,
        }
    }
}

/// A token to create.
#[derive(Clone, Debug)]
pub struct NewToken {
    /// What it is for, for people (`ci-deploys`).
    pub name: String,
    pub scope: TokenScope,
    /// Expires this long after creation (database clock); never when `None`.
    pub expires_in: Option<Duration>,
}

/// A token as stored: never its secret, only a hash of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenView {
    pub id: uuid::Uuid,
    pub name: String,
    pub scope: TokenScope,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new token and its secret, which is shown this once and never stored.
#[derive(Clone, Debug)]
pub struct CreatedToken {
    pub token: TokenView,
    pub secret: String,
}

/// Why a presented secret was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenRefusal {
    Unknown,
    Expired,
    Revoked,
}
