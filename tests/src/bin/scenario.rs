//! `scenario FILE|DIR...`: runs crash-injection scenario files against the real binaries
//! and prints each one's timeline, checks and verdict; exits 1 if any failed, 2 if a file
//! is not a valid scenario.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

/// Run scenario files (`tests/scenarios/*.toml`) against real processes on loopback.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Scenario files, or directories whose `*.toml` files are all run (in name order).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|error| format!("{}: {error}", path.display()))?
                .filter_map(|entry| Some(entry.ok()?.path()))
                .filter(|file| file.extension().is_some_and(|ext| ext == "toml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(error) = cluster::stop_children_on_interrupt() {
        eprintln!("error: cannot install the Ctrl-C handler: {error}");
        return ExitCode::from(1);
    }
    let files = match files(&args.paths) {
        Ok(files) => files,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let mut failed = Vec::new();
    for file in &files {
        match tests::scenario::run_file(Path::new(file), true) {
            Ok(verdict) if verdict.passed => {}
            Ok(_) => failed.push(file.display().to_string()),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(2);
            }
        }
        println!();
    }
    println!(
        "{} scenario(s): {} passed, {} failed{}",
        files.len(),
        files.len() - failed.len(),
        failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(" ({})", failed.join(", "))
        }
    );
    ExitCode::from(u8::from(!failed.is_empty()))
}
