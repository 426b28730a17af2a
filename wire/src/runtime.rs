//! The only module of the workspace that names the async runtime (async-std, and its
//! reactor async-io for `Alarm`): tasks, timers, sockets and channels are re-exported
//! from here, for `wire` and for every other crate, so a runtime switch is a one-file
//! change.

use std::future::Future;
use std::time::{Duration, Instant};

pub use async_std::channel::{Receiver, RecvError, Sender, TrySendError, bounded};
pub use async_std::net::{TcpListener, TcpStream};
pub use async_std::task::{JoinHandle, block_on, sleep, spawn};

/// Executor threads of a node process (the environment variable `ASYNC_STD_THREAD_COUNT`
/// overrides it). One: a node's tasks (event loop, connection readers and writers,
/// heartbeats, the log writer) then hand work to each other on one thread, where a wake-up
/// is a queue push rather than a futex call and a context switch. Each SQLite connection
/// keeps its own worker thread (sqlx), so disk waits do not stop the loop.
pub const NODE_EXECUTOR_THREADS: usize = 1;

/// Sets the executor to `NODE_EXECUTOR_THREADS` threads, if nothing used the runtime
/// before (then it keeps what it has). `block_on_node` calls it; a node that starts some
/// tasks first calls it before them.
pub fn init_node_executor() {
    async_global_executor::init_with_config(
        async_global_executor::GlobalExecutorConfig::default()
            .with_env_var("ASYNC_STD_THREAD_COUNT")
            .with_min_threads(NODE_EXECUTOR_THREADS)
            .with_max_threads(NODE_EXECUTOR_THREADS)
            .with_thread_name_fn(|| "node-executor".to_string()),
    );
}

/// Runs a node process's main future to its end on the executor's thread(s)
/// (`init_node_executor`). The calling thread only waits: it does not poll the reactor,
/// which would put socket wake-ups on a second thread.
pub fn block_on_node<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    init_node_executor();
    futures::executor::block_on(spawn(future))
}

/// The future's output, or `None` if `duration` passed first.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Option<F::Output> {
    async_std::future::timeout(duration, future).await.ok()
}

/// A wake-up for a loop that waits for a deadline again and again (an event loop's next
/// timeout, a writer's next prune step). A new timer for each wait costs a hand-off to
/// the reactor thread: async-io wakes it for every timer registered (an eventfd write, a
/// context switch, a fresh timerfd). An `Alarm` keeps one timer and sets it again only
/// when asked to ring earlier than it is set for, so it may ring early: the caller
/// checks its own clock after a ring, as after any wake.
#[derive(Debug)]
pub struct Alarm {
    timer: async_io::Timer,
    /// When the timer is set to ring; `None` once it rang (or was never set).
    set_for: Option<Instant>,
}

impl Default for Alarm {
    fn default() -> Self {
        Alarm {
            timer: async_io::Timer::never(),
            set_for: None,
        }
    }
}

impl Alarm {
    /// Rings at `at` or earlier (earlier if it is set for an earlier time already).
    pub fn ring_by(&mut self, at: Instant) {
        if self.set_for.is_none_or(|set_for| set_for > at) {
            self.timer.set_at(at);
            self.set_for = Some(at);
        }
    }

    /// Resolves when it rings; never if it is not set. Then it is not set until the next
    /// `ring_by`. Cancel-safe: dropped before it rings, it stays set.
    pub async fn rung(&mut self) {
        if self.set_for.is_none() {
            return std::future::pending().await;
        }
        (&mut self.timer).await;
        self.set_for = None;
    }

    /// The future's output, or `None` if the alarm rang first (as `timeout`, the future
    /// is polled first).
    pub async fn before_ring<F: Future>(&mut self, future: F) -> Option<F::Output> {
        let (future, ring) = (std::pin::pin!(future), std::pin::pin!(self.rung()));
        match futures::future::select(future, ring).await {
            futures::future::Either::Left((output, _)) => Some(output),
            futures::future::Either::Right(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bounds every wait of these tests; the alarms under test ring within milliseconds.
    const TEST_WAIT_MAX: Duration = Duration::from_secs(10);

    #[test]
    fn an_earlier_deadline_re_arms_and_a_later_one_keeps_the_earlier() {
        block_on(async {
            let mut alarm = Alarm::default();
            alarm.ring_by(Instant::now() + Duration::from_secs(3600));
            alarm.ring_by(Instant::now() + Duration::from_millis(5));
            assert!(timeout(TEST_WAIT_MAX, alarm.rung()).await.is_some());
            // Set for 5 ms, then asked for an hour: it rings early, at 5 ms.
            alarm.ring_by(Instant::now() + Duration::from_millis(5));
            alarm.ring_by(Instant::now() + Duration::from_secs(3600));
            assert!(timeout(TEST_WAIT_MAX, alarm.rung()).await.is_some());
        });
    }

    #[test]
    fn an_alarm_that_rang_is_unset_until_set_again() {
        block_on(async {
            let mut alarm = Alarm::default();
            assert_eq!(alarm.before_ring(async { 7 }).await, Some(7));
            alarm.ring_by(Instant::now());
            assert_eq!(alarm.before_ring(std::future::pending::<()>()).await, None);
            // Unset now: only the other future can end the wait.
            let later = sleep(Duration::from_millis(20));
            assert_eq!(alarm.before_ring(later).await, Some(()));
            // A wait dropped before the ring leaves it set.
            alarm.ring_by(Instant::now() + Duration::from_millis(20));
            assert_eq!(alarm.before_ring(async { 1 }).await, Some(1));
            assert!(timeout(TEST_WAIT_MAX, alarm.rung()).await.is_some());
        });
    }
}
