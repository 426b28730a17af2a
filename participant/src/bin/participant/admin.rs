//! The operator's commands on a participant: `txn` (one transaction) and `in-doubt` (every
//! transaction voted YES with no outcome) read its database, from the file (`--db`, opened
//! read-only: safe beside a running node as well as on a stopped one) or from a running
//! node (`--addr`); `resolve` decides an in-doubt transaction by hand, in a running node
//! (`--addr`) or in a stopped participant's file (`--db`). Both sources print through the
//! same functions.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use cli::{EXIT_FAILED, EXIT_OK, EXIT_UNKNOWN};
use participant::core::{Record, StoredState, heuristic_reason};
use participant::store::Store;
use participant::store::admin::{DbLock, InDoubtEntry, ReadOnlyRow, TxnLookup, TxnRow};
use wire::{ClientRequest, ClientResponse, Decision, NodeId, TxnId, Value, runtime};

use crate::live::{self, CallError, LiveArgs};

pub const TXN_HELP: &str = "\
Examples:
  participant txn 01935c1e-8f2a-7c3d-9e4f-0a1b2c3d4e5f --db p1.db
  participant txn 01935c1e-8f2a-7c3d-9e4f-0a1b2c3d4e5f --addr 127.0.0.1:7001 --cluster demo

Prints the transaction's state, protocol, coordinator, participants, this participant's
vote, the reason of an abort, its timestamps and every logged operation with its before
and after images. With --db the file is opened read-only: safe while the participant
runs. With --addr a running participant reads its own database and answers (the same
output; a transaction with very large images is cut, saying how many operations are left
out).
Exit status: 0 printed (also when the database has no record of it); 1 the database
cannot be read, or the participant refused (e.g. a wrong --cluster); 2 usage error; 4
participant unreachable or no answer.";

pub const IN_DOUBT_HELP: &str = "\
Examples:
  participant in-doubt --db p1.db
  participant in-doubt --addr 127.0.0.1:7001 --cluster demo

Lists every transaction this participant voted YES on whose outcome it does not know
(prepared, waiting, precommitted): they hold their keys' locks until the coordinator (or,
3pc, the termination protocol) decides, or an operator resolves them by hand. With --db
the file is opened read-only: safe while the participant runs. With --addr a running
participant reads its own database and answers (the same output; a very long list is cut,
saying how many are left out).
Exit status: 0 printed (also when none is in doubt); 1 the database cannot be read, or
the participant refused (e.g. a wrong --cluster); 2 usage error; 4 participant
unreachable or no answer.";

pub const RESOLVE_HELP: &str = "\
Examples:
  participant resolve --addr 127.0.0.1:7001 --cluster demo \\
      --txn 01935c1e-8f2a-7c3d-9e4f-0a1b2c3d4e5f --abort --note 'coordinator lost'
  participant resolve --db p1.db --txn 01935c1e-8f2a-7c3d-9e4f-0a1b2c3d4e5f --commit \\
      --note 'coordinator.db lost; coordinator txn showed commit'

A heuristic decision: for a transaction stuck in doubt (its coordinator lost, or down
too long) whose locks must go. It commits (applies the logged after-images) or aborts
(the data was never changed), records state heuristic_commit or heuristic_abort with
the note, and releases its locks. With --addr a running participant does it: the record
is durable before the answer and before its locks go, and a repeat with the same
decision gets the same answer. With --db it writes a stopped participant's file (the
command refuses a database a running participant holds), which then restarts with
nothing locked.
RISK: if the coordinator decided the other way, this participant now disagrees with the
others and the transaction is no longer atomic; when the coordinator re-sends its
decision it records a heuristic hazard (coordinator status, heuristic_hazard table).
Look first: coordinator txn ID --db COORDINATOR_DB (a logged commit means commit; no
row under 2pc means abort) and participant txn ID on the other participants.
Exit status: 0 resolved; 1 refused (not in doubt, unknown, already resolved the other
way, database in use or unreadable, a wrong --cluster); 2 usage error; 3 (--addr) sent
but no answer: it may have been applied (participant txn ID --addr shows it; repeating
the same resolve is safe); 4 (--addr) participant unreachable, nothing sent.";

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("decision").required(true).args(["commit", "abort"]))]
#[command(group = clap::ArgGroup::new("source").required(true).args(["db", "addr"]))]
pub struct ResolveArgs {
    /// The in-doubt transaction's id.
    #[arg(long, value_parser = parse_txn)]
    txn: TxnId,
    /// Commit it by hand: apply its logged after-images.
    #[arg(long)]
    commit: bool,
    /// Abort it by hand: keep the data as it is (updates are deferred to the commit).
    #[arg(long)]
    abort: bool,
    /// Why, for the record (stored as the transaction's reason).
    #[arg(long, default_value = "")]
    note: String,
    /// A stopped participant's database (an existing SQLite file); or --addr.
    #[arg(long)]
    db: Option<PathBuf>,
    #[command(flatten)]
    live: LiveArgs,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["db", "addr"]))]
