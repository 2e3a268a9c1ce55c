//! Ingress adapters: native NDJSON, OTLP/JSON spans, TRAIL span trees, and
//! extraction of provider error JSON embedded in text.
