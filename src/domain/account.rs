//! The account aggregate: who may sign in to a tenant with an email and a
//! password. Registration is decided by the directory (emails are unique);
//! here: reset links (one at a time, single use, expiring) and password
//! changes. Hashing happens outside: the aggregate only sees hashes.

use beamd_events::vocabulary::{AccountRegistered, PasswordChanged, PasswordResetRequested};
use beamd_events::{Envelope, Event};
use beamd_snapshots::Fold;
use serde::{Deserialize, Serialize};

use super::{Aggregate, Ctx, DomainError};

/// An account's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// `acc_…` (its stream id).
    pub id: String,
    /// Its tenant (empty: never registered).
    pub tenant: String,
    /// Sign-in address.
    pub email: String,
    /// Name.
    pub name: String,
    /// argon2id hash of the password.
    pub password_hash: String,
    /// The pending reset link: (token hash, expiry).
    pub reset: Option<(String, u64)>,
    /// When registered.
    pub created_at: u64,
}

/// Commands to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    /// A reset link was made (replacing any earlier one).
    RequestReset {
        /// Hash of the link's token.
        token_hash: String,
        /// Expiry, ms.
        expires_at: u64,
    },
    /// Set a new password with a reset link's token.
    Reset {
        /// Hash of the presented token.
        token_hash: String,
        /// The new password's hash.
        password_hash: String,
    },
}

impl Fold for Account {
    const KIND: &'static str = "account";

    fn apply(&mut self, envelope: &Envelope) {
        match &envelope.event {
            Event::AccountRegistered(e) => {
                self.id = envelope.stream.to_string();
                self.tenant = e.tenant.clone();
                self.email = e.email.clone();
                self.name = e.name.clone();
                self.password_hash = e.password_hash.clone();
                self.created_at = envelope.at;
            }
            Event::PasswordResetRequested(e) => {
                self.reset = Some((e.token_hash.clone(), e.expires_at));
            }
            Event::PasswordChanged(e) => {
                self.password_hash = e.password_hash.clone();
                self.reset = None;
            }
            _ => {}
        }
    }
}

impl Aggregate for Account {
    type Command = AccountCommand;
    const PREFIX: &'static str = "acc";

    fn decide(&self, command: &AccountCommand, ctx: &Ctx) -> Result<Vec<Event>, DomainError> {
        if self.tenant.is_empty() {
            return Err(DomainError::NotFound("account".into()));
        }
        match command {
            AccountCommand::RequestReset {
                token_hash,
                expires_at,
            } => Ok(vec![PasswordResetRequested {
                token_hash: token_hash.clone(),
                expires_at: *expires_at,
            }
            .into()]),
            AccountCommand::Reset {
                token_hash,
                password_hash,
            } => match &self.reset {
                Some((hash, expires)) if hash == token_hash && ctx.now_ms < *expires => {
                    Ok(vec![PasswordChanged {
                        password_hash: password_hash.clone(),
                    }
                    .into()])
                }
                _ => Err(DomainError::InvalidRequest(
                    "the reset link was used already, has expired, or is not the latest one".into(),
                )),
            },
        }
    }
}

/// The registration event, for the directory.
pub fn registered(tenant: &str, email: &str, name: &str, password_hash: &str) -> Event {
    AccountRegistered {
        tenant: tenant.to_string(),
        email: email.to_string(),
        name: name.to_string(),
        password_hash: password_hash.to_string(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testkit::envelope;

    #[test]
    fn a_reset_link_works_once_and_not_after_it_expires() {
        let mut a = Account::default();
        a.apply(&envelope(
            "acc_1",
            1,
            1,
            registered("ten_1", "a@b.c", "A", "h0"),
        ));
        let ctx = Ctx::new(1_000, 0);
        let ask = AccountCommand::RequestReset {
            token_hash: "t".into(),
            expires_at: 2_000,
        };
        for e in a.decide(&ask, &ctx).unwrap() {
            a.apply(&envelope("acc_1", 2, 2, e));
        }
        let reset = AccountCommand::Reset {
            token_hash: "t".into(),
            password_hash: "h1".into(),
        };
        assert!(a.decide(&reset, &Ctx::new(2_000, 0)).is_err(), "expired");
        for e in a.decide(&reset, &ctx).unwrap() {
            a.apply(&envelope("acc_1", 3, 3, e));
        }
        assert_eq!(a.password_hash, "h1");
        assert!(a.decide(&reset, &ctx).is_err(), "used up");
    }
}
