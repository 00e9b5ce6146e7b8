//! The actors: thin shells around the pure aggregates. Each entity actor
//! decides, appends through the log writer (awaiting the durable ack),
//! applies and replies; supervisors spawn, passivate and restart them; the
//! directory decides creations; the projector folds committed events.

mod accounts;
mod ask;
mod core;
mod directory;
mod entity;
mod error;
mod gateway;
mod log_writer;
mod projector;
mod secret;
mod shell;
mod supervisor;

pub use self::core::{Core, CoreConfig};
pub use ask::{ask, CALL_TIMEOUT};
pub use directory::{DirectoryActor, DirectoryMsg};
pub use entity::{EntityActor, EntityMsg, Hosted};
pub use error::CoreError;
pub use log_writer::{LogWriter, LogWriterMsg};
pub use projector::{start_projector, ProjectorHandle, GLOBAL_ID};
pub use secret::Secret;
pub use shell::{Shell, Timings};
pub use supervisor::{EntitySupervisor, SupervisorMsg};
