//! `trident bench` and `trident demo`: each workload run by every engine and
//! every installed peer program, each run a separate process measured the
//! same way (wall time, CPU of the whole process tree, peak RSS and PSS), so
//! that one contender's memory never pollutes another's.
//!
//! - [`measure`](mod@measure): runs one command and measures it.
//! - [`fixture`]: what contenders run against: the loopback scan target, the
//!   fetch corpus and its server (nginx or built-in), servers under test.
//! - [`scan`], [`fetch`], [`chat`]: one bench per workload; [`irc_peer`]:
//!   the chat servers it measures (trident's engines, stock IRC servers);
//!   [`pin`]: the load generator and the server on a CPU each.
//! - [`harness`]: what every bench does the same way: line-up, rounds,
//!   records, medians, same-run ratios, runs.csv + summary.json.
//! - [`echo_reference`]: the minimal echo server the echo bench compares with.
//! - [`chapter`]: the chapter's own Python programs, run as peers.
//! - [`all`]: every workload's bench in one go; [`report`]: their results
//!   as one table, charts, report.md and index.html.

pub mod all;
pub mod chapter;
pub mod chat;
mod chat_idle;
mod chat_ladder;
pub mod echo_reference;
pub mod fetch;
pub mod fixture;
pub mod harness;
pub mod irc_peer;
pub mod measure;
pub mod pin;
pub mod report;
pub mod scan;

pub use measure::{Measurement, measure, measure_with_limit};
