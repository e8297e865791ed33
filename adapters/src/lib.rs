//! Where facts come from: the attribute catalogue, citizen ID numbers, the
//! [`Adapter`] trait the gateway calls, each department's registry behind
//! [`RegistryStore`], departments' own systems over mTLS, and the JSONL
//! files departments deliver.
//!
//! # Layout
//! - [`department`]: the seven departments and their codes.
//! - [`citizen_id`]: GB 11643-1999 citizen ID numbers (公民身份号码).
//! - [`catalogue`]: every attribute, its holder, type, sharing category and sensitivity.
//! - [`value`]: typed values and their JSON and wire forms.
//! - [`registry`]: [`RegistryStore`] and the embedded engine's [`EmbeddedRegistry`], one sled tree per department.
//! - [`remote`]: [`RemoteAdapter`], a department's own system over mTLS.
//! - [`import`]: a department's JSONL file, checked line by line and imported all or nothing.
//!
//! Adapters never call each other: the gateway fans a request out to the
//! departments it touches and joins the answers.

pub mod catalogue;
pub mod citizen_id;
pub mod department;
pub mod import;
pub mod registry;
pub mod remote;
pub mod value;

use async_trait::async_trait;
use civex_proto::v1::Fact;

pub use catalogue::{Attribute, Sharing, ValueType};
pub use citizen_id::CitizenId;
pub use department::Department;
pub use registry::{EmbeddedRegistries, EmbeddedRegistry, Record, RegistryStore, RegistryWriter};
pub use remote::{RemoteAdapter, RemoteAdapterConfig};

/// A source of one department's facts.
#[async_trait]
pub trait Adapter: Send + Sync + 'static {
    /// The department whose facts this adapter serves.
    fn department(&self) -> Department;

    /// Facts about `citizen_id` (already validated and normalised) for each of
    /// `attributes`, all held by this department, in the same order; an
    /// attribute the department does not hold for this citizen comes back
    /// with `recorded = false`.
    async fn fetch(&self, citizen_id: &str, attributes: &[&'static Attribute]) -> Result<Vec<Fact>, AdapterError>;

    /// Whether calls to the department are held back by an open circuit
    /// breaker; `None` for an adapter without one (the embedded registries).
    fn circuit_open(&self) -> Option<bool> {
        None
    }
}

/// Why a department's facts could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdapterError {
    #[error("{department} registry storage failed: {cause}")]
    Storage { department: Department, cause: String },
    #[error("{department} source unavailable: {cause}")]
    Unavailable { department: Department, cause: String },
}

impl AdapterError {
    /// The department that failed.
    pub fn department(&self) -> Department {
        match self {
            AdapterError::Storage { department, .. } | AdapterError::Unavailable { department, .. } => *department,
        }
    }
}
