//! The accounts projection: every account by id and by email, for sign-in
//! and reset requests without asking an actor.

use std::collections::BTreeMap;

use beamd_events::{Envelope, Event};
use beamd_snapshots::Fold;
use serde::{Deserialize, Serialize};

use crate::domain::Account;

/// Accounts by id, and email → id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountsProjection {
    accounts: BTreeMap<String, Account>,
    emails: BTreeMap<String, String>,
}

impl AccountsProjection {
    /// The account signing in with `email` (any case).
    pub fn by_email(&self, email: &str) -> Option<&Account> {
        let id = self.emails.get(&email.trim().to_ascii_lowercase())?;
        self.accounts.get(id)
    }

    /// An account by id.
    pub fn get(&self, id: &str) -> Option<&Account> {
        self.accounts.get(id)
    }
}

impl Fold for AccountsProjection {
    const KIND: &'static str = "accounts";

    fn apply(&mut self, envelope: &Envelope) {
        let id = envelope.stream.as_str();
        match &envelope.event {
            Event::AccountRegistered(e) => {
                self.emails.insert(e.email.clone(), id.to_string());
            }
            Event::PasswordResetRequested(_)
            | Event::PasswordChanged(_)
            | Event::SessionsEnded(_)
            | Event::SessionEnded(_) => {}
            _ => return,
        }
        self.accounts
            .entry(id.to_string())
            .or_default()
            .apply(envelope);
    }
}
