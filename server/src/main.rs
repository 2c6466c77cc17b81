//! The `trellis` binary: parse the command line, start logging, dispatch.

use clap::Parser;
use trellis_server::cli::{Cli, Command};
use trellis_server::{startup, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    match cli.command {
        Command::Server(args) => startup::serve(args.into_settings()?).await,
        Command::Migrate(args) => startup::migrate(&args.database()?).await,
    }
}
