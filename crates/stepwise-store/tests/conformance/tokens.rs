//! API tokens: secrets shown once, checked by hash, expiring on the database clock.

use crate::support::*;
use std::sync::Arc;
use stepwise_store::*;

pub async fn tokens_verify_expire_and_revoke(store: Arc<dyn Store>) {
    let make = |name: &str, scope, expires_in| NewToken {
        name: name.into(),
        scope,
        expires_in,
    };
    let admin = store
        .create_token(&make("ops", TokenScope::Admin, None))
        .await
        .unwrap();
    assert!(admin.secret.starts_with("sw_") && admin.secret.len() == 67);
    let short = store
        .create_token(&make("ci", TokenScope::Read, Some(secs(60))))
        .await
        .unwrap();
    assert_eq!(
        store.verify_token(&admin.secret).await.unwrap(),
        Ok(admin.token.clone())
    );
    assert_eq!(
        store.verify_token("sw_not-a-token").await.unwrap(),
        Err(TokenRefusal::Unknown)
    );
    assert!(store.verify_token(&short.secret).await.unwrap().is_ok());
    store.advance_clock(secs(61)).await.unwrap();
    assert_eq!(
        store.verify_token(&short.secret).await.unwrap(),
        Err(TokenRefusal::Expired)
    );
    assert!(store.revoke_token(admin.token.id).await.unwrap());
    assert!(!store.revoke_token(uuid::Uuid::new_v4()).await.unwrap());
    assert_eq!(
        store.verify_token(&admin.secret).await.unwrap(),
        Err(TokenRefusal::Revoked)
    );
    let listed = store.list_tokens().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].name, "ci", "newest first");
    assert!(listed[1].revoked_at.is_some());
    let bad = store.create_token(&make("", TokenScope::Read, None)).await;
    assert!(matches!(bad, Err(StoreError::InvalidInput(_))));
}
