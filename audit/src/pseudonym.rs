//! Citizen pseudonyms: raw citizen IDs never enter the log; a record carries
//! HMAC-SHA-256 of the ID under a key kept in its own file, so that auditors
//! without the key cannot turn a pseudonym back into a person.

use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::AuditError;

/// Turns citizen IDs into pseudonyms: HMAC-SHA-256 under a secret key.
pub struct Pseudonymizer {
    key: [u8; 32],
}

impl Pseudonymizer {
    /// Loads the 32-byte key (hex) from `path`, creating it (mode 0600) if absent.
    pub fn load_or_create(path: &Path) -> Result<Pseudonymizer, AuditError> {
        let fail = |cause: String| AuditError::PseudonymKey {
            path: path.to_owned(),
            cause,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let key = hex::decode(text.trim()).map_err(|e| fail(e.to_string()))?;
                let key: [u8; 32] = key.try_into().map_err(|_| fail("expected 32 bytes of hex".into()))?;
                Ok(Pseudonymizer { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
                }
                crate::keys::write_private(path, format!("{}\n", hex::encode(key)).as_bytes())
                    .map_err(|e| fail(e.to_string()))?;
                Ok(Pseudonymizer { key })
            }
            Err(e) => Err(fail(e.to_string())),
        }
    }

    /// The pseudonym of a (validated) citizen ID, lower-case hex.
    pub fn citizen_ref(&self, citizen_id: &str) -> String {
        // Invariant: HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(citizen_id.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}
