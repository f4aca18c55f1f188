//! Plots, each written as PNG and SVG with `plotters`.

use std::path::Path;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::Shift;
use plotters::prelude::*;

/// One line of a chart.
pub struct Line {
    /// Legend entry.
    pub name: String,
    /// Points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// A line chart.
pub struct Chart<'a> {
    /// Title.
    pub title: &'a str,
    /// X axis label.
    pub x_label: &'a str,
    /// Y axis label.
    pub y_label: &'a str,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// The lines.
    pub lines: Vec<Line>,
    /// Points to mark in red (e.g. seconds with failures), drawn as crosses.
    pub marks: Vec<(f64, f64)>,
}

const COLORS: [RGBColor; 6] = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];

impl Chart<'_> {
    /// Writes `stem.png` and `stem.svg`.
    pub fn write(&self, stem: &Path) -> anyhow::Result<()> {
        let png = stem.with_extension("png");
        let svg = stem.with_extension("svg");
        self.draw(BitMapBackend::new(&png, (900, 560)).into_drawing_area())
            .map_err(|e| anyhow::anyhow!("drawing {}: {e}", png.display()))?;
        self.draw(SVGBackend::new(&svg, (900, 560)).into_drawing_area())
            .map_err(|e| anyhow::anyhow!("drawing {}: {e}", svg.display()))?;
        Ok(())
    }

    fn bounds(&self) -> ((f64, f64), (f64, f64)) {
        let pts = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter())
            .chain(self.marks.iter());
        let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0.0f64);
        for (x, y) in pts {
            x0 = x0.min(*x);
            x1 = x1.max(*x);
            y1 = y1.max(*y);
        }
        if x0 > x1 {
            (x0, x1) = (1.0, 10.0);
        }
        if self.log_x {
            x0 = x0.max(1e-3);
        }
        if x1 <= x0 {
            x1 = x0 * 2.0 + 1.0;
        }
        ((x0, x1), (0.0, if y1 > 0.0 { y1 * 1.08 } else { 1.0 }))
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let ((x0, x1), (y0, y1)) = self.bounds();
        let mut b = ChartBuilder::on(&root);
        b.caption(self.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(70);
        if self.log_x {
            self.series(&mut b.build_cartesian_2d((x0..x1).log_scale(), y0..y1)?)?;
        } else {
            self.series(&mut b.build_cartesian_2d(x0..x1, y0..y1)?)?;
        }
        root.present()
    }

    /// Mesh, lines, marks and legend, for either kind of x axis.
    fn series<'a, DB: DrawingBackend + 'a, X, Y>(
        &self,
        c: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
    where
        X: Ranged<ValueType = f64> + ValueFormatter<f64>,
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        c.configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .draw()?;
        for (i, l) in self.lines.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            c.draw_series(LineSeries::new(
                l.points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(l.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
            if l.points.len() <= 40 {
                c.draw_series(l.points.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
            }
        }
        if !self.marks.is_empty() {
            c.draw_series(
                self.marks
                    .iter()
                    .map(|p| Cross::new(*p, 6, RED.stroke_width(2))),
            )?
            .label("failures or time-outs")
            .legend(|(x, y)| Cross::new((x + 9, y), 5, RED.stroke_width(2)));
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    }
}
