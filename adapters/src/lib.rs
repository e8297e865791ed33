//! Where facts come from: the attribute catalogue, the [`Adapter`] trait the
//! gateway calls, and the embedded, sled-backed registry of each department.
//!
//! # Layout
//! - [`department`]: the seven departments and their codes.
//! - [`catalogue`]: every attribute, its holder, type, sharing category and sensitivity.
//! - [`value`]: typed values and their JSON and wire forms.
//! - [`registry`]: [`EmbeddedRegistry`], one sled tree per department.
//! - [`remote`]: [`RemoteAdapter`], a department's own system over mTLS.
//!
//! Adapters never call each other: the gateway fans a request out to the
//! departments it touches and joins the answers.

pub mod catalogue;
pub mod department;
pub mod registry;
pub mod remote;
pub mod value;

use async_trait::async_trait;
use civex_proto::v1::Fact;

pub use catalogue::{Attribute, Sharing, ValueType};
pub use department::Department;
pub use registry::{EmbeddedRegistry, Record, Replacement};
pub use remote::{RemoteAdapter, RemoteConfig};

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
