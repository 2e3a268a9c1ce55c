//! Trace events -> decisions: ingress adapters, the decision state, the
//! pure `decide` step, outcome sources and the replay driver.

pub mod event;
pub mod ingress;
