//! The bank workload the demo and the benchmark run: accounts on every participant, seeded
//! with one balance, transfers between accounts on two distinct participants (a debit that
//! may not go below 0, and the matching credit), and the total read back, which atomic
//! commit keeps unchanged.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use coordinator::shell::commands::{self, CallError};
use rand::Rng;
use wire::runtime;
use wire::{Client, NodeId, Op, Protocol, TxnId, TxnResult, TxnSpec, Value};

/// Every account starts with this balance; transfers move 1..=it, so some overdraw.
pub const INITIAL_BALANCE: i64 = 100;
/// The vote timeout every transaction carries (3PC: also the participants' waiting timeout).
pub const TXN_TIMEOUT_MS: u64 = 5_000;
pub const PARTICIPANTS_MAX: u32 = 16;
pub const ACCOUNTS_MAX: u32 = 100_000;
/// Ops per seeding or reading transaction (below the coordinator's per-txn limit).
const OPS_PER_TXN: usize = 500;
/// How long the coordinator may take to see every participant up.
const CONNECT_ALL_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Attempts to read the balances: a read votes NO while a finishing commit holds a lock.
const READ_ATTEMPTS_MAX: u32 = 50;
const READ_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Draws of an account before giving up on finding one not yet in the transaction.
const DISTINCT_DRAWS_MAX: u32 = 10_000;

#[derive(thiserror::Error, Debug)]
pub enum WorkloadError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("{0}")]
    Failed(String),
}

/// The accounts: `accounts` on each of participants 1..=`participants`.
#[derive(Clone, Debug)]
pub struct Bank {
    pub participants: u32,
    /// Accounts per participant.
    pub accounts: u32,
    pub protocol: Protocol,
}

/// The workload's outcome, as the client saw it.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub committed: u64,
    /// Abort reasons with their numbers replaced by `N`, and how often each occurred.
    pub aborted: BTreeMap<String, u64>,
    pub rejected: BTreeMap<String, u64>,
    /// Transfers whose outcome the client never learned.
    pub unknown: u64,
}

impl Tally {
    pub fn count(&mut self, outcome: &Result<TxnResult, CallError>) -> Result<(), CallError> {
        match outcome {
            Ok(TxnResult::Committed { .. }) => self.committed += 1,
            Ok(TxnResult::Aborted { reason }) => {
                *self.aborted.entry(numbers_as_n(reason)).or_insert(0) += 1;
            }
            Ok(TxnResult::Rejected { reason }) => {
                *self.rejected.entry(numbers_as_n(reason)).or_insert(0) += 1;
            }
            Err(CallError::OutcomeUnknown { .. }) => self.unknown += 1,
            Err(CallError::Unreachable { addr, reason }) => {
                return Err(CallError::Unreachable {
                    addr: *addr,
                    reason: reason.clone(),
                });
            }
            Err(CallError::Rejected { addr, reason }) => {
                return Err(CallError::Rejected {
                    addr: *addr,
                    reason: reason.clone(),
                });
            }
            Err(CallError::Refused { reason }) => {
                return Err(CallError::Refused {
                    reason: reason.clone(),
                });
            }
        }
        Ok(())
    }

    pub fn aborted_total(&self) -> u64 {
        self.aborted.values().sum()
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    pub fn done(&self) -> u64 {
        self.committed + self.aborted_total() + self.rejected_total() + self.unknown
    }
}

/// How accounts are drawn: uniformly, or Zipf-skewed (account `i` with weight
/// `1 / (i + 1)^skew`, so a few accounts are hot and transfers conflict on them).
#[derive(Clone, Debug)]
pub enum Accounts {
    Uniform(u32),
    /// The cumulative weights, normalised to end at 1.
    Skewed(Vec<f64>),
}

impl Accounts {
    pub fn new(accounts: u32, skew: f64) -> Accounts {
        if skew <= 0.0 {
            return Accounts::Uniform(accounts);
        }
        let mut cdf: Vec<f64> = (0..accounts)
            .scan(0.0, |sum, index| {
                *sum += 1.0 / f64::from(index + 1).powf(skew);
                Some(*sum)
            })
            .collect();
        let total = cdf.last().copied().unwrap_or(1.0);
        for weight in &mut cdf {
            *weight /= total;
        }
        Accounts::Skewed(cdf)
    }

    pub fn draw(&self, rng: &mut impl Rng) -> u32 {
        match self {
            Accounts::Uniform(accounts) => rng.random_range(0..*accounts),
            Accounts::Skewed(cdf) => {
                let at: f64 = rng.random();
                let index = cdf.partition_point(|&weight| weight < at);
                u32::try_from(index.min(cdf.len() - 1)).unwrap_or(0)
            }
        }
    }
}

impl Bank {
    pub fn expected_total(&self) -> i64 {
        i64::from(self.participants) * i64::from(self.accounts) * INITIAL_BALANCE
    }

