//! The simulator's disks obey the real stores' contracts: the same seeded record batches,
//! with crashes between them, go into the real SQLite store and into the simulated disk,
//! and after every reopen both must recover the same state and have refused the same
//! batches. Replay one seed with `DISK_CONTRACT_SEED=N`.

use std::collections::BTreeSet;
use std::fmt::{Debug, Write as _};
use std::ops::Range;
use std::path::Path;

use coordinator::core::{Lsn as CoordinatorLsn, Record as CoordinatorRecord, unfinished};
use participant::core::{
    LogEntry, Lsn as ParticipantLsn, OpKind, Record as ParticipantRecord, StoredReadHold, StoredTxn,
};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use sqlx::{ConnectOptions, Connection};
use tests::sim::disk::{CoordinatorDisk, ParticipantDisk};
use uuid::Uuid;
use wire::runtime::block_on;
use wire::{Decision, NodeId, Protocol, TxnId, Value};

/// 40 seeds of a few dozen records each: a few seconds in a debug build, most of it
/// SQLite's fsyncs.
const SEEDS: Range<u64> = 0..40;
/// Transactions per seed: enough for interleavings, few enough to read a failing trace.
const TXNS: Range<usize> = 6..11;
/// A few keys, so that transactions overwrite and delete each other's values.
const KEYS: [&str; 3] = ["a", "b", "c"];
const PARTICIPANTS: [NodeId; 3] = [NodeId(1), NodeId(2), NodeId(3)];
const COORDINATOR: NodeId = NodeId(9);
/// Records per group commit.
const BATCH_LEN: Range<usize> = 1..5;
/// Chance, after a batch, of a probe: one record of any kind for any txn (often one the
/// store must refuse), written alone so that no scripted record is lost with it.
const PROBE_PROBABILITY: f64 = 0.25;
/// Chance that a batch is queued but the node crashes before its group commit.
const LOST_PROBABILITY: f64 = 0.1;
/// Chance of a crash (and a comparison) after a durable batch.
const CRASH_PROBABILITY: f64 = 0.4;

#[test]
fn participant_disk_recovers_what_the_sqlite_store_recovers() {
    for_each_seed("participant", participant_seed);
}

#[test]
fn coordinator_disk_recovers_what_the_decision_log_recovers() {
    for_each_seed("coordinator", coordinator_seed);
}

/// Runs `run` for every seed (or the one in `DISK_CONTRACT_SEED`); a failure names its
/// seed and prints the batches that led to it.
fn for_each_seed(what: &str, run: fn(u64, &mut String) -> Result<(), String>) {
    let seeds: Vec<u64> = match std::env::var("DISK_CONTRACT_SEED") {
        Ok(seed) => vec![seed.parse().expect("DISK_CONTRACT_SEED is a number")],
        Err(_) => SEEDS.collect(),
    };
    for seed in seeds {
        let mut trace = String::new();
        if let Err(mismatch) = run(seed, &mut trace) {
            panic!(
                "{what} seed {seed}: {mismatch}\n\
                 replay: DISK_CONTRACT_SEED={seed} cargo test -p tests --test it disk_contract\n\
                 batches:\n{trace}"
            );
        }
    }
}

/// What happens to one batch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fate {
    /// Written; then maybe a crash.
    Durable { crash_after: bool },
    /// Queued, then the node crashed before the group commit.
    Lost,
}

fn fate(rng: &mut StdRng) -> Fate {
    if rng.random_bool(LOST_PROBABILITY) {
        Fate::Lost
    } else {
        Fate::Durable {
            crash_after: rng.random_bool(CRASH_PROBABILITY),
        }
    }
}

/// Random ids, so that txn-id order and record order differ (the real store orders by
/// txn id in places: recovery ties, the decision log's `recover`).
fn fresh_txn(rng: &mut StdRng, txns: &mut Vec<TxnId>) -> TxnId {
    let txn = TxnId(Uuid::from_u128(rng.random()));
    txns.push(txn);
    txn
}

/// Mostly a known txn (probes are about refusals), sometimes a new one.
fn probe_txn(rng: &mut StdRng, txns: &mut Vec<TxnId>) -> TxnId {
    if rng.random_bool(0.8) {
        *txns.choose(rng).expect("scripts made txns")
    } else {
        fresh_txn(rng, txns)
    }
}

