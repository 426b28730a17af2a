//! The scenario file (`tests/scenarios/*.toml`): its serde types, parsed with
//! `deny_unknown_fields` so a misspelt field is an error naming its line, then checked
//! for names (nodes, links, crash points) the runner would otherwise trip over mid-run.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use wire::crash::{self, Binary};

/// Participants a scenario may have (every one is a process, with proxies on its links).
pub const PARTICIPANTS_MAX: u32 = 7;
/// Steps in one scenario.
pub const STEPS_MAX: usize = 200;
/// Upper bound of any `within_ms`, `sleep_ms`, `duration_ms` or `settle_ms`.
pub const WAIT_MS_MAX: u64 = 120_000;
/// Transactions a workload may run in all.
pub const WORKLOAD_COUNT_MAX: u32 = 10_000;
/// Concurrent workload clients.
pub const CLIENTS_MAX: u32 = 16;

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// One line saying what the scenario shows (printed first).
    pub description: String,
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    #[serde(default = "default_participants")]
    pub participants: u32,
    /// Crash points each node starts with: `{ p2 = ["participant.after_prepare_logged"] }`.
    #[serde(default)]
    pub crash_at: BTreeMap<String, Vec<String>>,
    /// The vote timeout of every transaction (3PC: also the participants' waiting timeout).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub accounts: Accounts,
    pub workload: Option<Workload>,
    #[serde(default, rename = "step")]
    pub steps: Vec<Step>,
    #[serde(default)]
    pub checks: Checks,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    #[serde(rename = "2pc")]
    TwoPhase,
    #[serde(rename = "3pc")]
    ThreePhase,
}

impl Protocol {
    pub fn flag(self) -> &'static str {
        match self {
            Protocol::TwoPhase => "2pc",
            Protocol::ThreePhase => "3pc",
        }
    }
}

/// The bank: `per_participant` accounts (`acct<p>_<i>`) on every participant, each seeded
/// with `balance` before the timeline starts (0 accounts: nothing is seeded).
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Accounts {
    #[serde(default = "default_per_participant")]
    pub per_participant: u32,
    #[serde(default = "default_balance")]
    pub balance: i64,
}

impl Default for Accounts {
    fn default() -> Self {
        Accounts {
            per_participant: default_per_participant(),
            balance: default_balance(),
        }
    }
}

/// Transactions run in the background from the `start_workload` step (or from the first
/// step if there is none) until `count` are done or `duration_ms` is over.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    #[serde(default)]
    pub kind: WorkloadKind,
    pub count: Option<u32>,
    pub duration_ms: Option<u64>,
    #[serde(default = "default_clients")]
    pub clients: u32,
    /// Each transfer moves 1..=amount_max.
    #[serde(default = "default_amount_max")]
    pub amount_max: i64,
}

#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadKind {
    /// Transfers between accounts on two different participants.
    #[default]
    Transfers,
    /// Transfers, reads of every participant, and single-participant deposits-withdrawals
    /// pairs (still conserving the total).
    Mixed,
}

/// A link between two nodes ("coordinator", "p1", ...) and the way(s) a fault applies:
/// `forward` is bytes from `link[0]` to `link[1]`.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    pub link: [String; 2],
    #[serde(default)]
    pub direction: Direction,
    /// `delay` only: how long each chunk of bytes is held.
    pub ms: Option<u64>,
}

#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Both,
    Forward,
    Backward,
}

