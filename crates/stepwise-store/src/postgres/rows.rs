//! Row mappings more than one part of the PostgreSQL store reads.

use crate::Result;
use sqlx::postgres::PgRow;
use sqlx::Row;
use stepwise_core::{Lease, LeaseToken, StepId};

/// A running step's lease, from a row naming the step `id` and its `lease_token`.
pub(super) fn lease_from_row(row: &PgRow) -> Result<Lease> {
    Ok(Lease {
        step_id: StepId(row.try_get("id")?),
        token: LeaseToken(row.try_get("lease_token")?),
    })
}
