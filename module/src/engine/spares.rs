//! Fused runs kept for the next run of the same steps.
//!
//! A trigger's every event compiles its plan and fuses its host steps again; building a
//! fused run (the shim's chain of step closures, a guest's `open-run` and `close`) cost
//! more than the event's own work. A host keeps the runs that ended clean — nothing of
//! them outlives their end — and hands them to the next run of the same steps.

use std::sync::Mutex;

use super::plan::{HostStep, PlanArg};

/// What a fused run is made of: its steps' operations and the code they call. Two groups
/// with the same key build the same run. None when a step has a plain-value argument (a
/// zero value): such runs are not kept.
#[derive(Clone, Debug, PartialEq)]
pub struct SpareKey {
    steps: Vec<(&'static str, Vec<u32>)>,
    /// The host's own distinction (e.g. sync or not for Python).
    flavour: u8,
}

impl SpareKey {
    pub fn of(steps: &[HostStep], flavour: u8) -> Option<SpareKey> {
        let steps = steps
            .iter()
            .map(|s| {
                let code = s.args.iter().map(|a| match a {
                    PlanArg::Code(i) => Some(*i),
                    PlanArg::Value(_) => None,
                });
                Some((s.op, code.collect::<Option<Vec<u32>>>()?))
            })
            .collect::<Option<_>>()?;
        Some(SpareKey { steps, flavour })
    }

    /// Whether every step keeps nothing from one record to the next (map, flatmap,
    /// filter, foreach): a run of them ends with nothing to flush.
    pub fn stateless(&self) -> bool {
        self.steps
            .iter()
            .all(|(op, _)| matches!(*op, "map" | "flatmap" | "filter" | "foreach"))
    }
}

/// At most this many spare runs per host (about one per worker running its plan at once).
const MAX_SPARES: usize = 8;

/// A host's spare runs.
pub struct Spares<T>(Mutex<Vec<(SpareKey, T)>>);

impl<T> Default for Spares<T> {
    fn default() -> Self {
        Spares(Mutex::new(Vec::new()))
    }
}

impl<T> Spares<T> {
    /// A spare run of `key`, if one is kept.
    pub fn take(&self, key: &SpareKey) -> Option<T> {
        let mut spares = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let i = spares.iter().position(|(k, _)| k == key)?;
        Some(spares.swap_remove(i).1)
    }

    /// Keeps `run` for the next run of `key`; gives it back when enough are kept.
    pub fn give(&self, key: SpareKey, run: T) -> Option<T> {
        let mut spares = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if spares.len() >= MAX_SPARES {
            return Some(run);
        }
        spares.push((key, run));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(op: &str, args: Vec<PlanArg>) -> HostStep {
        HostStep::new(op, args).expect("a host op")
    }

    #[test]
    fn keys_name_what_a_run_is_made_of() {
        let a = [
            step("map", vec![PlanArg::Code(0)]),
            step("foreach", vec![PlanArg::Code(1)]),
        ];
        let b = [
            step("map", vec![PlanArg::Code(2)]),
            step("foreach", vec![PlanArg::Code(1)]),
        ];
        let ka = SpareKey::of(&a, 0).expect("all code");
        assert_eq!(SpareKey::of(&a, 0), Some(ka.clone()));
        assert_ne!(SpareKey::of(&b, 0), Some(ka.clone()), "other code");
        assert_ne!(SpareKey::of(&a, 1), Some(ka.clone()), "other flavour");
        assert!(ka.stateless());
        let zero = [step(
            "aggregate_local",
            vec![
                PlanArg::Value(crate::engine::value::Value::Int(0)),
                PlanArg::Code(3),
            ],
        )];
        assert_eq!(SpareKey::of(&zero, 0), None);
        let acc = SpareKey::of(&[step("accumulate", vec![PlanArg::Code(4)])], 0).expect("code");
        assert!(!acc.stateless());
    }

    #[test]
    fn spares_are_taken_by_key_and_bounded() {
        let k = SpareKey::of(&[step("map", vec![PlanArg::Code(0)])], 0).expect("code");
        let other = SpareKey::of(&[step("map", vec![PlanArg::Code(1)])], 0).expect("code");
        let spares = Spares::default();
        assert_eq!(spares.take(&k), None);
        for i in 0..MAX_SPARES {
            assert_eq!(spares.give(k.clone(), i), None);
        }
        assert_eq!(spares.give(k.clone(), 99), Some(99), "full: given back");
        assert_eq!(spares.take(&other), None);
        assert!(spares.take(&k).is_some());
        assert_eq!(spares.give(other.clone(), 7), None);
        assert_eq!(spares.take(&other), Some(7));
    }
}
