//! Cores that can be copied: the real cores are not `Clone`, so a copy of a node is its
//! input log, shared until one copy must change, and then rebuilt by replaying the log
//! into a fresh core (the cores are pure, so the replay reaches the same state).

use std::rc::Rc;

use coordinator::core::{self as coordinator_core, Coordinator};
use participant::core::{self as participant_core, Participant};
use wire::NodeId;

/// One thing that happened to a core.
#[derive(Clone, Debug)]
pub enum Step<I> {
    Input(u64, I),
    Timeout(u64),
}

/// A core shared between explored states, with the steps that made it.
pub struct Shared<C: Replay> {
    core: Rc<C>,
    log: Vec<Step<LogInput<C>>>,
}

impl<C: Replay> Clone for Shared<C> {
    fn clone(&self) -> Self {
        Shared {
            core: Rc::clone(&self.core),
            log: self.log.clone(),
        }
    }
}

/// The input type a core's log records.
pub type LogInput<C> = <C as Replay>::Input;

/// What a core needs to be rebuilt from its log.
pub trait Replay: Sized {
    type Input: Clone;
    type Output;
    type Config: Clone;
    fn fresh(config: &Self::Config) -> Self;
    fn config(&self) -> Self::Config;
    fn apply(&mut self, now: u64, input: Self::Input);
    fn timeout(&mut self, now: u64);
    fn next_output(&mut self) -> Option<Self::Output>;
}

impl<C: Replay> Shared<C> {
    pub fn new(core: C) -> Self {
        Shared {
            core: Rc::new(core),
            log: Vec::new(),
        }
    }

    pub fn get(&self) -> &C {
        &self.core
    }

    /// Feeds one step and returns the outputs it produced.
    pub fn step(&mut self, step: Step<C::Input>) -> Vec<C::Output> {
        let core = self.unique();
        match step.clone() {
            Step::Input(now, input) => core.apply(now, input),
            Step::Timeout(now) => core.timeout(now),
        }
        let mut outputs = Vec::new();
        while let Some(output) = core.next_output() {
            outputs.push(output);
        }
        self.log.push(step);
        outputs
    }

    /// This copy's own core, rebuilt from the log if another copy shares it.
    fn unique(&mut self) -> &mut C {
        if Rc::get_mut(&mut self.core).is_none() {
            let mut core = C::fresh(&self.core.config());
            for step in &self.log {
                match step.clone() {
                    Step::Input(now, input) => core.apply(now, input),
                    Step::Timeout(now) => core.timeout(now),
                }
                while core.next_output().is_some() {}
            }
            self.core = Rc::new(core);
        }
        Rc::get_mut(&mut self.core).expect("just made unique")
    }
}

impl Replay for Coordinator {
    type Input = coordinator_core::Input;
    type Output = coordinator_core::Output;
    type Config = coordinator_core::Config;

    fn fresh(config: &Self::Config) -> Self {
        Coordinator::new(config.clone())
    }

    fn config(&self) -> Self::Config {
        Coordinator::config(self).clone()
    }

    fn apply(&mut self, now: u64, input: Self::Input) {
        self.handle(coordinator_core::Millis(now), input);
    }

    fn timeout(&mut self, now: u64) {
        self.handle_timeout(coordinator_core::Millis(now));
    }

    fn next_output(&mut self) -> Option<Self::Output> {
        self.poll_output()
    }
}

/// A participant's input, as the model checker replays it.
#[derive(Clone, Debug)]
pub struct ParticipantInput(pub participant_core::Input);

impl Replay for Participant {
    type Input = ParticipantInput;
    type Output = participant_core::Output;
    type Config = (NodeId, participant_core::Config);

    fn fresh((node, config): &Self::Config) -> Self {
        Participant::new(*node, config.clone()).expect("config validated at the first start")
    }

    fn config(&self) -> Self::Config {
        (self.node_id(), Participant::config(self).clone())
    }

    fn apply(&mut self, now: u64, input: Self::Input) {
        self.handle(participant_core::Millis(now), input.0);
    }

    fn timeout(&mut self, now: u64) {
        self.handle_timeout(participant_core::Millis(now));
    }

    fn next_output(&mut self) -> Option<Self::Output> {
        self.poll_output()
    }
}
