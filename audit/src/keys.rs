//! The gateway's Ed25519 signing key, kept in the data directory in the C2SP
//! signed-note formats (`PRIVATE+KEY+<name>+<hash>+<key>`), with its public
//! verifier key written beside it as `gateway.vkey`, so anyone can check
//! consents and checkpoints with standard transparency tooling; a
//! witness's cosigning key in the same formats under the C2SP
//! tlog-cosignature algorithm byte; and [`write_private`], how every civex
//! key file is written.

use std::{
    fs::{self, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
};

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

/// What a key signs, which fixes its signed-note algorithm byte and so its key hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Ed25519 note signatures (0x01): the gateway's consents and checkpoints.
    Note,
    /// Ed25519 timestamped cosignatures of C2SP tlog-cosignature (0x04): a witness's.
    Cosignature,
}

impl KeyKind {
    fn alg(self) -> u8 {
        match self {
            KeyKind::Note => 0x01,
            KeyKind::Cosignature => 0x04,
        }
    }

    /// The key file and verifier key file inside a data directory.
    pub fn files(self) -> (&'static str, &'static str) {
        match self {
            KeyKind::Note => (SIGNING_KEY_FILE, VERIFIER_KEY_FILE),
            KeyKind::Cosignature => ("witness.signing.key", "witness.vkey"),
        }
    }
}

/// File names inside the data directory.
pub const SIGNING_KEY_FILE: &str = "gateway.signing.key";
pub const VERIFIER_KEY_FILE: &str = "gateway.vkey";

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("cannot access {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("malformed key in {path}: {message}")]
    Malformed { path: PathBuf, message: String },
    #[error("malformed verifier key: {0}")]
    MalformedVerifier(String),
    #[error("signature does not verify")]
    BadSignature,
}

/// A signing key, its name and what it signs.
#[derive(Debug)]
pub struct Signer {
    key: SigningKey,
    name: String,
    kind: KeyKind,
    key_hash: u32,
}

/// The 4-byte key hash of a signed-note key: SHA-256(name ‖ "\n" ‖ algorithm byte ‖ public key).
fn key_hash(name: &str, kind: KeyKind, public: &VerifyingKey) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([kind.alg()]);
    h.update(public.as_bytes());
    let digest = h.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

impl Signer {
    /// Loads the gateway's key from `<dir>/gateway.signing.key`, creating it
    /// (mode 0600) with the verifier key beside it if absent. `name` is the
    /// key's name, e.g. `civex/qujing-demo`.
    pub fn load_or_create(dir: &Path, name: &str) -> Result<Signer, SigningError> {
        Signer::load_or_create_kind(dir, name, KeyKind::Note)
    }

