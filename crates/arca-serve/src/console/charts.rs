//! The console's two charts, drawn as SVG by plotters on the server: a
//! source's recoverable window with its backups and named snapshots, and
//! the repository's growth over the last 30 days.

use plotters::prelude::*;

/// Seconds since the Unix epoch, as plotters' axes take them.
fn secs(t: jiff::Timestamp) -> i64 {
    t.as_second()
}

fn day_label(s: &i64) -> String {
    jiff::Timestamp::from_second(*s)
        .map(|t| t.strftime("%b %d").to_string())
        .unwrap_or_default()
}

fn size_label(b: f64) -> String {
    arca_ops::bytes(b.max(0.0) as u64)
}

/// A recoverable window (if the source has archived log), the backups and
/// named snapshots, from `from` to `now`.
pub struct Timeline {
    pub from: jiff::Timestamp,
    pub now: jiff::Timestamp,
    pub window: Option<(jiff::Timestamp, jiff::Timestamp)>,
    pub backups: Vec<jiff::Timestamp>,
    pub snapshots: Vec<jiff::Timestamp>,
}

const WIDTH: u32 = 720;

pub fn timeline(t: &Timeline) -> Result<String, String> {
    let mut out = String::new();
    let (x0, x1) = (secs(t.from), secs(t.now).max(secs(t.from) + 3600));
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, 110)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .margin(6)
            .x_label_area_size(22)
            .build_cartesian_2d(x0..x1, 0f64..1f64)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_mesh()
            .disable_y_axis()
            .x_labels(7)
            .x_label_formatter(&day_label)
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|e| e.to_string())?;
        if let Some((a, b)) = t.window {
            let (a, b) = (secs(a).max(x0), secs(b).min(x1));
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(a, 0.25), (b, 0.55)],
                    RGBColor(46, 160, 67).mix(0.35).filled(),
                )))
                .map_err(|e| e.to_string())?
                .label("recoverable window");
        }
        chart
            .draw_series(
                t.backups
                    .iter()
                    .filter(|b| secs(**b) >= x0)
                    .map(|b| Circle::new((secs(*b), 0.4), 4, RGBColor(31, 111, 235).filled())),
            )
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                t.snapshots.iter().filter(|s| secs(**s) >= x0).map(|s| {
                    TriangleMarker::new((secs(*s), 0.8), 6, RGBColor(191, 57, 0).filled())
                }),
            )
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(accessible(out, "timeline"))
}

/// Stored bytes added per day over the last 30 days, cumulative.
pub fn growth(
    days: &[(jiff::civil::Date, u64)],
    today: jiff::civil::Date,
) -> Result<String, String> {
    let start = today - jiff::Span::new().days(29);
    let mut total = 0u64;
    let mut points = Vec::new();
    for i in 0..30 {
        let d = start + jiff::Span::new().days(i);
        total += days
            .iter()
            .filter(|(x, _)| *x == d)
            .map(|(_, b)| b)
            .sum::<u64>();
        let t = d
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp().as_second())
            .unwrap_or_default();
        points.push((t, total as f64));
    }
    let (x0, x1) = (points[0].0, points[29].0);
    let ymax = (total as f64).max(1.0) * 1.1;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, 200)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, 0f64..ymax)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(6)
            .y_labels(4)
            .x_label_formatter(&day_label)
            .y_label_formatter(&|y| size_label(*y))
            .label_style(("sans-serif", 13))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                AreaSeries::new(points, 0.0, RGBColor(31, 111, 235).mix(0.2))
                    .border_style(RGBColor(31, 111, 235)),
            )
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(accessible(out, "growth"))
}

/// Lets the SVG scale with the page and gives it a role for screen
/// readers (the caption next to it says what it shows).
fn accessible(svg: String, class: &str) -> String {
    svg.replacen(
        "<svg ",
        &format!(
            "<svg role=\"img\" class=\"chart {class}\" preserveAspectRatio=\"xMinYMin meet\" "
        ),
        1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_marks_backups_snapshots_and_the_window() {
        let now: jiff::Timestamp = "2026-12-08T00:00:00Z".parse().unwrap();
        let day = jiff::SignedDuration::from_hours(24);
        let svg = timeline(&Timeline {
            from: now - day * 7,
            now,
            window: Some((now - day * 3, now - jiff::SignedDuration::from_mins(5))),
            backups: vec![now - day * 3, now - day * 2, now - day],
            snapshots: vec![now - day * 2],
        })
        .unwrap();
        assert!(svg.starts_with("<svg role=\"img\""), "{svg}");
        assert_eq!(svg.matches("<circle").count(), 3, "{svg}");
        assert_eq!(svg.matches("<polygon").count(), 1, "{svg}");
        assert!(svg.contains("Dec 0"), "{svg}");
    }

    #[test]
    fn growth_is_cumulative_over_thirty_days() {
        let today: jiff::civil::Date = "2026-12-08".parse().unwrap();
        let svg = growth(
            &[
                ("2026-11-20".parse().unwrap(), 1 << 30),
                ("2026-12-08".parse().unwrap(), 1 << 30),
            ],
            today,
        )
        .unwrap();
        // The y axis reaches past the 2 GiB total.
        assert!(svg.contains("GiB"), "{svg}");
        assert!(svg.contains("<polygon") || svg.contains("<path"), "{svg}");
    }
}
