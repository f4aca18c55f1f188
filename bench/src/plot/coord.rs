//! A plotters coordinate over transformed values whose tick positions are
//! given, not guessed (plotters' own picks are why log labels collided).

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};

/// A linear range in transformed space with fixed labelled ticks and grid lines.
#[derive(Debug, Clone)]
pub struct Ticked {
    /// Start of the range.
    pub lo: f64,
    /// End of the range.
    pub hi: f64,
    /// Labelled ticks (bold grid lines).
    pub bold: Vec<f64>,
    /// Unlabelled light grid lines.
    pub light: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.hi - self.lo;
        let f = if span > 0.0 {
            (v - self.lo) / span
        } else {
            0.0
        };
        limit.0 + (f * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}
