//! Row types shared by several SQLite queries, read by column name.

use crate::Result;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use stepwise_core::{Lease, LeaseToken, StepId};

/// A running step's lease: the `id, lease_token` columns of a `step` row.
pub(super) fn lease_from_row(row: &SqliteRow) -> Result<Lease> {
    Ok(Lease {
        step_id: StepId(row.try_get("id")?),
        token: LeaseToken(row.try_get("lease_token")?),
    })
}
