//! Throughput-against-connections charts (SVG) from `--json` outputs.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use crate::report::Output;

/// Draws one line per (server, workload) of rps against connections.
pub fn draw(outputs: &[Output], path: &Path, title: &str) -> Result<(), String> {
    let mut series: BTreeMap<String, Vec<(usize, f64)>> = BTreeMap::new();
    for run in outputs.iter().flat_map(|o| &o.runs) {
        series
            .entry(format!("{} {}", run.server, run.workload))
            .or_default()
            .push((run.connections, run.rps));
    }
    if series.is_empty() {
        return Err("no runs to draw".into());
    }
    for points in series.values_mut() {
        points.sort_by_key(|p| p.0);
    }
    let max_conns = series
        .values()
        .flatten()
        .map(|p| p.0)
        .max()
        .unwrap_or(1)
        .max(2);
    let max_rps = series.values().flatten().map(|p| p.1).fold(1.0, f64::max) * 1.1;

    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d((1usize..max_conns).log_scale(), 0.0..max_rps)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("connections")
        .y_desc("requests per second")
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
