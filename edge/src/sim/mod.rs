//! Simulated plant (work in progress).
