//! Typed identifiers. A run id can never be passed where a step id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $ctor:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new identifier.
            pub fn new() -> Self {
                Self(Uuid::$ctor())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

uuid_id!(
    /// One execution of a workflow. UUIDv7: roughly time ordered, but never used
    /// for ordering decisions (those use a database sequence).
    RunId,
    now_v7
);
uuid_id!(
    /// One node of a run.
    StepId,
    now_v7
);
uuid_id!(
    /// A registered worker process. A worker that was reaped registers again under
    /// a new id, so its old id stays dead.
    WorkerId,
    now_v7
);
uuid_id!(
    /// The proof of one claim. Fresh and random for every claim, so a worker whose
    /// step was reclaimed cannot write with the token it still holds.
    LeaseToken,
    new_v4
);

/// What every lease-gated write names: the step and the token of the claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lease {
    pub step_id: StepId,
    pub token: LeaseToken,
}
