//! Plots, each written as PNG and SVG with `plotters` (or kept as an SVG
//! string for a report page).
//!
//! - [`axis`]: scales (linear, log, percentile) and their ticks and labels;
//! - [`palette`]: one colour per protocol or run, one line style per statistic.

pub mod axis;
mod coord;
pub mod palette;

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

pub use axis::{Axis, Scale};
pub use palette::Dash;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// Palette slot (see [`palette::protocol_slot`]): lines of one protocol
    /// or run share it.
    pub colour: usize,
    /// Line style: the statistic it shows (p50 solid, p99 dashed).
    pub dash: Dash,
    /// Points (data values, not transformed), in drawing order.
    pub points: Vec<(f64, f64)>,
    /// Draw a dot at each point (sweeps: each point is a run).
    pub dots: bool,
}

impl Series {
    /// A solid line in palette slot `colour`.
    pub fn new(name: impl Into<String>, colour: usize, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            colour,
            dash: Dash::Solid,
            points,
            dots: false,
        }
    }

    /// The same line drawn in `dash`.
    pub fn dash(mut self, dash: Dash) -> Series {
        self.dash = dash;
        self
    }

    /// The same line with a dot at every point.
    pub fn dots(mut self) -> Series {
        self.dots = true;
        self
    }
}

/// A shaded span of the x axis (e.g. the warm-up, left out of the statistics).
#[derive(Debug, Clone)]
pub struct Band {
    /// Start, x value.
    pub from: f64,
    /// End, x value.
    pub to: f64,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Title.
    pub title: String,
    /// The x axis.
    pub x: Axis,
    /// The y axis.
    pub y: Axis,
    /// The lines.
    pub series: Vec<Series>,
    /// Shaded x spans, with one legend entry for all of them.
    pub bands: Vec<Band>,
    /// Legend entry of the bands.
    pub bands_label: String,
    /// Points to mark with red crosses (e.g. seconds with failures).
    pub marks: Vec<(f64, f64)>,
    /// Legend entry of the marks.
    pub marks_label: String,
    /// Where the legend goes; `None`: the corner the lines cross least.
    pub legend: Option<SeriesLabelPosition>,
}

/// Pixel size of every plot.
const SIZE: (u32, u32) = (900, 560);

impl Chart {
    /// An empty chart with these axes.
    pub fn new(title: impl Into<String>, x: Axis, y: Axis) -> Chart {
        Chart {
            title: title.into(),
            x,
            y,
            series: Vec::new(),
            bands: Vec::new(),
            bands_label: String::new(),
            marks: Vec::new(),
            marks_label: String::new(),
            legend: None,
        }
    }

    /// The same chart with its legend at `at`.
    pub fn legend(mut self, at: SeriesLabelPosition) -> Chart {
        self.legend = Some(at);
        self
    }

    /// Writes `stem.png` and `stem.svg`.
    pub fn write(&self, stem: &Path) -> anyhow::Result<()> {
        let png = stem.with_extension("png");
        let svg = stem.with_extension("svg");
        self.draw(BitMapBackend::new(&png, SIZE).into_drawing_area())
            .map_err(|e| anyhow::anyhow!("drawing {}: {e}", png.display()))?;
        self.draw(SVGBackend::new(&svg, SIZE).into_drawing_area())
            .map_err(|e| anyhow::anyhow!("drawing {}: {e}", svg.display()))?;
        Ok(())
    }

    /// The chart as an SVG document, for inlining into a page.
    pub fn svg(&self) -> anyhow::Result<String> {
        let mut s = String::new();
        self.draw(SVGBackend::with_string(&mut s, SIZE).into_drawing_area())
            .map_err(|e| anyhow::anyhow!("drawing {}: {e}", self.title))?;
        Ok(s)
    }

    /// The drawable points of a series, in transformed space.
    fn space(&self, pts: &[(f64, f64)]) -> Vec<(f64, f64)> {
        pts.iter()
            .filter_map(|(x, y)| Some((self.x.to_space(*x)?, self.y.to_space(*y)?)))
            .collect()
    }

