//! `beamd bench …`: measurements run side by side with their baselines, so
//! that figures are ratios taken in one run on one machine.

mod api;
mod child;
pub mod core;
pub mod h2;
pub mod http;
pub mod idle;
pub mod log;
mod nats;
mod raw;
pub mod scale;
pub mod tunnel;
