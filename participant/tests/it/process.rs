//! Starting the participant binary as a child that is always killed, with bounded waits.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Bound on every wait for a child: start-up, exit, a line of output.
pub const CHILD_WAIT: Duration = Duration::from_secs(30);
pub const CLUSTER: &str = "it-cluster";

pub fn participant() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_participant"));
    command.env("RUST_LOG", "warn");
    command
}

/// A child process killed (and reaped) when dropped.
pub struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    pub fn spawn(mut command: Command) -> ChildGuard {
        let child = command.spawn().expect("spawn participant");
        ChildGuard { child }
    }

    /// Waits at most `CHILD_WAIT` for the child to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + CHILD_WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "child did not exit in {CHILD_WAIT:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.stderr.take()
    }

    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary with `args` to completion (bounded): exit status and stderr.
pub fn run(args: &[&str]) -> (ExitStatus, String) {
    let mut command = participant();
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = ChildGuard::spawn(command);
    let mut stderr = child.take_stderr().expect("stderr piped");
    let reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let status = child.wait();
    let text = reader.join().expect("stderr reader");
    (status, text)
}

/// A serving participant (killed on drop) with its address.
pub struct Serving {
    pub child: ServingChild,
    pub addr: SocketAddr,
}

/// The serving process, started by the shared local-cluster code.
pub struct ServingChild(cluster::Node);

impl ServingChild {
    pub fn id(&self) -> u32 {
        self.0.pid()
    }

    /// Waits at most `CHILD_WAIT` for the child to exit.
    pub fn wait(&mut self) -> ExitStatus {
        self.0
            .wait_exit(CHILD_WAIT)
            .unwrap_or_else(|| panic!("participant did not exit in {CHILD_WAIT:?}"))
    }
}

/// Starts `participant serve` on 127.0.0.1:0 and waits for its `LISTENING` line.
pub fn serve(id: u32, db: &Path, extra: &[&str]) -> Serving {
    let node = cluster::Launch::new(
        format!("participant-{id}"),
        env!("CARGO_BIN_EXE_participant"),
    )
    .args(["serve", "--id", &id.to_string(), "--listen", "127.0.0.1:0"])
    .arg("--db")
    .arg(db)
    .args(["--cluster", CLUSTER])
    .args(extra)
    .env("RUST_LOG", "warn")
    .startup_timeout(CHILD_WAIT)
    .start()
    .unwrap_or_else(|error| panic!("participant serve: {error}"));
    Serving {
        addr: node.addr(),
        child: ServingChild(node),
    }
}
