//! Scenario tests of the alert manager with a controllable clock and synthetic data.

mod escalation;
mod grouping;
pub(crate) mod http;
mod muting;
mod states;
mod support;
