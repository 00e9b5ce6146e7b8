//! The tests that load the whole machine or measure time take turns. The
//! suite is one process whose tests run side by side; a flood, a benchmark,
//! a fuzzing run, a `kill -9` loop, a timing comparison or a test that picks
//! ports before binding them (bound and released: a flood's thousands of
//! client connections could take one meanwhile) holds the turn for its
//! whole run, so that no two of them overlap (each was written to run
//! without the others), while the light tests go on beside it.

use tokio::sync::{Mutex, MutexGuard};

static HEAVY: Mutex<()> = Mutex::const_new(());

/// Waits for the heavy tests' turn; the turn is held until the guard drops.
pub async fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().await
}

/// [`heavy`] for a test that is not async.
pub fn heavy_blocking() -> MutexGuard<'static, ()> {
    HEAVY.blocking_lock()
}
