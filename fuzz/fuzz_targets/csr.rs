//! CSR parsing and signing never panic; whatever is issued names exactly the
//! agency it was issued for, whatever the CSR asked for.
#![no_main]

use std::sync::OnceLock;

use civex_cli::pki::DevCa;
use civex_gateway::{authority::Ca, net::identity::agency_of};
use libfuzzer_sys::fuzz_target;

fn ca() -> &'static Ca {
    static CA: OnceLock<Ca> = OnceLock::new();
    CA.get_or_init(|| Ca::generate("fuzz CA").expect("CA"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(pem) = std::str::from_utf8(data) else { return };
    if let Ok(issued) = ca().sign_csr(pem, "qujing-fuzz", 1) {
        let (_, der) = x509_parser::pem::parse_x509_pem(issued.cert_pem.as_bytes()).expect("issued PEM");
        let (agency, serial) = agency_of(&der.contents).expect("an issued certificate names one agency");
        assert_eq!(agency, "qujing-fuzz");
        assert_eq!(serial, issued.serial);
    }
});
