//! The API gateway's aggregates: services, routes and consumers, and the
//! path patterns routes match requests with.

mod consumer;
mod error_group;
mod pattern;
mod route;
mod service;

pub use consumer::{tier_rate, Consumer, ConsumerCommand, TIERS};
pub use error_group::{error_group_id, ErrorGroup, ErrorGroupCommand, ERROR_KINDS};
pub use pattern::{PathPattern, PATH_PATTERN, PATH_PATTERN_MAX};
pub use route::{Route, RouteCommand, METHODS};
pub use service::{Health, Service, ServiceCommand};