/// Interleaves per-txn scripts at random, keeping each script's order, and cuts the
/// result into batches, with probes (single-record batches) between some of them.
fn batches<R: Clone>(
    rng: &mut StdRng,
    mut scripts: Vec<Vec<R>>,
    mut probe: impl FnMut(&mut StdRng) -> R,
) -> Vec<Vec<R>> {
    for script in &mut scripts {
        script.reverse();
    }
    let mut records = Vec::new();
    while !scripts.is_empty() {
        let at = rng.random_range(0..scripts.len());
        records.extend(scripts[at].pop());
        if scripts[at].is_empty() {
            scripts.swap_remove(at);
        }
    }
    let mut batches = Vec::new();
    let mut rest = records.as_slice();
    while !rest.is_empty() {
        let len = rng.random_range(BATCH_LEN).min(rest.len());
        batches.push(rest[..len].to_vec());
        rest = &rest[len..];
        if rng.random_bool(PROBE_PROBABILITY) {
            batches.push(vec![probe(rng)]);
        }
    }
    batches
}

/// Both sides' answers to one question, or the mismatch.
fn same<T: PartialEq + Debug>(what: &str, real: T, sim: T) -> Result<(), String> {
    if real == sim {
        Ok(())
    } else {
        Err(format!("{what} differs\n  real: {real:?}\n  sim:  {sim:?}"))
    }
}

