use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = retune::cli::Cli::parse();
    match retune::commands::run(cli) {
        Ok(status) => ExitCode::from(status.code()),
        Err(err) => {
            eprintln!("error: {}", retune::untrusted::printable(&err.to_string()));
            ExitCode::from(err.exit_code())
        }
    }
}
