//! The account aggregate: who may sign in to a tenant with an email and a
//! password. Registration is decided by the directory (emails are unique);
//! here: reset links (one at a time, single use, expiring), password
//! changes, which sign-in tokens still hold (a session version raised by
//! every password change, and the tokens signed out), and how often anyone
//! may try to sign in, sign up or ask for a reset. Hashing happens outside:
//! the aggregate only sees hashes.

use std::collections::BTreeMap;

use beamd_events::vocabulary::{
    AccountRegistered, PasswordChanged, PasswordResetRequested, SessionEnded, SessionsEnded,
};
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
    /// Sign-in tokens carry this; a password change raises it, which ends
    /// every token issued before.
    #[serde(default)]
    pub session_version: u64,
    /// Tokens signed out: token id → when it would have expired (s).
    #[serde(default)]
    pub ended_sessions: BTreeMap<String, u64>,
}

impl Account {
    /// Whether a sign-in token of this account with session `version` and
    /// id `token_id` still holds (its signature and expiry checked apart).
    pub fn accepts_session(&self, version: u64, token_id: &str) -> bool {
        !self.tenant.is_empty()
            && version == self.session_version
            && !self.ended_sessions.contains_key(token_id)
    }
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
    /// Sign out one sign-in token.
    EndSession {
        /// The token's id.
        token_id: String,
        /// When it expires anyway (s).
        expires_at: u64,
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
            Event::SessionsEnded(_) => {
                self.session_version += 1;
                self.ended_sessions.clear();
            }
            Event::SessionEnded(e) => {
                // Endings of tokens that expired anyway are forgotten.
                let now_secs = envelope.at / 1000;
                self.ended_sessions.retain(|_, exp| *exp >= now_secs);
                self.ended_sessions.insert(e.token_id.clone(), e.expires_at);
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
                Some((hash, expires)) if hash == token_hash && ctx.now_ms < *expires => Ok(vec![
                    PasswordChanged {
                        password_hash: password_hash.clone(),
                    }
                    .into(),
                    SessionsEnded {}.into(),
                ]),
                _ => Err(DomainError::Unauthorized(
                    "the reset link was used already, has expired, or is not the latest one".into(),
                )),
            },
            AccountCommand::EndSession {
                token_id,
                expires_at,
            } => {
                if self.ended_sessions.contains_key(token_id) {
                    return Err(DomainError::Unauthorized(
                        "the sign-in token was ended already".into(),
                    ));
                }
                Ok(vec![SessionEnded {
                    token_id: token_id.clone(),
                    expires_at: *expires_at,
                }
                .into()])
            }
        }
    }
}

/// A limit on attempts of one kind by one caller: `burst` at once, coming
/// back evenly over `per_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptLimit {
    /// The kind of attempt and caller (the name of the limiter's bucket family).
    pub scope: &'static str,
    /// Attempts allowed at once.
    pub burst: u32,
    /// Seconds in which `burst` attempts come back.
    pub per_secs: u64,
}

/// Sign-ins per (email, address): five a minute. Only this address waits.
pub const SIGN_IN_PER_EMAIL_AND_ADDRESS: AttemptLimit = AttemptLimit {
    scope: "sign-in:email+address",
    burst: 5,
    per_secs: 60,
};
/// Sign-ins per address, whatever the email: thirty a minute.
pub const SIGN_IN_PER_ADDRESS: AttemptLimit = AttemptLimit {
    scope: "sign-in:address",
    burst: 30,
    per_secs: 60,
};
/// Sign-ins per email from every address that never signed in to it:
/// twenty per quarter hour. Slower than the others; it bounds guessing from
/// many addresses, and an address that signed in to the account before is
/// not held to it, so guesses from elsewhere cannot lock its owner out.
pub const SIGN_IN_PER_EMAIL: AttemptLimit = AttemptLimit {
    scope: "sign-in:email",
    burst: 20,
    per_secs: 900,
};
/// Sign-ups per address: five an hour.
pub const SIGN_UP_PER_ADDRESS: AttemptLimit = AttemptLimit {
    scope: "sign-up:address",
    burst: 5,
    per_secs: 3600,
};
/// Sign-ups per email: three an hour.
pub const SIGN_UP_PER_EMAIL: AttemptLimit = AttemptLimit {
    scope: "sign-up:email",
    burst: 3,
    per_secs: 3600,
};
/// Reset requests per address: five an hour.
pub const RESET_PER_ADDRESS: AttemptLimit = AttemptLimit {
    scope: "reset:address",
    burst: 5,
    per_secs: 3600,
};
/// Reset requests per email: three an hour.
pub const RESET_PER_EMAIL: AttemptLimit = AttemptLimit {
    scope: "reset:email",
    burst: 3,
    per_secs: 3600,
};

