//! One node process: started with its stdout piped, ready once it prints
//! `LISTENING ip:port`, killed and reaped when its `Node` drops.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use crate::interrupt::{self, Slot};

/// How long a node may take to print its `LISTENING` line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a bounded wait for a child's exit looks again.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// The line a node prints on stdout once it serves.
const LISTENING_PREFIX: &str = "LISTENING ";

#[derive(thiserror::Error, Debug)]
pub enum StartError {
    #[error("cannot start {name} ({}): {source}", program.display())]
    Spawn {
        name: String,
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the log of {name} at {}: {source}", path.display())]
    Log {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{name} did not start: {reason}{}", log_hint(.log))]
    NotListening {
        name: String,
        reason: String,
        log: Option<PathBuf>,
    },
    #[error("{name} not started: {} children already running", crate::CHILDREN_MAX)]
    TooMany { name: String },
    #[error("cannot reserve loopback ports: {0}")]
    Ports(std::io::Error),
}

fn log_hint(log: &Option<PathBuf>) -> String {
    match log {
        Some(path) => format!(" (see {})", path.display()),
        None => String::new(),
    }
}

impl StartError {
    /// The node's log file, if it has one.
    pub fn log(&self) -> Option<&Path> {
        match self {
            StartError::NotListening { log, .. } => log.as_deref(),
            _ => None,
        }
    }
}

/// What to start: the program, its arguments, where its stderr goes.
#[derive(Clone, Debug)]
pub struct Launch {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    log: Option<PathBuf>,
    startup_timeout: Duration,
}

impl Launch {
    /// `program`, known as `name` in errors; stderr is inherited unless `log_to` is set.
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>) -> Launch {
        Launch {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            log: None,
            startup_timeout: STARTUP_TIMEOUT,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Launch {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Launch {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Launch {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Appends the child's stderr (its log) to `path`.
    pub fn log_to(mut self, path: impl Into<PathBuf>) -> Launch {
        self.log = Some(path.into());
        self
    }

    pub fn startup_timeout(mut self, timeout: Duration) -> Launch {
        self.startup_timeout = timeout;
        self
    }

    /// Starts the child and waits (bounded) for its `LISTENING` line. On any error the
    /// child is already killed.
    pub fn start(self) -> Result<Node, StartError> {
        let stderr = match &self.log {
            Some(path) => {
                let file = File::options()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| StartError::Log {
                        name: self.name.clone(),
                        path: path.clone(),
                        source,
                    })?;
                Stdio::from(file)
            }
            None => Stdio::inherit(),
        };
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let mut child = command.spawn().map_err(|source| StartError::Spawn {
            name: self.name.clone(),
            program: self.program.clone(),
            source,
        })?;
        let stdout = child.stdout.take();
        let pid = child.id();
        let slot = interrupt::register(child).map_err(|mut child| {
            let _ = child.kill();
            let _ = child.wait();
            StartError::TooMany {
                name: self.name.clone(),
            }
        })?;
        let mut node = Node {
            name: self.name.clone(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            pid,
            log: self.log.clone(),
            slot,
        };
        let not_listening = |reason: String| StartError::NotListening {
            name: self.name.clone(),
            reason,
            log: self.log.clone(),
        };
        let stdout = stdout.ok_or_else(|| not_listening("no stdout pipe".to_string()))?;
        let (line_tx, line_rx) = mpsc::channel();
        // Reads the LISTENING line, then keeps draining stdout so the child never blocks on
        // a full pipe. Ends when the child exits.
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent && let Some(addr) = line.strip_prefix(LISTENING_PREFIX) {
                    sent = line_tx.send(addr.trim().to_string()).is_ok();
                }
            }
        });
        let addr = line_rx.recv_timeout(self.startup_timeout).map_err(|_| {
            not_listening(format!(
                "no LISTENING line within {} s (it exited or hung)",
                self.startup_timeout.as_secs()
            ))
        })?;
        node.addr = addr
            .parse()
            .map_err(|_| not_listening(format!("bad LISTENING address {addr:?}")))?;
        Ok(node)
    }
}

/// How a command that was expected to exit by itself ended (`Launch::run`).
#[derive(Debug)]
pub struct Ran {
    /// `None`: still running at the deadline, so it was killed.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Launch {
    /// Runs the child to its end, at most `timeout` (then it is killed), capturing stdout
    /// and stderr (`log_to` is ignored). The child is registered like a node's, so
    /// Ctrl-C stops it too.
    pub fn run(self, timeout: Duration) -> Result<Ran, StartError> {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let mut child = command.spawn().map_err(|source| StartError::Spawn {
            name: self.name.clone(),
            program: self.program.clone(),
            source,
        })?;
        let read_all = |pipe: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_string(&mut text);
                }
                text
            })
        };
        let stdout = read_all(child.stdout.take().map(|pipe| Box::new(pipe) as _));
        let stderr = read_all(child.stderr.take().map(|pipe| Box::new(pipe) as _));
        let slot = interrupt::register(child).map_err(|mut child| {
            let _ = child.kill();
            let _ = child.wait();
            StartError::TooMany {
                name: self.name.clone(),
            }
        })?;
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(child) = interrupt::lock(&slot).as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                break Some(status);
            }
            if Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(EXIT_POLL_INTERVAL);
        };
        // Kills it if it is still running (so the pipes close), and reaps it.
        interrupt::stop(&slot);
        Ok(Ran {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        })
    }
}