    /// Drawn ranges in transformed space.
    fn bounds(&self) -> ((f64, f64), (f64, f64)) {
        let mut xs = (f64::MAX, f64::MIN);
        let mut ys = (f64::MAX, f64::MIN);
        let mut take = |x: f64, y: f64| {
            xs = (xs.0.min(x), xs.1.max(x));
            ys = (ys.0.min(y), ys.1.max(y));
        };
        for s in &self.series {
            for (x, y) in self.space(&s.points) {
                take(x, y);
            }
        }
        for (x, y) in self.space(&self.marks) {
            take(x, y);
        }
        for b in &self.bands {
            if let (Some(a), Some(z)) = (self.x.to_space(b.from), self.x.to_space(b.to)) {
                xs = (xs.0.min(a), xs.1.max(z));
            }
        }
        (self.x.range(xs.0, xs.1), self.y.range(ys.0, ys.1))
    }

    /// Where an automatic legend goes: the corner of the plot whose
    /// legend-sized box the lines cross least (sampled along every segment,
    /// in drawn space); when every corner is crossed, the top of the y range
    /// is raised to make room and the legend goes upper right. Returns the
    /// corner and the (maybe raised) top.
    fn place_legend(
        &self,
        (x0, x1): (f64, f64),
        (y0, y1): (f64, f64),
    ) -> (SeriesLabelPosition, f64) {
        let entries = self.series.len()
            + usize::from(!self.marks.is_empty())
            + usize::from(!self.bands.is_empty());
        // The legend's size as a share of the plot (about 20 of 450 pixels
        // per entry, 7.5 pixels per character of 790 across, and padding).
        let longest = self
            .series
            .iter()
            .map(|s| s.name.chars().count())
            .chain([
                self.marks_label.chars().count(),
                self.bands_label.chars().count(),
            ])
            .max()
            .unwrap_or(0);
        let w = ((longest as f64 * 7.5 + 60.0) / 790.0).min(0.9);
        let h = (0.042 * entries as f64 + 0.03).min(0.6);
        let mut count = [0usize; 4];
        for s in &self.series {
            let pts = self.space(&s.points);
            for seg in pts.windows(2) {
                for k in 0..=20 {
                    let f = k as f64 / 20.0;
                    let x = (seg[0].0 + (seg[1].0 - seg[0].0) * f - x0) / (x1 - x0);
                    let y = (seg[0].1 + (seg[1].1 - seg[0].1) * f - y0) / (y1 - y0);
                    let (left, right, top, bottom) = (x < w, x > 1.0 - w, y > 1.0 - h, y < h);
                    count[0] += usize::from(left && top);
                    count[1] += usize::from(right && top);
                    count[2] += usize::from(left && bottom);
                    count[3] += usize::from(right && bottom);
                }
            }
        }
        let corners = [
            SeriesLabelPosition::UpperLeft,
            SeriesLabelPosition::UpperRight,
            SeriesLabelPosition::LowerLeft,
            SeriesLabelPosition::LowerRight,
        ];
        // The first corner with the fewest crossings (upper left on a tie).
        let best = (0..4).min_by_key(|i| count[*i]).unwrap_or(0);
        if count[best] == 0 {
            return (corners[best].clone(), y1);
        }
        (
            SeriesLabelPosition::UpperRight,
            y1 + (y1 - y0) * h / (1.0 - h),
        )
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let ((x0, x1), (y0, y1)) = self.bounds();
        let (corner, y1) = match &self.legend {
            Some(at) => (at.clone(), y1),
            None => self.place_legend((x0, x1), (y0, y1)),
        };
        let (xb, xl) = self.x.ticks(x0, x1);
        let (yb, yl) = self.y.ticks(y0, y1);
        let (xlab, ylab) = (labeller(&self.x, &xb), labeller(&self.y, &yb));
        let mut c = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", 24))
            .margin(14)
            .margin_right(34)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(
                coord::Ticked {
                    lo: x0,
                    hi: x1,
                    bold: xb,
                    light: xl,
                },
                coord::Ticked {
                    lo: y0,
                    hi: y1,
                    bold: yb,
                    light: yl,
                },
            )?;
        let fx = |t: &f64| xlab(*t);
        let fy = |t: &f64| ylab(*t);
        c.configure_mesh()
            .x_desc(self.x.label.as_str())
            .y_desc(self.y.label.as_str())
            .x_label_formatter(&fx)
            .y_label_formatter(&fy)
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 17))
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(205, 205, 205))
            .draw()?;
        self.draw_bands(&mut c, (y0, y1))?;
        for s in &self.series {
            self.draw_series(&mut c, s)?;
        }
        if !self.marks.is_empty() {
            let style = RED.stroke_width(2);
            c.draw_series(
                self.space(&self.marks)
                    .into_iter()
                    .map(move |p| Cross::new(p, 6, style)),
            )?
            .label(self.marks_label.as_str())
            .legend(move |(x, y)| Cross::new((x + 12, y), 5, style));
        }
        if !self.series.is_empty() || !self.marks.is_empty() || !self.bands.is_empty() {
            c.configure_series_labels()
                .position(corner)
                .label_font(("sans-serif", 15))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(150, 150, 150))
                .draw()?;
        }
        root.present()
    }

    fn draw_bands<DB: DrawingBackend>(
        &self,
        c: &mut Ctx<'_, DB>,
        (y0, y1): (f64, f64),
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let rects: Vec<_> = self
            .bands
            .iter()
            .filter_map(|b| Some((self.x.to_space(b.from)?, self.x.to_space(b.to)?)))
            .filter(|(a, z)| z > a)
            .map(|(a, z)| Rectangle::new([(a, y0), (z, y1)], BLACK.mix(0.09).filled()))
            .collect();
        if !rects.is_empty() {
            c.draw_series(rects)?
                .label(self.bands_label.as_str())
                .legend(|(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 24, y + 6)], BLACK.mix(0.15).filled())
                });
        }
        Ok(())
    }

    fn draw_series<DB: DrawingBackend>(
        &self,
        c: &mut Ctx<'_, DB>,
        s: &Series,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let colour = palette::colour(s.colour);
        let style = colour.stroke_width(2);
        let pts = self.space(&s.points);
        let anno = match s.dash {
            Dash::Solid => c.draw_series(LineSeries::new(pts.clone(), style))?,
            Dash::Dashed => c.draw_series(DashedLineSeries::new(pts.clone(), 9, 5, style))?,
            Dash::Dotted => c.draw_series(DashedLineSeries::new(pts.clone(), 3, 4, style))?,
        };
        let dash = s.dash;
        anno.label(s.name.as_str()).legend(move |(x, y)| {
            let (on, off) = match dash {
                Dash::Solid => (28, 0),
                Dash::Dashed => (9, 5),
                Dash::Dotted => (3, 4),
            };
            plotters::element::DashedPathElement::new(
                vec![(x, y), (x + 28, y)],
                on,
                off.max(1),
                style,
            )
        });
        if s.dots {
            c.draw_series(pts.iter().map(|p| Circle::new(*p, 3, colour.filled())))?;
        }
        Ok(())
    }
}

/// The label of each tick, looked up by position.
fn labeller(axis: &Axis, bold: &[f64]) -> impl Fn(f64) -> String {
    let ticks: Vec<(f64, String)> = bold.iter().copied().zip(axis.labels(bold)).collect();
    move |t| {
        ticks
            .iter()
            .min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs()))
            .map(|x| x.1.clone())
            .unwrap_or_default()
    }
}

type Ctx<'a, DB> = ChartContext<'a, DB, Cartesian2d<coord::Ticked, coord::Ticked>>;
