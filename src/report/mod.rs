//! Outputs of a replay: the per-decision trace, the CI report and the
//! operations summary, written atomically.
