//! beamd: a self-hosted tunnel edge whose every state change is an event in
//! an append-only, hash-chained log that can be replayed and audited.
#![forbid(unsafe_code)]

pub mod actors;
pub mod agent;
pub mod audit;
pub mod bench;
pub mod cli;
pub mod data_dir;
pub mod domain;
pub mod edge;
pub mod progress;
pub mod projections;
pub mod protocol;
pub mod pump;
pub mod replay;
