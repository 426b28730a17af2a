//! What one simulated run may do: cluster size, protocols, timings, faults and planted
//! bugs. Faults are fields of plain structs (tigerbeetle's `PacketSimulatorOptions` style)
//! so a test says exactly which failures it allows.

use std::ops::RangeInclusive;

/// Participants per cluster the simulator supports (node ids 1..=N).
pub const PARTICIPANTS_MIN: usize = 2;
pub const PARTICIPANTS_MAX: usize = 4;

/// Which commit protocol the workload asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProtocolMix {
    TwoPhase,
    ThreePhase,
    /// Each transaction picks one at random.
    Mixed,
}

impl ProtocolMix {
    pub fn parse(text: &str) -> Option<ProtocolMix> {
        match text {
            "2pc" => Some(ProtocolMix::TwoPhase),
            "3pc" => Some(ProtocolMix::ThreePhase),
            "mixed" => Some(ProtocolMix::Mixed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolMix::TwoPhase => "2pc",
            ProtocolMix::ThreePhase => "3pc",
            ProtocolMix::Mixed => "mixed",
        }
    }
}

/// Message delivery and failure detection.
#[derive(Clone, Debug)]
pub struct NetworkOptions {
    /// One-way delay of a message on a healthy link (FIFO per directed link).
    pub delay_ms: RangeInclusive<u64>,
    pub heartbeat_interval_ms: u64,
    /// A silent peer is declared down after this many heartbeat intervals (wire's default).
    pub dead_after_heartbeats: u64,
    /// The dialling side's wait before it reconnects a closed channel.
    pub reconnect_ms: RangeInclusive<u64>,
    /// Handshake time of a new connection, per side.
    pub handshake_ms: RangeInclusive<u64>,
    /// How soon both sides see a reset connection go down (an RST, not a timeout).
    pub reset_notice_ms: RangeInclusive<u64>,
    /// The chance (percent) that a message lags by a further `lag_ms` (and, FIFO, holds up
    /// what follows it on its link): one slow channel among fast ones, as a read's
    /// Prepare behind a backlog. 0 draws nothing, so runs without it are unchanged.
    pub lag_pct: u32,
    pub lag_ms: RangeInclusive<u64>,
}

impl NetworkOptions {
    /// The failure detector's bound: a crashed or cut-off peer is reported down within it.
    pub fn detect_ms_max(&self) -> u64 {
        self.heartbeat_interval_ms * self.dead_after_heartbeats
    }
}

impl Default for NetworkOptions {
    fn default() -> Self {
        NetworkOptions {
            delay_ms: 1..=40,
            heartbeat_interval_ms: 100,
            dead_after_heartbeats: 10,
            reconnect_ms: 20..=500,
            handshake_ms: 1..=5,
            reset_notice_ms: 0..=5,
            lag_pct: 0,
            lag_ms: 0..=0,
        }
    }
}

/// Which failures the safety phase injects. All of them stop when healing starts.
#[derive(Clone, Debug)]
pub struct FaultOptions {
    /// Time between two injected faults.
    pub interval_ms: RangeInclusive<u64>,
    /// How long a crashed node stays down, or a partition lasts.
    pub outage_ms: RangeInclusive<u64>,
    pub crashes: bool,
    /// Percent chance that a participant's `Persist` makes it crash before (or just after)
    /// the record is durable: aims crashes at the durable-before-visible windows.
    pub participant_crash_on_persist_pct: u32,
    /// The same for the coordinator's log writes (its commit decisions).
    pub coordinator_crash_on_persist_pct: u32,
    /// Percent chance that the coordinator crashes within one network delay of sending a
    /// `PreCommit`: aims at 3PC's window where some participants are precommitted and
    /// others still waiting.
    pub coordinator_crash_on_precommit_pct: u32,
    /// Percent chance that a termination leader crashes within one network delay of
    /// sending its decision (its record is durable, some peers may not have heard).
    pub leader_crash_on_decide_pct: u32,
    /// At most this many crashes in a run (`None`: no limit).
    pub crashes_max: Option<u32>,
    /// Percent chance that one group commit is slow (a busy disk): it takes
    /// `slow_write_ms` instead of `Options::fsync_ms`. Inside 3PC's model: a write has no
    /// bound the protocol may rely on.
    pub slow_write_pct: u32,
    pub slow_write_ms: RangeInclusive<u64>,
    /// Symmetric partitions of one link.
    pub partitions: bool,
    /// One direction of a link cut (the other side hears nothing back).
    pub one_way_partitions: bool,
    /// Connection resets: what is in flight on both directions is lost.
    pub resets: bool,
    /// Forward clock jumps (a paused VM): 0 turns them off.
    pub clock_jump_ms_max: u64,
    /// Clock rate drift, in parts per million either way.
    pub clock_drift_ppm_max: u64,
}

impl FaultOptions {
    /// Everything on: the default safety phase.
    pub fn all() -> Self {
        FaultOptions {
            interval_ms: 100..=1_200,
            outage_ms: 50..=3_000,
            crashes: true,
            participant_crash_on_persist_pct: 2,
            coordinator_crash_on_persist_pct: 2,
            coordinator_crash_on_precommit_pct: 2,
            leader_crash_on_decide_pct: 2,
            crashes_max: None,
            slow_write_pct: 1,
            slow_write_ms: 200..=3_000,
            partitions: true,
            one_way_partitions: true,
            resets: true,
            clock_jump_ms_max: 300,
            clock_drift_ppm_max: 20_000,
        }
    }

