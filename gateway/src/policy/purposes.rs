//! The purpose registry: every purpose a consent or an access right may
//! name, with the clause that makes it legitimate.

use crate::error::{Error, Reason};

/// A registered purpose of use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purpose {
    pub code: &'static str,
    pub description: &'static str,
    /// The document and clause that make this use legitimate.
    pub basis: &'static str,
    /// Days a use for this purpose stays out of the citizen's access history
    /// (an investigation that must not be tipped off); 0 for none. Auditors
    /// always see it (DESIGN §16).
    pub disclosure_delay_days: u32,
}

/// The purpose of settling in a town or city (落户城镇).
pub const SETTLEMENT: &str = "hukou.settlement";

/// The purpose of hiring for a post a law closes to people with criminal
/// convictions: the only use of `ps.no_criminal_record`.
pub const RESTRICTED_POST: &str = "employment.restricted_post";

/// The purpose of a criminal investigation by public security: its uses
/// reach the citizen's history only after [`INVESTIGATION_DELAY_DAYS`].
pub const INVESTIGATION: &str = "public_security.investigation";
/// How long an investigation's uses stay out of the citizen's history.
pub const INVESTIGATION_DELAY_DAYS: u32 = 90;

/// Every purpose a consent or right may name.
pub static PURPOSES: &[Purpose] = &[
    Purpose {
        code: SETTLEMENT,
        description: "Settling household registration in a town or city (落户城镇)",
        basis: "曲政发〔2015〕82号（四）（五）（六）",
        disclosure_delay_days: 0,
    },
    Purpose {
        code: "hukou.return_rural",
        description: "Moving household registration back to the rural place of origin (回原籍农村落户)",
        basis: "曲政发〔2015〕82号（八）",
        disclosure_delay_days: 0,
    },
    Purpose {
        code: "residence_permit.issue",
        description: "Issuing a residence permit (居住证)",
        basis: "曲政发〔2015〕82号（十二）",
        disclosure_delay_days: 0,
    },
    Purpose {
        code: "education.enrollment",
        description: "School enrolment and exam eligibility of children who moved with their parents (随迁子女)",
        basis: "曲政发〔2015〕82号（十二）",
        disclosure_delay_days: 0,
    },
    Purpose {
        code: "social_insurance.transfer",
        description: "Transferring and continuing social insurance",
        basis: "曲政发〔2015〕82号（十二）（十三）",
        disclosure_delay_days: 0,
    },
    Purpose {
        code: "housing.guarantee",
        description: "Housing guarantee: public rental housing and rent subsidies",
        basis: "曲政发〔2015〕82号（十二）（十三）",
        disclosure_delay_days: 0,
    },
    Purpose {
        code: "social_assistance.review",
        description: "Reviewing minimum living allowance (低保) and other social assistance",
        basis: "曲政发〔2015〕82号（十三）",
        disclosure_delay_days: 0,
    },
    Purpose {
        code: "land.rights",
        description: "Administering land contract (土地承包经营权) and homestead (宅基地) rights",
        basis: "曲政发〔2015〕82号（十五）",
        disclosure_delay_days: 0,
    },
    Purpose {
        code: RESTRICTED_POST,
        description: "Hiring for a post a law closes to people with criminal convictions (teachers, \
                      security guards, drivers of passenger transport…)",
        basis: "公通字〔2021〕19号；《中华人民共和国教师法》第十四条",
        disclosure_delay_days: 0,
    },
    Purpose {
        code: INVESTIGATION,
        description: "A criminal investigation by public security (侦查), which the person concerned may not \
                      learn of at once",
        basis: "《中华人民共和国刑事诉讼法》第五十四条",
        disclosure_delay_days: INVESTIGATION_DELAY_DAYS,
    },
    Purpose {
        code: "tax.admin",
        description: "Tax administration",
        basis: "曲政发〔2015〕82号（十三）",
        disclosure_delay_days: 0,
    },
];

/// Looks a purpose up, refusing unknown codes with `UNKNOWN_PURPOSE`.
pub fn purpose(code: &str) -> Result<&'static Purpose, Error> {
    if code.is_empty() {
        return Err(Error::new(Reason::UnknownPurpose, "purpose is required"));
    }
    PURPOSES.iter().find(|p| p.code == code).ok_or_else(|| {
        let shown = super::labels::logged_label(code);
        Error::new(Reason::UnknownPurpose, format!("unknown purpose {shown:?}"))
    })
}
