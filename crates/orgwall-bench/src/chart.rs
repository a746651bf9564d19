//! The picture of a run: every measured orgwall workload next to the pgbench anchors of the
//! same sitting, as horizontal bars (requests or transactions per second) in a PNG, so a
//! reader of the README sees the comparison at a glance.
//!
//! It reads the report's JSON (`Report` serialized, or a file under bench/results), so an
//! older run can be drawn again with `orgwall-bench --chart-from FILE.json`.

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use serde_json::Value;
use std::path::Path;

/// The value at `path` in `v` (`Null` where anything is missing).
fn at<'v>(v: &'v Value, path: &[&str]) -> &'v Value {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .unwrap_or(&Value::Null)
}

/// One bar.
struct Bar {
    label: String,
    value: f64,
    /// An orgwall HTTP run (else a pgbench anchor).
    ours: bool,
    /// The latencies shown after the value (HTTP runs).
    note: String,
}

/// Where a sans-serif TrueType font is looked for (Debian's fonts-dejavu-core).
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

fn register_font() -> Result<()> {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        let Some(bytes) = FONTS.iter().find_map(|p| std::fs::read(p).ok()) else {
            return false;
        };
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!(
            "no font for the chart (install fonts-dejavu-core: looked for {})",
            FONTS.join(", ")
        ))
    }
}

/// The pgbench modes the chart shows, with their labels (the breakdown steps are in
/// the markdown table only).
fn anchor_label(mode: &str) -> Option<&'static str> {
    Some(match mode {
        "floor" => "pgbench floor: one prepared SELECT",
        "naive" => "pgbench naive RLS transaction (4 round trips)",
        "pipeline" => "pgbench: orgwall's detail SQL, pipelined",
        "plain" => "pgbench: orgwall's detail SQL, one by one",
        _ => return None,
    })
}

fn bars(report: &Value) -> Vec<Bar> {
    let mut out: Vec<Bar> = Vec::new();
    let runs = at(report, &["runs"])
        .as_array()
        .cloned()
        .unwrap_or_default();
    // Medians over rounds, per (orgs, backend, variant, workload, concurrency).
    let mut keys: Vec<(String, Vec<&Value>)> = Vec::new();
    for r in &runs {
        let variant = at(r, &["variant"]).as_str().unwrap_or("-");
        let key = format!(
            "{} {}{} {} orgs, c={}",
            at(r, &["workload"]).as_str().unwrap_or("?"),
            at(r, &["backend"]).as_str().unwrap_or("?"),
            if variant == "-" {
                String::new()
            } else {
                format!(" ({variant})")
            },
            at(r, &["orgs"]),
            at(r, &["concurrency"]),
        );
        match keys.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(r),
            None => keys.push((key, vec![r])),
        }
    }
    for (key, rs) in keys {
        let med = |field: &str| {
            let mut v: Vec<f64> = rs.iter().filter_map(|r| at(r, &[field]).as_f64()).collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(0.0)
        };
        out.push(Bar {
            label: format!("orgwall {key}"),
            value: med("rps"),
            ours: true,
            note: format!("p50 {:.1} / p99 {:.1} ms", med("p50_ms"), med("p99_ms")),
        });
    }
    for p in at(report, &["pgbench"])
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let Some(label) = at(&p, &["mode"]).as_str().and_then(anchor_label) else {
            continue;
        };
        out.push(Bar {
            label: format!("{label}, c={}", at(&p, &["concurrency"])),
            value: at(&p, &["tps"]).as_f64().unwrap_or(0.0),
            ours: false,
            note: String::new(),
        });
    }
    out
}

/// Draws `report` (the JSON of a run) to `png`. Fails if there is nothing to draw or no
/// font to draw with.
pub fn draw(report: &Value, png: &Path) -> Result<()> {
    register_font()?;
    let bars = bars(report);
    if bars.is_empty() {
        return Err(anyhow!("the report has no runs to draw"));
    }
    let (w, row, top, left) = (1200u32, 30i32, 70i32, 480i32);
    let h = u32::try_from(top + row * i32::try_from(bars.len())? + 40)?;
    let max = bars.iter().map(|b| b.value).fold(1.0, f64::max);
    let root = BitMapBackend::new(png, (w, h)).into_drawing_area();
    let err = |e| anyhow!("chart: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    let title =
        format!(
        "orgwall bench {} ({}): requests/s (HTTP) and transactions/s (pgbench), higher is better",
        at(report, &["started_at"]).as_str().unwrap_or("").get(..10).unwrap_or(""),
        at(report, &["commit"]).as_str().unwrap_or("?"),
    );
    root.draw(&Text::new(title, (12, 14), ("sans-serif", 18).into_font()))
        .map_err(err)?;
    let machine = format!(
        "{} cores, PostgreSQL {}; server, load generator and database on one machine",
        at(report, &["machine", "cores"]),
        at(report, &["machine", "postgres"])
            .as_str()
            .unwrap_or("-")
            .split_whitespace()
            .next()
            .unwrap_or("-"),
    );
    root.draw(&Text::new(
        machine,
        (12, 40),
        ("sans-serif", 14).into_font(),
    ))
    .map_err(err)?;
    let span = f64::from(w) - f64::from(left) - 260.0;
    for (i, b) in bars.iter().enumerate() {
        let y = top + row * i32::try_from(i)?;
        let len = ((b.value / max) * span).round() as i32;
        let color = if b.ours {
            RGBColor(46, 110, 190)
        } else {
            RGBColor(150, 150, 150)
        };
        root.draw(&Text::new(
            b.label.clone(),
            (12, y + 6),
            ("sans-serif", 14).into_font(),
        ))
        .map_err(err)?;
        root.draw(&Rectangle::new(
            [(left, y + 3), (left + len.max(1), y + row - 5)],
            color.filled(),
        ))
        .map_err(err)?;
        let value = format!("{:.0}  {}", b.value, b.note);
        root.draw(&Text::new(
            value,
            (left + len + 8, y + 6),
            ("sans-serif", 14).into_font(),
        ))
        .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Draws the chart of a results file (`--chart-from`), next to it (`.png`).
pub fn redraw(json: &Path) -> Result<std::path::PathBuf> {
    let text = std::fs::read_to_string(json).with_context(|| format!("{}", json.display()))?;
    let report: Value = serde_json::from_str(&text)?;
    let png = json.with_extension("png");
    draw(&report, &png)?;
    Ok(png)
}
