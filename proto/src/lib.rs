//! The civex wire contract: package `civex.v1`, compiled from `proto/civex/v1/*.proto`.
//!
//! This is the only place wire types are defined. Names here are a contract
//! with clients in other languages: fields may be added, never renamed.
//!
//! # Layout
//! - `civex/v1/common.proto`: `Fact`, shared by the exchange and department sources.
//! - `civex/v1/exchange.proto`: `ExchangeService` (requesters).
//! - `civex/v1/consent.proto`: `ConsentService` (consent registrars).
//! - `civex/v1/source.proto`: `DepartmentSourceService` (departments' own systems).
//! - `civex/v1/audit.proto`: `AuditService` (auditors) and the audit record.
//! - `civex/v1/admin.proto`: `AdminService` (administrators).
//! - `civex/v1/oversight.proto`: `OversightService` (auditors): alerts, the watch list, cases.

//!
//! The `grpc` feature (on by default) adds the tonic clients and servers;
//! without it the crate holds only the messages.

/// Generated messages (and, with `grpc`, services) of package `civex.v1`.
#[allow(unreachable_pub, clippy::all)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/civex.v1.rs"));
}

/// The request metadata naming the official who makes a call (the
/// console's logged-in user, a registrar at the counter), for calls whose
/// request has no `operator` field of its own. Part of the contract.
pub const OPERATOR_METADATA: &str = "civex-operator";

/// Encoded `FileDescriptorSet` of every civex proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/civex_descriptor.bin"));