/// One step of the timeline; the steps run one after the other.
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// SIGKILL.
    Kill(String),
    /// SIGSTOP (frozen: its sockets stay open, it answers nothing).
    Stop(String),
    /// SIGCONT.
    Cont(String),
    /// (Re)starts a node, killing it first if it runs, with these crash points armed.
    Restart {
        node: String,
        #[serde(default)]
        crash_at: Vec<String>,
    },
    /// Holds the link's bytes (a partition: nothing delivered until `heal`).
    Cut(LinkSpec),
    /// Lifts every fault on the link (cut, drop, delay) in the direction(s).
    Heal(LinkSpec),
    /// Holds every chunk of bytes `ms` before delivering it (order kept).
    Delay(LinkSpec),
    /// Discards the bytes (the connections that lost any are closed on `heal`, as a TCP
    /// stream cannot resume after a gap).
    Drop(LinkSpec),
    /// Closes every open connection of the link at once.
    Reset(LinkSpec),
    /// Runs one transaction and records its outcome; `name` lets SQL use `{txn:NAME}`.
    Submit {
        ops: Vec<String>,
        name: Option<String>,
        protocol: Option<Protocol>,
        /// "committed", "aborted" or "unknown" (the client could not learn the outcome).
        expect: Option<Expect>,
        /// Text the client must print (e.g. the abort's reason).
        expect_output: Option<String>,
        /// Run it in the background (the next step starts at once); no `expect` then.
        #[serde(default)]
        background: bool,
    },
    StartWorkload {},
    Sleep {
        ms: u64,
    },
    /// Waits until the node exits by itself (an armed crash point).
    WaitExit {
        node: String,
        within_ms: u64,
    },
    /// Waits until a read-only transaction over every participant commits.
    WaitConnected {
        within_ms: u64,
    },
    /// Waits until `sql` on the node returns `rows`.
    WaitSql {
        node: String,
        sql: String,
        rows: Vec<Vec<String>>,
        within_ms: u64,
    },
    /// Waits until the workload has run all its transactions (or its duration).
    WaitWorkload {
        within_ms: u64,
    },
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    Committed,
    Aborted,
    Unknown,
}

/// What is checked after the timeline, once the cluster has settled (every coordinator
/// restarted, nothing in doubt) or `settle_ms` is over.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Checks {
    /// No transaction committed on one participant and aborted on another.
    #[serde(default = "yes")]
    pub atomic: bool,
    /// The sum of every account equals what was seeded.
    #[serde(default = "yes")]
    pub conserved: bool,
    /// Every transaction a client was told committed is committed on its participants.
    #[serde(default = "yes")]
    pub acknowledged_present: bool,
    #[serde(default = "yes")]
    pub nothing_in_doubt: bool,
    /// No participant holds a lock (its `status` report).
    #[serde(default = "yes")]
    pub no_locks: bool,
    /// The scenario shows 3PC's split under a partition: pass only if some transaction
    /// committed on one participant and aborted on another (`atomic` is then not checked).
    #[serde(default)]
    pub expect_split: bool,
    /// Why the split is expected (printed with it).
    pub split_reason: Option<String>,
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    #[serde(default)]
    pub sql: Vec<SqlCheck>,
}

impl Default for Checks {
    fn default() -> Self {
        toml::from_str("").expect("every check field has a default")
    }
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct SqlCheck {
    pub node: String,
    pub sql: String,
    pub rows: Vec<Vec<String>>,
}

fn yes() -> bool {
    true
}
fn default_protocol() -> Protocol {
    Protocol::TwoPhase
}
fn default_participants() -> u32 {
    3
}
fn default_timeout_ms() -> u64 {
    crate::SUBMIT_TIMEOUT_MS
}
fn default_per_participant() -> u32 {
    2
}
fn default_balance() -> i64 {
    100
}
fn default_clients() -> u32 {
    1
}
fn default_amount_max() -> i64 {
    10
}
fn default_settle_ms() -> u64 {
    30_000
}

/// A node of a scenario by its name: "coordinator" or "p1".."pN".
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum NodeName {
    Coordinator,
    Participant(u32),
}

impl NodeName {
    pub fn parse(name: &str, participants: u32) -> Result<NodeName, String> {
        if name == "coordinator" {
            return Ok(NodeName::Coordinator);
        }
        match name.strip_prefix('p').and_then(|id| id.parse::<u32>().ok()) {
            Some(id) if (1..=participants).contains(&id) => Ok(NodeName::Participant(id)),
            _ => Err(format!(
                "unknown node '{name}' (the nodes are coordinator and p1..p{participants})"
            )),
        }
    }

