//! `coordinator txn ID --db FILE`: one transaction as the decision log records it (the
//! decision, its participants, the timestamps and any heuristic hazard). The file is
//! opened read-only, so this is safe while the coordinator runs.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use cli::{EXIT_FAILED, EXIT_OK};
use coordinator::store::Store;
use coordinator::store::admin::TxnLookup;
use wire::{TxnId, runtime};

pub const TXN_HELP: &str = "\
Example:
  coordinator txn 01935c1e-8f2a-7c3d-9e4f-0a1b2c3d4e5f --db coordinator.db

Prints the logged decision (commit; 3pc: the precommit, or an adopted abort and why), the
participants that voted yes and must apply it, when it was logged and ended, and every
heuristic hazard (a participant resolved by hand the other way). No row means presumed
abort: the transaction aborted, or was never decided. The votes themselves are in each
participant's database: `participant txn ID --db FILE`.
Exit status: 0 printed (also when the log has no record of it); 1 the database cannot be
read; 2 usage error.";

#[derive(Args, Debug)]
pub struct TxnArgs {
    /// The transaction id (as `coordinator submit` printed it).
    #[arg(value_name = "ID", value_parser = parse_txn)]
    txn: TxnId,
    /// The coordinator's decision log (an existing SQLite file; opened read-only).
    #[arg(long)]
    db: PathBuf,
}

fn parse_txn(text: &str) -> Result<TxnId, String> {
    uuid::Uuid::parse_str(text.trim())
        .map(TxnId)
        .map_err(|error| format!("{text:?} is not a transaction id (a UUID): {error}"))
}

pub fn run(args: TxnArgs) -> u8 {
    if !args.db.is_file() {
        eprintln!("error: no database file {}", args.db.display());
        return EXIT_FAILED;
    }
    let looked_up = runtime::block_on(async {
        let mut store = Store::open_read_only(&args.db).await?;
        let found = store.lookup(args.txn).await;
        store.close().await;
        found
    });
    match looked_up {
        Ok(found) => {
            print!("{}", text(args.txn, &found));
            EXIT_OK
        }
        Err(error) => {
            eprintln!("error: {error}");
            EXIT_FAILED
        }
    }
}

fn text(txn: TxnId, found: &TxnLookup) -> String {
    let mut text = format!("txn {txn}\n");
    match &found.decision {
        None => text.push_str(
            "decision      none logged: aborted (presumed abort), or never decided here\n\
             participants  unknown to the log (ask each: participant txn ID --db FILE)\n",
        ),
        Some(row) => {
            let decision = match (row.protocol.as_str(), row.decision.as_str(), &row.ended_at) {
                ("3pc", "commit", None) => "commit (precommit logged; not ended)",
                ("3pc", "abort", _) => "abort (adopted from a participant)",
                (_, "commit", None) => "commit (not every participant has acked)",
                (_, "commit", Some(_)) => "commit (every participant acked)",
                (_, other, _) => other,
            };
            let _ = writeln!(text, "decision      {decision}");
            let _ = writeln!(text, "protocol      {}", row.protocol);
            let _ = writeln!(text, "participants  {}", row.participants);
            let _ = writeln!(
                text,
                "votes         yes from {} (read-only voters are not logged)",
                row.participants
            );
            let _ = writeln!(
                text,
                "reason        {}",
                row.reason.as_deref().unwrap_or("-")
            );
            let _ = writeln!(text, "logged_at     {}", row.logged_at);
            let _ = writeln!(
                text,
                "ended_at      {}",
                row.ended_at.as_deref().unwrap_or("-")
            );
        }
    }
    for hazard in &found.hazards {
        let _ = writeln!(
            text,
            "HEURISTIC HAZARD: participant {} reported {} against the logged {} (at {}); \
             its data disagrees with the other participants'",
            hazard.participant, hazard.outcome, hazard.decision, hazard.found_at
        );
    }
    text
}
