//! The simulator's view of a core: the real cores implement these traits directly, and
//! the planted-bug wrappers (`planted.rs`) implement them around a real core.

use coordinator::core::{self as coordinator_core, Coordinator};
use participant::core::inbound::{self, Plan};
use participant::core::{self as participant_core, Participant, TxnCounts};
use wire::retention::Horizon;
use wire::{Request, Role, TxnId, Value};

pub trait CoordinatorCore {
    fn handle(&mut self, now: coordinator_core::Millis, input: coordinator_core::Input);
    fn poll_output(&mut self) -> Option<coordinator_core::Output>;
    fn poll_timeout(&self) -> Option<coordinator_core::Millis>;
    fn handle_timeout(&mut self, now: coordinator_core::Millis);
    fn check_invariants(&self) -> Result<(), String>;
    /// Transactions tracked, including `Ended` records not yet durable.
    fn txns_in_flight(&self) -> usize;
}

impl CoordinatorCore for Coordinator {
    fn handle(&mut self, now: coordinator_core::Millis, input: coordinator_core::Input) {
        Coordinator::handle(self, now, input);
    }

    fn poll_output(&mut self) -> Option<coordinator_core::Output> {
        Coordinator::poll_output(self)
    }

    fn poll_timeout(&self) -> Option<coordinator_core::Millis> {
        Coordinator::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: coordinator_core::Millis) {
        Coordinator::handle_timeout(self, now);
    }

    fn check_invariants(&self) -> Result<(), String> {
        Coordinator::check_invariants(self).map_err(|violation| violation.to_string())
    }

    fn txns_in_flight(&self) -> usize {
        Coordinator::txns_in_flight(self)
    }
}

pub trait ParticipantCore {
    fn handle(&mut self, now: participant_core::Millis, input: participant_core::Input);
    fn poll_output(&mut self) -> Option<participant_core::Output>;
    fn poll_timeout(&self) -> Option<participant_core::Millis>;
    fn handle_timeout(&mut self, now: participant_core::Millis);
    fn check_invariants(&self) -> Result<(), participant_core::InvariantViolation>;
    /// What the shell must read before a request becomes an input (the product's
    /// `participant::core::inbound::plan`).
    fn plan(&self, role: Role, msg: Request) -> Plan;
    fn locks_held(&self) -> usize;
    /// `Participant::committing_value`: what a Prepare reads for a key being committed.
    fn committing_value(&self, key: &str) -> Option<(TxnId, Option<Value>)>;
    fn counts(&self) -> TxnCounts;
    /// `Participant::set_horizon` (retention).
    fn set_horizon(&mut self, horizon: Horizon);
}

impl ParticipantCore for Participant {
    fn handle(&mut self, now: participant_core::Millis, input: participant_core::Input) {
        Participant::handle(self, now, input);
    }

    fn poll_output(&mut self) -> Option<participant_core::Output> {
        Participant::poll_output(self)
    }

    fn poll_timeout(&self) -> Option<participant_core::Millis> {
        Participant::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: participant_core::Millis) {
        Participant::handle_timeout(self, now);
    }

    fn check_invariants(&self) -> Result<(), participant_core::InvariantViolation> {
        Participant::check_invariants(self)
    }

    fn plan(&self, role: Role, msg: Request) -> Plan {
        inbound::plan(self, role, msg)
    }

    fn locks_held(&self) -> usize {
        Participant::locks_held(self)
    }

    fn committing_value(&self, key: &str) -> Option<(TxnId, Option<Value>)> {
        Participant::committing_value(self, key)
    }

    fn counts(&self) -> TxnCounts {
        Participant::counts(self)
    }

    fn set_horizon(&mut self, horizon: Horizon) {
        Participant::set_horizon(self, horizon);
    }
}
