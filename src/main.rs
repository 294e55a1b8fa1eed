use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = retune::cli::Cli::parse();
    match retune::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