/// A running node: killed and reaped when dropped (a test failure included).
#[derive(Debug)]
pub struct Node {
    name: String,
    addr: SocketAddr,
    pid: u32,
    log: Option<PathBuf>,
    slot: Slot,
}

/// CPU time a process has used (all its threads), from `/proc/PID/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    pub fn total(&self) -> Duration {
        self.user + self.system
    }
}

impl Node {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address from its `LISTENING` line.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its log file, if stderr went to one.
    pub fn log(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// SIGKILL: the process dies with no chance to flush or clean up.
    pub fn kill(self) {
        interrupt::stop(&self.slot);
    }

    /// Waits at most `timeout` for the process to exit by itself (e.g. at an armed crash
    /// point); `None` if it is still running then (it is killed when the `Node` drops).
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = interrupt::lock(&self.slot).as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(EXIT_POLL_INTERVAL);
        }
    }

    /// Sends a signal by name (`STOP`, `CONT`, ...) with the system's `kill` command.
    pub fn signal(&self, name: &str) -> std::io::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid.to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "kill -{name} {} failed: {status}",
                self.pid
            )))
        }
    }

    /// User and system CPU time so far (see `cpu_time_of`).
    pub fn cpu_time(&self) -> std::io::Result<CpuTime> {
        cpu_time_of(self.pid)
    }
}

/// User and system CPU time so far of process `pid`, all its threads (Linux
/// `/proc/PID/stat`, fields 14 and 15).
pub fn cpu_time_of(pid: u32) -> std::io::Result<CpuTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu_time(&stat, clock_ticks_per_second()).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unexpected /proc/{pid}/stat: {stat}"),
        )
    })
}

impl Drop for Node {
    fn drop(&mut self) {
        interrupt::stop(&self.slot);
    }
}

/// The kernel's clock tick (`getconf CLK_TCK`, read once); 100 if that cannot be run,
/// which is what Linux reports on every common architecture.
pub fn clock_ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .stderr(Stdio::null())
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|&ticks| ticks > 0)
            .unwrap_or(100)
    })
}

/// utime and stime of a `/proc/PID/stat` line. The command name (field 2) is in
/// parentheses and may contain spaces, so fields are counted after its closing one.
fn parse_cpu_time(stat: &str, ticks_per_second: u64) -> Option<CpuTime> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name: state (field 3) ... utime is field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let tick = |ticks: u64| Duration::from_secs_f64(ticks as f64 / ticks_per_second as f64);
    Some(CpuTime {
        user: tick(utime),
        system: tick(stime),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_a_command_name_with_spaces() {
        let stat = "4242 (my node (x)) S 1 4242 4242 0 -1 4194304 1 0 0 0 250 75 0 0 20 0 3 0";
        let cpu = parse_cpu_time(stat, 100).expect("parsed");
        assert_eq!(cpu.user, Duration::from_millis(2_500));
        assert_eq!(cpu.system, Duration::from_millis(750));
    }

    #[test]
    fn a_truncated_stat_line_is_refused() {
        assert_eq!(parse_cpu_time("4242 (node) S 1 2 3", 100), None);
    }
}
