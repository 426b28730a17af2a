//! The floor of a participant's disk work: the CPU that SQLite alone spends on the rows a
//! participant writes for one bank-transfer part (its vote: a `txn` row and a `txn_log`
//! row; its commit: the `txn` row's new state and the `kv` upsert), in the participant's
//! own schema (made by its migrations), WAL and `synchronous=FULL`, group-committed in
//! batches. No sqlx, no threads, no network: single-row prepared statements on one thread,
//! so what it prints is below anything the participant can reach. `coordinator bench`
//! shows what the participants spend; the difference is everything else. The statements
//! restate the rows of the participant's batch script (`participant::store`'s `batch.rs`),
//! not the script itself (multi-row statements through sqlx): a column added there belongs
//! here too.
//!
//! `--store` also writes the same parts through the participant's own store (its
//! `Writer`, the batch script and sqlx's connection thread, as a running participant does),
//! so the gap between the two lines is the store's own cost.
//!
//! SQLite without sqlx needs its C API: this binary is the workspace's only `unsafe` code.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_int};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use libsqlite3_sys as ffi;
use participant::store::{WAL_CHECKPOINT_PAGES, WAL_SIZE_LIMIT_BYTES};
use rand::Rng;
use wire::TxnId;

/// Accounts in the table, as `coordinator bench` seeds each participant.
const ACCOUNTS: u32 = 10_000;

#[derive(Parser, Debug)]
#[command(about = "CPU floor of SQLite for a participant's rows per transfer part, by batch size")]
struct Args {
    /// Parts (votes and as many commits) per SQLite transaction; repeatable.
    #[arg(long = "batch", default_values_t = [1, 12, 32])]
    batches: Vec<usize>,
    /// Parts to write for each batch size.
    #[arg(long, default_value_t = 30_000)]
    parts: usize,
    /// Drop the partial index `txn_in_doubt` first: what the floor would be without it
    /// (recovery and the `in_doubt` view would then read the whole `txn` table).
    #[arg(long)]
    without_in_doubt_index: bool,
    /// Also write the same parts through the participant's store (`participant::store`'s
    /// `Writer`, one `write` per SQLite transaction), and print that line after the floor's.
    #[arg(long, conflicts_with = "without_in_doubt_index")]
    store: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    for &batch in &args.batches {
        if batch == 0 {
            eprintln!("error: --batch must be at least 1");
            return ExitCode::from(2);
        }
        let mut measured = vec![measure(batch, args.parts, args.without_in_doubt_index)];
        if args.store {
            measured.push(measure_store(batch, args.parts));
        }
        for floor in measured {
            match floor {
                Ok(floor) => floor.print(),
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}

struct Floor {
    /// What wrote the rows: "SQLite" (prepared statements) or "store" (`Writer`).
    through: &'static str,
    batch: usize,
    parts: usize,
    cpu: Duration,
    wall: Duration,
    commits: usize,
}

impl Floor {
    fn print(&self) {
        if self.cpu.is_zero() {
            println!(
                "batch {:>3}: {} parts in {} SQLite txns, too few to measure (CPU below the \
                 clock tick), {}",
                self.batch, self.parts, self.commits, self.through
            );
            return;
        }
        let per_part = self.cpu.as_secs_f64() * 1e6 / self.parts as f64;
        // A transfer has a part at each of two participants.
        let transfers_per_core = 1e6 / (2.0 * per_part);
        println!(
            "batch {:>3}: {} parts in {} SQLite txns, {:.1} us CPU per part ({:.1} us wall), \
             so at most {:.0} transfers/s per core on participant disk work alone, {}",
            self.batch,
            self.parts,
            self.commits,
            per_part,
            self.wall.as_secs_f64() * 1e6 / self.parts as f64,
            transfers_per_core,
            self.through
        );
    }
}

fn measure(batch: usize, parts: usize, without_in_doubt_index: bool) -> Result<Floor, String> {
    let dir = tempfile::tempdir().map_err(|error| format!("temp dir: {error}"))?;
    let path = dir.path().join("floor.db");
    migrate(&path)?;
    let db = Db::open(&path)?;
    // The writer's settings (`participant::store`): durability as shipped, its checkpoints.
    db.exec(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
         PRAGMA temp_store = memory; PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}; \
         PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}"
    ))?;
    if without_in_doubt_index {
        db.exec("DROP INDEX txn_in_doubt")?;
    }
    db.exec("BEGIN")?;
    let mut seed = db.prepare("INSERT INTO kv (key, value) VALUES (?1, 100)")?;
    for account in 0..ACCOUNTS {
        seed.run(&[&format!("acct-{account}")])?;
    }
    db.exec("COMMIT")?;
    // What the participant's batch script does for these records, row by row.
    let mut begin = db.prepare("BEGIN IMMEDIATE")?;
    let mut commit = db.prepare("COMMIT")?;
    let now = "strftime('%Y-%m-%dT%H:%M:%fZ')";
    let mut vote = db.prepare(&format!(
        "INSERT INTO txn (txn_id, protocol, coordinator, state, created_at, participants) \
         VALUES (?1, '2pc', 100, 'prepared', {now}, '1,2')"
    ))?;
    let mut log = db.prepare(
        "INSERT INTO txn_log (txn_id, seq, key, op, undo_value, redo_value) \
         VALUES (?1, 0, ?2, 'add', 100, 99)",
    )?;
    let mut decide = db.prepare(&format!(
        "UPDATE txn SET state = 'committed', decided_at = {now} WHERE txn_id = ?1"
    ))?;
    let mut apply = db.prepare(&format!(
        "INSERT INTO kv (key, value, updated_at, updated_by_txn) VALUES (?1, 99, {now}, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
         updated_at = excluded.updated_at, updated_by_txn = excluded.updated_by_txn"
    ))?;
    let mut rng = rand::rng();
    let mut account = || format!("acct-{}", rng.random_range(0..ACCOUNTS));
    let mut voted: Vec<(String, String)> = Vec::new();
    let (cpu_before, started) = (process_cpu()?, Instant::now());
    let (mut written, mut commits) = (0, 0);
    // Each SQLite transaction: the votes of `batch` new parts and the commits of the
    // previous transaction's, as a participant's group commit mixes them under load.
    while written < parts || !voted.is_empty() {
        begin.run(&[])?;
        let decided = std::mem::take(&mut voted);
        for _ in 0..batch.min(parts - written) {
            let txn = TxnId::new_v7().to_string();
            let key = account();
            vote.run(&[&txn])?;
            log.run(&[&txn, &key])?;
            voted.push((txn, key));
            written += 1;
        }
        for (txn, key) in &decided {
            decide.run(&[txn])?;
            apply.run(&[key, txn])?;
        }
        commit.run(&[])?;
        commits += 1;
    }
    let (cpu, wall) = (process_cpu()? - cpu_before, started.elapsed());
    Ok(Floor {
        through: "SQLite",
        batch,
        parts,
        cpu,
        wall,
        commits,
    })
}

