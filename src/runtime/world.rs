//! The world model: priors for actions the recording cannot answer. Per
//! failure class and action kind, the chance the action succeeds and the
//! latency and cost of the simulated call (`fixtures/world.yaml` documents
//! the format and ships the default).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::syntax::ast::ActionKind;

/// One prior.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prior {
    /// Probability in `[0, 1]` that the action succeeds.
    pub success: f64,
    pub latency_ms: f64,
    pub cost_usd: f64,
}

/// Priors per action kind; a missing kind falls back to the world default.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassPriors {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Prior>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Prior>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<Prior>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct World {
    pub version: u32,
    pub default: Prior,
    #[serde(default)]
    pub classes: IndexMap<String, ClassPriors>,
}

/// The world used when no `--world` is given: one neutral prior for
/// everything. Replays that rely on it say so in the report.
impl Default for World {
    fn default() -> Self {
        World {
            version: 1,
            default: Prior { success: 0.5, latency_ms: 1500.0, cost_usd: 0.002 },
            classes: IndexMap::new(),
        }
    }
}

impl World {
    /// Parses and validates a world model.
    pub fn from_yaml(text: &str) -> Result<World, String> {
        let w: World = yaml_serde::from_str(text).map_err(|e| e.to_string())?;
        if w.version != 1 {
            return Err(format!("unsupported world model version {} (expected 1)", w.version));
        }
        let priors = std::iter::once(("default".to_string(), &w.default)).chain(w.classes.iter().flat_map(|(c, p)| {
            [("retry", &p.retry), ("fallback", &p.fallback), ("reset", &p.reset)]
                .into_iter()
                .filter_map(move |(k, v)| v.as_ref().map(|v| (format!("{c}.{k}"), v)))
        }));
        for (name, p) in priors {
            if !(0.0..=1.0).contains(&p.success) {
                return Err(format!("`{name}.success` must be between 0 and 1, got {}", p.success));
            }
            if !(p.latency_ms >= 0.0 && p.cost_usd >= 0.0) {
                return Err(format!("`{name}` latency and cost must not be negative"));
            }
        }
        Ok(w)
    }

    /// The prior for a class (`None`: unknown class) and action.
    pub fn prior(&self, class: Option<&str>, action: ActionKind) -> Prior {
        let p = class.and_then(|c| self.classes.get(c));
        let specific = p.and_then(|p| match action {
            ActionKind::Retry => p.retry,
            ActionKind::Fallback => p.fallback,
            ActionKind::Reset => p.reset,
            ActionKind::Escalate | ActionKind::Abort => None,
        });
        specific.unwrap_or(self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_falls_back_to_default() {
        let w = World::from_yaml(
            "version: 1\ndefault: {success: 0.5, latency_ms: 100, cost_usd: 0.001}\nclasses:\n  timeout:\n    retry: {success: 0.8, latency_ms: 900, cost_usd: 0.002}\n",
        )
        .expect("valid");
        assert_eq!(w.prior(Some("timeout"), ActionKind::Retry).success, 0.8);
        assert_eq!(w.prior(Some("timeout"), ActionKind::Fallback).success, 0.5);
        assert_eq!(w.prior(None, ActionKind::Retry).latency_ms, 100.0);
    }

    #[test]
    fn rejects_bad_probabilities_and_unknown_keys() {
        let bad = World::from_yaml("version: 1\ndefault: {success: 1.5, latency_ms: 1, cost_usd: 0}\n");
        assert!(bad.expect_err("out of range").contains("between 0 and 1"));
        assert!(World::from_yaml("version: 1\ndefault: {success: 0.5, latency_ms: 1, cost_usd: 0, x: 1}\n").is_err());
        assert!(World::from_yaml("version: 2\ndefault: {success: 0.5, latency_ms: 1, cost_usd: 0}\n").is_err());
    }
}
