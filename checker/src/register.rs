//! The key-value register both searches model: one key's value, interned as
//! a number, and what each recorded operation may do to it.

use std::collections::HashMap;

use crate::history::Record;

/// An interned value: [`ABSENT`] is "no value", [`ANY`] the unknown initial value.
pub(crate) type Val = u32;
/// The key holds nothing.
pub(crate) const ABSENT: Val = 0;
/// The key holds some value from before the history (`Initial::Any`).
pub(crate) const ANY: Val = u32::MAX;

/// What an operation does to its key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// Reads this value.
    Read(Val),
    /// Writes this value (a delete writes [`ABSENT`]).
    Write(Val),
    /// Compare and swap; `swapped` is unknown without an answer.
    Cas {
        expected: Val,
        new: Val,
        swapped: Option<bool>,
    },
    /// Says nothing and changes nothing: an unanswered `get`, a `noop`, an
    /// operation the checker does not know.
    Nop,
}

impl Kind {
    /// The kind of `r`, interning its values; `optional` when it has no answer.
    pub(crate) fn of<'r>(r: &'r Record, optional: bool, values: &mut Values<'r>) -> Kind {
        match r.op.as_str() {
            "get" if optional => Kind::Nop,
            "get" => Kind::Read(values.intern(&r.value)),
            "put" => Kind::Write(values.intern(&r.value)),
            "delete" => Kind::Write(ABSENT),
            "cas" => Kind::Cas {
                expected: values.intern(&r.expected),
                new: values.intern(&r.value),
                swapped: if optional { None } else { r.swapped },
            },
            _ => Kind::Nop,
        }
    }

    /// Whether placing it can never change the value.
    pub(crate) fn read_only(&self) -> bool {
        match self {
            Kind::Read(_) | Kind::Nop => true,
            Kind::Cas { swapped, .. } => *swapped == Some(false),
            Kind::Write(_) => false,
        }
    }

    /// The value it may write, if any (a delete writes [`ABSENT`]).
    pub(crate) fn may_write(&self) -> Option<Val> {
        match *self {
            Kind::Write(v) => Some(v),
            Kind::Cas { new, swapped, .. } if swapped != Some(false) => Some(new),
            _ => None,
        }
    }

    /// Whether placing it on `cur` is certainly possible and leaves `cur`:
    /// a read of `cur`, or a compare-and-swap known to fail on it.
    pub(crate) fn keeps(&self, cur: Val) -> bool {
        match *self {
            Kind::Read(v) => v == cur && cur != ANY,
            Kind::Cas {
                expected,
                swapped: Some(false),
                ..
            } => expected != cur && cur != ANY,
            Kind::Nop => true,
            _ => false,
        }
    }

    /// The values placing it on `cur` may leave (none if it cannot be placed).
    pub(crate) fn apply(&self, cur: Val, out: &mut Vec<Val>) {
        match *self {
            Kind::Read(v) => {
                if cur == v || cur == ANY {
                    out.push(v);
                }
            }
            Kind::Write(v) => out.push(v),
            Kind::Cas {
                expected,
                new,
                swapped,
            } => {
                let matches = cur == expected || cur == ANY;
                let differs = cur != expected || cur == ANY;
                if matches && swapped != Some(false) {
                    out.push(new);
                }
                if differs && swapped != Some(true) {
                    out.push(cur);
                }
            }
            Kind::Nop => out.push(cur),
        }
    }
}

/// Numbers for the values of a history (0 stays "absent").
#[derive(Debug, Default)]
pub(crate) struct Values<'r>(HashMap<&'r str, Val>);

impl<'r> Values<'r> {
    /// How many distinct values were interned (the largest number given).
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The number standing for `v`.
    pub(crate) fn intern(&mut self, v: &'r Option<String>) -> Val {
        match v {
            None => ABSENT,
            Some(s) => {
                let next = self.0.len() as Val + 1;
                *self.0.entry(s.as_str()).or_insert(next)
            }
        }
    }
}
