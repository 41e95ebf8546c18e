//! `moldops-cloud drift`: judges the edges' new drift summaries, records them in
//! `drift_events`, prints a table (or JSON) and writes or removes the retraining trigger.

use super::assess::Thresholds;
use super::store::DriftEvent;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `moldops-cloud drift`.
#[derive(Debug, Args)]
pub struct DriftArgs {
    /// Lake folder.
    #[arg(long, default_value = "moldops-data/lake")]
    pub lake: PathBuf,
    /// PSI (score or any feature) above which a period is `warn`.
    #[arg(long, default_value_t = 0.1)]
    pub warn_psi: f64,
    /// PSI above which a period is `drift`.
    #[arg(long, default_value_t = 0.25)]
    pub drift_psi: f64,
    /// Binomial p-value of the alarm rate against its target below which a period is `warn`.
    #[arg(long, default_value_t = 0.01)]
    pub warn_p: f64,
    /// … below which it is `drift`.
    #[arg(long, default_value_t = 0.001)]
    pub drift_p: f64,
    /// Periods with fewer shots are judged by their alarm rate only.
    #[arg(long, default_value_t = 100)]
    pub min_shots: u64,
    /// Write the keys whose new periods drifted here (JSON), and remove the file when none did:
    /// the `when_exists` of a retraining task.
    #[arg(long)]
    pub trigger: Option<PathBuf>,
    /// Judge and print, but record nothing (and leave the trigger alone).
    #[arg(long)]
    pub dry_run: bool,
    /// Print the new events as JSON.
    #[arg(long)]
    pub json: bool,
}

impl DriftArgs {
    fn thresholds(&self) -> Result<Thresholds> {
        let t = Thresholds {
            warn_psi: self.warn_psi,
            drift_psi: self.drift_psi,
            warn_p: self.warn_p,
            drift_p: self.drift_p,
            min_shots: self.min_shots,
        };
        anyhow::ensure!(
            t.warn_psi > 0.0 && t.warn_psi <= t.drift_psi && t.drift_psi.is_finite(),
            "need 0 < --warn-psi <= --drift-psi"
        );
        anyhow::ensure!(
            t.drift_p > 0.0 && t.drift_p <= t.warn_p && t.warn_p < 1.0,
            "need 0 < --drift-p <= --warn-p < 1"
        );
        Ok(t)
    }
}

/// Runs `moldops-cloud drift`.
pub fn run(args: DriftArgs) -> Result<()> {
    let thresholds = args.thresholds()?;
    let lake = crate::config::working_folder(&args.lake)?;
    let outcome = super::run(&lake, &thresholds, args.dry_run)?;
    let triggered = match (&args.trigger, args.dry_run) {
        (Some(path), false) => Some((path, super::write_trigger(path, &outcome)?)),
        _ => None,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
        return Ok(());
    }
    print!("{}", table(&outcome.events));
    println!(
        "{} new period(s) judged, {} judged before{}",
        outcome.events.len(),
        outcome.already_recorded,
        if args.dry_run { " (dry run: nothing recorded)" } else { "" }
    );
    if let Some((path, written)) = triggered {
        if written {
            println!("drift found: retraining trigger written to {}", path.display());
        } else {
            println!("no new drift: no retraining trigger ({} removed if it was there)", path.display());
        }
    }
    Ok(())
}

/// The events as a plain table, one line each.
pub fn table(events: &[DriftEvent]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if events.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{:<24} {:<28} {:<17} {:>6} {:>13} {:>9} {:<32} {:<5}",
        "key",
        "model",
        "period end (UTC)",
        "shots",
        "alarms/target",
        "score PSI",
        "worst feature (PSI, shift)",
        "level"
    );
    for e in events {
        let a = &e.assessment;
        let end = chrono::DateTime::from_timestamp_millis(e.period_end_ms)
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default();
        let target = e.alarm_target.map(|t| format!("{:.1}%", 100.0 * t)).unwrap_or_else(|| "-".into());
        let alarms = format!("{:.1}%/{target}", 100.0 * a.alarm_rate);
        let psi = |p: Option<f64>| p.map(|p| format!("{p:.3}")).unwrap_or_else(|| "-".into());
        let worst = a
            .worst_features
            .first()
            .map(|f| {
                let shift = f.shift_std.map(|s| format!(", {s:+.1}σ")).unwrap_or_default();
                format!("{} ({}{shift})", f.name, psi(f.psi))
            })
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<24} {:<28} {:<17} {:>6} {:>13} {:>9} {:<32} {:<5}",
            e.model_key,
            e.model_id,
            end,
            e.shots,
            alarms,
            psi(a.score.psi),
            worst,
            a.level
        );
        for reason in &a.reasons {
            let _ = writeln!(out, "    {reason}");
        }
    }
    out
}
