//! The report's chart: an SVG of the loss curves and, when logged, the accuracy curves
//! over epochs, one panel each, drawn from each series' bounded overview so a run of a
//! million epochs costs the same as one of ten. Non-finite values, and finite ones too
//! large for an axis (`PLOT_MAGNITUDE_MAX`), are gaps, and the first one is marked
//! "NaN" (or "inf", or the value) because that epoch is usually the story. Earlier
//! adjustments from the history are marked so their effect can be seen.
//!
//! Text is drawn without a font library: plotters without its `ttf` feature falls back
//! to a naive text-width estimate, and its SVG backend writes `<text>` elements that the
//! viewer renders with its own fonts, so no system fontconfig is needed.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordu32;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::lang::Lang;
use crate::lang::say;
use crate::metrics::{Canonical, Point};
use crate::num::num;
use crate::run::Run;

const WIDTH: u32 = 760;
const PANEL_HEIGHT: u32 = 300;
/// A loss spanning more than this factor is drawn on a log axis; on a linear one an
/// exploding loss flattens everything before it into a line on the floor.
pub const LOG_SCALE_RATIO: f64 = 100.0;
/// Values beyond this magnitude are drawn as off the chart (a gap and a marker naming the
/// value), like non-finite ones. plotters' axis code divides the axis ends and takes
/// logarithms of them: an end past f64::MAX (a loss of 1.2e308 padded by 1.5×) or a
/// ratio past it (9e307 over 0.5) makes its key-point loops run forever, and a linear
/// axis over an infinite span does the same. Within ±1e150 no padding, span or ratio of
/// two ends (down to 1e-150, where `log_axis` checks) leaves f64; a loss beyond it has
/// blown up whatever its exact value, and the marker says what it was.
pub const PLOT_MAGNITUDE_MAX: f64 = 1e150;
/// Points are marked with dots up to this many per curve; beyond it dots become a smear.
const MAX_DOTTED_POINTS: usize = 40;
/// A single epoch is a point, not a curve: the report's table already shows it.
const MIN_EPOCHS: usize = 2;

// matplotlib's first two tab10 colours: familiar to anyone who has read a training plot.
const TRAIN_COLOR: RGBColor = RGBColor(31, 119, 180);
const VAL_COLOR: RGBColor = RGBColor(255, 127, 14);
const NONFINITE_COLOR: RGBColor = RGBColor(214, 39, 40);
const ADJUSTMENT_COLOR: RGBColor = RGBColor(127, 127, 127);
const FONT: &str = "sans-serif";

struct Curve {
    /// The name as the metrics file spells it.
    label: String,
    points: Vec<Point>,
    first_nonfinite: Option<Point>,
    color: RGBColor,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Loss,
    Accuracy,
}

struct Panel {
    kind: Kind,
    curves: Vec<Curve>,
}

impl Panel {
    fn finite_values(&self) -> impl Iterator<Item = f64> + '_ {
        self.curves
            .iter()
            .flat_map(|c| c.points.iter().map(|p| p.value))
            .filter(|v| drawable(*v))
    }
}

/// Whether a value can be placed on an axis (`PLOT_MAGNITUDE_MAX`).
fn drawable(v: f64) -> bool {
    v.is_finite() && v.abs() <= PLOT_MAGNITUDE_MAX
}

