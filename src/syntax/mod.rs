//! Source text -> AST: the pest grammar (`grammar/rcv.pest`), the parser
//! and the formatter. Knows nothing of names, types or the runtime.

pub mod ast;
pub mod fmt;
pub mod parse;

pub use parse::parse;
