//! Authenticating an agent's token against the catalog projection: an id
//! the log does not hold is refused without waking an actor.

use beamd_events::vocabulary::KeyKind;

use crate::actors::Core;
use crate::domain::{Key, KeyStatus};
use crate::protocol::{ErrorFrame, Token};

fn unauthorized(message: &str) -> ErrorFrame {
    ErrorFrame {
        code: "unauthorized".into(),
        message: message.into(),
    }
}

/// The agent key a token names, if its secret matches and the key may open tunnels.
pub async fn authenticate(core: &Core, token: &Token) -> Result<Key, ErrorFrame> {
    let (id, secret) = token
        .parts()
        .ok_or_else(|| unauthorized("the token is not of the form tok_<id>.<secret>"))?;
    let key = core
        .known_key(id)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| unauthorized("unknown token"))?;
    let stored =
        blake3::Hash::from_hex(&key.secret_hash).map_err(|_| unauthorized("unknown token"))?;
    // blake3::Hash compares in constant time.
    if key.status == KeyStatus::Missing || blake3::hash(secret.as_bytes()) != stored {
        return Err(unauthorized("unknown token"));
    }
    if key.status == KeyStatus::Revoked {
        return Err(unauthorized("the token is revoked"));
    }
    if key.kind != Some(KeyKind::Agent) {
        return Err(unauthorized("this token cannot open tunnels"));
    }
    Ok(key)
}
