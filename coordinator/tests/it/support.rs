//! Helpers: run the binary with a bounded wait, and a server process killed on drop.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
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

/// A `coordinator serve` process (killed on drop) and the address from its LISTENING line,
/// started by the shared local-cluster code.
pub struct Server {
    pub node: cluster::Node,
    pub addr: SocketAddr,
}

impl Server {
    pub fn start(args: &[String]) -> Server {
        let node = cluster::Launch::new("coordinator", env!("CARGO_BIN_EXE_coordinator"))
            .args(args)
            // Quiet unless the person running the tests asks for logs.
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .startup_timeout(COMMAND_TIMEOUT)
            .start()
            .unwrap_or_else(|error| panic!("coordinator serve: {error}"));
        Server {
            addr: node.addr(),
            node,
        }
    }

    /// Waits (bounded) for the process to exit by itself; returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let status = self.node.wait_exit(COMMAND_TIMEOUT);
        assert!(status.is_some(), "coordinator did not exit");
        status.and_then(|status| status.code())
    }
}
