//! The sweeps of an experiment read back, with medians over repetitions.

use std::collections::BTreeMap;

use crate::outputs::SweepDir;
use crate::report::Report;

/// Every repetition of every sweep, by label.
#[derive(Debug, Clone, Default)]
pub struct Results {
    sweeps: BTreeMap<String, Vec<SweepDir>>,
}

/// The median of some values (the mean of the middle two for an even count).
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

impl Results {
    /// Adds a repetition of the sweep `label`.
    pub fn add(&mut self, label: &str, s: SweepDir) {
        self.sweeps.entry(label.to_string()).or_default().push(s);
    }

    /// The repetitions of sweep `label`.
    pub fn sweeps(&self, label: &str) -> &[SweepDir] {
        self.sweeps.get(label).map_or(&[], Vec::as_slice)
    }

    /// The report of `protocol` at `step` in each repetition of `label`.
    pub fn reports<'a>(&'a self, label: &str, protocol: &str, step: &str) -> Vec<&'a Report> {
        self.sweeps(label)
            .iter()
            .filter_map(|s| {
                s.rows
                    .iter()
                    .find(|r| r.protocol == protocol && r.step == step)
                    .map(|r| &r.report)
            })
            .collect()
    }

    /// The median over repetitions of `f` of a step's report.
    pub fn median(
        &self,
        label: &str,
        protocol: &str,
        step: &str,
        f: impl Fn(&Report) -> f64,
    ) -> Option<f64> {
        median(
            self.reports(label, protocol, step)
                .into_iter()
                .map(f)
                .collect(),
        )
    }

    /// The median over repetitions of the ratio of `f` of protocol `a` to `f`
    /// of protocol `b` at the same step of the same repetition.
    pub fn median_ratio(
        &self,
        label: &str,
        a: &str,
        b: &str,
        step: &str,
        f: impl Fn(&Report) -> f64,
    ) -> Option<f64> {
        let (ra, rb) = (self.reports(label, a, step), self.reports(label, b, step));
        median(
            ra.iter()
                .zip(&rb)
                .filter(|(_, y)| f(y) > 0.0)
                .map(|(x, y)| f(x) / f(y))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(vec![f64::NAN]), None);
    }
}
