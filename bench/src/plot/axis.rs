//! Axes: how values map onto the drawing (linear, logarithmic, percentile)
//! and which ticks they get, with labels that stay short and never collide.
//!
//! Every axis is drawn on a linear plotters range in *transformed* space
//! (log10 of the value, or log10 of 1/(1-p) for percentiles), with the tick
//! positions chosen here and each label formatted from the value it stands
//! for. plotters' own log axis labels every minor tick ("7000.8000.9000").

/// How an axis maps values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Evenly spaced values.
    Linear,
    /// Decades evenly spaced; values must be positive.
    Log,
    /// Percentiles (0 to 100) on a 1/(1-p) axis: 90%, 99%, 99.9% and 99.99%
    /// evenly spaced (the HdrHistogram convention), so the tail is readable.
    Percentile,
}

/// Highest percentile a [`Scale::Percentile`] axis reaches.
pub const TOP_PERCENTILE: f64 = 99.99;

/// One axis of a chart.
#[derive(Debug, Clone)]
pub struct Axis {
    /// Label, with its unit, e.g. "latency (ms)".
    pub label: String,
    /// How values map onto the axis.
    pub scale: Scale,
    /// The values are counts: ticks at whole numbers only, printed without ".0".
    pub integer: bool,
    /// Start the axis at zero (linear axes), as throughput axes should.
    pub from_zero: bool,
    /// Named categories at 0, 1, 2, ... (e.g. sites) instead of numbers.
    pub names: Vec<String>,
    /// Labelled ticks at exactly these values (e.g. the steps of a sweep)
    /// instead of chosen ones.
    pub at: Vec<f64>,
}

impl Axis {
    /// A linear axis.
    pub fn linear(label: impl Into<String>) -> Axis {
        Axis {
            label: label.into(),
            scale: Scale::Linear,
            integer: false,
            from_zero: false,
            names: Vec::new(),
            at: Vec::new(),
        }
    }

    /// Labelled ticks at exactly these values.
    pub fn ticks_at(mut self, values: &[f64]) -> Axis {
        self.at = values.to_vec();
        self
    }

    /// An axis of named categories, placed at 0, 1, 2, ...
    pub fn categories(label: impl Into<String>, names: Vec<String>) -> Axis {
        Axis {
            names,
            integer: true,
            ..Axis::linear(label)
        }
    }

    /// A logarithmic axis.
    pub fn log(label: impl Into<String>) -> Axis {
        Axis {
            scale: Scale::Log,
            ..Axis::linear(label)
        }
    }

    /// A percentile axis (values 0 to 100).
    pub fn percentile(label: impl Into<String>) -> Axis {
        Axis {
            scale: Scale::Percentile,
            ..Axis::linear(label)
        }
    }

    /// Ticks at whole numbers only.
    pub fn integer(mut self) -> Axis {
        self.integer = true;
        self
    }

    /// The linear axis starts at zero.
    pub fn from_zero(mut self) -> Axis {
        self.from_zero = true;
        self
    }

    /// Where `v` lies in transformed space; `None` if it cannot be drawn
    /// (not finite, or not positive on a log axis, or 100% on a percentile axis).
    pub fn to_space(&self, v: f64) -> Option<f64> {
        let t = match self.scale {
            Scale::Linear => v,
            Scale::Log if v > 0.0 => v.log10(),
            Scale::Log => return None,
            Scale::Percentile if (0.0..100.0).contains(&v) => (100.0 / (100.0 - v)).log10(),
            Scale::Percentile => return None,
        };
        t.is_finite().then_some(t)
    }

    /// The value at `t` in transformed space.
    pub fn from_space(&self, t: f64) -> f64 {
        match self.scale {
            Scale::Linear => t,
            Scale::Log => 10f64.powf(t),
            Scale::Percentile => 100.0 - 100.0 / 10f64.powf(t),
        }
    }

