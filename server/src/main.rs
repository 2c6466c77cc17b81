//! The `trellis` binary: parse the command line, start logging, dispatch.

use clap::Parser;
use trellis_server::cli::{Cli, Command, commands};
use trellis_server::{roles, startup, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => {
            telemetry::init(cli.log_format);
            startup::serve(args.into_settings()?).await
        }
        Command::Migrate(args) => {
            telemetry::init(cli.log_format);
            startup::migrate(&args.database()?).await
        }
        Command::Scheduler(args) => {
            telemetry::init(cli.log_format);
            roles::scheduler(args).await
        }
        Command::Worker(args) => {
            telemetry::init(cli.log_format);
            roles::worker(args).await
        }
        // User commands print for people or scripts, not logs.
        user => std::process::exit(commands::dispatch(user).await),
    }
}
