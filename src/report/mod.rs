//! Outputs of a replay: the per-decision trace, the CI report and the
//! operations summary, written atomically.

pub mod atomic;
pub mod gate;
pub mod policy_test;
pub mod replay_set;
#[allow(clippy::module_inception)]
pub mod report;
pub mod summary;
pub mod sweep;
pub mod trace;
mod write_behind;

pub use report::{Accumulator, PolicyStamp, Report};