    /// Crashes only, with a failure detector that suspects only crashed nodes and
    /// well-behaved clocks: the model under which 3PC is safe.
    pub fn crash_only() -> Self {
        FaultOptions {
            partitions: false,
            one_way_partitions: false,
            resets: false,
            clock_jump_ms_max: 0,
            clock_drift_ppm_max: 0,
            slow_write_pct: 0,
            ..FaultOptions::all()
        }
    }

    /// Crash-only, with slow disks: one group commit in ten takes up to 3 s (the
    /// coordinator's precommit write among them).
    pub fn slow_disk() -> Self {
        FaultOptions {
            slow_write_pct: 10,
            slow_write_ms: 200..=3_000,
            ..FaultOptions::crash_only()
        }
    }

    /// Crash-only, with clock drift and forward jumps kept inside the bounds 3PC's
    /// timing relies on (`Options::clock_within_bounds` checks them).
    pub fn clock() -> Self {
        FaultOptions {
            clock_jump_ms_max: 50,
            clock_drift_ppm_max: 10_000,
            ..FaultOptions::crash_only()
        }
    }

    /// Crash-only, with crashes aimed at the windows that matter most: a termination
    /// leader right after its decision is durable, the coordinator around its log writes
    /// and PreCommits; often two or three crashes in one transaction.
    pub fn aimed_crashes() -> Self {
        FaultOptions {
            participant_crash_on_persist_pct: 5,
            coordinator_crash_on_persist_pct: 10,
            coordinator_crash_on_precommit_pct: 10,
            leader_crash_on_decide_pct: 40,
            ..FaultOptions::crash_only()
        }
    }

    /// Exactly one crash, of the coordinator, just after it sends a PreCommit (3PC's
    /// window between precommitted and waiting participants); nothing else fails.
    pub fn single_coordinator_crash() -> Self {
        FaultOptions {
            coordinator_crash_on_precommit_pct: 30,
            crashes_max: Some(1),
            ..FaultOptions::none()
        }
    }

    /// Everything of `all` but crashes: partitions, resets, clock jumps and drift, slow
    /// writes.
    pub fn network_only() -> Self {
        FaultOptions {
            crashes: false,
            participant_crash_on_persist_pct: 0,
            coordinator_crash_on_persist_pct: 0,
            coordinator_crash_on_precommit_pct: 0,
            leader_crash_on_decide_pct: 0,
            ..FaultOptions::all()
        }
    }

