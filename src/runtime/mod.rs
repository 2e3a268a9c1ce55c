//! Trace events -> decisions: ingress adapters, the decision state, the
//! pure `decide` step, outcome sources and the replay driver.

pub mod decide;
pub mod driver;
pub mod event;
pub mod facts;
pub mod fleet;
pub mod ingress;
pub mod pool;
pub mod replay;
pub mod rng;
pub mod state;
pub mod world;