pub struct TxnArgs {
    /// The transaction id (as `coordinator submit` printed it).
    #[arg(value_name = "ID", value_parser = parse_txn)]
    txn: TxnId,
    /// The participant's database (an existing SQLite file; opened read-only); or --addr.
    #[arg(long)]
    db: Option<PathBuf>,
    #[command(flatten)]
    live: LiveArgs,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["db", "addr"]))]
pub struct InDoubtArgs {
    /// The participant's database (an existing SQLite file; opened read-only); or --addr.
    #[arg(long)]
    db: Option<PathBuf>,
    #[command(flatten)]
    live: LiveArgs,
}

/// A transaction id on the command line: a hyphenated UUID.
pub fn parse_txn(text: &str) -> Result<TxnId, String> {
    uuid::Uuid::parse_str(text.trim())
        .map(TxnId)
        .map_err(|error| format!("{text:?} is not a transaction id (a UUID): {error}"))
}

/// Where a command reads or writes: a file, or a running node (clap's `source` group
/// makes it exactly one of the two, and `--cluster` comes with `--addr`).
enum Source<'a> {
    File(&'a Path),
    Live {
        addr: std::net::SocketAddr,
        cluster: &'a str,
        args: &'a LiveArgs,
    },
}

fn source<'a>(db: Option<&'a PathBuf>, live: &'a LiveArgs) -> Result<Source<'a>, String> {
    match (db, live.addr, live.cluster.as_deref()) {
        (Some(db), _, _) if !db.is_file() => Err(format!("no database file {}", db.display())),
        (Some(db), _, _) => Ok(Source::File(db)),
        (None, Some(addr), Some(cluster)) => Ok(Source::Live {
            addr,
            cluster,
            args: live,
        }),
        (None, _, _) => Err("give --db FILE, or --addr ADDR with --cluster ID".to_string()),
    }
}

/// Asks the running participant; a failure is printed and becomes the exit status.
fn ask(
    addr: std::net::SocketAddr,
    cluster: &str,
    args: &LiveArgs,
    request: ClientRequest,
) -> Result<ClientResponse, CallError> {
    let timeout = Duration::from_millis(args.timeout_ms);
    live::call(addr, cluster, &args.token, timeout, request)
}

fn unexpected(answer: &ClientResponse) -> u8 {
    eprintln!(
        "error: unexpected answer from the participant: {}",
        answer.kind()
    );
    EXIT_FAILED
}

pub fn txn(args: TxnArgs) -> u8 {
    let found = match source(args.db.as_ref(), &args.live) {
        Err(message) => Err((message, EXIT_FAILED)),
        Ok(Source::File(db)) => runtime::block_on(async {
            let store = Store::open_read_only(db).await?;
            let found = store.lookup(args.txn).await;
            store.close().await;
            found
        })
        .map_err(|error| (error.to_string(), EXIT_FAILED)),
        Ok(Source::Live {
            addr,
            cluster,
            args: live,
        }) => match ask(addr, cluster, live, ClientRequest::Txn { txn: args.txn }) {
            Ok(ClientResponse::Txn { lookup, .. }) => Ok(*lookup),
            Ok(other) => return unexpected(&other),
            Err(error) => Err((error.message().to_string(), error.lookup_exit())),
        },
    };
    match found {
        Ok(found) => {
            print!("{}", txn_text(args.txn, &found));
            EXIT_OK
        }
        Err((message, code)) => {
            eprintln!("error: {message}");
            code
        }
    }
}

