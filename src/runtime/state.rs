//! The decision state of one request: what the engine has counted so far.
//! It is serialisable because `rcv decide` takes it in and hands it back:
//! an agent loop keeps it between calls.

use std::fmt;
use std::sync::Arc;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::names::Name;

/// Per-request state. All counters start at zero for a new request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct State {
    /// Attempts made in the current step so far (a step is a call and its
    /// retries or fallbacks, up to its first accepted success).
    pub attempt: u32,
    /// Steps completed successfully.
    pub steps_done: u32,
    /// Failures per class in this request.
    pub class_attempts: ClassCounts,
    /// Calls made by the request (recorded or replayed).
    pub calls: u32,
    pub cost_usd: f64,
    /// Latency spent, backoff delays included.
    pub latency_ms: f64,
    /// Declared model names tried, in first-use order. Shared between the
    /// state and its snapshots in decision records: it rarely changes.
    pub models_tried: Arc<[Name]>,
    /// Strategies tried, in first-use order (shared like `models_tried`).
    pub strategies_tried: Arc<[Name]>,
    pub retries: u32,
    pub fallbacks: u32,
    pub resets: u32,
    pub escalations: u32,
    /// Decisions taken so far.
    pub decisions: u32,
    /// The model the next call goes to (declared name), once known.
    pub model: Option<Name>,
    /// The strategy of the next call, once changed by a decision.
    pub strategy: Option<Name>,
}

impl State {
    /// Accounts one call's cost and latency.
    pub fn charge(&mut self, cost_usd: f64, latency_ms: f64) {
        self.calls += 1;
        self.cost_usd += cost_usd.max(0.0);
        self.latency_ms += latency_ms.max(0.0);
    }

    pub fn note_model(&mut self, model: &str) {
        note(&mut self.models_tried, model);
    }

    pub fn note_strategy(&mut self, strategy: &str) {
        note(&mut self.strategies_tried, strategy);
    }

    pub fn class_count(&self, class: &str) -> u32 {
        self.class_attempts.get(class).unwrap_or(0)
    }
}

/// Appends `name` to a shared list unless it is there already.
fn note(list: &mut Arc<[Name]>, name: &str) {
    if !list.iter().any(|n| &**n == name) {
        *list = list.iter().cloned().chain([Name::from(name)]).collect();
    }
}

/// Failures per class, in the order the classes first failed; a JSON object
/// in `rcv decide` and in traces. A request meets a handful of classes, so
/// a vector searched in order does better than a hash map, and its copy in
/// each decision record is one allocation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClassCounts(Vec<(Name, u32)>);

impl ClassCounts {
    pub fn get(&self, class: &str) -> Option<u32> {
        self.0.iter().find(|(c, _)| &**c == class).map(|&(_, n)| n)
    }

    /// Counts one more failure of `class`.
    pub fn add(&mut self, class: &Name) {
        match self.0.iter_mut().find(|(c, _)| c == class) {
            Some((_, n)) => *n += 1,
            None => self.0.push((class.clone(), 1)),
        }
    }

    /// Sets the count of `class`, keeping its place if it has one.
    pub fn set(&mut self, class: &str, n: u32) {
        match self.0.iter_mut().find(|(c, _)| &**c == class) {
            Some((_, m)) => *m = n,
            None => self.0.push((class.into(), n)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.0.iter().map(|(c, n)| (&**c, *n))
    }
}

impl Serialize for ClassCounts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (class, n) in &self.0 {
            map.serialize_entry(&**class, n)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ClassCounts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Counts;
        impl<'de> Visitor<'de> for Counts {
            type Value = ClassCounts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of class names to failure counts")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ClassCounts, A::Error> {
                let mut counts = ClassCounts::default();
                // A repeated class takes the later count, as a JSON object's
                // repeated key does in serde_json.
                while let Some((class, n)) = map.next_entry::<String, u32>()? {
                    counts.set(&class, n);
                }
                Ok(counts)
            }
        }
        d.deserialize_map(Counts)
    }
}

/// Fleet-level protection as seen by one decision: computed in trace time
/// from the recorded traffic, never from the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetView {
    /// The circuit breaker of the failed call's model is open.
    pub breaker_open: bool,
    /// The fleet retry budget allows no retry now.
    pub retry_budget_exhausted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_counts_keep_first_failure_order_and_read_back_as_an_object() {
        let mut c = ClassCounts::default();
        let (a, b): (Name, Name) = ("timeout".into(), "rate_limited".into());
        c.add(&a);
        c.add(&b);
        c.add(&a);
        assert_eq!(c.iter().collect::<Vec<_>>(), [("timeout", 2), ("rate_limited", 1)]);
        assert_eq!((c.get("timeout"), c.get("other")), (Some(2), None));
        let json = serde_json::to_string(&c).expect("json");
        assert_eq!(json, r#"{"timeout":2,"rate_limited":1}"#);
        assert_eq!(serde_json::from_str::<ClassCounts>(&json).expect("back"), c);
        // A repeated key keeps its first place and takes the later count.
        let dup: ClassCounts = serde_json::from_str(r#"{"a":1,"b":2,"a":5}"#).expect("dup");
        assert_eq!(dup.iter().collect::<Vec<_>>(), [("a", 5), ("b", 2)]);
        let err = serde_json::from_str::<ClassCounts>(r#"{"a":-1}"#).expect_err("negative");
        assert!(err.to_string().contains("invalid value"), "{err}");
        let err = serde_json::from_str::<ClassCounts>("[1]").expect_err("not an object");
        assert!(err.to_string().contains("an object of class names to failure counts"), "{err}");
    }

    #[test]
    fn noted_names_are_listed_once_in_first_use_order() {
        let mut s = State::default();
        s.note_model("primary");
        let snapshot = s.clone();
        s.note_model("backup");
        s.note_model("primary");
        s.note_strategy("direct");
        s.note_strategy("direct");
        assert_eq!(s.models_tried.iter().map(|m| &**m).collect::<Vec<_>>(), ["primary", "backup"]);
        assert_eq!(s.strategies_tried.len(), 1);
        // A snapshot taken earlier keeps its own list.
        assert_eq!(snapshot.models_tried.len(), 1);
    }
}
