//! `kizuna-loadgen`: see the library's overview (`kizuna_loadgen`).

use clap::Parser;
use kizuna_loadgen::cli::Cli;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let command: Vec<String> = std::env::args().collect();
    let cli = Cli::parse();
    let out = cli.common.out.clone();
    match kizuna_loadgen::run(cli, command).await {
        Ok(report) => {
            for (k, v) in &report.summary {
                println!("{k}: {v}");
            }
            let c = &report.correctness;
            println!(
                "correctness: {} received, {} lost, {} duplicated, {} out of order, {} wrong content",
                c.received, c.lost, c.duplicated, c.out_of_order, c.wrong_content
            );
            for t in &report.targets {
                println!(
                    "target: {} — {} — measured {}",
                    t.what, t.target, t.measured
                );
            }
            println!("report: {}", out.join("report.md").display());
            if report.passed {
                println!("PASSED");
                ExitCode::SUCCESS
            } else {
                for f in &report.failures {
                    eprintln!("FAILED: {f}");
                }
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("kizuna-loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}
