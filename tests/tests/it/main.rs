//! End-to-end tests: a real gateway on loopback over mTLS, real clients.

#![allow(clippy::unwrap_used)]

mod admin;
mod audit;
mod browser;
mod commitments;
mod consent;
mod console;
mod corrections;
mod exchange;
mod faults;
mod hostile;
mod metrics;
mod oversight;
mod postgres;
mod predicates;
mod reflection;
mod sources;
mod tiles;
mod tls;
mod trust;
mod witness;
