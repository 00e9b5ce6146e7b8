//! When to take a snapshot: every N events of a stream, and on clean shutdown.

/// The snapshot policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Take a snapshot once this many events were folded since the last one (0 = never by count).
    pub every_events: u64,
    /// Take a snapshot on clean shutdown.
    pub on_shutdown: bool,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        Self {
            every_events: 1_000,
            on_shutdown: true,
        }
    }
}

impl SnapshotPolicy {
    /// Whether a snapshot is due after `since_last` events folded since the last snapshot.
    pub fn due(&self, since_last: u64) -> bool {
        self.every_events > 0 && since_last >= self.every_events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_after_every_n_events_only() {
        let p = SnapshotPolicy {
            every_events: 3,
            on_shutdown: true,
        };
        assert!(!p.due(2));
        assert!(p.due(3));
        let never = SnapshotPolicy {
            every_events: 0,
            on_shutdown: true,
        };
        assert!(!never.due(1_000_000));
    }
}