/// The chart as SVG text, or `None` when there is no curve to draw (no loss or accuracy
/// logged, or fewer than two epochs).
pub fn render(run: &Run, lang: Lang) -> Option<String> {
    let panels: Vec<Panel> = [
        (Kind::Loss, [Canonical::Loss, Canonical::ValLoss]),
        (
            Kind::Accuracy,
            [Canonical::Accuracy, Canonical::ValAccuracy],
        ),
    ]
    .into_iter()
    .map(|(kind, names)| Panel {
        kind,
        curves: names
            .iter()
            .zip([TRAIN_COLOR, VAL_COLOR])
            .filter_map(|(name, color)| {
                let series = run.metrics.get(*name)?;
                let points = series.overview();
                // The first value off the chart: non-finite ones the series tracks over
                // every epoch, too large ones are looked for in what is drawn.
                let off_chart = points
                    .iter()
                    .find(|p| p.value.is_finite() && !drawable(p.value));
                let first_nonfinite = match (series.first_nonfinite(), off_chart) {
                    (Some(a), Some(b)) => Some(if b.epoch < a.epoch { *b } else { a }),
                    (a, b) => a.or(b.copied()),
                };
                Some(Curve {
                    label: series.original.clone(),
                    points,
                    first_nonfinite,
                    color,
                })
            })
            .collect(),
    })
    .filter(|p| p.finite_values().next().is_some())
    .collect();

    let epochs = epoch_range(&panels)?;
    let adjustments: Vec<u32> = run
        .history
        .iter()
        .filter(|e| !e.changes.is_empty() || !e.actions.is_empty())
        .filter_map(|e| e.epoch)
        .filter(|e| epochs.contains(e) || *e == epochs.end)
        .collect();

    let mut svg = String::new();
    {
        let height = PANEL_HEIGHT * panels.len() as u32;
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        // Drawing into a String cannot fail on I/O; an error here is a degenerate layout,
        // and a report without a chart is better than no report.
        root.fill(&WHITE).ok()?;
        let areas = root.split_evenly((panels.len(), 1));
        for (area, panel) in areas.iter().zip(&panels) {
            draw_panel(area, panel, epochs.clone(), &adjustments, lang).ok()?;
        }
        root.present().ok()?;
    }
    Some(svg)
}

/// First to last epoch over every curve, or `None` with fewer than `MIN_EPOCHS`.
fn epoch_range(panels: &[Panel]) -> Option<Range<u32>> {
    let epochs = || {
        panels
            .iter()
            .flat_map(|p| &p.curves)
            .flat_map(|c| c.points.iter().map(|p| p.epoch))
    };
    let (first, last) = (epochs().min()?, epochs().max()?);
    let distinct = panels
        .iter()
        .flat_map(|p| &p.curves)
        .map(|c| c.points.len())
        .max()
        .unwrap_or(0);
    (distinct >= MIN_EPOCHS && last > first).then_some(first..last)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn draw_panel(
    area: &Area,
    panel: &Panel,
    epochs: Range<u32>,
    adjustments: &[u32],
    lang: Lang,
) -> DrawResult {
    let (lo, hi) = panel
        .finite_values()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let log = panel.kind == Kind::Loss && use_log_scale(lo, hi) && log_axis(lo, hi).is_some();
    let title = match (panel.kind, log) {
        (Kind::Loss, false) => say!(lang, "Loss", "损失"),
        (Kind::Loss, true) => say!(lang, "Loss (log scale)", "损失（对数刻度）"),
        (Kind::Accuracy, _) => say!(lang, "Accuracy", "准确率"),
    };
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, (FONT, 21))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64);
    if let Some((bottom, top)) = log_axis(lo, hi).filter(|_| log) {
        let scale = move |v: f64| (v / bottom).ln() / (top / bottom).ln();
        let chart = builder.build_cartesian_2d(epochs.clone(), (bottom..top).log_scale())?;
        fill_panel(chart, panel, &epochs, scale, adjustments, lang)
    } else {
        let range = linear_range(panel.kind, lo, hi);
        let (bottom, height) = (range.start, range.end - range.start);
        let scale = move |v: f64| (v - bottom) / height;
        let chart = builder.build_cartesian_2d(epochs.clone(), range)?;
        fill_panel(chart, panel, &epochs, scale, adjustments, lang)
    }
}

/// Log only when the loss is positive and spans more than `LOG_SCALE_RATIO`.
fn use_log_scale(lo: f64, hi: f64) -> bool {
    lo > 0.0 && hi / lo > LOG_SCALE_RATIO
}

