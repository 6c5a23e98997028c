//! Measuring workloads: wall time, CPU time and peak memory of a command and
//! all the processes it starts. Used by `trident demo` now and by
//! `trident bench` later; every engine is measured the same way, as a
//! separate process, so that one engine's memory never pollutes another's.

pub mod chat;
pub mod echo_reference;
pub mod fetch;
pub mod loopback;
pub mod measure;
pub mod report;
pub mod scan;

pub use measure::{Measurement, measure, measure_with_limit};