pub fn in_doubt(args: InDoubtArgs) -> u8 {
    let listed = match source(args.db.as_ref(), &args.live) {
        Err(message) => Err((message, EXIT_FAILED)),
        Ok(Source::File(db)) => runtime::block_on(async {
            let store = Store::open_read_only(db).await?;
            let entries = store.in_doubt_entries().await;
            store.close().await;
            entries
        })
        .map(|entries| (entries, 0))
        .map_err(|error| (error.to_string(), EXIT_FAILED)),
        Ok(Source::Live {
            addr,
            cluster,
            args: live,
        }) => match ask(addr, cluster, live, ClientRequest::InDoubt) {
            Ok(ClientResponse::InDoubt { entries, omitted }) => Ok((entries, omitted)),
            Ok(other) => return unexpected(&other),
            Err(error) => Err((error.message().to_string(), error.lookup_exit())),
        },
    };
    match listed {
        Ok((entries, omitted)) => {
            print!("{}", in_doubt_text(&entries, omitted));
            EXIT_OK
        }
        Err((message, code)) => {
            eprintln!("error: {message}");
            code
        }
    }
}

pub fn resolve(args: ResolveArgs) -> u8 {
    let decision = if args.commit {
        Decision::Commit
    } else {
        Decision::Abort
    };
    let resolved = match source(args.db.as_ref(), &args.live) {
        Err(message) => Err((message, EXIT_FAILED)),
        Ok(Source::File(db)) => runtime::block_on(resolve_in(db, &args, decision))
            .map_err(|error| (error.to_string(), EXIT_FAILED)),
        Ok(Source::Live {
            addr,
            cluster,
            args: live,
        }) => {
            let request = ClientRequest::Resolve {
                txn: args.txn,
                decision,
                note: args.note.clone(),
            };
            match ask(addr, cluster, live, request) {
                Ok(ClientResponse::Resolved {
                    txn,
                    decision,
                    coordinator,
                }) => Ok(resolved_text(txn, decision, coordinator)),
                Ok(other) => return unexpected(&other),
                Err(error) => Err(resolve_failed(&error, args.txn)),
            }
        }
    };
    match resolved {
        Ok(text) => {
            print!("{text}");
            EXIT_OK
        }
        Err((message, code)) => {
            eprintln!("error: {message}");
            code
        }
    }
}

/// A resolve sent and unanswered may have been applied: exit 3, and how to find out.
fn resolve_failed(error: &CallError, txn: TxnId) -> (String, u8) {
    match error {
        CallError::Refused(message) => (message.clone(), EXIT_FAILED),
        CallError::Unreachable(message) => (message.clone(), cli::EXIT_UNREACHABLE),
        CallError::Unanswered(message) => (
            format!(
                "{message}; the resolve may have been applied: `participant txn {txn} --addr ...` \
                 shows it, and repeating the same resolve is safe"
            ),
            EXIT_UNKNOWN,
        ),
    }
}

/// Applies the heuristic decision through the store's own writer: the same images and
/// state rules as the node's commit or abort, in one durable SQLite transaction.
async fn resolve_in(db: &Path, args: &ResolveArgs, decision: Decision) -> anyhow::Result<String> {
    // Held until the write is durable: a participant started meanwhile waits for nothing
    // and fails at once, rather than recovering the txn as in doubt underneath us.
    let _lock = DbLock::acquire(db)?;
    let store = Store::open(db).await?;
    let txn = args.txn;
    let Some(stored) = store.txn(txn).await? else {
        store.close().await;
        anyhow::bail!("txn {txn} is not in {}: nothing to resolve", db.display());
    };
    if !stored.state.is_in_doubt() {
        store.close().await;
        let hint = match stored.state {
            StoredState::ReadOnly => " (a read-only vote holds no locks after a restart)",
            _ => "",
        };
        anyhow::bail!(
            "txn {txn} is {}, not in doubt: nothing to resolve{hint}",
            stored.state.as_str()
        );
    }
    let reason = heuristic_reason(decision, &args.note);
    let mut writer = store.writer().await?;
    let written = writer
        .write(&[Record::Heuristic {
            txn,
            decision,
            reason,
        }])
        .await;
    let _ = writer.close().await;
    store.close().await;
    let changed = written?;
    let mut text = format!(
        "txn {txn}: {} -> heuristic_{}; {} key(s) changed; its locks are released\n",
        stored.state.as_str(),
        decision_word(decision),
        changed.len()
    );
    text.push_str(&coordinator_note(stored.coordinator));
    Ok(text)
}

/// A running participant's answer to a resolve (the same for a repeat).
fn resolved_text(txn: TxnId, decision: Decision, coordinator: NodeId) -> String {
    let mut text = format!(
        "txn {txn}: heuristic_{}; its locks are released\n",
        decision_word(decision)
    );
    text.push_str(&coordinator_note(coordinator));
    text
}

fn decision_word(decision: Decision) -> &'static str {
    match decision {
        Decision::Commit => "commit",
        Decision::Abort => "abort",
    }
}

