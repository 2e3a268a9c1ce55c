//! Ingress adapters: native NDJSON, OTLP/JSON spans, TRAIL span trees, and
//! extraction of provider error JSON embedded in text.
//!
//! Every adapter produces native [`Event`]s and feeds them through one
//! [`CaseAssembler`]; the engine reads the result through a [`Stream`]:
//!
//! ```no_run
//! use rcv::runtime::ingress::{self, Format, Item, Options};
//! let mut stream = ingress::open("trace.ndjson", Format::Auto, Options::default())?;
//! for item in &mut stream {
//!     match item {
//!         Item::Event(accepted) => { /* every accepted event, in trace order */ let _ = accepted; }
//!         Item::Case(case) => { /* a completed case */ let _ = case; }
//!         Item::Rejected(rejection) => { /* a line that was not accepted */ let _ = rejection; }
//!     }
//! }
//! let stats = stream.stats();
//! # let _ = stats;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! `docs/trace-format.md` is the reference for the formats and the
//! rejection reasons.

pub mod assemble;
pub mod facts;
pub mod native;
pub mod otlp;
pub mod provider;
pub mod reject;
pub mod spans;
pub mod stream;
pub mod trail;

pub use assemble::{Accepted, Case, CaseAssembler};
pub use facts::event_facts;
pub use reject::{RejectReason, Rejection, Stats};
pub use stream::{Format, Item, Options, Stream, open, open_reader, read_all};

pub use super::event::Event;
