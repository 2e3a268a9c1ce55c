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

/// A prior for one class and action: each missing value falls back to the
/// world's `default`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialPrior {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

impl PartialPrior {
    fn over(self, d: Prior) -> Prior {
        Prior {
            success: self.success.unwrap_or(d.success),
            latency_ms: self.latency_ms.unwrap_or(d.latency_ms),
            cost_usd: self.cost_usd.unwrap_or(d.cost_usd),
        }
    }
}

/// Priors per action kind; a missing kind falls back to the world default.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassPriors {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<PartialPrior>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<PartialPrior>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<PartialPrior>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct World {
    pub version: u32,
    pub default: Prior,
    #[serde(default)]
    pub classes: IndexMap<String, ClassPriors>,
}

/// The default world model, `fixtures/world.yaml`, built into the binary so
/// that a replay without `--world` uses the documented priors.
pub const BUILTIN_YAML: &str = include_str!("../../fixtures/world.yaml");

impl Default for World {
    /// The built-in world; should it ever fail to parse (a test guards
    /// against that), one neutral prior for everything.
    fn default() -> Self {
        World::from_yaml(BUILTIN_YAML).unwrap_or_else(|_| World {
            version: 1,
            default: Prior { success: 0.5, latency_ms: 1500.0, cost_usd: 0.002 },
            classes: IndexMap::new(),
        })
    }
}

impl World {
    /// Parses and validates a world model.
    pub fn from_yaml(text: &str) -> Result<World, String> {
        let w: World = yaml_serde::from_str(text).map_err(|e| e.to_string())?;
        if w.version != 1 {
            return Err(format!("unsupported world model version {} (expected 1)", w.version));
        }
        let d = w.default;
        let priors = std::iter::once(("default".to_string(), d)).chain(w.classes.iter().flat_map(|(c, p)| {
            [("retry", &p.retry), ("fallback", &p.fallback), ("reset", &p.reset)]
                .into_iter()
                .filter_map(move |(k, v)| v.map(|v| (format!("{c}.{k}"), v.over(d))))
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
        specific.map_or(self.default, |p| p.over(self.default))
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
    fn builtin_world_parses() {
        let w = World::from_yaml(BUILTIN_YAML).expect("fixtures/world.yaml is valid");
        assert!(!w.classes.is_empty());
    }

    #[test]
    fn missing_values_fall_back_field_by_field() {
        let w = World::from_yaml(
            "version: 1\ndefault: {success: 0.5, latency_ms: 100, cost_usd: 0.001}\nclasses:\n  timeout:\n    retry: {success: 0.9}\n",
        )
        .expect("valid");
        let p = w.prior(Some("timeout"), ActionKind::Retry);
        assert_eq!((p.success, p.latency_ms, p.cost_usd), (0.9, 100.0, 0.001));
    }

    #[test]
    fn rejects_bad_probabilities_and_unknown_keys() {
        let bad = World::from_yaml("version: 1\ndefault: {success: 1.5, latency_ms: 1, cost_usd: 0}\n");
        assert!(bad.expect_err("out of range").contains("between 0 and 1"));
        assert!(World::from_yaml("version: 1\ndefault: {success: 0.5, latency_ms: 1, cost_usd: 0, x: 1}\n").is_err());
        assert!(World::from_yaml("version: 2\ndefault: {success: 0.5, latency_ms: 1, cost_usd: 0}\n").is_err());
    }
}
