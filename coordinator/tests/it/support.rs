//! Helpers: run the binary with a bounded wait, and a server process killed on drop.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest any spawned command may run before the test kills it and fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_coordinator"))
}

#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `args` to completion (killed after `COMMAND_TIMEOUT`).
pub fn run(args: &[&str]) -> Finished {
    let mut child = KillOnDrop(
        bin()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn coordinator"),
    );
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "coordinator {args:?} did not finish in time"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.0.stdout.take() {
        out.read_to_string(&mut stdout).expect("read stdout");
    }
    if let Some(mut err) = child.0.stderr.take() {
        err.read_to_string(&mut stderr).expect("read stderr");
    }
    Finished {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// A child process killed and reaped when dropped (test failure included).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `coordinator serve` process and the address from its LISTENING line.
pub struct Server {
    pub process: KillOnDrop,
    pub addr: SocketAddr,
}

impl Server {
    pub fn start(args: &[String]) -> Server {
        let mut child = KillOnDrop(
            bin()
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                // Quiet unless the person running the tests asks for logs.
                .env(
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .spawn()
                .expect("spawn coordinator serve"),
        );
        let stdout = child.0.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("LISTENING ") {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let addr = rx
            .recv_timeout(COMMAND_TIMEOUT)
            .expect("coordinator printed no LISTENING line");
        Server {
            process: child,
            addr: addr.parse().expect("LISTENING address"),
        }
    }

    /// Waits (bounded) for the process to exit by itself; returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            if let Some(status) = self.process.0.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "coordinator did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