/// The same parts as `measure`, as records through the participant's store: each `write`
/// holds the votes (`Prepared`) of `batch` new parts and the commits of the previous
/// write's. The accounts are seeded by one txn that puts them all. Checks at the end that
/// every part committed.
fn measure_store(batch: usize, parts: usize) -> Result<Floor, String> {
    use participant::core::{LogEntry, OpKind, Record};
    use wire::{NodeId, Protocol, Value};
    let dir = tempfile::tempdir().map_err(|error| format!("temp dir: {error}"))?;
    let path = dir.path().join("store.db");
    let failed = |error: participant::store::StoreError| format!("participant store: {error}");
    let coordinator = NodeId(100);
    let prepared = |txn: TxnId, entries: Vec<LogEntry>| Record::Prepared {
        txn,
        protocol: Protocol::TwoPhase,
        coordinator,
        entries,
        participants: vec![NodeId(1), NodeId(2)],
    };
    wire::runtime::block_on(async {
        let store = participant::store::Store::open(&path)
            .await
            .map_err(failed)?;
        let mut writer = store.writer().await.map_err(failed)?;
        // The participant's WAL settings, as at its start.
        writer.limit_wal().await.map_err(failed)?;
        let seed = TxnId::new_v7();
        let puts = (0..ACCOUNTS)
            .map(|account| LogEntry {
                seq: account,
                key: format!("acct-{account}"),
                op: OpKind::Put,
                undo: None,
                redo: Some(Value::Int(100)),
            })
            .collect();
        writer
            .write(&[prepared(seed, puts)])
            .await
            .map_err(failed)?;
        writer
            .write(&[Record::Committed { txn: seed }])
            .await
            .map_err(failed)?;
        let mut rng = rand::rng();
        let mut voted: Vec<TxnId> = Vec::new();
        let (mut written, mut commits) = (0, 0);
        let (cpu_before, started) = (process_cpu()?, Instant::now());
        while written < parts || !voted.is_empty() {
            let mut records: Vec<Record> = voted
                .drain(..)
                .map(|txn| Record::Committed { txn })
                .collect();
            for _ in 0..batch.min(parts - written) {
                let txn = TxnId::new_v7();
                let entry = LogEntry {
                    seq: 0,
                    key: format!("acct-{}", rng.random_range(0..ACCOUNTS)),
                    op: OpKind::Add,
                    undo: Some(Value::Int(100)),
                    redo: Some(Value::Int(99)),
                };
                records.push(prepared(txn, vec![entry]));
                voted.push(txn);
                written += 1;
            }
            writer.write(&records).await.map_err(failed)?;
            commits += 1;
        }
        let (cpu, wall) = (process_cpu()? - cpu_before, started.elapsed());
        writer.close().await.map_err(failed)?;
        let counts = store.txn_counts().await.map_err(failed)?;
        store.close().await;
        let committed = counts
            .iter()
            .find(|(state, _)| state == "committed")
            .map_or(0, |(_, count)| *count);
        // The seed txn is committed too.
        if usize::try_from(committed) != Ok(parts + 1) {
            return Err(format!(
                "{committed} txns committed in the store, not the {} written",
                parts + 1
            ));
        }
        Ok(Floor {
            through: "store",
            batch,
            parts,
            cpu,
            wall,
            commits,
        })
    })
}