    /// The drawn range (transformed space) for data spanning `lo..hi`
    /// (transformed), with a little room around it.
    pub fn range(&self, lo: f64, hi: f64) -> (f64, f64) {
        match self.scale {
            Scale::Percentile => (0.0, (100.0 / (100.0 - TOP_PERCENTILE)).log10()),
            Scale::Log => {
                let (lo, hi) = if lo <= hi { (lo, hi) } else { (0.0, 1.0) };
                let pad = ((hi - lo) * 0.04).max(0.05);
                (lo - pad, hi + pad)
            }
            Scale::Linear if !self.names.is_empty() => (-0.5, self.names.len() as f64 - 0.5),
            Scale::Linear => {
                let (mut lo, mut hi) = if lo <= hi { (lo, hi) } else { (0.0, 1.0) };
                if self.from_zero {
                    lo = lo.min(0.0);
                }
                if hi - lo < 1e-12 {
                    hi = lo
                        + if self.integer {
                            1.0
                        } else {
                            lo.abs().max(1.0) * 0.1
                        };
                }
                let pad = (hi - lo) * 0.04;
                let lo = if self.from_zero && lo >= 0.0 {
                    0.0
                } else {
                    lo - pad
                };
                (lo, hi + pad)
            }
        }
    }

    /// Labelled tick positions and unlabelled grid positions (both in
    /// transformed space) for the drawn range `lo..hi`.
    pub fn ticks(&self, lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
        if !self.at.is_empty() {
            let bold = self
                .at
                .iter()
                .filter_map(|v| self.to_space(*v))
                .filter(|t| *t >= lo - 1e-9 && *t <= hi + 1e-9)
                .collect();
            let (_, light) = Axis {
                at: Vec::new(),
                ..self.clone()
            }
            .ticks(lo, hi);
            return (bold, light);
        }
        match self.scale {
            Scale::Linear if !self.names.is_empty() => (
                (0..self.names.len()).map(|i| i as f64).collect(),
                Vec::new(),
            ),
            Scale::Linear => {
                let step = nice_step((hi - lo) / 6.0, self.integer);
                let first = (lo / step).ceil() as i64;
                let last = (hi / step).floor() as i64;
                let bold: Vec<f64> = (first..=last).map(|k| k as f64 * step).collect();
                let fine = step / 5.0;
                let light = if self.integer && fine < 1.0 {
                    Vec::new()
                } else {
                    ((lo / fine).ceil() as i64..=(hi / fine).floor() as i64)
                        .map(|k| k as f64 * fine)
                        .collect()
                };
                (bold, light)
            }
            Scale::Log => log_ticks(lo, hi),
            Scale::Percentile => {
                let bold = [0.0, 50.0, 90.0, 99.0, 99.9, 99.99]
                    .iter()
                    .filter_map(|p| self.to_space(*p))
                    .filter(|t| *t >= lo - 1e-9 && *t <= hi + 1e-9)
                    .collect();
                (bold, Vec::new())
            }
        }
    }

    /// The labels of the ticks at `bold` (transformed space): thousands
    /// written as "k" on the whole axis once a tick reaches 10,000.
    pub fn labels(&self, bold: &[f64]) -> Vec<String> {
        let values: Vec<f64> = bold.iter().map(|t| self.from_space(*t)).collect();
        let kilo = values.iter().any(|v| v.abs() >= 1e4);
        values
            .iter()
            .map(|v| match self.scale {
                Scale::Linear if !self.names.is_empty() => self
                    .names
                    .get(v.round() as usize)
                    .cloned()
                    .unwrap_or_default(),
                Scale::Percentile => format!("{}%", number((v * 1e4).round() / 1e4, false)),
                Scale::Log => number(round_sig(*v, 3), kilo),
                Scale::Linear if self.integer => number(v.round(), kilo),
                Scale::Linear => number(round_sig(*v, 6), kilo),
            })
            .collect()
    }
}

/// Decades, plus 2x and 5x when the range spans fewer than three decades,
/// as labelled ticks; every 1..9 multiple as grid lines.
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let (d0, d1) = (lo.floor() as i32, hi.ceil() as i32);
    let decades = hi - lo;
    let marks: &[f64] = if decades < 1.2 {
        &[1.0, 2.0, 3.0, 5.0]
    } else if decades < 3.0 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let every = if decades > 7.0 { 2 } else { 1 };
    let inside = |t: &f64| *t >= lo - 1e-9 && *t <= hi + 1e-9;
    let mut bold = Vec::new();
    let mut light = Vec::new();
    for d in d0..=d1 {
        for m in 1..10 {
            let t = (m as f64 * 10f64.powi(d)).log10();
            if !inside(&t) {
                continue;
            }
            if marks.contains(&(m as f64)) && (m != 1 || d.rem_euclid(every) == 0) {
                bold.push(t);
            } else {
                light.push(t);
            }
        }
    }
    (bold, light)
}

