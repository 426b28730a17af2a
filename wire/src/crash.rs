//! Named crash points for crash-injection tests: `--crash-at NAME[@N][:TXN]` (or the
//! `CRASH_AT_ENV` variable) makes the process die at that point as abruptly as SIGKILL
//! would (abort: no destructors, no flush), optionally only on the Nth hit or for one
//! transaction.
//!
//! `POINTS` is the one list of names: both binaries' `--help`, their argument checks and
//! the README's table come from it. Always compiled in: an unarmed check is one load of a
//! `OnceLock`, so real-process scenarios run the same binaries users run.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::TxnId;

/// Which binary a crash point is in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Binary {
    Coordinator,
    Participant,
}

/// One crash point: its name and the state a crash there leaves behind.
#[derive(Clone, Copy, Debug)]
pub struct Point {
    pub name: &'static str,
    pub binary: Binary,
    pub when: &'static str,
}

/// Extra crash specs (comma-separated), armed as if given with `--crash-at`.
pub const CRASH_AT_ENV: &str = "ATOMIC_COMMIT_CRASH_AT";
/// Specs one process may arm: each is checked on every hit of its point.
pub const SPECS_MAX: usize = 32;

pub const PARTICIPANT_BEFORE_PREPARE_LOGGED: &str = "participant.before_prepare_logged";
pub const PARTICIPANT_AFTER_PREPARE_LOGGED: &str = "participant.after_prepare_logged";
pub const PARTICIPANT_BEFORE_VOTE_SENT: &str = "participant.before_vote_sent";
pub const PARTICIPANT_AFTER_PRECOMMIT_LOGGED: &str = "participant.after_precommit_logged";
pub const PARTICIPANT_AFTER_COMMIT_APPLIED: &str = "participant.after_commit_applied";
pub const PARTICIPANT_BEFORE_ACK_SENT: &str = "participant.before_ack_sent";
pub const LEADER_AFTER_DECISION_LOGGED: &str = "participant.leader_after_decision_logged";
pub const COORDINATOR_BEFORE_COMMIT_LOGGED: &str = "coordinator.before_commit_logged";
pub const COORDINATOR_AFTER_COMMIT_LOGGED: &str = "coordinator.after_commit_logged";
pub const COORDINATOR_AFTER_FIRST_PRECOMMIT_SENT: &str = "coordinator.after_first_precommit_sent";
pub const COORDINATOR_AFTER_FIRST_PRECOMMIT_ACKED: &str = "coordinator.after_first_precommit_acked";
pub const COORDINATOR_AFTER_FIRST_COMMIT_SENT: &str = "coordinator.after_first_commit_sent";
pub const COORDINATOR_BEFORE_END_LOGGED: &str = "coordinator.before_end_logged";

/// Every crash point of both binaries, in protocol order.
pub const POINTS: &[Point] = &[
    Point {
        name: PARTICIPANT_BEFORE_PREPARE_LOGGED,
        binary: Binary::Participant,
        when: "voting YES: the prepared (3pc: waiting) record is queued, not durable",
    },
    Point {
        name: PARTICIPANT_AFTER_PREPARE_LOGGED,
        binary: Binary::Participant,
        when: "the prepared (3pc: waiting) record is durable, the YES vote not sent",
    },
    Point {
        name: PARTICIPANT_BEFORE_VOTE_SENT,
        binary: Binary::Participant,
        when: "a vote (YES, NO or read-only) is about to be sent",
    },
    Point {
        name: PARTICIPANT_AFTER_PRECOMMIT_LOGGED,
        binary: Binary::Participant,
        when: "3pc: the precommitted record is durable, its ack not sent",
    },
    Point {
        name: PARTICIPANT_AFTER_COMMIT_APPLIED,
        binary: Binary::Participant,
        when: "the committed record and its data are durable, the ack not sent",
    },
    Point {
        name: PARTICIPANT_BEFORE_ACK_SENT,
        binary: Binary::Participant,
        when: "an ack (precommit, commit or abort) is about to be sent",
    },
    Point {
        name: LEADER_AFTER_DECISION_LOGGED,
        binary: Binary::Participant,
        when: "3pc termination leader: its decision is durable, no peer told",
    },
    Point {
        name: COORDINATOR_BEFORE_COMMIT_LOGGED,
        binary: Binary::Coordinator,
        when: "all voted YES: the commit (3pc: precommit) record is queued, not durable",
    },
    Point {
        name: COORDINATOR_AFTER_COMMIT_LOGGED,
        binary: Binary::Coordinator,
        when: "the commit (3pc: precommit) record is durable, nothing sent",
    },
    Point {
        name: COORDINATOR_AFTER_FIRST_PRECOMMIT_SENT,
        binary: Binary::Coordinator,
        when: "3pc: one PreCommit is on the wire, the others are not sent",
    },
    Point {
        name: COORDINATOR_AFTER_FIRST_PRECOMMIT_ACKED,
        binary: Binary::Coordinator,
        when: "3pc: a participant acked its PreCommit",
    },
    Point {
        name: COORDINATOR_AFTER_FIRST_COMMIT_SENT,
        binary: Binary::Coordinator,
        when: "one Commit (3pc: DoCommit) is on the wire, the others are not sent",
    },
    Point {
        name: COORDINATOR_BEFORE_END_LOGGED,
        binary: Binary::Coordinator,
        when: "every participant acked the commit; the end record is not written",
    },
];

