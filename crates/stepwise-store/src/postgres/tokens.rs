//! API tokens on PostgreSQL.

use super::PgStore;
use crate::model::*;
use crate::transient::millis;
use crate::{Result, StoreError, TokenStore};
use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::Row;

#[async_trait]
impl TokenStore for PgStore {
    async fn create_token(&self, token: &NewToken) -> Result<CreatedToken> {
        crate::token::check(token)?;
        let secret = crate::token::new_secret();
        let row = sqlx::query(include_str!("sql/create_token.sql"))
            .bind(uuid::Uuid::now_v7())
            .bind(&token.name)
            .bind(token.scope.as_str())
            .bind(crate::token::hash(&secret))
            .bind(token.expires_in.map(millis))
            .fetch_one(&self.pool)
            .await?;
        Ok(CreatedToken {
            token: token_from_row(&row)?,
            secret,
        })
    }

    async fn verify_token(&self, secret: &str) -> Result<Result<TokenView, TokenRefusal>> {
        let row = sqlx::query(include_str!("sql/verify_token.sql"))
            .bind(crate::token::hash(secret))
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(Err(TokenRefusal::Unknown));
        };
        let token = token_from_row(&row)?;
        Ok(if token.revoked_at.is_some() {
            Err(TokenRefusal::Revoked)
        } else if row.try_get::<bool, _>("expired")? {
            Err(TokenRefusal::Expired)
        } else {
            Ok(token)
        })
    }

    async fn list_tokens(&self) -> Result<Vec<TokenView>> {
        let rows = sqlx::query(include_str!("sql/list_tokens.sql"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, id: uuid::Uuid) -> Result<bool> {
        let done = sqlx::query(include_str!("sql/revoke_token.sql"))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

fn token_from_row(row: &PgRow) -> Result<TokenView> {
    let scope: String = row.try_get("scope")?;
    Ok(TokenView {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        scope: TokenScope::parse(&scope)
            .ok_or_else(|| StoreError::Corrupt(format!("token scope {scope:?}")))?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}
