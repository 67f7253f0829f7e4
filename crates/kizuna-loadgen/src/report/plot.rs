//! The latency plot: a percentile distribution (x: 0 % … 99.999 % on the
//! "number of nines" scale, y: milliseconds on a log scale), one line per
//! distribution. Drawn with plotters' bitmap backend; text is rendered by
//! ab_glyph from DejaVu Sans embedded in the binary (the `dejavu` crate), so
//! no system font, fontconfig or download is involved.

use crate::stats::Latency;
use anyhow::{Result, anyhow};
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;
use std::sync::OnceLock;

/// Highest percentile shown: 99.999 % (five nines).
const MAX_NINES: f64 = 5.0;

fn register_font() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the embedded font could not be loaded"))
    }
}

fn percent_label(nines: f64) -> String {
    let q = 1.0 - 10f64.powf(-nines);
    match nines.round() as i64 {
        0 => "0%".into(),
        1 => "90%".into(),
        _ => format!(
            "{:.*}%",
            (nines.round() as usize).saturating_sub(2),
            q * 100.0
        ),
    }
}

/// One line of the plot: (nines, milliseconds) points.
struct Curve<'a> {
    name: &'a str,
    points: Vec<(f64, f64)>,
    max_ms: f64,
}

/// Draws `curves` into a PNG at `path`.
pub fn plot_percentiles(path: &Path, title: &str, curves: &[(String, Latency)]) -> Result<()> {
    register_font()?;
    let curves: Vec<Curve<'_>> = curves
        .iter()
        .filter(|(_, l)| l.count() > 0)
        .map(|(name, l)| {
            let points = l
                .percentile_curve()
                .into_iter()
                .filter(|&(q, _)| q < 1.0)
                .map(|(q, ms)| ((-(1.0 - q).log10()).clamp(0.0, MAX_NINES), ms.max(0.001)))
                .collect();
            Curve {
                name,
                points,
                max_ms: l.summary().max_ms,
            }
        })
        .collect();
    let (mut lo, mut hi) = (f64::MAX, 0f64);
    for c in &curves {
        for &(_, y) in &c.points {
            lo = lo.min(y);
            hi = hi.max(y);
        }
    }
    if curves.is_empty() {
        (lo, hi) = (0.1, 10.0);
    }
    let (lo, hi) = (lo / 1.5, hi * 1.5);

    let root = BitMapBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .margin_right(45)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..MAX_NINES, (lo..hi).log_scale())
        .map_err(|e| anyhow!("plot: {e}"))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms, log scale)")
        .x_labels(6)
        .x_label_formatter(&|x| percent_label(*x))
        .y_label_formatter(&|y| {
            if *y >= 1.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.2}")
            }
        })
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(|e| anyhow!("plot: {e}"))?;
    let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (
        i,
        Curve {
            name,
            points,
            max_ms,
        },
    ) in curves.into_iter().enumerate()
    {
        let color = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| anyhow!("plot: {e}"))?
            .label(format!("{name} (max {max_ms:.1} ms)"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("plot: {e}"))?;
    root.present().map_err(|e| anyhow!("plot: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plot_is_a_png_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latency.png");
        let mut l = Latency::new();
        for i in 1..=10_000u64 {
            l.record_ns(200_000 + i * 1_000);
        }
        plot_percentiles(&path, "test", &[("post → delivery".into(), l)]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }

    #[test]
    fn percentile_labels_count_nines() {
        assert_eq!(percent_label(0.0), "0%");
        assert_eq!(percent_label(1.0), "90%");
        assert_eq!(percent_label(2.0), "99%");
        assert_eq!(percent_label(3.0), "99.9%");
        assert_eq!(percent_label(5.0), "99.999%");
    }
}
