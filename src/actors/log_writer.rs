//! The log writer actor: the single appender every entity actor goes through.
//!
//! Appends run concurrently against the group-commit log, so everything that
//! arrives while a flush runs shares the next one. A poisoned log (failed
//! write or flush) fails this actor: nothing after it can be trusted.

use std::sync::Arc;

use beamd_events::{Append, Envelope, EventLog, LogError};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::ask::ask;
use super::CoreError;
use crate::metric_catalog;

/// Messages to the log writer.
pub enum LogWriterMsg {
    /// Append and reply once durable.
    Append(Append, RpcReplyPort<Result<Vec<Envelope>, LogError>>),
    /// The log failed for good.
    Poisoned(String),
}

/// The log writer actor.
pub struct LogWriter;

impl Actor for LogWriter {
    type Msg = LogWriterMsg;
    type State = Arc<dyn EventLog>;
    type Arguments = Arc<dyn EventLog>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        log: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(log)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        log: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            LogWriterMsg::Append(append, reply) => {
                let log = log.clone();
                tokio::spawn(async move {
                    let result = log.append(append).await;
                    if let Err(LogError::Poisoned(why)) = &result {
                        let _ = myself.cast(LogWriterMsg::Poisoned(why.clone()));
                    }
                    let _ = reply.send(result);
                });
                Ok(())
            }
            LogWriterMsg::Poisoned(why) => Err(format!("event log stopped: {why}").into()),
        }
    }
}

/// Appends through the log writer.
pub async fn append(
    writer: &ActorRef<LogWriterMsg>,
    append: Append,
) -> Result<Vec<Envelope>, CoreError> {
    let started = std::time::Instant::now();
    let committed = ask(writer, |reply| LogWriterMsg::Append(append, reply)).await??;
    metrics::histogram!(metric_catalog::LOG_APPEND.name).record(started.elapsed().as_secs_f64());
    metrics::counter!(metric_catalog::EVENTS_APPENDED.name).increment(committed.len() as u64);
    Ok(committed)
}
