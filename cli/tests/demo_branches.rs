//! The demo's samples against the predicates: every branch `civex demo`
//! prints a citizen for must answer as its label says, on the embedded
//! registries `civex import` fills.

use std::{collections::HashMap, sync::Arc, time::Duration};

use civex_adapters::{Adapter, Department, RegistryStore, citizen_id::CitizenId};
use civex_gateway::{
    departments::Departments,
    policy::predicates::{Thresholds, evaluate, predicate},
};
use time::{Date, macros::date};

const TODAY: Date = date!(2026 - 06 - 01);

/// The demo's samples are what the demo prints for each predicate: each must answer as its label says.
#[tokio::test]
async fn every_demo_sample_answers_as_its_branch_says() {
    for seed in [1, 2015] {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("files");
        let samples = civex_cli::demo_data::generate_on(200, seed, TODAY, &files).unwrap();
        let registries = civex_adapters::EmbeddedRegistries::temporary().unwrap();
        let mut adapters: Vec<Arc<dyn Adapter>> = Vec::new();
        for department in Department::ALL {
            let file = std::fs::File::open(files.join(format!("{}.jsonl", department.code()))).unwrap();
            civex_adapters::import::import(&registries, department, std::io::BufReader::new(file)).unwrap();
            adapters.push(RegistryStore::open(&registries, department).unwrap());
        }
        let departments = Departments::new(adapters, Duration::from_secs(5));
        for branch in civex_cli::demo_data::BRANCHES {
            let sample = samples
                .iter()
                .find(|s| s.label == branch.label)
                .unwrap_or_else(|| panic!("seed {seed}: no sample for {}", branch.label));
            let citizen = CitizenId::parse_on(&sample.citizen_id, TODAY).unwrap();
            let params: HashMap<String, String> = sample
                .params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect();
            let outcome = evaluate(
                predicate(branch.predicate()).unwrap(),
                &citizen,
                &params,
                &departments,
                &Thresholds::default(),
                TODAY,
            )
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: {}: {e}", branch.label));
            assert_eq!(
                outcome.satisfied, branch.satisfied,
                "seed {seed}: {}: {:#?}",
                branch.label, outcome.reasons
            );
        }
    }
}
