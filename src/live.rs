//! A setting that a reload (SIGHUP) may change while the process runs: read
//! on every use, so the new value holds from the next use on.

use std::fmt;
use std::sync::{Arc, RwLock};

/// A shared, replaceable value.
pub struct Live<T>(Arc<RwLock<T>>);

impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Live(self.0.clone())
    }
}

impl<T: Clone> Live<T> {
    /// A setting holding `value`.
    pub fn new(value: T) -> Self {
        Live(Arc::new(RwLock::new(value)))
    }

    /// The value now.
    pub fn get(&self) -> T {
        // Values are replaced whole; a poisoned lock still holds one.
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the value for every holder.
    pub fn set(&self, value: T) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = value;
    }
}

impl<T: Clone + fmt::Debug> fmt::Debug for Live<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Live({:?})", self.get())
    }
}

impl<T: Clone + PartialEq> PartialEq for Live<T> {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}
