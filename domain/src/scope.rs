//! What a key may do: scopes in a hierarchy (`read` < `manage` < `admin`),
//! a typed set of them, and the rule that a key never mints, limits, resets
//! or revokes a key holding a scope it lacks.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::DomainError;

/// One scope. Each one includes every scope below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read the tenant's resources.
    Read,
    /// Change them (tokens, tunnels, domains).
    Manage,
    /// Operate the edge: every tenant.
    Admin,
}

impl Scope {
    /// Every scope name a key may carry.
    pub const NAMES: [&'static str; 3] = ["read", "manage", "admin"];

    /// The scope's name in a key's `scopes`.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Manage => "manage",
            Scope::Admin => "admin",
        }
    }

    /// The scope named `name`, if it is one.
    pub fn named(name: &str) -> Option<Scope> {
        match name {
            "read" => Some(Scope::Read),
            "manage" => Some(Scope::Manage),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// The scopes a key holds, as recorded in its `KeyIssued` event (a list of
/// names). Recorded names that are not scopes (early keys carried e.g.
/// `tunnels`) grant nothing, as they never did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    /// The scopes `names` asks for; an unknown name is refused.
    pub fn parse(names: &[String]) -> Result<Scopes, DomainError> {
        names
            .iter()
            .map(|n| {
                Scope::named(n).ok_or_else(|| {
                    DomainError::InvalidRequest(format!(
                        "unknown scope {n:?}; scopes are read, manage, admin"
                    ))
                })
            })
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Scopes)
    }

    /// A set of these scopes.
    pub fn of(scopes: &[Scope]) -> Scopes {
        Scopes(scopes.iter().copied().collect())
    }

    /// The highest scope held; every key may read.
    pub fn highest(&self) -> Scope {
        self.0.last().copied().unwrap_or(Scope::Read)
    }

    /// The names, in order.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|s| s.name().to_string()).collect()
    }

    /// Whether a key holding `by` may act on a key holding these scopes (or
    /// mint one): only if it holds every one of them.
    pub fn within(&self, by: Scope) -> Result<(), DomainError> {
        match self.highest() {
            needed if needed > by => Err(DomainError::Unauthorized(format!(
                "a key with the {:?} scope cannot act on a key holding the {:?} scope it lacks",
                by.name(),
                needed.name()
            ))),
            _ => Ok(()),
        }
    }
}

impl From<Vec<String>> for Scopes {
    fn from(names: Vec<String>) -> Self {
        Scopes(names.iter().filter_map(|n| Scope::named(n)).collect())
    }
}

impl From<Scopes> for Vec<String> {
    fn from(s: Scopes) -> Self {
        s.names()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scopes_form_a_hierarchy() {
        assert!(Scope::Read < Scope::Manage && Scope::Manage < Scope::Admin);
        assert_eq!(Scopes::default().highest(), Scope::Read);
        let s = Scopes::parse(&names(&["admin", "read"])).unwrap();
        assert_eq!(s.highest(), Scope::Admin);
        assert_eq!(s.names(), ["read", "admin"]);
    }

    #[test]
    fn unknown_names_are_refused_when_asked_for_and_grant_nothing_when_recorded() {
        let err = Scopes::parse(&names(&["root"])).unwrap_err();
        assert_eq!(err.code(), "invalid_request");
        let recorded = Scopes::from(names(&["tunnels"]));
        assert_eq!(recorded.highest(), Scope::Read);
    }

    #[test]
    fn a_key_acts_only_on_keys_within_its_scope() {
        let admin = Scopes::of(&[Scope::Admin]);
        assert_eq!(
            admin.within(Scope::Manage).unwrap_err().code(),
            "unauthorized"
        );
        assert!(admin.within(Scope::Admin).is_ok());
        assert!(Scopes::of(&[Scope::Manage]).within(Scope::Manage).is_ok());
        assert!(Scopes::default().within(Scope::Read).is_ok());
    }
}