/// The ends of a log axis over `lo..hi` with air around them, or `None` when plotters
/// could not draw it: it needs both ends and their ratio finite and positive (a loss
/// between 1e-200 and 1e150 has a ratio past f64::MAX; the linear axis takes it).
fn log_axis(lo: f64, hi: f64) -> Option<(f64, f64)> {
    let (bottom, top) = (lo / 1.5, hi * 1.5);
    let ratio = top / bottom;
    (bottom > 0.0 && top.is_finite() && ratio.is_finite() && ratio.ln().is_finite())
        .then_some((bottom, top))
}

/// The values with some air around them; an accuracy in [0, 1] stays within [0, 1].
fn linear_range(kind: Kind, lo: f64, hi: f64) -> Range<f64> {
    let pad = if hi > lo {
        (hi - lo) * 0.08
    } else {
        (hi.abs() * 0.1).max(0.05)
    };
    let (mut bottom, mut top) = (lo - pad, hi + pad);
    if lo >= 0.0 {
        bottom = bottom.max(0.0);
    }
    if kind == Kind::Accuracy && lo >= 0.0 && hi <= 1.0 {
        top = top.min(1.0);
    }
    bottom..top
}

fn fill_panel<'a, Y>(
    mut chart: ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordu32, Y>>,
    panel: &Panel,
    epochs: &Range<u32>,
    y_scale: impl Fn(f64) -> f64,
    adjustments: &[u32],
    lang: Lang,
) -> DrawResult
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let y_range = chart.y_range();
    let (y_bottom, y_top) = (y_range.start, y_range.end);
    chart
        .configure_mesh()
        .x_desc(say!(lang, "epoch", "轮次"))
        .x_labels(10)
        .y_labels(6)
        .x_label_formatter(&|e| e.to_string())
        .y_label_formatter(&|v| num(*v))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .axis_desc_style((FONT, 15))
        .label_style((FONT, 14))
        .draw()?;

    let label_style =
        |color: &'static RGBColor| TextStyle::from((FONT, 13).into_font()).color(color);
    for &epoch in adjustments {
        chart.draw_series(std::iter::once(DashedPathElement::new(
            [(epoch, y_bottom), (epoch, y_top)],
            4,
            4,
            ADJUSTMENT_COLOR.stroke_width(1),
        )))?;
        chart.draw_series(std::iter::once(
            EmptyElement::at((epoch, y_bottom))
                + Text::new(
                    say!(lang, "adjusted", "调整"),
                    (4, -3),
                    label_style(&ADJUSTMENT_COLOR).pos(Pos::new(HPos::Left, VPos::Bottom)),
                ),
        ))?;
    }

    for curve in &panel.curves {
        let mut labelled = false;
        for run in finite_runs(&curve.points) {
            let style = curve.color.stroke_width(2);
            let drawn = if run.len() >= 2 {
                chart.draw_series(LineSeries::new(
                    run.iter().map(|p| (p.epoch, p.value)),
                    style,
                ))?
            } else {
                chart.draw_series(
                    run.iter()
                        .map(|p| Circle::new((p.epoch, p.value), 3, curve.color.filled())),
                )?
            };
            if !labelled {
                let color = curve.color;
                drawn.label(curve.label.as_str()).legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                });
                labelled = true;
            }
        }
        let finite = curve.points.iter().filter(|p| drawable(p.value));
        if curve.points.len() <= MAX_DOTTED_POINTS {
            chart.draw_series(
                finite.map(|p| Circle::new((p.epoch, p.value), 2, curve.color.filled())),
            )?;
        }
    }

    let nonfinite = first_nonfinite(panel);
    if let Some((epoch, label)) = &nonfinite {
        let epoch = *epoch;
        chart.draw_series(std::iter::once(DashedPathElement::new(
            [(epoch, y_bottom), (epoch, y_top)],
            6,
            3,
            NONFINITE_COLOR.stroke_width(2),
        )))?;
        let style = TextStyle::from((FONT, 16, FontStyle::Bold).into_font())
            .color(&NONFINITE_COLOR)
            .pos(Pos::new(HPos::Left, VPos::Top));
        // Offsets in pixels from the top of the line; SVG would collapse leading spaces.
        chart.draw_series(std::iter::once(
            EmptyElement::at((epoch, y_top))
                + TriangleMarker::new((0, 0), 6, NONFINITE_COLOR.filled())
                + Text::new(label.clone(), (7, 2), style),
        ))?;
    }

    chart
        .configure_series_labels()
        .position(legend_corner(
            panel,
            epochs,
            y_scale,
            nonfinite.map(|(e, _)| e),
        ))
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}

