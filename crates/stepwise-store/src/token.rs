//! Token secrets: made from the OS's randomness, stored only as SHA-256.

use crate::{Result, StoreError};
use sha2::{Digest, Sha256};

/// A fresh secret: `sw_` and 64 hex digits (two random UUIDs' bytes, 244 random bits).
pub(crate) fn new_secret() -> String {
    let mut text = String::from("sw_");
    for id in [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()] {
        text.push_str(&id.simple().to_string());
    }
    text
}

/// The stored form of a secret.
pub(crate) fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Token names follow the rules of keys.
pub(crate) fn check(token: &crate::NewToken) -> Result<()> {
    crate::plan::check_key("token name", &Some(token.name.clone()))?;
    if let Some(d) = token.expires_in {
        if d < std::time::Duration::from_secs(1)
            || d > std::time::Duration::from_secs(10 * 365 * 86_400)
        {
            return Err(StoreError::InvalidInput(
                "a token must expire between 1s and 10 years from now".into(),
            ));
        }
    }
    Ok(())
}
