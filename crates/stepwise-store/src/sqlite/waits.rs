//! Steps that wait: parking, signals, callbacks and the waker.

use super::SqliteStore;
use crate::model::*;
use crate::{Result, StoreError, WaitStore};
use async_trait::async_trait;
use stepwise_core::Lease;

#[async_trait]
impl WaitStore for SqliteStore {
    async fn park_step(&self, _request: &ParkRequest) -> Result<ParkOutcome> {
        Err(StoreError::InvalidInput(
            "waiting steps: in progress".into(),
        ))
    }
    async fn issue_callback(&self, _lease: Lease) -> Result<Option<String>> {
        Err(StoreError::InvalidInput(
            "waiting steps: in progress".into(),
        ))
    }
    async fn complete_callback(&self, _request: &CallbackRequest) -> Result<CallbackOutcome> {
        Err(StoreError::InvalidInput(
            "waiting steps: in progress".into(),
        ))
    }
    async fn send_signal(&self, _request: &SignalRequest) -> Result<SignalOutcome> {
        Err(StoreError::InvalidInput(
            "waiting steps: in progress".into(),
        ))
    }
    async fn wake_steps(&self, _limit: u32) -> Result<WakeReport> {
        Ok(WakeReport::default())
    }
    async fn waiting_counts(&self) -> Result<Vec<(String, u64)>> {
        Ok(vec![])
    }
}
