//! `handler` steps: async Rust functions registered by the embedding program.

use super::{AttemptError, AttemptResult};
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What a handler gets: the step context and a token that fires when the attempt
/// must stop (timeout, cancellation, shutdown). A handler that ignores it is
/// dropped at its next await point.
#[derive(Clone, Debug)]
pub struct HandlerContext {
    pub context: Value,
    pub stop: CancellationToken,
}

/// A handler's error: [`AttemptError::retryable`] or [`AttemptError::permanent`].
pub use super::AttemptError as HandlerError;

type BoxedHandler = Arc<
    dyn Fn(HandlerContext) -> Pin<Box<dyn Future<Output = Result<Value, HandlerError>> + Send>>
        + Send
        + Sync,
>;

/// The handlers a worker can run, by name.
#[derive(Clone, Default)]
pub struct Handlers {
    by_name: HashMap<String, BoxedHandler>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}

impl Handlers {
    /// Registers `f` under `name`, replacing any handler of that name.
    pub fn register<F, Fut>(&mut self, name: impl Into<String>, f: F)
    where
        F: Fn(HandlerContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
    {
        self.by_name
            .insert(name.into(), Arc::new(move |cx| Box::pin(f(cx))));
    }

    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Runs the handler named `name`; an unknown name is a retryable error (another
    /// worker may have it).
    pub async fn run(&self, name: &str, cx: HandlerContext) -> AttemptResult {
        let Some(handler) = self.by_name.get(name) else {
            return AttemptResult {
                outcome: Err(AttemptError::retryable(format!(
                    "no handler named {name:?} is registered in this worker"
                ))),
                log: None,
            };
        };
        let stop = cx.stop.clone();
        let outcome = tokio::select! {
            r = handler(cx) => r,
            _ = stop.cancelled() => Err(AttemptError::retryable("stopped by the worker")),
        };
        AttemptResult { outcome, log: None }
    }
}
