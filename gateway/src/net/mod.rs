//! The network edge: civex's own TLS acceptor, the agency a certificate
//! names, and per-agency quotas.
//!
//! # Layout
//! - [`tls`]: the mTLS acceptor, client-certificate verifier with its CRL, server certificate reload.
//! - [`identity`]: the agency code carried by a verified certificate's SAN URI.
//! - [`limits`]: per-agency rate limits (governor).

pub mod identity;
pub mod limits;
pub mod tls;
