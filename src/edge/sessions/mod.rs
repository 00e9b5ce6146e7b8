//! Agent sessions: one listener actor per transport under the edge's
//! supervisor (`supervisor.rs`, `listener.rs`), one session per agent
//! connection (`session.rs`: hello, authentication in `auth.rs`, traffic
//! reports, cleanup), the tunnels a session opens (`open.rs`), and handing
//! tunnels over when another node takes them (`takeover.rs`).

mod auth;
mod listener;
mod open;
mod session;
mod supervisor;
mod takeover;

pub use session::run;
pub use supervisor::{EdgeSupervisor, EdgeSupervisorMsg, ListenerActor, ListenerMsg, ListenerSpec};
pub use takeover::follow as follow_takeovers;
