//! `stepwise tokens create|list|revoke`.

use super::CliError;
use crate::output::outln;
use std::time::Duration;
use stepwise_store::{NewToken, Store, TokenScope};

pub async fn create(
    store: &dyn Store,
    scope: &str,
    expires: Option<Duration>,
    name: String,
) -> anyhow::Result<()> {
    let scope = TokenScope::parse(scope)
        .ok_or_else(|| CliError::input(format!("scope {scope:?} must be read, write or admin")))?;
    let created = store
        .create_token(&NewToken {
            name,
            scope,
            expires_in: expires,
        })
        .await?;
    eprintln!(
        "token {} ({}, {}{}); the secret below is shown this once",
        created.token.id,
        created.token.name,
        scope.as_str(),
        created
            .token
            .expires_at
            .map(|t| format!(", expires {}", t.to_rfc3339()))
            .unwrap_or_default()
    );
    outln!("{}", created.secret);
    Ok(())
}

pub async fn list(store: &dyn Store, json: bool) -> anyhow::Result<()> {
    let tokens = store.list_tokens().await?;
    if json {
        outln!("{}", serde_json::to_string(&tokens)?);
        return Ok(());
    }
    outln!(
        "{:<36}  {:<16}  {:<5}  {:<25}  STATE",
        "ID",
        "NAME",
        "SCOPE",
        "EXPIRES"
    );
    let now = store.now().await?;
    for t in tokens {
        let state = match (t.revoked_at, t.expires_at) {
            (Some(_), _) => "revoked",
            (None, Some(e)) if e <= now => "expired",
            _ => "live",
        };
        outln!(
            "{:<36}  {:<16}  {:<5}  {:<25}  {state}",
            t.id,
            t.name,
            t.scope.as_str(),
            t.expires_at
                .map(|e| e.to_rfc3339())
                .unwrap_or_else(|| "never".into())
        );
    }
    Ok(())
}

pub async fn revoke(store: &dyn Store, id: &str) -> anyhow::Result<()> {
    let id: uuid::Uuid = id
        .parse()
        .map_err(|_| CliError::input(format!("{id:?} is not a token id")))?;
    if !store.revoke_token(id).await? {
        return Err(CliError::not_found(format!("no token {id}")));
    }
    eprintln!("token {id} revoked");
    Ok(())
}

/// Whether some token can still be used.
pub async fn any_live(store: &dyn Store) -> anyhow::Result<bool> {
    let now = store.now().await?;
    Ok(store
        .list_tokens()
        .await?
        .iter()
        .any(|t| t.revoked_at.is_none() && t.expires_at.is_none_or(|e| e > now)))
}