/// The earliest value off the chart (non-finite or too large) in the panel: where the
/// run broke. Later ones follow
/// from it and would only crowd the chart. The label names every kind of non-finite
/// value that appeared at that epoch ("inf/NaN" when the loss overflowed and the
/// validation loss went NaN together).
fn first_nonfinite(panel: &Panel) -> Option<(u32, String)> {
    let epoch = panel
        .curves
        .iter()
        .filter_map(|c| c.first_nonfinite)
        .map(|p| p.epoch)
        .min()?;
    let mut kinds: Vec<String> = Vec::new();
    for p in panel.curves.iter().filter_map(|c| c.first_nonfinite) {
        let kind = num(p.value);
        if p.epoch == epoch && !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Some((epoch, kinds.join("/")))
}

/// The corner whose quarter of the plot holds the fewest points (a NaN marker, drawn at
/// the top, counts as many), so the legend hides as little as possible.
fn legend_corner(
    panel: &Panel,
    epochs: &Range<u32>,
    y_scale: impl Fn(f64) -> f64,
    nonfinite_epoch: Option<u32>,
) -> SeriesLabelPosition {
    let span = f64::from(epochs.end.saturating_sub(epochs.start).max(1));
    let x = |epoch: u32| f64::from(epoch.saturating_sub(epochs.start)) / span;
    let corners = [
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::LowerLeft, false, false),
    ];
    let crowding = |right: bool, upper: bool| {
        let in_x = |fx: f64| if right { fx >= 0.6 } else { fx <= 0.4 };
        let in_y = |fy: f64| if upper { fy >= 0.65 } else { fy <= 0.35 };
        let points = panel
            .curves
            .iter()
            .flat_map(|c| &c.points)
            .filter(|p| drawable(p.value) && in_x(x(p.epoch)) && in_y(y_scale(p.value)))
            .count();
        let marker = nonfinite_epoch
            .filter(|e| upper && in_x(x(*e)))
            .map_or(0, |_| 1000);
        points + marker
    };
    // Ties go to the first corner in the list: the usual place for a legend.
    corners
        .into_iter()
        .min_by_key(|(_, right, upper)| crowding(*right, *upper))
        .map_or(SeriesLabelPosition::UpperRight, |(pos, _, _)| pos)
}

