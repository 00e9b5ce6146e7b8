//! What beamd's tests need from outside the code: the tools they run
//! (Debian packages, a Python venv, cargo-fuzz), installed when missing and
//! once per process, and real nats-servers. Shared by the end-to-end suite
//! and the events crate's tests; never a dependency of the product.

pub mod nats;
pub mod tools;
