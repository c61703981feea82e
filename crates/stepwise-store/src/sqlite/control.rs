//! Ending runs early and reopening them on SQLite: cancel, deadlines, retry.
//! PORT IN PROGRESS (a helper is writing this; see postgres/control.rs).

use super::SqliteStore;
use crate::model::*;
use crate::{ControlStore, Result};
use async_trait::async_trait;
use stepwise_core::{Lease, RunId, WorkerId};

#[async_trait]
impl ControlStore for SqliteStore {
    async fn cancel_run(&self, _request: &CancelRequest) -> Result<CancelOutcome> {
        todo!("sqlite port")
    }
    async fn retry_run(&self, _request: &RetryRequest) -> Result<RetryOutcome> {
        todo!("sqlite port")
    }
    async fn expire_runs(&self, _limit: u32) -> Result<Vec<RunId>> {
        Ok(vec![])
    }
    async fn revoked_leases(&self, _worker: WorkerId) -> Result<Vec<Lease>> {
        Ok(vec![])
    }
}
