//! beamd's event vocabulary, the envelope and its codec, and the append-only
//! event log with its sled and in-memory backends.
#![forbid(unsafe_code)]

pub mod clock;
pub mod envelope;
pub mod error;
pub mod log;
pub mod merkle;
pub mod tiles;
pub mod vocabulary;

pub use clock::{Clock, ManualClock, SystemClock};
pub use envelope::{Envelope, Hash, StreamId, GENESIS_HASH, SCHEMA_VERSION};
pub use error::LogError;
pub use log::{Append, Durability, EventLog, ExpectedVersion, Guard, LogHead, MemoryLog, SledLog};
pub use vocabulary::Event;