    pub fn binary(self) -> Binary {
        match self {
            NodeName::Coordinator => Binary::Coordinator,
            NodeName::Participant(_) => Binary::Participant,
        }
    }
}

impl std::fmt::Display for NodeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeName::Coordinator => write!(f, "coordinator"),
            NodeName::Participant(id) => write!(f, "p{id}"),
        }
    }
}

/// Reads and checks a scenario file; the error names the file and the line or field.
pub fn load(path: &Path) -> Result<Scenario, String> {
    let text =
        std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?;
    parse(&text).map_err(|error| format!("{}: {error}", path.display()))
}

/// Parses and checks a scenario's text.
pub fn parse(text: &str) -> Result<Scenario, String> {
    let scenario: Scenario = toml::from_str(text).map_err(|error| error.to_string())?;
    validate(&scenario)?;
    Ok(scenario)
}

fn validate(scenario: &Scenario) -> Result<(), String> {
    let n = scenario.participants;
    if !(1..=PARTICIPANTS_MAX).contains(&n) {
        return Err(format!(
            "participants = {n}: must be 1..={PARTICIPANTS_MAX}"
        ));
    }
    for (node, points) in &scenario.crash_at {
        check_points(&format!("crash_at.{node}"), node, points, n)?;
    }
    if let Some(workload) = &scenario.workload {
        if workload.count.is_none() == workload.duration_ms.is_none() {
            return Err("workload: give exactly one of count and duration_ms".to_string());
        }
        if workload
            .count
            .is_some_and(|count| count > WORKLOAD_COUNT_MAX)
        {
            return Err(format!("workload.count: at most {WORKLOAD_COUNT_MAX}"));
        }
        check_ms("workload.duration_ms", workload.duration_ms.unwrap_or(0))?;
        if !(1..=CLIENTS_MAX).contains(&workload.clients) {
            return Err(format!("workload.clients: must be 1..={CLIENTS_MAX}"));
        }
        if workload.amount_max < 1 {
            return Err("workload.amount_max: must be at least 1".to_string());
        }
        if n < 2 {
            return Err("workload: transfers need at least 2 participants".to_string());
        }
        if scenario.accounts.per_participant == 0 {
            return Err("workload: needs accounts.per_participant >= 1".to_string());
        }
    }
    if scenario.steps.len() > STEPS_MAX {
        return Err(format!("at most {STEPS_MAX} steps"));
    }
    for (i, step) in scenario.steps.iter().enumerate() {
        let at = format!("step {} ({})", i + 1, step_kind(step));
        validate_step(step, n, scenario.workload.is_some())
            .map_err(|error| format!("{at}: {error}"))?;
    }
    check_ms("checks.settle_ms", scenario.checks.settle_ms)?;
    for (i, check) in scenario.checks.sql.iter().enumerate() {
        NodeName::parse(&check.node, n)
            .map_err(|error| format!("checks.sql {}: {error}", i + 1))?;
    }
    Ok(())
}

fn validate_step(step: &Step, n: u32, has_workload: bool) -> Result<(), String> {
    match step {
        Step::Kill(node) | Step::Stop(node) | Step::Cont(node) => {
            NodeName::parse(node, n).map(drop)
        }
        Step::Restart { node, crash_at } => check_points("crash_at", node, crash_at, n),
        Step::Cut(link) | Step::Heal(link) | Step::Drop(link) | Step::Reset(link) => {
            check_link(link, n)
        }
        Step::Delay(link) => {
            check_link(link, n)?;
            check_ms("ms", link.ms.ok_or("delay needs ms")?)
        }
        Step::Submit { ops, .. } if ops.is_empty() => Err("ops: at least one".to_string()),
        Step::Submit {
            background: true,
            expect,
            expect_output,
            ..
        } if expect.is_some() || expect_output.is_some() => {
            Err("a background submit cannot have expect or expect_output".to_string())
        }
        Step::Submit { .. } => Ok(()),
        Step::StartWorkload {} | Step::WaitWorkload { .. } if !has_workload => {
            Err("there is no [workload]".to_string())
        }
        Step::StartWorkload {} => Ok(()),
        Step::Sleep { ms } => check_ms("ms", *ms),
        Step::WaitExit { node, within_ms }
        | Step::WaitSql {
            node, within_ms, ..
        } => {
            NodeName::parse(node, n)?;
            check_ms("within_ms", *within_ms)
        }
        Step::WaitConnected { within_ms } | Step::WaitWorkload { within_ms } => {
            check_ms("within_ms", *within_ms)
        }
    }
}

