//! Request/reply to an actor with a timeout, mapped to `CoreError`.

use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorRef, Message, RpcReplyPort};

use super::error::TIMED_OUT;
use super::CoreError;

/// How long a caller waits for a reply; commands wait for a durable append.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends the message built by `build` and waits for its reply.
pub async fn ask<M: Message, T: Send + 'static>(
    actor: &ActorRef<M>,
    build: impl FnOnce(RpcReplyPort<T>) -> M,
) -> Result<T, CoreError> {
    match actor.call(build, Some(CALL_TIMEOUT)).await {
        Ok(CallResult::Success(reply)) => Ok(reply),
        Ok(CallResult::Timeout) => Err(CoreError::Actor(format!("{TIMED_OUT} {CALL_TIMEOUT:?}"))),
        Ok(CallResult::SenderError) | Err(_) => Err(CoreError::Gone),
    }
}