/// The names of `binary`'s crash points.
pub fn names(binary: Binary) -> impl Iterator<Item = &'static str> {
    POINTS
        .iter()
        .filter(move |point| point.binary == binary)
        .map(|point| point.name)
}

/// The `--crash-at` help text of `binary`: the syntax and every point it has.
pub fn help(binary: Binary) -> String {
    let mut text = format!(
        "Abort the process at a named crash point (for crash tests; repeatable). \
         NAME@N: only on the Nth hit; NAME:TXN: only for that transaction id (both: \
         NAME@N:TXN). Also read, comma-separated, from ${CRASH_AT_ENV}. Points:\n"
    );
    for point in POINTS.iter().filter(|point| point.binary == binary) {
        text.push_str(&format!("  {}: {}\n", point.name, point.when));
    }
    text
}

/// One armed crash point: die on the `nth` hit of `name` (for `txn` only, if given).
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    pub nth: u64,
    pub txn: Option<String>,
    hits: AtomicU64,
}

impl Spec {
    /// Parses `NAME[@N][:TXN]`, refusing a name `binary` does not have.
    pub fn parse(text: &str, binary: Binary) -> Result<Spec, String> {
        let (rest, txn) = match text.split_once(':') {
            Some((_, "")) => {
                return Err(format!(
                    "crash point '{text}': empty transaction id after ':'"
                ));
            }
            Some((rest, txn)) => (rest, Some(txn.to_string())),
            None => (text, None),
        };
        let (name, nth) = match rest.split_once('@') {
            Some((name, nth)) => match nth.parse::<u64>() {
                Ok(nth) if nth >= 1 => (name, nth),
                _ => {
                    return Err(format!(
                        "crash point '{text}': '@{nth}' must be a hit count of at least 1"
                    ));
                }
            },
            None => (rest, 1),
        };
        let Some(name) = names(binary).find(|known| *known == name) else {
            return Err(format!(
                "unknown crash point '{name}' (known: {})",
                names(binary).collect::<Vec<_>>().join(", ")
            ));
        };
        Ok(Spec {
            name,
            nth,
            txn,
            hits: AtomicU64::new(0),
        })
    }
}

/// The specs given as flags and in `CRASH_AT_ENV`, parsed for `binary`.
pub fn specs(flags: &[String], binary: Binary) -> Result<Vec<Spec>, String> {
    let env = std::env::var(CRASH_AT_ENV).unwrap_or_default();
    let texts: Vec<&str> = flags
        .iter()
        .map(String::as_str)
        .chain(
            env.split(',')
                .map(str::trim)
                .filter(|text| !text.is_empty()),
        )
        .collect();
    if texts.len() > SPECS_MAX {
        return Err(format!(
            "{} crash points armed; at most {SPECS_MAX}",
            texts.len()
        ));
    }
    texts
        .into_iter()
        .map(|text| Spec::parse(text, binary))
        .collect()
}

static ARMED: OnceLock<Vec<Spec>> = OnceLock::new();

/// Arms the crash points (call once at startup, from the binary's arguments).
pub fn arm(specs: Vec<Spec>) {
    let _ = ARMED.set(specs);
}

/// How long `die_after_send` lets the channel writers put already-queued frames on
/// the socket before dying.
pub const SEND_GRACE: Duration = Duration::from_millis(300);