/// The step's name as the file spells it.
pub fn step_kind(step: &Step) -> &'static str {
    match step {
        Step::Kill(_) => "kill",
        Step::Stop(_) => "stop",
        Step::Cont(_) => "cont",
        Step::Restart { .. } => "restart",
        Step::Cut(_) => "cut",
        Step::Heal(_) => "heal",
        Step::Delay(_) => "delay",
        Step::Drop(_) => "drop",
        Step::Reset(_) => "reset",
        Step::Submit { .. } => "submit",
        Step::StartWorkload {} => "start_workload",
        Step::Sleep { .. } => "sleep",
        Step::WaitExit { .. } => "wait_exit",
        Step::WaitConnected { .. } => "wait_connected",
        Step::WaitSql { .. } => "wait_sql",
        Step::WaitWorkload { .. } => "wait_workload",
    }
}

fn check_points(field: &str, node: &str, points: &[String], n: u32) -> Result<(), String> {
    let binary = NodeName::parse(node, n)?.binary();
    for point in points {
        crash::Spec::parse(point, binary).map_err(|error| format!("{field}: {error}"))?;
    }
    Ok(())
}

fn check_link(link: &LinkSpec, n: u32) -> Result<(), String> {
    let a = NodeName::parse(&link.link[0], n)?;
    let b = NodeName::parse(&link.link[1], n)?;
    if a == b {
        return Err(format!("link: {a} to itself"));
    }
    Ok(())
}

fn check_ms(field: &str, ms: u64) -> Result<(), String> {
    if ms > WAIT_MS_MAX {
        return Err(format!("{field} = {ms}: at most {WAIT_MS_MAX}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_field_is_refused_with_its_line_and_name() {
        let text = "description = \"x\"\n\n[[step]]\nkill = \"p1\"\n\n[checks]\natomik = true\n";
        let error = parse(text).unwrap_err();
        assert!(error.contains("line 7"), "{error}");
        assert!(error.contains("atomik"), "{error}");
    }

    #[test]
    fn an_unknown_step_names_the_known_ones() {
        let error = parse("description = \"x\"\n[[step]]\nkil = \"p1\"\n").unwrap_err();
        assert!(error.contains("line 3"), "{error}");
        assert!(
            error.contains("kil") && error.contains("restart"),
            "{error}"
        );
    }

    #[test]
    fn unknown_nodes_and_crash_points_are_refused_with_the_step() {
        let error = parse("description = \"x\"\n[[step]]\nkill = \"p9\"\n").unwrap_err();
        assert!(
            error.contains("step 1 (kill)") && error.contains("p9"),
            "{error}"
        );
        let error = parse(
            "description = \"x\"\n[[step]]\nrestart = { node = \"p1\", crash_at = [\"coordinator.after_commit_logged\"] }\n",
        )
        .unwrap_err();
        assert!(error.contains("unknown crash point"), "{error}");
    }

    #[test]
    fn a_workload_needs_exactly_one_bound() {
        let text = "description = \"x\"\n[workload]\ncount = 3\nduration_ms = 100\n";
        assert!(
            parse(text)
                .unwrap_err()
                .contains("exactly one of count and duration_ms")
        );
    }
}