/// A step of 1, 2 or 5 times a power of ten, near `raw` (at least 1 for counts).
fn nice_step(raw: f64, integer: bool) -> f64 {
    let raw = if raw.is_finite() && raw > 0.0 {
        raw
    } else {
        1.0
    };
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    let step = p * if m < 1.5 {
        1.0
    } else if m < 3.5 {
        2.0
    } else if m < 7.5 {
        5.0
    } else {
        10.0
    };
    if integer {
        step.max(1.0).round()
    } else {
        step
    }
}

/// `v` rounded to `sig` significant digits.
fn round_sig(v: f64, sig: i32) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let p = 10f64.powi(sig - 1 - v.abs().log10().floor() as i32);
    (v * p).round() / p
}

/// A number as a person writes it on an axis: no trailing ".0", at most
/// four decimals; with `kilo`, thousands as "k" and millions as "M".
pub fn number(v: f64, kilo: bool) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    let (scaled, suffix) = if kilo && a >= 1e6 {
        (v / 1e6, "M")
    } else if kilo && a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let mut s = format!("{:.4}", scaled);
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    if s == "-0" {
        s = "0".into();
    }
    s + suffix
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_no_trailing_zeros_and_short_thousands() {
        assert_eq!(number(10000.0, true), "10k");
        assert_eq!(number(7000.0, false), "7000");
        assert_eq!(number(7000.0, true), "7k");
        assert_eq!(number(2.0, true), "2");
        assert_eq!(number(2.5, false), "2.5");
        assert_eq!(number(0.05, false), "0.05");
        assert_eq!(number(250000.0, true), "250k");
        assert_eq!(number(12_500_000.0, true), "12.5M");
        assert_eq!(number(-0.0, false), "0");
        // A linear axis reaching 14k writes every thousand the same way.
        let a = Axis::linear("throughput (operations/s)")
            .integer()
            .from_zero();
        let (lo, hi) = a.range(0.0, 13_800.0);
        let (bold, _) = a.ticks(lo, hi);
        assert_eq!(
            a.labels(&bold),
            ["0", "2k", "4k", "6k", "8k", "10k", "12k", "14k"]
        );
    }

    #[test]
    fn log_ticks_are_few_and_readable() {
        // 100 us to 100 ms: three decades, labelled at the decades only.
        let a = Axis::log("latency (us)");
        let (lo, hi) = (2.0, 5.0);
        let (bold, light) = a.ticks(lo, hi);
        assert_eq!(a.labels(&bold), ["100", "1k", "10k", "100k"]);
        assert!(light.len() > 20);
        // One decade: 1, 2, 3, 5 multiples, never every integer.
        let (bold, _) = a.ticks(3.0_f64.log10() + 3.0, 4.0);
        assert_eq!(a.labels(&bold), ["3k", "5k", "10k"]);
        let (bold, _) = a.ticks(0.0, 0.7);
        assert_eq!(a.labels(&bold), ["1", "2", "3", "5"]);
    }

    #[test]
    fn percentile_axis_reaches_four_nines() {
        let a = Axis::percentile("percentile");
        let (lo, hi) = a.range(0.0, 1.0);
        let (bold, _) = a.ticks(lo, hi);
        assert_eq!(
            a.labels(&bold),
            ["0%", "50%", "90%", "99%", "99.9%", "99.99%"]
        );
        assert_eq!(a.to_space(100.0), None);
        assert!((a.to_space(99.0).unwrap() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn integer_axes_have_whole_ticks() {
        let a = Axis::linear("second").integer();
        let (lo, hi) = a.range(0.0, 3.0);
        let (bold, light) = a.ticks(lo, hi);
        assert!(light.is_empty());
        for (t, l) in bold.iter().zip(a.labels(&bold)) {
            assert_eq!(*t, t.round());
            assert!(!l.contains('.'), "{l}");
        }
    }
}