/// Accepted by both or refused by both; the trace notes what each said.
fn same_verdict<T, E: Debug>(
    trace: &mut String,
    real: Result<T, E>,
    sim: Result<(), String>,
) -> Result<bool, String> {
    match (real, sim) {
        (Ok(_), Ok(())) => Ok(true),
        (Err(real), Err(sim)) => {
            let _ = writeln!(trace, "    refused by both: real {real:?}; sim {sim:?}");
            Ok(false)
        }
        (Ok(_), Err(sim)) => Err(format!(
            "the real store accepted the last batch, the sim disk refused it: {sim}"
        )),
        (Err(real), Ok(())) => Err(format!(
            "the real store refused the last batch ({real:?}), the sim disk accepted it"
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Participant

fn value(rng: &mut StdRng) -> Option<Value> {
    match rng.random_range(0..4) {
        0 => None,
        1 => Some(Value::Int(rng.random_range(-5..20))),
        // Digits as text: the store must keep the type, not just the spelling.
        2 => Some(Value::Text(
            ["x", "y", "42"].choose(rng).expect("non-empty").to_string(),
        )),
        _ => Some(Value::Int(rng.random_range(100..110))),
    }
}

/// Images as `eval` makes them: a read logs the value read as both images, a delete's
/// redo is "absent", a put or add writes a value.
fn entries(rng: &mut StdRng, len: Range<usize>) -> Vec<LogEntry> {
    (0..rng.random_range(len))
        .map(|seq| {
            let op = *[OpKind::Get, OpKind::Put, OpKind::Delete, OpKind::Add]
                .choose(rng)
                .expect("non-empty");
            let undo = value(rng);
            let redo = match op {
                OpKind::Get => undo.clone(),
                OpKind::Put => Some(value(rng).unwrap_or(Value::Int(0))),
                OpKind::Delete => None,
                OpKind::Add => Some(Value::Int(rng.random_range(-5..20))),
            };
            LogEntry {
                seq: u32::try_from(seq).expect("a few entries"),
                key: KEYS.choose(rng).expect("non-empty").to_string(),
                op,
                undo,
                redo,
            }
        })
        .collect()
}

fn protocol(rng: &mut StdRng) -> Protocol {
    if rng.random_bool(0.5) {
        Protocol::TwoPhase
    } else {
        Protocol::ThreePhase
    }
}

fn participants(rng: &mut StdRng) -> Vec<NodeId> {
    let mut chosen: Vec<NodeId> = PARTICIPANTS
        .into_iter()
        .filter(|_| rng.random_bool(0.6))
        .collect();
    if chosen.is_empty() {
        chosen.push(PARTICIPANTS[0]);
    }
    chosen
}

fn prepared(
    rng: &mut StdRng,
    txn: TxnId,
    protocol: Protocol,
    len: Range<usize>,
) -> ParticipantRecord {
    ParticipantRecord::Prepared {
        txn,
        protocol,
        coordinator: COORDINATOR,
        entries: entries(rng, len),
        participants: participants(rng),
    }
}

fn aborted(txn: TxnId, protocol: Protocol, coordinator: NodeId, reason: &str) -> ParticipantRecord {
    ParticipantRecord::Aborted {
        txn,
        protocol,
        coordinator,
        reason: reason.to_string(),
    }
}

/// One txn's records in an order the core can produce: states only move forward, an
/// outcome may repeat (a duplicate Decide), and an abort may come with no prepare at all.
fn participant_script(rng: &mut StdRng, txn: TxnId) -> Vec<ParticipantRecord> {
    let mut script = Vec::new();
    match rng.random_range(0..5) {
        // 2PC YES vote, then commit, abort or still in doubt.
        0 => {
            script.push(prepared(rng, txn, Protocol::TwoPhase, 1..4));
            match rng.random_range(0..3) {
                0 => script.push(ParticipantRecord::Committed { txn }),
                1 => script.push(aborted(
                    txn,
                    Protocol::TwoPhase,
                    COORDINATOR,
                    "coordinator aborted",
                )),
                _ => {}
            }
        }
        // 3PC YES vote, maybe a (repeated) PreCommit, then commit, abort or in doubt.
        1 => {
            script.push(prepared(rng, txn, Protocol::ThreePhase, 1..4));
            for _ in 0..rng.random_range(0..3) {
                script.push(ParticipantRecord::PreCommitted { txn });
            }
            match rng.random_range(0..3) {
                0 => script.push(ParticipantRecord::Committed { txn }),
                1 => script.push(aborted(
                    txn,
                    Protocol::ThreePhase,
                    COORDINATOR,
                    "termination aborted",
                )),
                _ => {}
            }
        }
        // A NO vote.
        2 => {
            let protocol = protocol(rng);
            script.push(aborted(txn, protocol, COORDINATOR, "voted no: bound"));
        }
        // Asked by a peer before any Prepare: aborted with no coordinator seen.
        3 => script.push(aborted(
            txn,
            Protocol::ThreePhase,
            NodeId(0),
            "aborted before voting: asked by peer 2",
        )),
        // A ReadOnly vote.
        _ => {
            let protocol = protocol(rng);
            script.push(ParticipantRecord::ReadOnly {
                txn,
                protocol,
                coordinator: COORDINATOR,
                keys: vec![format!("k{}", rng.random_range(0..4))],
                hold_ms: 600_000,
            });
        }
    }
    // A duplicate of the last record: a repeated Prepare or Decide.
    if rng.random_bool(0.2) {
        let last = script.last().expect("a script has a record").clone();
        script.push(last);
    }
    script
}

/// One record of every kind for `txn`: whatever state it is in, the verdicts must agree.
fn participant_probes(rng: &mut StdRng, txn: TxnId) -> Vec<ParticipantRecord> {
    let (first, second, third) = (protocol(rng), protocol(rng), protocol(rng));
    vec![
        prepared(rng, txn, first, 0..3),
        ParticipantRecord::PreCommitted { txn },
        ParticipantRecord::Committed { txn },
        aborted(txn, second, COORDINATOR, "probe"),
        ParticipantRecord::ReadOnly {
            txn,
            protocol: third,
            coordinator: COORDINATOR,
            keys: vec!["k0".to_string(), "k1".to_string()],
            hold_ms: 600_000,
        },
    ]
}

/// A probe between batches: any record for a known txn, or for a new one.
fn participant_probe(rng: &mut StdRng, txns: &mut Vec<TxnId>) -> ParticipantRecord {
    let txn = probe_txn(rng, txns);
    let mut probes = participant_probes(rng, txn);
    let at = rng.random_range(0..probes.len());
    probes.swap_remove(at)
}

fn participant_seed(seed: u64, trace: &mut String) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut txns = Vec::new();
    let scripts = (0..rng.random_range(TXNS))
        .map(|_| {
            let txn = fresh_txn(&mut rng, &mut txns);
            participant_script(&mut rng, txn)
        })
        .collect();
    let mut probe_txns = txns.clone();
    let batches = batches(&mut rng, scripts, |rng| {
        participant_probe(rng, &mut probe_txns)
    });
    let txns = probe_txns;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("participant.db");
    block_on(async {
        let (mut store, mut writer) = open_participant(&path).await;
        let mut disk = ParticipantDisk::default();
        let mut lsn = 0;
        for (index, batch) in batches.iter().enumerate() {
            let fate = fate(&mut rng);
            let _ = writeln!(trace, "  batch {index} {fate:?}: {batch:?}");
            for record in batch {
                lsn += 1;
                disk.queue.push_back((ParticipantLsn(lsn), record.clone()));
            }
            let crash = match fate {
                Fate::Lost => true,
                Fate::Durable { crash_after } => {
                    let queued: Vec<ParticipantRecord> =
                        disk.queue.drain(..).map(|(_, record)| record).collect();
                    let accepted = same_verdict(
                        trace,
                        writer.write(batch).await,
                        disk.apply_batch(&queued, 0),
                    )?;
                    // A refused write is fatal for a real node: it stops and recovers.
                    crash_after || !accepted
                }
            };
            if crash {
                disk.crash();
                drop(writer);
                drop(store);
                (store, writer) = open_participant(&path).await;
                compare_participant(&store, &disk, &txns).await?;
            }
        }
        // Random probes rarely hit a given (state, record) pair, so end with every kind
        // of record against every txn, one record per write, in random order. A refused
        // write rolls back; the real node would stop, but the store stays usable, and the
        // comparison after the final reopen shows that nothing of a refused write stayed.
        for &txn in &txns {
            let mut probes = participant_probes(&mut rng, txn);
            probes.shuffle(&mut rng);
            for record in probes {
                let _ = writeln!(trace, "  probe: {record:?}");
                let batch = std::slice::from_ref(&record);
                same_verdict(trace, writer.write(batch).await, disk.apply_batch(batch, 0))?;
            }
        }
        disk.crash();
        drop(writer);
        drop(store);
        let (store, _writer) = open_participant(&path).await;
        compare_participant(&store, &disk, &txns).await
    })
}

async fn open_participant(path: &Path) -> (participant::store::Store, participant::store::Writer) {
    let store = participant::store::Store::open(path)
        .await
        .expect("open participant store");
    let writer = store.writer().await.expect("open participant writer");
    (store, writer)
}

async fn compare_participant(
    store: &participant::store::Store,
    disk: &ParticipantDisk,
    txns: &[TxnId],
) -> Result<(), String> {
    // Compared as sets: both return oldest first, but the real store's age is a
    // millisecond timestamp with ties broken by txn id (txns prepared in one batch come
    // back in id order), while the sim disk, which has no wall clock, keeps insertion
    // order. Recovery relocks and asks about every txn whatever the order, so only the
    // set is the contract.
    let by_txn = |mut txns: Vec<StoredTxn>| {
        txns.sort_by_key(|stored| stored.txn);
        txns
    };
    let real = store.in_doubt_txns().await.map_err(|e| e.to_string())?;
    same(
        "in_doubt_txns()",
        by_txn(real),
        by_txn(disk.in_doubt_txns()),
    )?;
    for &txn in txns {
        let real = store.txn(txn).await.map_err(|e| e.to_string())?;
        same(&format!("txn({txn})"), real, disk.txn(txn))?;
    }
    // Read holds: the same txns, keys and lengths (the deadlines come from two clocks;
    // every hold here is 10 minutes long, so none has run out on either).
    let holds = |holds: Vec<StoredReadHold>| -> Vec<(TxnId, Vec<String>, u64)> {
        holds
            .into_iter()
            .map(|hold| (hold.txn, hold.keys, hold.hold_ms))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let (real, _) = store.read_holds().await.map_err(|e| e.to_string())?;
    same("read_holds()", holds(real), holds(disk.read_holds(0)))?;
    let real = store.values(KEYS).await.map_err(|e| e.to_string())?;
    same("values()", real, disk.values(KEYS))
}

// ---------------------------------------------------------------------------------------
// Coordinator

/// One txn's decision-log records in an order the core can produce: a commit (3PC: the
/// precommit), then maybe its end (repeated after a restart) or, for 3PC, an adopted abort.
fn coordinator_script(rng: &mut StdRng, txn: TxnId) -> Vec<CoordinatorRecord> {
    let protocol = protocol(rng);
    let mut script = vec![CoordinatorRecord::Decided {
        txn,
        protocol,
        decision: Decision::Commit,
        participants: participants(rng),
    }];
    match (protocol, rng.random_range(0..3)) {
        (_, 0) => {}
        (Protocol::ThreePhase, 1) => script.push(CoordinatorRecord::AbortAdopted {
            txn,
            reason: "participant 2 aborted by termination".to_string(),
        }),
        _ => {
            script.push(CoordinatorRecord::Ended { txn });
            if rng.random_bool(0.2) {
                script.push(CoordinatorRecord::Ended { txn });
            }
        }
    }
    script
}

/// One record of every kind for `txn`.
fn coordinator_probes(rng: &mut StdRng, txn: TxnId) -> Vec<CoordinatorRecord> {
    let decided = |rng: &mut StdRng, decision| CoordinatorRecord::Decided {
        txn,
        protocol: protocol(rng),
        decision,
        participants: participants(rng),
    };
    vec![
        decided(rng, Decision::Commit),
        decided(rng, Decision::Abort),
        CoordinatorRecord::Ended { txn },
        CoordinatorRecord::AbortAdopted {
            txn,
            reason: "probe".to_string(),
        },
    ]
}

fn coordinator_probe(rng: &mut StdRng, txns: &mut Vec<TxnId>) -> CoordinatorRecord {
    let txn = probe_txn(rng, txns);
    let mut probes = coordinator_probes(rng, txn);
    let at = rng.random_range(0..probes.len());
    probes.swap_remove(at)
}

fn coordinator_seed(seed: u64, trace: &mut String) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut txns = Vec::new();
    let scripts = (0..rng.random_range(TXNS))
        .map(|_| {
            let txn = fresh_txn(&mut rng, &mut txns);
            coordinator_script(&mut rng, txn)
        })
        .collect();
    let mut probe_txns = txns.clone();
    let batches = batches(&mut rng, scripts, |rng| {
        coordinator_probe(rng, &mut probe_txns)
    });
    let txns = probe_txns;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("coordinator.db");
    block_on(async {
        let mut store = open_coordinator(&path).await;
        let mut disk = CoordinatorDisk::default();
        // What the simulator recovers from: the records of every batch made durable.
        let mut durable: Vec<CoordinatorRecord> = Vec::new();
        let mut lsn = 0;
        for (index, batch) in batches.iter().enumerate() {
            let fate = fate(&mut rng);
            let _ = writeln!(trace, "  batch {index} {fate:?}: {batch:?}");
            let mut with_lsns = Vec::with_capacity(batch.len());
            for record in batch {
                lsn += 1;
                with_lsns.push((CoordinatorLsn(lsn), record.clone()));
                disk.queue.push_back((CoordinatorLsn(lsn), record.clone()));
            }
            let crash = match fate {
                Fate::Lost => true,
                Fate::Durable { crash_after } => {
                    let queued: Vec<CoordinatorRecord> =
                        disk.queue.drain(..).map(|(_, record)| record).collect();
                    let accepted = same_verdict(
                        trace,
                        store.append(&with_lsns).await,
                        disk.apply_batch(&queued),
                    )?;
                    if accepted {
                        durable.extend(batch.iter().cloned());
                    }
                    crash_after || !accepted
                }
            };
            if crash {
                disk.crash();
                drop(store);
                store = open_coordinator(&path).await;
                compare_coordinator(&mut store, &path, &disk, &durable, &txns).await?;
            }
        }
        // As for the participant: every kind of record against every txn at the end.
        for &txn in &txns {
            let mut probes = coordinator_probes(&mut rng, txn);
            probes.shuffle(&mut rng);
            for record in probes {
                let _ = writeln!(trace, "  probe: {record:?}");
                lsn += 1;
                let accepted = same_verdict(
                    trace,
                    store.append(&[(CoordinatorLsn(lsn), record.clone())]).await,
                    disk.apply_batch(std::slice::from_ref(&record)),
                )?;
                if accepted {
                    durable.push(record);
                }
            }
        }
        disk.crash();
        drop(store);
        let mut store = open_coordinator(&path).await;
        compare_coordinator(&mut store, &path, &disk, &durable, &txns).await
    })
}

async fn open_coordinator(path: &Path) -> coordinator::store::Store {
    coordinator::store::Store::open(path)
        .await
        .expect("open decision log")
}

async fn compare_coordinator(
    store: &mut coordinator::store::Store,
    path: &Path,
    disk: &CoordinatorDisk,
    durable: &[CoordinatorRecord],
    txns: &[TxnId],
) -> Result<(), String> {
    let real = store.recover().await.map_err(|e| e.to_string())?;
    same(
        "recover() against unfinished(durable records)",
        &real,
        &unfinished(durable),
    )?;
    same("recover() against the sim disk", &real, &disk.recover())?;
    // `commit_logged` feeds the simulator's history checks; the store has no query for
    // it, so read the `decision` row the way an operator would.
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    for &txn in txns {
        let decision: Option<String> =
            sqlx::query_scalar("SELECT decision FROM decision WHERE txn_id = ?")
                .bind(txn.to_string())
                .fetch_optional(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
        same(
            &format!("commit_logged({txn})"),
            decision.as_deref() == Some("commit"),
            disk.commit_logged(txn),
        )?;
    }
    conn.close().await.map_err(|e| e.to_string())
}
