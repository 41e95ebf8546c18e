//! The demo's last step: the operator console over the demo's data folder, with one user made
//! for the demo, served until Ctrl-C. The printed link signs the browser in, so the newcomer
//! can acknowledge alarms and promote models right away (every change audited as `demo`).

use anyhow::{Context, Result};
use moldops_cloud::api::Folders;
use moldops_cloud::console::{self, auth};
use std::net::SocketAddr;
use std::path::Path;

/// The demo's users file, inside the demo folder (replaced with it on every run).
const USERS_FILE: &str = "console-users";

/// Serves the console for `dir` on `listen` (or a free loopback port when it is taken) until
/// SIGINT or SIGTERM.
pub async fn serve(dir: &Path, listen: SocketAddr) -> Result<()> {
    let users_file = dir.join(USERS_FILE);
    let token = auth::Users::add(&users_file, "demo")?;
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            let fallback = SocketAddr::new(listen.ip(), 0);
            println!("console: {listen} is taken ({e}); using a free port");
            tokio::net::TcpListener::bind(fallback)
                .await
                .with_context(|| format!("listening on {fallback}"))?
        }
    };
    let addr = listener.local_addr()?;
    let access = auth::Access::with_file(addr, &users_file)?;
    // No broker account: the demo's edge has stopped by now, a rollout would wait in vain.
    let settings = console::Settings {
        folders: Folders::under(dir),
        access,
        base_path: String::new(),
        rollout: None,
        pipeline: None,
        lake_cache_mib: console::DEFAULT_LAKE_CACHE_MIB,
        follower: None,
    };
    let router = console::router(settings)?;
    println!();
    println!("operator console (plant, alarms, models), signed in as `demo`:");
    println!("  http://{addr}/login?token={token}");
    println!("serving until Ctrl-C (`--exit` ends the demo here instead)");
    console::serve(listener, router, moldops_common::shutdown::requested()).await
}
