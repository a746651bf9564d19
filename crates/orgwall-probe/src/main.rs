//! `orgwall-probe`: the tenant isolation prober as a standalone command.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = orgwall_probe::cli::Args::parse_args();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(orgwall_probe::cli::main(args))
}
