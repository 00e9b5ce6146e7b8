//! The core's commands for accounts: registration goes through the
//! directory (emails are unique); resets and password changes to the
//! account's actor. Each returns once the projections show it.

use super::ask::ask;
use super::core::Core;
use super::directory::{entity, DirectoryMsg};
use super::supervisor::command;
use super::CoreError;
use crate::domain::{Account, AccountCommand};

impl Core {
    /// Registers an account for an existing tenant.
    pub async fn register_account(
        &self,
        tenant: &str,
        email: &str,
        name: &str,
        password_hash: &str,
    ) -> Result<Account, CoreError> {
        let args = [tenant, email, name, password_hash].map(str::to_string);
        let registered = ask(self.directory_actor(), |r| {
            DirectoryMsg::RegisterAccount(args, r)
        })
        .await;
        self.settled(registered.and_then(|r| r)).await
    }

    /// Asks for a reset link, or resets the password with one.
    pub async fn account_command(
        &self,
        id: &str,
        cmd: AccountCommand,
    ) -> Result<Account, CoreError> {
        self.settled(command(&self.gateway.accounts, id, cmd).await)
            .await
    }

    /// An account's state.
    pub async fn account(&self, id: &str) -> Result<Account, CoreError> {
        entity(&self.gateway.accounts, id).await
    }
}
