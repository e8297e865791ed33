//! Audit leaves and checkpoint notes read back from a store or a peer never
//! panic their decoders.
#![no_main]

use civex_audit::{
    checkpoint,
    keys::{Signer, Verifier},
    search,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = search::entry(0, data.to_vec()) {
        assert_eq!(entry.leaf, data);
    }
    if let Ok(note) = std::str::from_utf8(data) {
        let signer = Signer::new(ed25519_dalek::SigningKey::from_bytes(&[7; 32]), "civex/fuzz");
        let verifier = Verifier::parse(&signer.verifier_key()).expect("verifier");
        let _ = checkpoint::verify(note, &verifier);
        let _ = Verifier::parse(note);
    }
});
