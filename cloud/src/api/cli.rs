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
    /// Data folder holding `lake/`, `registry/` and `pipeline/`.
    #[arg(long, default_value = "moldops-data")]
    pub data_dir: PathBuf,
}

/// Serves until SIGINT or SIGTERM.
pub fn run(args: ApiArgs) -> Result<()> {
    crate::storage::mirror::refuse_remote(&args.data_dir, "the API serves a local data folder")?;
    moldops_common::runtime::build()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen).await?;
        tracing::info!(listen = %listener.local_addr()?, data = %args.data_dir.display(), "api serving");
        super::serve(listener, super::Folders::under(&args.data_dir), moldops_common::shutdown::requested())
            .await
    })
}