    pub fn none() -> Self {
        FaultOptions {
            crashes: false,
            participant_crash_on_persist_pct: 0,
            coordinator_crash_on_persist_pct: 0,
            coordinator_crash_on_precommit_pct: 0,
            leader_crash_on_decide_pct: 0,
            slow_write_pct: 0,
            partitions: false,
            one_way_partitions: false,
            resets: false,
            clock_jump_ms_max: 0,
            clock_drift_ppm_max: 0,
            ..FaultOptions::all()
        }
    }

    /// Whether any fault is injected at random times (the others are aimed at outputs).
    pub fn random_faults(&self) -> bool {
        self.crashes
            || self.partitions
            || self.one_way_partitions
            || self.resets
            || self.clock_jump_ms_max > 0
    }
}

/// Deliberately wrong variants, to prove the checkers can fail.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Planted {
    #[default]
    None,
    /// The coordinator releases `Decide{Commit}` as soon as it asks for the decision
    /// record, before the record is durable.
    CommitBeforeDurable,
    /// A participant's disk loses its in-doubt transactions on restart.
    ForgetPreparedOnRestart,
    /// 3PC participants apply the timeout rules alone, without the termination protocol.
    TimeoutsWithoutTermination,
    /// A read-only participant releases its shared locks at its vote (the old behaviour),
    /// not when every vote is in: a read across participants can see half a transfer.
    ReleaseReadLocksAtVote,
    /// A restarted participant takes none of its stored read holds again (the old
    /// behaviour: they were in memory only), so a writer can slip in before the last vote.
    ForgetReadHoldsOnRestart,
}

/// Most coordinators a run may have (their ids stay below the participants' never).
pub const COORDINATORS_MAX: usize = 3;

/// One run's settings. `Options::default()` is the CI configuration for 2PC.
#[derive(Clone, Debug)]
pub struct Options {
    /// `None`: each seed picks 2..=4.
    pub participants: Option<usize>,
    /// Coordinators, `1..=COORDINATORS_MAX`, ids `COORDINATOR`, `COORDINATOR + 1`, ...:
    /// each has its own channel to every participant and its own decision log, and the
    /// client spreads its transactions over them. With one, every participant sees the
    /// Prepares in one channel's order, which hides some isolation bugs.
    pub coordinators: usize,
    pub protocol: ProtocolMix,
    pub network: NetworkOptions,
    pub faults: FaultOptions,
    /// Time from a `Persist` to its record being durable (one group commit).
    pub fsync_ms: RangeInclusive<u64>,
    /// Length of the safety phase (faults on, workload on).
    pub safety_ms: u64,
    /// Workload continues this long into the healing phase, without faults.
    pub healing_workload_ms: u64,
    /// The healing phase ends when nothing is left to do, or after this long.
    pub healing_ms_max: u64,
    /// Time between two client submissions.
    pub submit_interval_ms: RangeInclusive<u64>,
    /// A transaction's vote timeout.
    pub txn_timeout_ms: RangeInclusive<u64>,
    pub planted: Planted,
    /// Keep the one-line-per-event trace (replays turn it on).
    pub trace: bool,
    /// Retention window: txn ids then carry their submit time (as UUIDv7 ids do), and
    /// after every group commit each participant prunes the decided txns below its
    /// horizon (its clock minus this), its core told first, as the real shell does.
    /// `None`: nothing is pruned and ids are plain counters.
    pub retain_ms: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            participants: None,
            coordinators: 1,
            protocol: ProtocolMix::TwoPhase,
            network: NetworkOptions::default(),
            faults: FaultOptions::all(),
            fsync_ms: 1..=25,
            safety_ms: 6_000,
            healing_workload_ms: 1_000,
            healing_ms_max: 60_000,
            submit_interval_ms: 20..=250,
            txn_timeout_ms: 500..=2_500,
            planted: Planted::None,
            trace: false,
            retain_ms: None,
        }
    }
}