/// The buckets a sign-in attempt is charged to, before any password is
/// hashed: (limit, caller). `known` says the address signed in to this
/// email before; it is then not held to the email's global limit.
pub fn sign_in_charges(email: &str, address: &str, known: bool) -> Vec<(AttemptLimit, String)> {
    let mut charges = vec![
        (SIGN_IN_PER_EMAIL_AND_ADDRESS, format!("{email} {address}")),
        (SIGN_IN_PER_ADDRESS, address.to_string()),
    ];
    if !known {
        charges.push((SIGN_IN_PER_EMAIL, email.to_string()));
    }
    charges
}

/// The buckets a sign-up is charged to, before its password is hashed.
pub fn sign_up_charges(email: &str, address: &str) -> Vec<(AttemptLimit, String)> {
    vec![
        (SIGN_UP_PER_ADDRESS, address.to_string()),
        (SIGN_UP_PER_EMAIL, email.to_string()),
    ]
}

/// The buckets a reset request is charged to.
pub fn reset_charges(email: &str, address: &str) -> Vec<(AttemptLimit, String)> {
    vec![
        (RESET_PER_ADDRESS, address.to_string()),
        (RESET_PER_EMAIL, email.to_string()),
    ]
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
    use crate::testkit::envelope;

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

    #[test]
    fn a_password_change_ends_every_earlier_token_and_a_sign_out_one() {
        let mut a = Account::default();
        a.apply(&envelope(
            "acc_1",
            1,
            1,
            registered("ten_1", "a@b.c", "A", "h0"),
        ));
        assert!(a.accepts_session(0, "t1") && a.accepts_session(0, "t2"));
        let ctx = Ctx::new(1_000, 0);
        let out = AccountCommand::EndSession {
            token_id: "t1".into(),
            expires_at: 100,
        };
        let mut version = 1;
        for e in a.decide(&out, &ctx).unwrap() {
            version += 1;
            a.apply(&envelope("acc_1", version, 2_000, e));
        }
        assert!(!a.accepts_session(0, "t1") && a.accepts_session(0, "t2"));
        assert!(a.decide(&out, &ctx).is_err(), "ended already");
        let ask = AccountCommand::RequestReset {
            token_hash: "t".into(),
            expires_at: 5_000,
        };
        let reset = AccountCommand::Reset {
            token_hash: "t".into(),
            password_hash: "h1".into(),
        };
        for cmd in [ask, reset] {
            for e in a.decide(&cmd, &ctx).unwrap() {
                version += 1;
                a.apply(&envelope("acc_1", version, 3_000, e));
            }
        }
        assert!(
            !a.accepts_session(0, "t2"),
            "a token from before the change"
        );
        assert!(a.accepts_session(1, "t3"));
        // An ending is forgotten once its token expired anyway.
        let later = AccountCommand::EndSession {
            token_id: "t3".into(),
            expires_at: 200,
        };
        for e in a.decide(&later, &ctx).unwrap() {
            version += 1;
            a.apply(&envelope("acc_1", version, 150_000, e));
        }
        assert_eq!(a.ended_sessions.keys().collect::<Vec<_>>(), ["t3"]);
    }

    #[test]
    fn an_address_that_signed_in_before_is_not_held_to_the_emails_limit() {
        let scopes = |known| {
            sign_in_charges("a@b.c", "10.0.0.1", known)
                .into_iter()
                .map(|(l, _)| l.scope)
                .collect::<Vec<_>>()
        };
        assert!(scopes(false).contains(&SIGN_IN_PER_EMAIL.scope));
        assert!(!scopes(true).contains(&SIGN_IN_PER_EMAIL.scope));
        assert!(SIGN_IN_PER_EMAIL.per_secs / u64::from(SIGN_IN_PER_EMAIL.burst) > 60 / 5);
    }
}
