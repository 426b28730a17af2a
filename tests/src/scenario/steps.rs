//! The timeline's steps carried out on a running scenario: signals, restarts, link
//! faults through the proxies, submits and bounded waits.

use std::time::{Duration, Instant};

use super::ClientOutcome;
use super::client::{submit, writes_of};
use super::format::{self, Direction, LinkSpec, NodeName, Step};
use super::proxy::Faults;
use super::runner::{POLL, Run, node_id};
use super::workload;

/// A proxied path, `(dialler, participant)`, and whether a fault goes on its `up`
/// (dialler to target) direction.
type PathWay = ((u32, u32), bool);

impl Run {
    pub(super) fn step(&mut self, step: &Step) -> Result<(), String> {
        let n = self.scenario.participants;
        let parse = |name: &str| NodeName::parse(name, n);
        let result = match step {
            Step::Kill(node) => {
                let node = parse(node)?;
                self.notice_exits();
                match self.take(node) {
                    Some(process) => {
                        process.kill();
                        self.timeline.event(&node.to_string(), "kill -9");
                    }
                    None => self
                        .timeline
                        .event(&node.to_string(), "kill -9: not running"),
                }
                if node == NodeName::Coordinator {
                    *self
                        .coordinator_addr
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = None;
                }
                Ok(())
            }
            Step::Stop(node) => self.signal(parse(node)?, "STOP"),
            Step::Cont(node) => self.signal(parse(node)?, "CONT"),
            Step::Restart { node, crash_at } => self.restart(parse(node)?, crash_at),
            Step::Cut(link) => self.link(link, "cut", |faults| faults.cut = true),
            Step::Heal(link) => self.link(link, "heal", |faults| *faults = Default::default()),
            Step::Drop(link) => self.link(link, "drop", |faults| faults.drop = true),
            Step::Delay(link) => {
                let delay = Duration::from_millis(link.ms.unwrap_or(0));
                self.link(link, &format!("delay {delay:?}"), |faults| {
                    faults.delay = delay
                })
            }
            Step::Reset(link) => {
                let mut closed = 0;
                for proxy in self
                    .proxies_of(link, Direction::Both)?
                    .into_iter()
                    .map(|(p, _)| p)
                {
                    closed += self.proxies[&proxy].reset();
                }
                let (a, b) = (&link.link[0], &link.link[1]);
                self.timeline.event(
                    "net",
                    format!("reset {a}<->{b}: {closed} connections closed"),
                );
                Ok(())
            }
            Step::Submit {
                ops,
                name,
                protocol,
                background: true,
                ..
            } => {
                let (addr, protocol) = (
                    self.cluster.coordinator_addr(),
                    protocol.unwrap_or(self.scenario.protocol),
                );
                let (ops, name, timeout_ms) = (ops.clone(), name.clone(), self.scenario.timeout_ms);
                let (txns, named, timeline) =
                    (self.txns.clone(), self.named.clone(), self.timeline.clone());
                self.timeline.event(
                    "client",
                    format!("{} [{}] in the background", protocol.flag(), ops.join(", ")),
                );
                self.background.push(std::thread::spawn(move || {
                    let record = submit(addr, protocol, timeout_ms, &ops, writes_of(&ops));
                    timeline.event("client", workload::describe(&record));
                    if let (Some(name), Some(id)) = (name, &record.id) {
                        named
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(name, id.clone());
                    }
                    txns.lock().unwrap_or_else(|p| p.into_inner()).push(record);
                }));
                Ok(())
            }
            Step::Submit {
                ops,
                name,
                protocol,
                expect,
                expect_output,
                ..
            } => {
                let writes = writes_of(ops);
                let record = self.submit(ops, *protocol, writes);
                if let (Some(name), Some(id)) = (name, &record.id) {
                    self.named
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(name.clone(), id.clone());
                }
                let wanted = expect.map(|expect| match expect {
                    format::Expect::Committed => ClientOutcome::Committed,
                    format::Expect::Aborted => ClientOutcome::Aborted,
                    format::Expect::Unknown => ClientOutcome::Unknown,
                });
                match (wanted, expect_output) {
                    (Some(wanted), _) if wanted != record.outcome => Err(format!(
                        "expected {wanted:?}, the client was told {:?}",
                        record.outcome
                    )),
                    (_, Some(text)) if !record.output.contains(text.as_str()) => Err(format!(
                        "the client did not print {text:?}; it printed {:?}",
                        record.output.trim()
                    )),
                    _ => Ok(()),
                }
            }
            Step::StartWorkload {} => {
                self.start_workload();
                Ok(())
            }
            Step::Sleep { ms } => {
                self.timeline.event("runner", format!("sleep {ms} ms"));
                std::thread::sleep(Duration::from_millis(*ms));
                Ok(())
            }
            Step::WaitExit { node, within_ms } => {
                let node = parse(node)?;
                let within = Duration::from_millis(*within_ms);
                let Some(process) = self.process(node) else {
                    return Err(format!("{node} is not running"));
                };
                match process.wait_exit(within) {
                    Some(_) => {
                        self.notice_exits();
                        let process = self.take(node);
                        drop(process);
                        Ok(())
                    }
                    None => Err(format!("{node} did not exit within {within:?}")),
                }
            }
            Step::WaitConnected { within_ms } => {
                self.wait_connected(Duration::from_millis(*within_ms))
            }
            Step::WaitSql {
                node,
                sql,
                rows,
                within_ms,
            } => {
                let node = parse(node)?;
                let sql = self.expand(sql)?;
                let deadline = Instant::now() + Duration::from_millis(*within_ms);
                loop {
                    let got = self.query(node, &sql);
                    if got.as_ref() == Ok(rows) {
                        self.timeline
                            .event(&node.to_string(), format!("`{sql}` = {rows:?}"));
                        break Ok(());
                    }
                    if Instant::now() >= deadline {
                        break Err(format!(
                            "{node}: `{sql}` returned {got:?}, expected {rows:?} within {within_ms} ms"
                        ));
                    }
                    self.notice_exits();
                    std::thread::sleep(POLL);
                }
            }
            Step::WaitWorkload { within_ms } => match self.workload.as_mut() {
                Some(running) => {
                    if running.wait(Duration::from_millis(*within_ms)) {
                        self.timeline.event("runner", "workload done");
                        Ok(())
                    } else {
                        Err(format!("the workload was not done within {within_ms} ms"))
                    }
                }
                None => Err("the workload was not started".to_string()),
            },
        };
        self.notice_exits();
        result
    }