fn coordinator_note(coordinator: NodeId) -> String {
    format!(
        "the coordinator (node {coordinator}) is told when it sends its decision; if it decided \
         the other way it records a heuristic hazard\n"
    )
}

fn txn_text(txn: TxnId, found: &TxnLookup) -> String {
    let mut text = format!("txn {txn}\n");
    match found {
        TxnLookup::Unknown => text.push_str(
            "no record: this participant never voted YES or NO on it (to its coordinator, \
             an unknown 2pc txn is aborted: presumed abort)\n",
        ),
        TxnLookup::ReadOnly(row) => read_only_text(&mut text, row),
        TxnLookup::Voted(row) => voted_text(&mut text, row),
    }
    text
}

fn read_only_text(text: &mut String, row: &ReadOnlyRow) {
    let _ = writeln!(text, "state         read-only (not a party to the outcome)");
    let _ = writeln!(text, "protocol      {}", row.protocol);
    let _ = writeln!(text, "coordinator   {}", row.coordinator);
    let _ = writeln!(text, "vote          read-only");
    let _ = writeln!(text, "voted_at      {}", row.voted_at);
}

fn voted_text(text: &mut String, row: &TxnRow) {
    let state = match row.state.as_str() {
        "prepared" | "waiting" | "precommitted" => format!("{} (in doubt)", row.state),
        "heuristic_commit" | "heuristic_abort" => {
            format!("{} (decided by hand: participant resolve)", row.state)
        }
        other => other.to_string(),
    };
    // A YES vote logs every op; a NO vote (or an abort before the vote) logs none.
    let vote = if row.log.is_empty() {
        "no (or none: aborted before it voted)"
    } else {
        "yes"
    };
    let coordinator = match row.coordinator {
        0 => "none (a peer asked about it before any Prepare arrived)".to_string(),
        id => id.to_string(),
    };
    let _ = writeln!(text, "state         {state}");
    let _ = writeln!(text, "protocol      {}", row.protocol);
    let _ = writeln!(text, "coordinator   {coordinator}");
    let _ = writeln!(
        text,
        "participants  {}",
        row.participants.as_deref().unwrap_or("-")
    );
    let _ = writeln!(text, "vote          {vote}");
    let _ = writeln!(
        text,
        "reason        {}",
        row.reason.as_deref().unwrap_or("-")
    );
    let _ = writeln!(text, "created_at    {}", row.created_at);
    let _ = writeln!(
        text,
        "decided_at    {}",
        row.decided_at.as_deref().unwrap_or("-")
    );
    if row.log.is_empty() && row.log_omitted == 0 {
        return;
    }
    let _ = writeln!(text, "ops (seq op key: before -> after)");
    for entry in &row.log {
        let _ = writeln!(
            text,
            "  {} {} {}: {} -> {}",
            entry.seq,
            entry.op,
            entry.key,
            value_text(entry.undo.as_ref()),
            value_text(entry.redo.as_ref())
        );
    }
    if row.log_omitted > 0 {
        let _ = writeln!(
            text,
            "  ... {} more not shown (the node's reply is bounded; --db on its file shows all)",
            row.log_omitted
        );
    }
}

fn value_text(value: Option<&Value>) -> String {
    value.map_or_else(|| "absent".to_string(), ToString::to_string)
}

/// The in-doubt list; `omitted` more (the oldest after those shown) were left out of a
/// running node's bounded reply.
fn in_doubt_text(entries: &[InDoubtEntry], omitted: u64) -> String {
    if entries.is_empty() && omitted == 0 {
        return "no transaction is in doubt\n".to_string();
    }
    let mut text = format!(
        "{} in doubt (oldest first)\n{:<36}  {:<12}  {:<8}  {:>7}  {:>11}  {:<12}  keys\n",
        entries.len() as u64 + omitted,
        "txn",
        "state",
        "protocol",
        "age_s",
        "coordinator",
        "participants"
    );
    for entry in entries {
        let _ = writeln!(
            text,
            "{:<36}  {:<12}  {:<8}  {:>7}  {:>11}  {:<12}  {}",
            entry.txn_id,
            entry.state,
            entry.protocol,
            entry.age_s,
            entry.coordinator,
            entry.participants.as_deref().unwrap_or("-"),
            entry.keys.as_deref().unwrap_or("-")
        );
    }
    if omitted > 0 {
        let _ = writeln!(
            text,
            "... {omitted} more not listed (the node's reply is bounded; --db on its file lists all)"
        );
    }
    text
}
