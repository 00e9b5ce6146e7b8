//! The end-to-end suite: the real `beamd` binary, real data dirs, real
//! sockets and real third-party clients, one module per area, all in one
//! test binary so that the suite links once. `cargo test --test e2e` runs it
//! all; one area runs with its module path as the filter, e.g.
//! `cargo test --test e2e gateway::` (or one test:
//! `cargo test --test e2e kill_edge::`). Helpers shared by every area are in
//! `common/`.

mod common;

mod accounts;
mod acme;
mod agent_streams;
mod api;
mod api_tokens;
mod audit;
mod bench_h2;
mod bench_idle;
mod cli_api;
mod clients;
mod cluster;
mod config_files;
mod connection_limits;
mod core;
mod core_actors;
mod dashboard;
mod disk_full;
mod domains;
mod edge;
mod edge_supervisor;
mod egress;
mod failover;
mod feed;
mod forwarding;
mod fuzz_control;
mod fuzz_targets;
mod gateway;
mod grants;
mod grpc;
mod http;
mod http2;
mod http_access;
mod inspect;
mod isolation;
mod jetstream_cli;
mod junk_flood;
mod kill_edge;
mod limits;
mod log_failure;
mod oidc;
mod pools;
mod proxy_protocol;
mod readme_examples;
mod reconnect;
mod replay;
mod restart_agents;
mod scale_out;
mod secrets;
mod sign_in_attacks;
mod simulate;
mod transparency;
mod tunnel;
mod udp;