    /// Loads or creates the key of `kind` in `dir`, as [`Signer::load_or_create`].
    pub fn load_or_create_kind(dir: &Path, name: &str, kind: KeyKind) -> Result<Signer, SigningError> {
        let (key_file, vkey_file) = kind.files();
        let path = dir.join(key_file);
        let io = |source| SigningError::Io {
            path: path.clone(),
            source,
        };
        let signer = match fs::read_to_string(&path) {
            Ok(text) => Signer::parse(text.trim(), &path, kind)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let signer = Signer::with_kind(SigningKey::generate(&mut rand::rngs::OsRng), name, kind);
                let text = format!("{}\n", signer.private_note_key());
                write_private(&path, text.as_bytes()).map_err(io)?;
                signer
            }
            Err(e) => return Err(io(e)),
        };
        let vkey_path = dir.join(vkey_file);
        fs::write(&vkey_path, format!("{}\n", signer.verifier_key())).map_err(|source| SigningError::Io {
            path: vkey_path,
            source,
        })?;
        Ok(signer)
    }

    /// A note signer for `key` under `name` (tests and tools).
    pub fn new(key: SigningKey, name: &str) -> Signer {
        Signer::with_kind(key, name, KeyKind::Note)
    }

    /// A signer of `kind` for `key` under `name`.
    pub fn with_kind(key: SigningKey, name: &str, kind: KeyKind) -> Signer {
        let key_hash = key_hash(name, kind, &key.verifying_key());
        Signer {
            key,
            name: name.to_owned(),
            kind,
            key_hash,
        }
    }

    fn parse(text: &str, path: &Path, kind: KeyKind) -> Result<Signer, SigningError> {
        let malformed = |m: &str| SigningError::Malformed {
            path: path.to_owned(),
            message: m.to_owned(),
        };
        let rest = text
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| malformed("missing PRIVATE+KEY+ prefix"))?;
        let (name, hash, key) = split_note_key(rest).ok_or_else(|| malformed("expected <name>+<hash>+<key>"))?;
        let bytes = B64.decode(key).map_err(|_| malformed("key is not base64"))?;
        let seed: [u8; 32] = match bytes.split_first() {
            Some((&alg, seed)) if alg == kind.alg() => seed
                .try_into()
                .map_err(|_| malformed("Ed25519 seed must be 32 bytes"))?,
            _ => return Err(malformed(&format!("not an Ed25519 key of type {:#04x}", kind.alg()))),
        };
        let signer = Signer::with_kind(SigningKey::from_bytes(&seed), name, kind);
        if format!("{:08x}", signer.key_hash) != hash {
            return Err(malformed("key hash does not match"));
        }
        Ok(signer)
    }

    /// The key's name, e.g. `civex/qujing-demo`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `<name>+<8 hex digits of the key hash>`, as named in `Consent.key_id`.
    pub fn key_id(&self) -> String {
        format!("{}+{:08x}", self.name, self.key_hash)
    }

    /// The key hash, as used in signed-note signature lines.
    pub fn key_hash(&self) -> u32 {
        self.key_hash
    }

    /// The public verifier key: `<name>+<hash>+<base64(algorithm byte ‖ public key)>`.
    pub fn verifier_key(&self) -> String {
        let mut bytes = vec![self.kind.alg()];
        bytes.extend_from_slice(self.key.verifying_key().as_bytes());
        format!("{}+{}", self.key_id(), B64.encode(bytes))
    }

    fn private_note_key(&self) -> String {
        let mut bytes = vec![self.kind.alg()];
        bytes.extend_from_slice(self.key.as_bytes());
        format!("PRIVATE+KEY+{}+{}", self.key_id(), B64.encode(bytes))
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// Splits `<name>+<hash>+<key>`; names never contain `+`, base64 keys may.
fn split_note_key(s: &str) -> Option<(&str, &str, &str)> {
    let mut parts = s.splitn(3, '+');
    let (name, hash, key) = (parts.next()?, parts.next()?, parts.next()?);
    (hash.len() == 8 && !name.is_empty()).then_some((name, hash, key))
}

/// A parsed verifier key, for checking signatures made by a gateway (or,
/// of [`KeyKind::Cosignature`], a witness).
#[derive(Debug, Clone)]
pub struct Verifier {
    pub name: String,
    pub key_hash: u32,
    kind: KeyKind,
    key: VerifyingKey,
}

impl Verifier {
    /// Parses a note verifier key `<name>+<hash>+<base64(0x01 ‖ key)>`, checking the hash.
    pub fn parse(vkey: &str) -> Result<Verifier, SigningError> {
        Verifier::parse_kind(vkey, KeyKind::Note)
    }

    /// Parses a verifier key of `kind`, checking the hash.
    pub fn parse_kind(vkey: &str, kind: KeyKind) -> Result<Verifier, SigningError> {
        let bad = |m: &str| SigningError::MalformedVerifier(m.to_owned());
        let (name, hash, key) = split_note_key(vkey.trim()).ok_or_else(|| bad("expected <name>+<hash>+<key>"))?;
        let bytes = B64.decode(key).map_err(|_| bad("key is not base64"))?;
        let public: [u8; 32] = match bytes.split_first() {
            Some((&alg, k)) if alg == kind.alg() => k.try_into().map_err(|_| bad("Ed25519 key must be 32 bytes"))?,
            _ => return Err(bad(&format!("not an Ed25519 key of type {:#04x}", kind.alg()))),
        };
        let key = VerifyingKey::from_bytes(&public).map_err(|_| bad("not a valid Ed25519 point"))?;
        let key_hash = key_hash(name, kind, &key);
        if format!("{key_hash:08x}") != hash {
            return Err(bad("key hash does not match"));
        }
        Ok(Verifier {
            name: name.to_owned(),
            key_hash,
            kind,
            key,
        })
    }

    /// `<name>+<hash>`: compare with `Consent.key_id`.
    pub fn key_id(&self) -> String {
        format!("{}+{:08x}", self.name, self.key_hash)
    }

    /// The key in its text form, `<name>+<hash>+<base64(algorithm byte ‖ key)>`.
    pub fn verifier_key(&self) -> String {
        let mut bytes = vec![self.kind.alg()];
        bytes.extend_from_slice(self.key.as_bytes());
        format!("{}+{}", self.key_id(), B64.encode(bytes))
    }

    /// Checks an Ed25519 signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SigningError> {
        let sig = Signature::from_slice(signature).map_err(|_| SigningError::BadSignature)?;
        self.key.verify(message, &sig).map_err(|_| SigningError::BadSignature)
    }
}

/// Writes a private key. A new file is created with mode 0600, so it is never
/// readable by others, not even briefly; an existing file is truncated and
/// narrowed to 0600 before the key is written into it.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        // `mode` only applies when the file is created; an older key file may
        // have been more permissive.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_survives_a_reload_and_its_verifier_checks_signatures() {
        let dir = tempfile::tempdir().unwrap();
        let a = Signer::load_or_create(dir.path(), "civex/test").unwrap();
        let b = Signer::load_or_create(dir.path(), "ignored-on-reload").unwrap();
        assert_eq!(a.verifier_key(), b.verifier_key());
        let vkey = fs::read_to_string(dir.path().join(VERIFIER_KEY_FILE)).unwrap();
        let verifier = Verifier::parse(&vkey).unwrap();
        assert_eq!(verifier.key_id(), a.key_id());
        let sig = a.sign(b"consent");
        verifier.verify(b"consent", &sig).unwrap();
        assert!(verifier.verify(b"consenT", &sig).is_err());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join(SIGNING_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn verifier_key_hash_is_checked() {
        let signer = Signer::new(SigningKey::from_bytes(&[7; 32]), "civex/x");
        let vkey = signer.verifier_key();
        assert!(Verifier::parse(&vkey).is_ok());
        let tampered = vkey.replacen("civex/x", "civex/y", 1);
        assert!(Verifier::parse(&tampered).is_err());
    }
}
