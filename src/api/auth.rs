//! Who is calling: `Authorization: Bearer tok_<id>.<secret>`, checked against
//! the key's stored hash in constant time, and what its scopes allow.

use beamd_events::vocabulary::KeyKind;

use super::accounts::secrets::Claims;
use super::error::ApiError;
use super::ApiState;
use crate::domain::{Account, Key, KeyStatus, Scopes, Tenant};
use crate::protocol::Token;

/// What a route needs: the key aggregate's scopes.
pub use crate::domain::Scope;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key it presented.
    pub key: Key,
    /// The key's tenant.
    pub tenant: Tenant,
}

impl Caller {
    /// Whether the caller may see `tenant`'s resources.
    pub fn owns(&self, tenant: &str) -> bool {
        self.key.tenant == tenant
    }
}

/// The token in an `Authorization: Bearer …` header.
fn bearer(header: Option<&str>) -> Result<Token, ApiError> {
    let value = header.ok_or_else(|| {
        ApiError::unauthorized("send the API key as Authorization: Bearer tok_<id>.<secret>")
    })?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be Bearer <key>"))?;
    Ok(Token(token.trim().to_string()))
}

impl ApiState {
    /// The key behind `token` if its secret matches and it is not revoked.
    /// Read from the catalog: an unknown id wakes no actor.
    pub async fn key_for(&self, token: &Token) -> Result<Key, ApiError> {
        let unknown = || ApiError::unauthorized("invalid API key");
        let (id, secret) = token.parts().ok_or_else(unknown)?;
        let key = self.core.known_key(id).await?.ok_or_else(unknown)?;
        let stored = blake3::Hash::from_hex(&key.secret_hash).map_err(|_| unknown())?;
        // blake3::Hash compares in constant time.
        if key.status != KeyStatus::Active || blake3::hash(secret.as_bytes()) != stored {
            return Err(unknown());
        }
        if key.kind == Some(KeyKind::Consumer) {
            return Err(ApiError::unauthorized(
                "gateway consumer keys cannot call this API",
            ));
        }
        Ok(key)
    }

    /// Authenticates the caller and checks it holds `need`.
    pub async fn caller(&self, header: Option<String>, need: Scope) -> Result<Caller, ApiError> {
        let token = bearer(header.as_deref())?;
        let key = match token.0.starts_with("eyJ") {
            true => self.account_key(&token.0)?,
            false => self.key_for(&token).await?,
        };
        if key.scope() < need {
            return Err(ApiError::forbidden(format!(
                "this key lacks the {:?} scope",
                need.name()
            )));
        }
        let tenant = self.core.tenant(&key.tenant).await?;
        // Reads see every event committed before the request arrived (an
        // agent's tunnel opened a moment ago included), not a lagging projection.
        self.settle().await?;
        Ok(Caller { key, tenant })
    }

    /// The account behind a sign-in token (`Authorization: Bearer eyJ…`)
    /// that still holds: signed, unexpired, not signed out, and issued since
    /// the account's last password change. Also its claims and the token.
    pub fn signed_in(&self, header: Option<&str>) -> Result<(Account, Claims, String), ApiError> {
        let token = bearer(header)?.0;
        if !token.starts_with("eyJ") {
            return Err(ApiError::forbidden(
                "only sign-in tokens sign out; revoke an API key with DELETE /api/v1/tokens/{id}",
            ));
        }
        let (account, claims) = self.account_of(&token)?;
        Ok((account, claims, token))
    }

    fn account_of(&self, jwt: &str) -> Result<(Account, Claims), ApiError> {
        let claims = self.accounts.jwt.verify(jwt)?;
        let account = (self.core.queries().account(&claims.sub))
            .filter(|a| a.tenant == claims.tenant)
            .ok_or_else(|| ApiError::unauthorized("the sign-in token's account is gone"))?;
        if !account.accepts_session(claims.ver, &claims.token_id(jwt)) {
            return Err(ApiError::unauthorized(
                "the sign-in token was ended (signed out, or the password changed since)",
            ));
        }
        Ok((account, claims))
    }

    /// A signed-in account as a key of its tenant with the `manage` scope.
    fn account_key(&self, jwt: &str) -> Result<Key, ApiError> {
        let (account, _) = self.account_of(jwt)?;
        Ok(Key {
            id: account.id.clone(),
            tenant: account.tenant.clone(),
            label: account.email.clone(),
            kind: Some(KeyKind::Api),
            scopes: Scopes::of(&[Scope::Manage]),
            status: KeyStatus::Active,
            ..Key::default()
        })
    }
}