impl Options {
    /// How far a clock jump may go before 3PC's timing assumption breaks: a voter's
    /// waiting timeout must not fire before a PreCommit sent at the deadline arrives, so a
    /// jump plus the worst drift over the longest timeout plus the longest network delay
    /// must stay within the coordinator's precommit margin.
    pub fn clock_jump_bound_ms(&self) -> u64 {
        let margin = coordinator::core::PRECOMMIT_MARGIN_MS_DEFAULT;
        let drift_ms = 2 * self.faults.clock_drift_ppm_max * self.txn_timeout_ms.end() / 1_000_000;
        margin.saturating_sub(drift_ms + self.network.delay_ms.end())
    }

    /// How long after its YES vote a 3PC participant that does not crash decides, while
    /// crashes go on around it and nothing breaches the model: its waiting timeout (or a
    /// PreCommit at the latest then, a write, and the precommitted timeout), then one
    /// termination round per participant that may lead and crash (each: the detector's
    /// bound, a round of states, a round of PreCommits, a write), then its own write.
    /// The README states it for the default settings.
    pub fn three_phase_decision_bound_ms(&self) -> u64 {
        let participant = participant::core::Config::default();
        let write_ms = (*self.fsync_ms.end()).max(if self.faults.slow_write_pct > 0 {
            *self.faults.slow_write_ms.end()
        } else {
            0
        });
        let timeout_ms = *self.txn_timeout_ms.end();
        let leaders = PARTICIPANTS_MAX as u64;
        let round_ms = self.network.detect_ms_max()
            + 2 * participant.termination_round_ms
            + write_ms
            + self.network.delay_ms.end();
        timeout_ms + write_ms + participant.precommitted_timeout_ms + leaders * round_ms + write_ms
    }

    /// Whether the clock faults stay inside 3PC's bounds (a split is then never excused).
    pub fn clock_within_bounds(&self) -> bool {
        self.faults.clock_jump_ms_max <= self.clock_jump_bound_ms()
    }

    /// Checks the relationships the simulator relies on.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(n) = self.participants
            && !(PARTICIPANTS_MIN..=PARTICIPANTS_MAX).contains(&n)
        {
            return Err(format!(
                "participants must be {PARTICIPANTS_MIN}..={PARTICIPANTS_MAX}, got {n}"
            ));
        }
        if !(1..=COORDINATORS_MAX).contains(&self.coordinators) {
            return Err(format!(
                "coordinators must be 1..={COORDINATORS_MAX}, got {}",
                self.coordinators
            ));
        }
        let ranges = [
            ("network delay", &self.network.delay_ms),
            ("reconnect", &self.network.reconnect_ms),
            ("handshake", &self.network.handshake_ms),
            ("reset notice", &self.network.reset_notice_ms),
            ("lag", &self.network.lag_ms),
            ("fault interval", &self.faults.interval_ms),
            ("outage", &self.faults.outage_ms),
            ("fsync", &self.fsync_ms),
            ("slow write", &self.faults.slow_write_ms),
            ("submit interval", &self.submit_interval_ms),
            ("txn timeout", &self.txn_timeout_ms),
        ];
        for (name, range) in ranges {
            if range.is_empty() {
                return Err(format!("{name} range {range:?} is empty"));
            }
        }
        if *self.submit_interval_ms.start() == 0 || *self.faults.interval_ms.start() == 0 {
            return Err("submit and fault intervals must be at least 1 ms".to_string());
        }
        if self.network.heartbeat_interval_ms == 0 || self.network.dead_after_heartbeats == 0 {
            return Err("the failure detector needs a positive heartbeat and count".to_string());
        }
        if self.network.lag_pct > 100 {
            return Err("the lag percentage must be at most 100".to_string());
        }
        if self.faults.participant_crash_on_persist_pct > 100
            || self.faults.coordinator_crash_on_persist_pct > 100
            || self.faults.coordinator_crash_on_precommit_pct > 100
            || self.faults.leader_crash_on_decide_pct > 100
            || self.faults.slow_write_pct > 100
        {
            return Err("crash percentages must be at most 100".to_string());
        }
        if self.faults.clock_drift_ppm_max >= 1_000_000 {
            return Err("clock drift must be below 1_000_000 ppm".to_string());
        }
        Ok(())
    }
}
