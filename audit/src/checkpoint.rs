//! Signed checkpoints in the C2SP `tlog-checkpoint` signed-note format:
//!
//! ```text
//! civex/qujing-demo
//! 1234
//! <base64 root hash>
//!
//! — civex/qujing-demo <base64(4-byte key hash ‖ Ed25519 signature)>
//! ```
//!
//! so standard transparency tooling can check them.

use base64::{Engine, engine::general_purpose::STANDARD as B64};

use crate::{
    keys::{Signer, Verifier},
    merkle::Hash,
};

/// A checkpoint: the origin, the tree size and its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// The whole signed note.
    pub note: String,
}

/// Why a note is not a valid checkpoint of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("malformed checkpoint note: {0}")]
    Malformed(&'static str),
    #[error("checkpoint carries no signature by {0}")]
    NoSignature(String),
    #[error("checkpoint signature does not verify")]
    BadSignature,
}

/// Signs a checkpoint of `size` leaves with root `root`; the origin is the key's name.
pub fn sign(signer: &Signer, size: u64, root: &Hash) -> Checkpoint {
    let origin = signer.name().to_owned();
    let body = format!("{origin}\n{size}\n{}\n", B64.encode(root));
    let mut sig = signer.key_hash().to_be_bytes().to_vec();
    sig.extend_from_slice(&signer.sign(body.as_bytes()));
    let note = format!("{body}\n\u{2014} {} {}\n", signer.name(), B64.encode(sig));
    Checkpoint {
        origin,
        size,
        root: *root,
        note,
    }
}

/// The tree size a checkpoint note states, without checking its signature.
pub fn size_of(note: &str) -> Option<u64> {
    note.lines().nth(1)?.parse().ok()
}

/// Parses a signed note and verifies the signature of `verifier`'s key.
pub fn verify(note: &str, verifier: &Verifier) -> Result<Checkpoint, CheckpointError> {
    let (body, signatures) = note
        .split_once("\n\n")
        .ok_or(CheckpointError::Malformed("no blank line"))?;
    let body = format!("{body}\n");
    let mut lines = body.lines();
    let origin = lines
        .next()
        .filter(|o| !o.is_empty())
        .ok_or(CheckpointError::Malformed("no origin"))?;
    let size = lines
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(CheckpointError::Malformed("bad tree size"))?;
    let root: Hash = lines
        .next()
        .and_then(|r| B64.decode(r).ok())
        .and_then(|r| r.try_into().ok())
        .ok_or(CheckpointError::Malformed("bad root hash"))?;
    let prefix = format!("\u{2014} {} ", verifier.name);
    let mut found = false;
    for line in signatures.lines() {
        let Some(sig) = line.strip_prefix(&prefix).and_then(|s| B64.decode(s).ok()) else {
            continue;
        };
        if sig.len() != 68 || sig[..4] != verifier.key_hash.to_be_bytes() {
            continue;
        }
        found = true;
        if verifier.verify(body.as_bytes(), &sig[4..]).is_ok() {
            return Ok(Checkpoint {
                origin: origin.to_owned(),
                size,
                root,
                note: note.to_owned(),
            });
        }
    }
    Err(if found {
        CheckpointError::BadSignature
    } else {
        CheckpointError::NoSignature(verifier.name.clone())
    })
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;

    #[test]
    fn a_signed_checkpoint_verifies_and_any_change_breaks_it() {
        let signer = Signer::new(SigningKey::from_bytes(&[3; 32]), "civex/test");
        let verifier = Verifier::parse(&signer.verifier_key()).unwrap();
        let cp = sign(&signer, 42, &[9; 32]);
        assert!(cp.note.starts_with("civex/test\n42\nCQkJ"));
        assert_eq!(verify(&cp.note, &verifier).unwrap(), cp);
        let tampered = cp.note.replacen("\n42\n", "\n43\n", 1);
        assert_eq!(verify(&tampered, &verifier), Err(CheckpointError::BadSignature));
        let other =
            Verifier::parse(&Signer::new(SigningKey::from_bytes(&[4; 32]), "civex/other").verifier_key()).unwrap();
        assert!(matches!(verify(&cp.note, &other), Err(CheckpointError::NoSignature(_))));
    }

    proptest::proptest! {
        // The normal suite's share of the `audit_leaf` fuzz target.
        #[test]
        fn arbitrary_notes_and_leaves_never_panic(note in "\\PC{0,300}", leaf in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let signer = Signer::new(SigningKey::from_bytes(&[3; 32]), "civex/test");
            let verifier = Verifier::parse(&signer.verifier_key()).unwrap();
            let _ = verify(&note, &verifier);
            let _ = verify(&format!("civex/test\n1\n{note}\n\n\u{2014} civex/test {note}\n"), &verifier);
            if let Ok(entry) = crate::search::entry(0, leaf.clone()) {
                proptest::prop_assert_eq!(entry.leaf, leaf);
            }
        }
    }
}