    pub fn spec(&self, parts: Vec<(NodeId, Vec<Op>)>) -> TxnSpec {
        TxnSpec {
            protocol: self.protocol,
            timeout_ms: TXN_TIMEOUT_MS,
            parts,
        }
    }

    /// A random transfer between accounts on two distinct participants: `ops` debits of
    /// distinct accounts on one, each matched by a credit on the other.
    pub fn transfer(&self, accounts: &Accounts, ops: u32, rng: &mut impl Rng) -> TxnSpec {
        let from = rng.random_range(1..=self.participants);
        let to = loop {
            let to = rng.random_range(1..=self.participants);
            if to != from {
                break to;
            }
        };
        let mut debits = Vec::new();
        let mut credits = Vec::new();
        for _ in 0..ops {
            let amount = rng.random_range(1..=INITIAL_BALANCE);
            debits.push(Op::Add {
                key: account(distinct(accounts, &debits, rng)),
                delta: -amount,
                min: Some(0),
                max: None,
            });
            credits.push(Op::Add {
                key: account(distinct(accounts, &credits, rng)),
                delta: amount,
                min: None,
                max: None,
            });
        }
        self.spec(vec![(NodeId(from), debits), (NodeId(to), credits)])
    }

    /// Puts the initial balance into every account.
    pub async fn seed(&self, client: &Client) -> Result<(), WorkloadError> {
        for participant in 1..=self.participants {
            let puts: Vec<Op> = (0..self.accounts)
                .map(|index| Op::Put {
                    key: account(index),
                    value: Value::Int(INITIAL_BALANCE),
                })
                .collect();
            for chunk in puts.chunks(OPS_PER_TXN) {
                let spec = self.spec(vec![(NodeId(participant), chunk.to_vec())]);
                let txn = TxnId::new_v7();
                match commands::submit_on(client, txn, spec).await? {
                    TxnResult::Committed { .. } => {}
                    other => {
                        return Err(WorkloadError::Failed(format!(
                            "seeding participant {participant} failed (txn {txn}): {other:?}"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads every account through read-only transactions and sums the balances.
    pub async fn total(&self, client: &Client) -> Result<i64, WorkloadError> {
        let mut total = 0i64;
        for participant in 1..=self.participants {
            let gets: Vec<Op> = (0..self.accounts)
                .map(|index| Op::Get {
                    key: account(index),
                })
                .collect();
            for chunk in gets.chunks(OPS_PER_TXN) {
                total += self.read_sum(client, NodeId(participant), chunk).await?;
            }
        }
        Ok(total)
    }

    async fn read_sum(
        &self,
        client: &Client,
        participant: NodeId,
        gets: &[Op],
    ) -> Result<i64, WorkloadError> {
        let mut last = String::new();
        for _ in 0..READ_ATTEMPTS_MAX {
            let spec = self.spec(vec![(participant, gets.to_vec())]);
            match commands::submit_on(client, TxnId::new_v7(), spec).await? {
                TxnResult::Committed { reads } => {
                    let mut sum = 0i64;
                    for read in reads.iter().flat_map(|(_, reads)| reads) {
                        match &read.value {
                            Some(Value::Int(balance)) => sum += balance,
                            // An account never seeded (a cluster seeded with fewer).
                            None => {}
                            other => {
                                return Err(WorkloadError::Failed(format!(
                                    "participant {participant}: {} holds {other:?}, not a balance",
                                    read.key
                                )));
                            }
                        }
                    }
                    return Ok(sum);
                }
                other => {
                    // A commit still being applied holds its locks: try again shortly.
                    last = format!("{other:?}");
                    runtime::sleep(READ_RETRY_PAUSE).await;
                }
            }
        }
        Err(WorkloadError::Failed(format!(
            "could not read the balances on participant {participant}: {last}"
        )))
    }
}

/// An account index not yet used by `ops` (the same key twice in one part would be one
/// lock and one image, not two transfers).
fn distinct(accounts: &Accounts, ops: &[Op], rng: &mut impl Rng) -> u32 {
    let taken = |index: u32| {
        let key = account(index);
        ops.iter()
            .any(|op| matches!(op, Op::Add { key: used, .. } if *used == key))
    };
    let mut index = accounts.draw(rng);
    for _ in 0..DISTINCT_DRAWS_MAX {
        if !taken(index) {
            break;
        }
        index = accounts.draw(rng);
    }
    index
}

pub fn account(index: u32) -> String {
    format!("acct-{index}")
}

/// Waits until the coordinator reports no participant down (it dials them after it
/// starts listening, so the first transactions could otherwise abort as "down").
pub async fn wait_for_participants(
    client: &Client,
    participants: u32,
) -> Result<(), WorkloadError> {
    let deadline = Instant::now() + CONNECT_ALL_TIMEOUT;
    loop {
        let report = commands::status_on(client).await?;
        if !report.contains(" DOWN") {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(WorkloadError::Failed(format!(
                "the coordinator did not reach all {participants} participants within {} s:\n{report}",
                CONNECT_ALL_TIMEOUT.as_secs()
            )));
        }
        runtime::sleep(POLL_INTERVAL).await;
    }
}

/// Groups reasons that differ only in ids and numbers: a transaction id becomes `<txn>`,
/// every other run of digits `N` ("participant 2 ... acct-17 ... -3"), except a bound
/// (the number after `min`, `max`, `minimum`, `maximum`), which every transfer of the
/// workload shares and the reader needs ("below the minimum 0").
pub fn numbers_as_n(reason: &str) -> String {
    let mut previous = "";
    let words: Vec<String> = reason
        .split(' ')
        .map(|word| {
            let bare = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-');
            let masked = if uuid::Uuid::parse_str(bare).is_ok() {
                word.replace(bare, "<txn>")
            } else if matches!(previous, "min" | "max" | "minimum" | "maximum") {
                word.to_string()
            } else {
                digits_as_n(word)
            };
            previous = word;
            masked
        })
        .collect();
    words.join(" ")
}

fn digits_as_n(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut in_number = false;
    for c in word.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn reasons_differing_only_in_numbers_and_ids_group_together() {
        assert_eq!(
            numbers_as_n("participant 2 voted no: add on acct-17 would leave -3 below min 0"),
            "participant N voted no: add on acct-N would leave -N below min 0"
        );
        assert_eq!(
            numbers_as_n(
                "participant 3 voted no: adding -7 to key \"acct-12\" would make it -2, \
                 below the minimum 0"
            ),
            "participant N voted no: adding -N to key \"acct-N\" would make it -N, below the \
             minimum 0"
        );
        assert_eq!(
            numbers_as_n(
                "participant 1 voted no: lock conflict on \"acct-9\" held by txn \
                 01a20111-3ef4-7296-a6fa-b7c407deddf4."
            ),
            "participant N voted no: lock conflict on \"acct-N\" held by txn <txn>."
        );
    }

    fn bank() -> Bank {
        Bank {
            participants: 2,
            accounts: 3,
            protocol: Protocol::TwoPhase,
        }
    }

    #[test]
    fn a_transfer_moves_an_amount_between_two_distinct_participants() {
        let bank = bank();
        let accounts = Accounts::new(bank.accounts, 0.0);
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..100 {
            let spec = bank.transfer(&accounts, 1, &mut rng);
            let [(from, debit), (to, credit)] = spec.parts.as_slice() else {
                panic!("two parts expected: {spec:?}");
            };
            assert_ne!(from, to);
            let (
                Op::Add {
                    delta: minus,
                    min: Some(0),
                    ..
                },
                Op::Add { delta: plus, .. },
            ) = (&debit[0], &credit[0])
            else {
                panic!("debit with min 0 and credit expected: {spec:?}");
            };
            assert_eq!(-minus, *plus);
            assert!((1..=INITIAL_BALANCE).contains(plus));
        }
    }

    #[test]
    fn a_transfer_of_several_ops_touches_distinct_accounts_and_sums_to_zero() {
        let bank = bank();
        let accounts = Accounts::new(bank.accounts, 0.0);
        let mut rng = StdRng::seed_from_u64(11);
        for _ in 0..100 {
            let spec = bank.transfer(&accounts, 3, &mut rng);
            let mut sum = 0;
            for (_, ops) in &spec.parts {
                let mut keys: Vec<&str> = ops
                    .iter()
                    .map(|op| match op {
                        Op::Add { key, delta, .. } => {
                            sum += delta;
                            key.as_str()
                        }
                        other => panic!("add expected: {other:?}"),
                    })
                    .collect();
                keys.sort_unstable();
                keys.dedup();
                assert_eq!(keys.len(), 3, "distinct accounts: {spec:?}");
            }
            assert_eq!(sum, 0);
        }
    }

    #[test]
    fn skewed_draws_favour_the_first_accounts() {
        let accounts = Accounts::new(1_000, 1.0);
        let mut rng = StdRng::seed_from_u64(3);
        let draws = 10_000;
        let hot = (0..draws).filter(|_| accounts.draw(&mut rng) < 10).count();
        // Uniform would put 1% in the first 10 accounts; Zipf(1) over 1000 puts ~39%.
        assert!(
            hot > draws / 5,
            "{hot} of {draws} draws in the first 10 accounts"
        );
        assert!((0..draws).all(|_| accounts.draw(&mut rng) < 1_000));
    }
}
