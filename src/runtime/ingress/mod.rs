//! Ingress adapters: native NDJSON, OTLP/JSON spans, TRAIL span trees, and
//! extraction of provider error JSON embedded in text.
//!
//! Every adapter produces native [`Event`]s and feeds them through one
//! [`CaseAssembler`]; the engine reads the result through a [`Stream`]:
//!
//! ```no_run
//! use rcv::runtime::ingress::{self, Format, Item, Options};
//! let mut stream = ingress::open("trace.ndjson", Format::Auto, Options::default())?;
//! while let Some(item) = stream.next_item()? {
//!     match item {
//!         // Every accepted event, once, in trace order: feed fleet state here.
//!         Item::Event(accepted) => println!("line {}: {}", accepted.line, accepted.event.kind.as_str()),
//!         // A completed case: replay it.
//!         Item::Case(case) => println!("case {} with {} calls", case.request_id, case.calls.len()),
//!         // A line that was not accepted: report it (and exit 1 at the end).
//!         Item::Rejected(r) => eprintln!("{}:{}: {}: {}", r.file, r.line, r.reason, r.detail),
//!     }
//! }
//! let rejected = stream.stats().rejected_total();
//! # let _ = rejected;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! `docs/trace-format.md` is the reference for the formats and the
//! rejection reasons.

pub mod assemble;
pub mod chunks;
pub mod native;
pub mod otlp;
pub mod provider;
pub mod reject;
pub mod spans;
pub mod stream;
pub mod trail;

pub use assemble::{Accepted, Case, CaseAssembler, NoObserver, Observer};
pub use reject::{RejectReason, Rejection, Stats};
pub use stream::{
    Format, Item, LineBatch, NativeInput, Options, ParsedLines, Stream, assemble, open, open_reader, read_all,
};

pub use super::event::Event;
