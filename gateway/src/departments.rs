//! The departments behind the gateway: one [`Adapter`] per department (its
//! embedded registry or its own system), asked in parallel with a deadline,
//! answers joined in the order asked.

use std::{collections::HashMap, sync::Arc, time::Duration};

use civex_adapters::{Adapter, Attribute, Department};
use civex_proto::v1::Fact;
use futures::future::try_join_all;

use crate::error::{Error, Reason};

/// Every department's adapter.
pub struct Departments {
    adapters: HashMap<Department, Arc<dyn Adapter>>,
    deadline: Duration,
}

impl Departments {
    pub fn new(adapters: impl IntoIterator<Item = Arc<dyn Adapter>>, deadline: Duration) -> Departments {
        let adapters = adapters.into_iter().map(|a| (a.department(), a)).collect();
        Departments { adapters, deadline }
    }

    /// Each department behind a circuit breaker, and whether it is open.
    pub fn circuits(&self) -> Vec<(Department, bool)> {
        self.adapters
            .iter()
            .filter_map(|(department, a)| Some((*department, a.circuit_open()?)))
            .collect()
    }

    /// Facts for every attribute, in the order asked; all or an error (no
    /// partial answers). Departments are asked concurrently, each within the deadline.
    pub async fn fetch(&self, citizen_id: &str, attributes: &[&'static Attribute]) -> Result<Vec<Fact>, Error> {
        let mut by_department: Vec<(Department, Vec<&'static Attribute>)> = Vec::new();
        for a in attributes {
            match by_department.iter_mut().find(|(d, _)| *d == a.department) {
                Some((_, list)) => list.push(a),
                None => by_department.push((a.department, vec![a])),
            }
        }
        let answers = try_join_all(by_department.iter().map(|(department, asked)| async move {
            let adapter = self.adapters.get(department).ok_or_else(|| {
                Error::new(
                    Reason::SourceUnavailable,
                    format!("no source configured for department {department}"),
                )
            })?;
            let unavailable = |cause: String| {
                tracing::warn!(%department, %cause, "source failed");
                Error::new(
                    Reason::SourceUnavailable,
                    format!("department {department} is unavailable"),
                )
            };
            match tokio::time::timeout(self.deadline, adapter.fetch(citizen_id, asked)).await {
                Ok(Ok(facts)) if facts.len() == asked.len() => Ok(facts),
                Ok(Ok(facts)) => Err(unavailable(format!(
                    "answered {} facts for {} asked",
                    facts.len(),
                    asked.len()
                ))),
                Ok(Err(e)) => Err(unavailable(e.to_string())),
                Err(_) => Err(unavailable(format!("no answer within {:?}", self.deadline))),
            }
        }))
        .await?;
        let mut facts: HashMap<&str, Fact> = HashMap::with_capacity(attributes.len());
        for (fact, asked) in answers
            .into_iter()
            .zip(&by_department)
            .flat_map(|(f, (_, a))| f.into_iter().zip(a.iter()))
        {
            facts.insert(asked.name, fact);
        }
        Ok(attributes.iter().filter_map(|a| facts.remove(a.name)).collect())
    }
}
