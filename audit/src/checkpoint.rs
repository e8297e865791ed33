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
//! so standard transparency tooling can check them; and the C2SP
//! tlog-cosignature lines witnesses add to them.

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

/// A note split at its blank line: the body (each line with its newline,
/// what signatures cover) and the signature lines.
pub fn split(note: &str) -> Result<(&str, &str), CheckpointError> {
    let at = note.find("\n\n").ok_or(CheckpointError::Malformed("no blank line"))?;
    Ok((&note[..=at], &note[at + 2..]))
}

/// The origin, size and root a checkpoint's body states, unverified.
pub fn parse_body(body: &str) -> Result<(&str, u64, Hash), CheckpointError> {
    let mut lines = body.lines();
    let origin = lines
        .next()
        .filter(|o| !o.is_empty())
        .ok_or(CheckpointError::Malformed("no origin"))?;
    let size = lines
        .next()
        .filter(|s| *s == "0" || !s.starts_with('0'))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(CheckpointError::Malformed("bad tree size"))?;
    let root: Hash = lines
        .next()
        .and_then(|r| B64.decode(r).ok())
        .and_then(|r| r.try_into().ok())
        .ok_or(CheckpointError::Malformed("bad root hash"))?;
    Ok((origin, size, root))
}

/// The decoded signatures in `signatures` under `key`'s name and key hash.
fn signatures_by<'a>(signatures: &'a str, key: &'a Verifier) -> impl Iterator<Item = Vec<u8>> + 'a {
    let prefix = format!("\u{2014} {} ", key.name);
    signatures.lines().filter_map(move |line| {
        let sig = B64.decode(line.strip_prefix(&prefix)?).ok()?;
        (sig.len() > 4 && sig[..4] == key.key_hash.to_be_bytes()).then(|| sig[4..].to_vec())
    })
}

/// The key hashes of the signature lines under `name` (whatever their key):
/// to tell a note signed by another key of that name from one not signed.
pub fn key_hashes(signatures: &str, name: &str) -> Vec<u32> {
    let prefix = format!("\u{2014} {name} ");
    signatures
        .lines()
        .filter_map(|line| B64.decode(line.strip_prefix(&prefix)?).ok())
        .filter_map(|sig| Some(u32::from_be_bytes(sig.get(..4)?.try_into().ok()?)))
        .collect()
}

/// Parses a signed note and verifies the signature of `verifier`'s key.
pub fn verify(note: &str, verifier: &Verifier) -> Result<Checkpoint, CheckpointError> {
    let (body, signatures) = split(note)?;
    let (origin, size, root) = parse_body(body)?;
    let mut found = false;
    for sig in signatures_by(signatures, verifier).filter(|sig| sig.len() == 64) {
        found = true;
        if verifier.verify(body.as_bytes(), &sig).is_ok() {
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

/// The message a tlog-cosignature/v1 Ed25519 cosignature signs.
fn cosigned_message(body: &str, time: u64) -> String {
    format!("cosignature/v1\ntime {time}\n{body}")
}

/// A witness's cosignature line (C2SP tlog-cosignature, Ed25519) over a
/// checkpoint `body` at POSIX time `time`: `— <name> base64(key ID ‖
/// timestamp ‖ signature)` and its newline. `signer` is a
/// [`crate::keys::KeyKind::Cosignature`] key.
pub fn cosign(signer: &Signer, body: &str, time: u64) -> String {
    let mut sig = signer.key_hash().to_be_bytes().to_vec();
    sig.extend_from_slice(&time.to_be_bytes());
    sig.extend_from_slice(&signer.sign(cosigned_message(body, time).as_bytes()));
    format!("\u{2014} {} {}\n", signer.name(), B64.encode(sig))
}

/// The time of the first valid cosignature by `witness` (a cosignature
/// key) among `signatures`, over `body`.
pub fn cosigned_at(body: &str, signatures: &str, witness: &Verifier) -> Option<u64> {
    signatures_by(signatures, witness).find_map(|sig| {
        let (time, sig) = sig.split_first_chunk::<8>()?;
        let time = u64::from_be_bytes(*time);
        (time < 1 << 63 && witness.verify(cosigned_message(body, time).as_bytes(), sig).is_ok()).then_some(time)
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

    #[test]
    fn a_cosignature_verifies_over_its_time_and_the_body_only() {
        use crate::keys::KeyKind;
        let log = Signer::new(SigningKey::from_bytes(&[3; 32]), "civex/test");
        let witness = Signer::with_kind(
            SigningKey::from_bytes(&[5; 32]),
            "witness.test/w1",
            KeyKind::Cosignature,
        );
        let key = Verifier::parse_kind(&witness.verifier_key(), KeyKind::Cosignature).unwrap();
        assert!(
            Verifier::parse(&witness.verifier_key()).is_err(),
            "a cosigning key is not a note key"
        );
        let cp = sign(&log, 7, &[1; 32]);
        let (body, sigs) = split(&cp.note).unwrap();
        let line = cosign(&witness, body, 1_700_000_000);
        assert_eq!(cosigned_at(body, &format!("{sigs}{line}"), &key), Some(1_700_000_000));
        assert_eq!(cosigned_at(body, sigs, &key), None);
        let other = sign(&log, 8, &[1; 32]);
        assert_eq!(cosigned_at(split(&other.note).unwrap().0, &line, &key), None);
        // The log's own signature line is not a cosignature, nor the reverse.
        let with = format!("{}{line}", cp.note);
        assert_eq!(
            verify(&with, &Verifier::parse(&log.verifier_key()).unwrap())
                .unwrap()
                .size,
            7
        );
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