/// The participant's schema, made by its own migrations.
fn migrate(path: &Path) -> Result<(), String> {
    wire::runtime::block_on(async {
        let store = participant::store::Store::open(path)
            .await
            .map_err(|error| format!("participant store: {error}"))?;
        store.close().await;
        Ok(())
    })
}

fn process_cpu() -> Result<Duration, String> {
    cluster::cpu_time_of(std::process::id())
        .map(|cpu| cpu.total())
        .map_err(|error| format!("own CPU time: {error}"))
}

/// One SQLite connection, closed on drop.
struct Db(*mut ffi::sqlite3);

impl Db {
    fn open(path: &Path) -> Result<Db, String> {
        let name = CString::new(path.to_string_lossy().as_bytes()).map_err(|e| e.to_string())?;
        let mut db = std::ptr::null_mut();
        let flags = ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_NOMUTEX;
        // SAFETY: `name` is a NUL-terminated string; `db` receives the handle.
        let rc = unsafe { ffi::sqlite3_open_v2(name.as_ptr(), &mut db, flags, std::ptr::null()) };
        let db = Db(db);
        db.check(rc)?;
        Ok(db)
    }

    fn exec(&self, sql: &str) -> Result<(), String> {
        let sql = CString::new(sql).map_err(|e| e.to_string())?;
        // SAFETY: an open handle and a NUL-terminated script; no callback.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.0,
                sql.as_ptr(),
                None,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        self.check(rc)
    }

    fn prepare(&self, sql: &str) -> Result<Stmt<'_>, String> {
        let sql = CString::new(sql).map_err(|e| e.to_string())?;
        let mut stmt = std::ptr::null_mut();
        let flags = ffi::SQLITE_PREPARE_PERSISTENT;
        // SAFETY: an open handle, a NUL-terminated statement; `stmt` receives it.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.0,
                sql.as_ptr(),
                -1,
                flags,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        self.check(rc)?;
        Ok(Stmt { db: self, stmt })
    }

    fn check(&self, rc: c_int) -> Result<(), String> {
        if rc == ffi::SQLITE_OK || rc == ffi::SQLITE_DONE {
            return Ok(());
        }
        // SAFETY: the handle is valid (or null, which sqlite3_errmsg answers for).
        let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.0)) };
        Err(format!("SQLite error {rc}: {}", message.to_string_lossy()))
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // SAFETY: every statement borrowed the connection and is finalized already.
        unsafe { ffi::sqlite3_close(self.0) };
    }
}

/// A prepared statement of `db`, finalized on drop.
struct Stmt<'db> {
    db: &'db Db,
    stmt: *mut ffi::sqlite3_stmt,
}

impl Stmt<'_> {
    /// Binds `texts` to ?1, ?2, ... and steps the statement to its end.
    fn run(&mut self, texts: &[&str]) -> Result<(), String> {
        for (index, text) in (1..).zip(texts) {
            let len = c_int::try_from(text.len()).map_err(|e| e.to_string())?;
            // SAFETY: a live statement; SQLITE_TRANSIENT makes SQLite copy the bytes.
            let rc = unsafe {
                ffi::sqlite3_bind_text(
                    self.stmt,
                    index,
                    text.as_ptr().cast(),
                    len,
                    ffi::SQLITE_TRANSIENT(),
                )
            };
            self.db.check(rc)?;
        }
        // SAFETY: a live, bound statement of an open connection.
        let (step, reset) =
            unsafe { (ffi::sqlite3_step(self.stmt), ffi::sqlite3_reset(self.stmt)) };
        self.db.check(step)?;
        self.db.check(reset)
    }
}

impl Drop for Stmt<'_> {
    fn drop(&mut self) {
        // SAFETY: finalized once, before its connection closes (it borrows it).
        unsafe { ffi::sqlite3_finalize(self.stmt) };
    }
}