    fn signal(&mut self, node: NodeName, signal: &str) -> Result<(), String> {
        let process = self.process(node).ok_or(format!("{node} is not running"))?;
        process.signal(signal).map_err(|e| e.to_string())?;
        self.timeline
            .event(&node.to_string(), format!("SIG{signal}"));
        Ok(())
    }

    /// The proxies a fault on `link` applies to, and for each whether it is their `up`
    /// (dialler to target) direction.
    fn proxies_of(&self, link: &LinkSpec, direction: Direction) -> Result<Vec<PathWay>, String> {
        let n = self.scenario.participants;
        let a = node_id(NodeName::parse(&link.link[0], n)?);
        let b = node_id(NodeName::parse(&link.link[1], n)?);
        // Bytes a -> b travel up the path a dials to b, and down the path b dials to a.
        let mut found = Vec::new();
        let forward = direction != Direction::Backward;
        let backward = direction != Direction::Forward;
        if self.proxies.contains_key(&(a, b)) {
            if forward {
                found.push(((a, b), true));
            }
            if backward {
                found.push(((a, b), false));
            }
        }
        if self.proxies.contains_key(&(b, a)) {
            if forward {
                found.push(((b, a), false));
            }
            if backward {
                found.push(((b, a), true));
            }
        }
        Ok(found)
    }

    fn link(
        &mut self,
        link: &LinkSpec,
        what: &str,
        change: impl Fn(&mut Faults),
    ) -> Result<(), String> {
        for (key, up) in self.proxies_of(link, link.direction)? {
            self.proxies[&key].update(up, &change);
        }
        let arrow = match link.direction {
            Direction::Both => "<->",
            Direction::Forward => "->",
            Direction::Backward => "<-",
        };
        self.timeline.event(
            "net",
            format!("{what} {}{arrow}{}", link.link[0], link.link[1]),
        );
        Ok(())
    }
}
