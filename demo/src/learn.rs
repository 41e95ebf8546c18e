//! The demo's learning half: a throwaway signing key (outside the data folder, which may sit in
//! a git checkout), the cloud config the pipeline's tasks read (the embedded broker, the demo
//! lake), and the built-in learning DAG run as a child process by this binary's `pipeline run` (the
//! code of `moldops-cloud pipeline run`) —
//! import → etl → augment → (evaluate ∥ train) → register → rollout, the same commands a person
//! runs, ending with the new models active on the edge.

use anyhow::{Context, Result, bail};
use moldops_cloud::registry::keys;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The demo's signing key: the private key file (in a temporary folder, removed on drop) and
/// the public key the edge is configured with.
pub struct DemoKey {
    dir: PathBuf,
    pub private: PathBuf,
    pub public_hex: String,
}

impl DemoKey {
    /// Generates a fresh key with `models keygen`'s code.
    pub fn generate() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("moldops-demo-key-{}", std::process::id()));
        let private = dir.join("signing.key");
        let public_hex = keys::keygen(&private, true).context("generating the demo's signing key")?;
        Ok(DemoKey { dir, private, public_hex })
    }
}

impl Drop for DemoKey {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where the lake and the registry are: folders, or `s3://` locations.
pub struct Locations {
    pub lake: String,
    pub registry: String,
}

/// Where the learning half works: the demo folder is the pipeline's data folder (its run
/// records under `pipeline/runs/`; `lake/` and `registry/` unless [`Locations`] name a bucket),
/// the quality log snapshot is its label inbox.
pub struct Learning<'a> {
    pub dir: &'a Path,
    pub at: &'a Locations,
    pub broker_port: u16,
    pub site: &'a str,
    pub edges: &'a [String],
    pub seed: u64,
    pub key: &'a DemoKey,
    /// Pipeline definition (default: the built-in learning DAG).
    pub definition: Option<&'a Path>,
}

impl Learning<'_> {
    /// Copies the quality log as it is now into the pipeline's inbox: the labels of every shot
    /// made so far (a growing file must not be imported half-written).
    pub fn snapshot_labels(&self, quality_log: &Path) -> Result<PathBuf> {
        let inbox = self.dir.join("inbox");
        std::fs::create_dir_all(&inbox)?;
        let dest = inbox.join("quality-log.jsonl");
        let text = std::fs::read_to_string(quality_log)
            .with_context(|| format!("reading {}", quality_log.display()))?;
        // Only whole lines: the simulator may be writing the last one.
        let whole = text.rfind('\n').map_or("", |end| &text[..=end]);
        std::fs::write(&dest, whole).with_context(|| format!("writing {}", dest.display()))?;
        Ok(dest)
    }

    /// The cloud config every task reads through `MOLDOPS_CLOUD_CONFIG`.
    fn write_cloud_config(&self) -> Result<PathBuf> {
        let path = self.dir.join("cloud.toml");
        let text = format!(
            "# Written by `moldops-demo`: the embedded broker and the demo's lake.\n\
             [broker]\nhost = \"127.0.0.1\"\nport = {}\n\n[lake]\npath = {:?}\n",
            self.broker_port, self.at.lake
        );
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Runs the learning DAG (built in, or `--pipeline-config`) to its end; fails when the run
    /// fails.
    pub async fn run_pipeline(&self, labels: &Path) -> Result<()> {
        let vars = [
            ("labels", labels.display().to_string()),
            // The demo shows the loop; the reference's full classifier grids take longer
            // than the rest of it together (`moldops-cloud evaluate` runs them).
            ("evaluate_grid", "small".to_string()),
        ];
        let what = "learning pipeline: import → etl → augment → evaluate ∥ train → register → rollout";
        self.run_definition("learning pipeline", what, self.definition, &vars).await
    }

    /// Runs the pipeline `definition` (default: the built-in learning DAG) to its end with the
    /// demo's site, edges and seed and these `vars`; fails when the run fails. Shows a spinner
    /// with the elapsed time; the run's table is printed by the child.
    pub async fn run_definition(
        &self,
        name: &str,
        what: &str,
        definition: Option<&Path>,
        vars: &[(&str, String)],
    ) -> Result<()> {
        let exe = std::env::current_exe().context("finding the moldops-demo binary")?;
        let config = self.write_cloud_config()?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("pipeline")
            .arg("run")
            .arg("--data-dir")
            .arg(self.dir)
            .args(["--var", &format!("site={}", self.site)])
            .args(["--var", &format!("edges={}", self.edges.join(","))])
            .args(["--var", &format!("seed={}", self.seed)])
            .args(["--var", &format!("lake={}", self.at.lake)])
            .args(["--var", &format!("registry={}", self.at.registry)]);
        for (k, v) in vars {
            cmd.args(["--var", &format!("{k}={v}")]);
        }
        cmd.env("MOLDOPS_CLOUD_CONFIG", &config)
            .env(keys::KEY_ENV, &self.key.private)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(def) = definition {
            cmd.arg("--config").arg(def);
        }
        let mut child = cmd.spawn().context("starting `moldops-demo pipeline run`")?;
        let bar = spinner(what);
        let started = Instant::now();
        let status = loop {
            tokio::select! {
                s = child.wait() => break s.context("waiting for the pipeline")?,
                _ = tokio::time::sleep(Duration::from_secs(10)) => {
                    if bar.is_hidden() {
                        println!("[{:>4}s] {name} running (task logs under {})",
                            started.elapsed().as_secs(), self.dir.join("pipeline/runs").display());
                    }
                }
            }
        };
        bar.finish_and_clear();
        if !status.success() {
            bail!(
                "the {name} failed ({status}); see `moldops-cloud pipeline runs --data-dir {}`",
                self.dir.display()
            );
        }
        println!("{name} finished in {:.0} s", started.elapsed().as_secs_f64());
        Ok(())
    }
}

fn spinner(msg: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.set_message(msg.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
