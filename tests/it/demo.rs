//! The README's demo, run as a user would (smaller), for both protocols: it must start the
//! cluster, run the transfers, find the total balance unchanged and exit 0.

use std::process::{Command, Stdio};

use tests::{binary, describe};

fn run_demo(protocol: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(binary("coordinator"))
        .args([
            "demo",
            "--transfers",
            "300",
            "--accounts",
            "50",
            "--seed",
            "7",
        ])
        .args(["--protocol", protocol])
        .arg("--dir")
        .arg(dir.path().join("demo"))
        .stdin(Stdio::null())
        .output()
        .expect("run coordinator demo");
    assert!(output.status.success(), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("committed:"), "{}", describe(&output));
    assert!(
        stdout.contains("sqlite3 "),
        "prints the inspection commands: {}",
        describe(&output)
    );
    assert!(
        stdout.contains("OK, nothing created or lost"),
        "{}",
        describe(&output)
    );
}

#[test]
fn demo_two_phase_conserves_the_total_balance() {
    run_demo("2pc");
}

#[test]
fn demo_three_phase_conserves_the_total_balance() {
    run_demo("3pc");
}
