//! Unit tests of lowering, evaluation, analysis and hashing.