/// Stretches of consecutive drawable points: a non-finite or off-chart value breaks the
/// line.
fn finite_runs(points: &[Point]) -> Vec<&[Point]> {
    points
        .split(|p| !drawable(p.value))
        .filter(|run| !run.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(series: &[(&str, &[f64])]) -> Run {
        crate::run::testing::run(None, series)
    }

    #[test]
    fn a_nan_is_a_gap_with_a_marker() {
        let r = run(&[
            ("loss", &[2.3, 1.9, 1.5, f64::NAN, f64::NAN, 1.4]),
            ("val_loss", &[2.4, 2.0, 1.7, f64::NAN, 1.8, 1.6]),
            ("accuracy", &[0.1, 0.3, 0.5, 0.5, 0.4, 0.55]),
        ]);
        let svg = render(&r, Lang::En).expect("a chart");
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        // Both panels, both legends, one NaN marker at epoch 4 shared by both losses.
        assert!(svg.lines().any(|l| l == "Loss"), "no loss title");
        assert!(svg.contains("Accuracy"));
        assert!(svg.contains("val_loss"));
        // plotters writes each text on its own line inside <text>.
        assert_eq!(svg.lines().filter(|l| *l == "NaN").count(), 1, "one marker");
        // The loss breaks at the NaN: two stretches for loss, two for val_loss (the
        // single point at epoch 5 is a dot), one line for accuracy.
        assert_eq!(finite_runs(&r.metrics.series[0].overview()).len(), 2);
        assert!(
            !svg.contains("NaN\"") && !svg.contains("nan"),
            "NaN in coordinates"
        );
    }

    #[test]
    fn an_overflow_and_a_nan_at_one_epoch_share_a_marker() {
        let r = run(&[
            ("loss", &[2.3, 9.0, f64::INFINITY, f64::NAN]),
            ("val_loss", &[2.4, 9.5, f64::NAN, f64::NAN]),
        ]);
        let svg = render(&r, Lang::En).unwrap();
        assert_eq!(svg.lines().filter(|l| *l == "inf/NaN").count(), 1, "{svg}");
    }

    #[test]
    fn an_exploding_loss_gets_a_log_axis() {
        assert!(use_log_scale(0.5, 900.0));
        assert!(!use_log_scale(0.5, 40.0));
        assert!(!use_log_scale(-1.0, 900.0));
        let r = run(&[("loss", &[0.9, 0.7, 0.6, 500.0])]);
        let svg = render(&r, Lang::Zh).unwrap();
        assert!(svg.contains("损失（对数刻度）"));
        assert!(
            !svg.contains("准确率"),
            "no accuracy panel without accuracy"
        );
    }

    #[test]
    fn axes_stay_within_what_plotters_can_draw() {
        assert!(log_axis(0.5, 900.0).is_some());
        // hi × 1.5 past f64::MAX, and a ratio past it with both ends finite (the issue's
        // 9e307, which hung without overflowing either end).
        assert!(log_axis(0.8, 1e308).is_none());
        assert!(log_axis(0.5, 9e307).is_none());
        assert!(log_axis(1e-300, 1e140).is_none());
        assert!(log_axis(1e-150, PLOT_MAGNITUDE_MAX).is_some());
        assert!(!drawable(1e151) && !drawable(-1e151) && !drawable(f64::NAN));
        assert!(drawable(PLOT_MAGNITUDE_MAX) && drawable(-3.0));
        // Off-chart values are gaps with a marker naming the value.
        let r = run(&[("loss", &[1.0, 0.9, 1e308, 0.8])]);
        let svg = render(&r, Lang::En).unwrap();
        assert!(svg.lines().any(|l| l == "1e308"), "{svg}");
        assert!(svg.lines().any(|l| l == "Loss"), "a linear axis: {svg}");
    }

    #[test]
    fn nothing_to_plot_is_none() {
        assert!(render(&run(&[("loss", &[0.9])]), Lang::En).is_none());
        assert!(render(&run(&[("loss", &[f64::NAN, f64::NAN])]), Lang::En).is_none());
        assert!(render(&run(&[("f1", &[0.1, 0.2, 0.3])]), Lang::En).is_none());
    }

    #[test]
    fn a_long_run_costs_what_a_short_one_does() {
        let loss: Vec<f64> = (1..=100_000).map(|e| 1.0 / f64::from(e).sqrt()).collect();
        let svg = render(&run(&[("loss", &loss)]), Lang::En).unwrap();
        assert!(svg.len() < 64 * 1024, "{} bytes", svg.len());
        assert!(!svg.contains("<circle"), "no dots on a dense curve");
        assert!(
            svg.lines().any(|l| l == "100000"),
            "the x axis reaches the last epoch"
        );
    }

    #[test]
    fn accuracy_stays_within_unit_range() {
        let r = linear_range(Kind::Accuracy, 0.2, 0.98);
        assert!(r.start >= 0.0 && r.end <= 1.0 && r.start < 0.2 && r.end > 0.98);
        let flat = linear_range(Kind::Loss, 0.5, 0.5);
        assert!(flat.start < 0.5 && flat.end > 0.5);
    }
}
