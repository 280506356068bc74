//! Reverse-proxy services: what users define in the UI. Domains are unique across
//! services, enforced by an index table written in the same transaction.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::{Result, SERVICE_DOMAINS, SERVICES, Store, decode, encode, read_all, read_one};
use capstan_proto::{Balance, Endpoint, HeaderSpec};

/// A service as stored (already validated and normalised by the API layer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub domains: Vec<String>,
    pub balance: Balance,
    /// Targets for `/`.
    pub placements: Vec<Placement>,
    /// Extra path-prefix routes with their own targets.
    #[serde(default)]
    pub routes: Vec<Route>,
    pub connect_timeout_secs: u32,
    pub read_timeout_secs: u32,
    pub send_timeout_secs: u32,
    pub client_max_body_size_mb: u32,
    #[serde(default)]
    pub request_headers: Vec<HeaderSpec>,
    #[serde(default)]
    pub response_headers: Vec<HeaderSpec>,
    pub websocket: bool,
    pub max_fails: u32,
    pub fail_timeout_secs: u32,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    pub node_id: String,
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub path: String,
    pub placements: Vec<Placement>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    pub weight: u32,
    pub backup: bool,
}

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ServiceWriteError {
    /// `index`: the domain's position in the written record.
    #[error("domain {domain} already belongs to service {owner}")]
    DomainTaken {
        index: usize,
        domain: String,
        owner: String,
    },
    #[error("a service named {0} already exists")]
    NameTaken(String),
    #[error("service not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] super::StoreError),
}

impl Store {
    pub fn list_services(&self) -> Result<Vec<ServiceRecord>> {
        let mut all: Vec<ServiceRecord> = read_all(&*self.db()?, SERVICES, "services")?;
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    pub fn get_service(&self, id: &str) -> Result<Option<ServiceRecord>> {
        read_one(&*self.db()?, SERVICES, "services", id)
    }

    /// Inserts or replaces a service, re-indexing its domains, in one transaction.
    /// `create` refuses to overwrite; an update refuses an unknown ID.
    pub fn put_service(
        &self,
        service: &ServiceRecord,
        create: bool,
    ) -> std::result::Result<(), ServiceWriteError> {
        let tx = self.db()?.begin_write().map_err(super::StoreError::from)?;
        {
            let mut services = tx.open_table(SERVICES).map_err(super::StoreError::from)?;
            let mut domains = tx
                .open_table(SERVICE_DOMAINS)
                .map_err(super::StoreError::from)?;
            let existing = services
                .get(service.id.as_str())
                .map_err(super::StoreError::from)?
                .map(|v| v.value().to_vec());
            let old: Option<ServiceRecord> =
                existing.map(|b| decode("services", &b)).transpose()?;
            match (&old, create) {
                (Some(_), true) => return Err(ServiceWriteError::NameTaken(service.name.clone())),
                (None, false) => return Err(ServiceWriteError::NotFound),
                _ => {}
            }
            for row in services.iter().map_err(super::StoreError::from)? {
                let (k, v) = row.map_err(super::StoreError::from)?;
                if k.value() == service.id {
                    continue;
                }
                let other: ServiceRecord = decode("services", v.value())?;
                if other.name == service.name {
                    return Err(ServiceWriteError::NameTaken(service.name.clone()));
                }
            }
            for (index, d) in service.domains.iter().enumerate() {
                let owner = domains
                    .get(d.as_str())
                    .map_err(super::StoreError::from)?
                    .map(|v| v.value().to_string());
                if let Some(owner) = owner
                    && owner != service.id
                {
                    let owner_name = services
                        .get(owner.as_str())
                        .map_err(super::StoreError::from)?
                        .map(|v| decode::<ServiceRecord>("services", v.value()))
                        .transpose()?
                        .map(|s| s.name)
                        .unwrap_or(owner);
                    return Err(ServiceWriteError::DomainTaken {
                        index,
                        domain: d.clone(),
                        owner: owner_name,
                    });
                }
            }
            if let Some(old) = &old {
                for d in &old.domains {
                    domains
                        .remove(d.as_str())
                        .map_err(super::StoreError::from)?;
                }
            }
            for d in &service.domains {
                domains
                    .insert(d.as_str(), service.id.as_str())
                    .map_err(super::StoreError::from)?;
            }
            services
                .insert(service.id.as_str(), encode(service).as_slice())
                .map_err(super::StoreError::from)?;
        }
        tx.commit().map_err(super::StoreError::from)?;
        Ok(())
    }

    pub fn delete_service(&self, id: &str) -> Result<bool> {
        let tx = self.db()?.begin_write()?;
        let existed = {
            let mut services = tx.open_table(SERVICES)?;
            let removed = services.remove(id)?.map(|v| v.value().to_vec());
            match removed {
                Some(bytes) => {
                    let old: ServiceRecord = decode("services", &bytes)?;
                    let mut domains = tx.open_table(SERVICE_DOMAINS)?;
                    for d in &old.domains {
                        domains.remove(d.as_str())?;
                    }
                    true
                }
                None => false,
            }
        };
        tx.commit()?;
        Ok(existed)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn service(id: &str, name: &str, domains: &[&str]) -> ServiceRecord {
        ServiceRecord {
            id: id.into(),
            name: name.into(),
            enabled: true,
            domains: domains.iter().map(|d| d.to_string()).collect(),
            balance: Balance::RoundRobin,
            placements: vec![],
            routes: vec![],
            connect_timeout_secs: 5,
            read_timeout_secs: 60,
            send_timeout_secs: 60,
            client_max_body_size_mb: 10,
            request_headers: vec![],
            response_headers: vec![],
            websocket: true,
            max_fails: 3,
            fail_timeout_secs: 10,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn domains_are_unique_and_reindexed_on_update_and_delete() {
        let (_d, s) = crate::store::temp();
        s.put_service(&service("1", "a", &["a.com", "x.com"]), true)
            .expect("create a");
        match s.put_service(&service("2", "b", &["x.com"]), true) {
            Err(ServiceWriteError::DomainTaken { domain, owner, .. }) => {
                assert_eq!((domain.as_str(), owner.as_str()), ("x.com", "a"));
            }
            other => panic!("expected DomainTaken, got {other:?}"),
        }
        assert!(matches!(
            s.put_service(&service("2", "a", &["b.com"]), true),
            Err(ServiceWriteError::NameTaken(_))
        ));
        // Moving x.com off service a frees it.
        s.put_service(&service("1", "a", &["a.com"]), false)
            .expect("update a");
        s.put_service(&service("2", "b", &["x.com"]), true)
            .expect("create b");
        assert!(s.delete_service("2").expect("delete"));
        s.put_service(&service("3", "c", &["x.com"]), true)
            .expect("x.com free after delete");
        assert!(matches!(
            s.put_service(&service("9", "z", &[]), false),
            Err(ServiceWriteError::NotFound)
        ));
        assert_eq!(s.list_services().expect("list").len(), 2);
    }
}
