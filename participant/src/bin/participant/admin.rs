//! The operator's commands on a participant's database file: `txn` (one transaction) and
//! `in-doubt` (every transaction voted YES with no outcome) open it read-only, so they are
//! safe beside a running node as well as on a stopped one; `resolve` decides an in-doubt
//! transaction by hand, on a stopped participant's file only.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use cli::{EXIT_FAILED, EXIT_OK};
use participant::core::{Record, StoredState};
use participant::store::Store;
use participant::store::admin::{DbLock, InDoubtEntry, ReadOnlyRow, TxnLookup, TxnRow};
use wire::{Decision, TxnId, Value, runtime};

pub const TXN_HELP: &str = "\
Example:
  participant txn 01935c1e-8f2a-7c3d-9e4f-0a1b2c3d4e5f --db p1.db

Prints the transaction's state, protocol, coordinator, participants, this participant's
vote, the reason of an abort, its timestamps and every logged operation with its before
and after images. The file is opened read-only: safe while the participant runs.
Exit status: 0 printed (also when the database has no record of it); 1 the database
cannot be read; 2 usage error.";

pub const IN_DOUBT_HELP: &str = "\
Example:
  participant in-doubt --db p1.db

Lists every transaction this participant voted YES on whose outcome it does not know
(prepared, waiting, precommitted): they hold their keys' locks until the coordinator (or,
3pc, the termination protocol) decides, or an operator resolves them by hand. The file is
opened read-only: safe while the participant runs.
Exit status: 0 printed (also when none is in doubt); 1 the database cannot be read; 2
usage error.";

pub const RESOLVE_HELP: &str = "\
Examples:
  participant resolve --db p1.db --txn 01935c1e-8f2a-7c3d-9e4f-0a1b2c3d4e5f --abort
  participant resolve --db p1.db --txn 01935c1e-8f2a-7c3d-9e4f-0a1b2c3d4e5f --commit \\
      --note 'coordinator.db lost; coordinator txn showed commit'

A heuristic decision: for a transaction stuck in doubt (its coordinator lost, or down
too long) whose locks must go. It commits (applies the logged after-images) or aborts
(the data was never changed), records state heuristic_commit or heuristic_abort with
the note, and leaves nothing locked when the participant restarts. Stop the participant
first: the command refuses a database a running participant holds.
RISK: if the coordinator decided the other way, this participant now disagrees with the
others and the transaction is no longer atomic; when the coordinator re-sends its
decision it records a heuristic hazard (coordinator status, heuristic_hazard table).
Look first: coordinator txn ID --db COORDINATOR_DB (a logged commit means commit; no
row under 2pc means abort) and participant txn ID on the other participants.
Exit status: 0 resolved; 1 refused (not in doubt, database in use or unreadable); 2
usage error.";

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("decision").required(true).args(["commit", "abort"]))]
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
    /// The stopped participant's database (an existing SQLite file).
    #[arg(long)]
    db: PathBuf,
}

#[derive(Args, Debug)]
pub struct TxnArgs {
    /// The transaction id (as `coordinator submit` printed it).
    #[arg(value_name = "ID", value_parser = parse_txn)]
    txn: TxnId,
    /// The participant's database (an existing SQLite file; opened read-only).
    #[arg(long)]
    db: PathBuf,
}

#[derive(Args, Debug)]
pub struct InDoubtArgs {
    /// The participant's database (an existing SQLite file; opened read-only).
    #[arg(long)]
    db: PathBuf,
}

/// A transaction id on the command line: a hyphenated UUID.
pub fn parse_txn(text: &str) -> Result<TxnId, String> {
    uuid::Uuid::parse_str(text.trim())
        .map(TxnId)
        .map_err(|error| format!("{text:?} is not a transaction id (a UUID): {error}"))
}

pub fn txn(args: TxnArgs) -> u8 {
    if !args.db.is_file() {
        eprintln!("error: no database file {}", args.db.display());
        return EXIT_FAILED;
    }
    let looked_up = runtime::block_on(async {
        let store = Store::open_read_only(&args.db).await?;
        let found = store.lookup(args.txn).await;
        store.close().await;
        found
    });
    match looked_up {
        Ok(found) => {
            print!("{}", txn_text(args.txn, &found));
            EXIT_OK
        }
        Err(error) => {
            eprintln!("error: {error}");
            EXIT_FAILED
        }
    }
}

pub fn in_doubt(args: InDoubtArgs) -> u8 {
    if !args.db.is_file() {
        eprintln!("error: no database file {}", args.db.display());
        return EXIT_FAILED;
    }
    let listed = runtime::block_on(async {
        let store = Store::open_read_only(&args.db).await?;
        let entries = store.in_doubt_entries().await;
        store.close().await;
        entries
    });
    match listed {
        Ok(entries) => {
            print!("{}", in_doubt_text(&entries));
            EXIT_OK
        }
        Err(error) => {
            eprintln!("error: {error}");
            EXIT_FAILED
        }
    }
}

pub fn resolve(args: ResolveArgs) -> u8 {
    if !args.db.is_file() {
        eprintln!("error: no database file {}", args.db.display());
        return EXIT_FAILED;
    }
    let decision = if args.commit {
        Decision::Commit
    } else {
        Decision::Abort
    };
    match runtime::block_on(resolve_in(&args, decision)) {
        Ok(text) => {
            print!("{text}");
            EXIT_OK
        }
        Err(error) => {
            eprintln!("error: {error}");
            EXIT_FAILED
        }
    }
}

/// Applies the heuristic decision through the store's own writer: the same images and
/// state rules as the node's commit or abort, in one durable SQLite transaction.
async fn resolve_in(args: &ResolveArgs, decision: Decision) -> anyhow::Result<String> {
    // Held until the write is durable: a participant started meanwhile waits for nothing
    // and fails at once, rather than recovering the txn as in doubt underneath us.
    let _lock = DbLock::acquire(&args.db)?;
    let store = Store::open(&args.db).await?;
    let txn = args.txn;
    let Some(stored) = store.txn(txn).await? else {
        store.close().await;
        anyhow::bail!(
            "txn {txn} is not in {}: nothing to resolve",
            args.db.display()
        );
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
    let word = match decision {
        Decision::Commit => "commit",
        Decision::Abort => "abort",
    };
    let reason = match args.note.trim() {
        "" => format!("heuristic {word} by hand (participant resolve)"),
        note => format!("heuristic {word} by hand (participant resolve): {note}"),
    };
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
        "txn {txn}: {} -> heuristic_{word}; {} key(s) changed; its locks are released\n",
        stored.state.as_str(),
        changed.len()
    );
    let _ = writeln!(
        text,
        "the coordinator (node {}) is told when it sends its decision; if it decided the \
         other way it records a heuristic hazard",
        stored.coordinator
    );
    Ok(text)
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
    if row.log.is_empty() {
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
}

fn value_text(value: Option<&Value>) -> String {
    value.map_or_else(|| "absent".to_string(), ToString::to_string)
}

fn in_doubt_text(entries: &[InDoubtEntry]) -> String {
    if entries.is_empty() {
        return "no transaction is in doubt\n".to_string();
    }
    let mut text = format!(
        "{} in doubt (oldest first)\n{:<36}  {:<12}  {:<8}  {:>7}  {:>11}  {:<12}  keys\n",
        entries.len(),
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
    text
}
