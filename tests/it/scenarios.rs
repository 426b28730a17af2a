//! Every scenario file of the library (`tests/scenarios/*.toml`) run against the real
//! binaries, as `cargo run -p tests --bin scenario -- tests/scenarios` would: each one's
//! verdict must be PASS. A failure prints the scenario's timeline, checks and kept files.

use std::path::{Path, PathBuf};

use tests::scenario::{self, format};

fn library() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/scenarios")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_scenario_in_the_library_passes() {
    let files = library();
    assert!(
        files.len() >= 15,
        "the library has {} scenarios",
        files.len()
    );
    let mut failed = Vec::new();
    for file in &files {
        let verdict = scenario::run_file(file, false)
            .unwrap_or_else(|error| panic!("not a valid scenario: {error}"));
        let name = file.file_name().expect("file name").to_string_lossy();
        println!("{name}: {}", if verdict.passed { "PASS" } else { "FAIL" });
        if !verdict.passed {
            failed.push(format!("{name}:\n{}", verdict.report));
        }
    }
    assert!(
        failed.is_empty(),
        "failed scenarios:\n{}",
        failed.join("\n\n")
    );
}

#[test]
fn every_scenario_in_the_library_parses() {
    for file in library() {
        format::load(&file).unwrap_or_else(|error| panic!("{error}"));
    }
}

/// The README lists every crash point of the one table and every library scenario.
#[test]
fn the_readme_lists_every_crash_point_and_scenario() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    for point in wire::crash::POINTS {
        assert!(
            readme.contains(&format!("`{}`", point.name)),
            "README lacks {}",
            point.name
        );
    }
    for file in library() {
        let name = file
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        assert!(
            readme.contains(&format!("- `{name}`:")),
            "README lacks scenario {name}"
        );
    }
}
