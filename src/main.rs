//! `kizuna`: the one binary. `serve` runs the server (with no configuration:
//! SQLite, local files, a development CA created on first start, TLS on
//! 127.0.0.1:8443); `migrate` applies database migrations; `admin` manages
//! facilities, accounts, patients and groups from the command line.

mod admin;
mod ca;
mod serve;
mod settings;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "kizuna", version, about = "Closed care-team messaging backend")]
struct Cli {
    /// Configuration file (TOML). Environment variables `KIZUNA__SECTION__KEY`
    /// override it.
    #[arg(long, global = true, env = "KIZUNA_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(serve::ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Administration from the command line (acts directly on the database).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// The certificate authority: init, issue, list, revoke, CRLs.
    #[command(subcommand)]
    Ca(ca::CaCommand),
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("KIZUNA_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("KIZUNA_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    init_tracing();
    let settings = settings::Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve(args) => serve::run(settings, args).await,
        Command::Migrate => {
            let opts = settings.store_options();
            let store =
                tokio::task::spawn_blocking(move || kizuna_store::Store::open(&opts)).await??;
            println!(
                "{{\"migrated\":true,\"backend\":\"{:?}\"}}",
                store.backend()
            );
            Ok(())
        }
        Command::Admin(cmd) => admin::run(settings, cmd).await,
        Command::Ca(cmd) => ca::run(settings, cmd).await,
    }
}
