//! beamd
