//! Events of a user account: registered with a password (only its argon2
//! hash is kept), a reset asked for (only the token's hash), the password
//! changed, sign-in tokens ended (all of them at a password change, one at
//! a sign-out).

use serde::{Deserialize, Serialize};

/// Someone signed up: an account for a new tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountRegistered {
    /// The tenant created with it.
    pub tenant: String,
    /// The sign-in address, lowercased.
    pub email: String,
    /// A name for people.
    pub name: String,
    /// The password's argon2id hash (PHC string).
    pub password_hash: String,
}

/// A password reset link was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordResetRequested {
    /// blake3 of the link's token, hex.
    pub token_hash: String,
    /// When the link stops working (ms since the epoch).
    pub expires_at: u64,
}

/// The password changed (through a reset link: the link is used up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordChanged {
    /// The new password's argon2id hash.
    pub password_hash: String,
}

/// Every sign-in token of the account issued before this was ended (the
/// password changed): tokens carry the account's session version, and this
/// raises it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SessionsEnded {}

/// One sign-in token was ended (signed out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionEnded {
    /// The token's id (its `jti`).
    pub token_id: String,
    /// When the token would have expired anyway (seconds since the epoch):
    /// past it, the ending need not be remembered.
    pub expires_at: u64,
}