/// Counts this hit of `name` for `txn`; whether an armed spec says to die now.
fn due(name: &str, txn: TxnId) -> bool {
    ARMED.get().is_some_and(|specs| due_in(specs, name, txn))
}

fn due_in(specs: &[Spec], name: &str, txn: TxnId) -> bool {
    let mut due = false;
    for spec in specs.iter().filter(|spec| spec.name == name) {
        if spec
            .txn
            .as_deref()
            .is_some_and(|wanted| wanted != txn.to_string())
        {
            continue;
        }
        // Every matching spec counts the hit, so `@2` means the second for each of them.
        if spec.hits.fetch_add(1, Ordering::Relaxed) + 1 == spec.nth {
            due = true;
        }
    }
    due
}

fn die(name: &str, txn: TxnId) -> ! {
    eprintln!("crash point {name} reached (txn {txn}): aborting");
    std::process::abort();
}

/// Dies here if an armed spec says so; otherwise does nothing.
pub fn point(name: &str, txn: TxnId) {
    if due(name, txn) {
        die(name, txn);
    }
}

/// For points named "after X was sent": counts the hit like `point` and says whether to
/// die; the caller then awaits `die_after_send` before it does anything else.
pub fn due_after_send(name: &str, txn: TxnId) -> bool {
    due(name, txn)
}

/// The frame was only queued: lets the connection writers (tasks on this node's executor)
/// put what is queued on the wire for `SEND_GRACE`, then dies. The caller awaits it in
/// its event loop, which therefore handles nothing meanwhile: nothing after the frame
/// is sent.
pub async fn die_after_send(name: &str, txn: TxnId) -> ! {
    crate::runtime::sleep(SEND_GRACE).await;
    die(name, txn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_unique_and_prefixed_by_its_binary() {
        for (i, point) in POINTS.iter().enumerate() {
            let prefix = match point.binary {
                Binary::Coordinator => "coordinator.",
                Binary::Participant => "participant.",
            };
            assert!(point.name.starts_with(prefix), "{}", point.name);
            assert!(
                POINTS[i + 1..].iter().all(|other| other.name != point.name),
                "{} listed twice",
                point.name
            );
        }
    }

    #[test]
    fn specs_parse_with_a_hit_count_and_a_transaction() {
        let spec = Spec::parse("participant.after_prepare_logged", Binary::Participant).unwrap();
        assert_eq!(
            (spec.name, spec.nth, spec.txn),
            (PARTICIPANT_AFTER_PREPARE_LOGGED, 1, None)
        );
        let spec =
            Spec::parse("coordinator.after_commit_logged@3:abc", Binary::Coordinator).unwrap();
        assert_eq!(spec.nth, 3);
        assert_eq!(spec.txn.as_deref(), Some("abc"));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let error =
            Spec::parse("coordinator.after_commit_logged", Binary::Participant).unwrap_err();
        assert!(error.contains("unknown crash point 'coordinator.after_commit_logged'"));
        assert!(error.contains("participant.after_prepare_logged"));
        let error = Spec::parse("participant.before_ack_sent@0", Binary::Participant).unwrap_err();
        assert!(error.contains("at least 1"), "{error}");
        let error = Spec::parse("participant.before_ack_sent:", Binary::Participant).unwrap_err();
        assert!(error.contains("empty transaction id"), "{error}");
    }

    #[test]
    fn a_spec_fires_on_its_nth_hit_for_its_transaction_only() {
        let (one, two) = (TxnId::new_v7(), TxnId::new_v7());
        let name = COORDINATOR_AFTER_COMMIT_LOGGED;
        let specs = [Spec::parse(&format!("{name}@2:{two}"), Binary::Coordinator).unwrap()];
        assert!(!due_in(&specs, name, one), "another txn");
        assert!(!due_in(&specs, name, one), "another txn, again");
        assert!(
            !due_in(&specs, COORDINATOR_BEFORE_END_LOGGED, two),
            "another point"
        );
        assert!(!due_in(&specs, name, two), "first hit");
        assert!(due_in(&specs, name, two), "second hit");
        assert!(!due_in(&specs, name, two), "only once");
    }

    #[test]
    fn the_help_lists_only_the_binarys_points() {
        let help = help(Binary::Coordinator);
        assert!(help.contains(COORDINATOR_BEFORE_END_LOGGED));
        assert!(!help.contains(PARTICIPANT_BEFORE_ACK_SENT));
        assert!(help.contains(CRASH_AT_ENV));
    }
}
