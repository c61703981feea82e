//! Flow control on SQLite. PORT IN PROGRESS (see postgres/flow.rs).

use super::SqliteStore;
use crate::model::*;
use crate::{FlowStore, Result};
use async_trait::async_trait;

#[async_trait]
impl FlowStore for SqliteStore {
    async fn queue_stats(&self) -> Result<Vec<QueueStats>> {
        todo!("sqlite port")
    }
    async fn set_queue_paused(&self, _queue: &str, _paused: bool) -> Result<bool> {
        todo!("sqlite port")
    }
    async fn concurrency_keys(&self) -> Result<Vec<ConcurrencyKeyView>> {
        todo!("sqlite port")
    }
    async fn key_line(&self, _key: &str) -> Result<Option<KeyLine>> {
        todo!("sqlite port")
    }
    async fn set_key_limit(&self, _key: &str, _limit: u32) -> Result<ConcurrencyKeyView> {
        todo!("sqlite port")
    }
    async fn acquire_lock(&self, _request: &LockRequest) -> Result<LockOutcome> {
        todo!("sqlite port")
    }
    async fn release_lock(&self, _name: &str, _token: uuid::Uuid) -> Result<ReleaseOutcome> {
        todo!("sqlite port")
    }
    async fn force_release_lock(&self, _name: &str, _reason: &str) -> Result<Option<LockView>> {
        todo!("sqlite port")
    }
    async fn list_locks(&self) -> Result<Vec<LockView>> {
        Ok(vec![])
    }
}
