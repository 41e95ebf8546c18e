//! `moldops-cloud console`: its arguments, adding a user, and the server's start.

use super::auth::{Access, Users};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

/// Arguments of `moldops-cloud console`.
#[derive(Debug, Clone, Args)]
pub struct ConsoleArgs {
    /// Address to listen on. Pages are readable without signing in only on a loopback address;
    /// on any other, a users file is required.
    #[arg(long, default_value = "127.0.0.1:8490")]
    pub listen: String,
    /// Data folder holding `lake/`, `registry/` and `pipeline/`.
    #[arg(long, default_value = "moldops-data")]
    pub data_dir: PathBuf,
    /// Users file: one `NAME sha256:HEX` per line (see --add-user). Every change (acknowledge,
    /// promote, archive) needs a signed-in user.
    #[arg(long, env = "MOLDOPS_CONSOLE_USERS", value_name = "FILE")]
    pub users: Option<PathBuf>,
    /// Adds a user with a fresh token to the users file, prints the token once and exits.
    #[arg(long, value_name = "NAME", requires = "users")]
    pub add_user: Option<String>,
    /// Path prefix the console is served under, for a reverse proxy that forwards e.g.
    /// `/moldops/…` unchanged.
    #[arg(long, default_value = "")]
    pub base_path: String,
}

/// Adds a user, or serves until SIGINT or SIGTERM.
pub fn run(args: ConsoleArgs) -> Result<()> {
    if let (Some(file), Some(name)) = (&args.users, &args.add_user) {
        let token = Users::add(file, name)?;
        println!("{token}");
        eprintln!("added {name} to {}; sign in with the token above (shown only now)", file.display());
        return Ok(());
    }
    moldops_common::runtime::build()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        let access = match &args.users {
            Some(file) => Access::with_file(addr, file)?,
            None => Access::new(addr, Users::default())?,
        };
        let users = access.users();
        let router = super::router(crate::api::Folders::under(&args.data_dir), access, &args.base_path)?;
        tracing::info!(listen = %addr, data = %args.data_dir.display(), users, "console serving");
        println!("console: http://{addr}{}/", args.base_path.trim_end_matches('/'));
        super::serve(listener, router, moldops_common::shutdown::requested()).await
    })
}
