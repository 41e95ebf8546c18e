//! `moldops-cloud api`: its arguments and the server's start.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `moldops-cloud api`.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8480")]
    pub listen: String,
    /// Data folder holding `lake/`, `registry/` and `pipeline/`, or `s3://bucket/prefix`
    /// (served from a local copy kept current).
    #[arg(long, default_value = "moldops-data")]
    pub data_dir: PathBuf,
    /// With the data in a bucket: seconds between pulls of the API's copy of it.
    #[arg(long, default_value_t = crate::storage::follow::DEFAULT_REFRESH_S, value_name = "SECONDS")]
    pub refresh_s: u64,
}

/// Serves until SIGINT or SIGTERM.
pub fn run(args: ApiArgs) -> Result<()> {
    moldops_common::runtime::build()?.block_on(async move {
        let served = crate::storage::follow::Served::open(&args.data_dir, false).await?;
        let listener = tokio::net::TcpListener::bind(&args.listen).await?;
        tracing::info!(listen = %listener.local_addr()?, data = %args.data_dir.display(), "api serving");
        let every = std::time::Duration::from_secs(args.refresh_s.max(1));
        let refresh = served.follower().map(|f| tokio::spawn(f.clone().run(every)));
        let folders = super::Folders::under(served.folder());
        let done = super::serve(listener, folders, moldops_common::shutdown::requested()).await;
        refresh.inspect(tokio::task::JoinHandle::abort);
        done
    })
}
