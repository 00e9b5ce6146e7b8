//! Agent sessions: one listener actor per transport under the edge's
//! supervisor (`supervisor.rs`, `listener.rs`), one session per agent
//! connection (`session.rs`: hello, authentication in `auth.rs`, traffic
//! reports, cleanup), the tunnels a session opens (`open.rs`), the error
//! frames it answers with (`error_frame.rs`), and handing tunnels over when
//! another node takes them (`takeover.rs`).

mod auth;
mod error_frame;
mod listener;
mod open;
mod session;
mod supervisor;
mod takeover;

pub(super) use error_frame::{error, from_core};
pub use session::run;
pub use supervisor::{EdgeSupervisor, EdgeSupervisorMsg, ListenerActor, ListenerMsg, ListenerSpec};
pub use takeover::follow as follow_takeovers;
