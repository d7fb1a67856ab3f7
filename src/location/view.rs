//! The host pool as the API shows it (`GET /v1/locations`).

use std::collections::BTreeMap;

use serde_json::json;

use super::model::PoolHost;

pub use crate::wire::{PoolHostView, PoolView};

impl PoolHostView {
    pub fn of<H, M>(h: &PoolHost<H, M>) -> Self {
        let s = &h.state;
        PoolHostView {
            name: s.name.clone(),
            address: h.address.clone(),
            state: h.phase().as_str().into(),
            provisioned: h.provisioned.is_some(),
            sensors: BTreeMap::from([
                ("host.cpus".to_string(), json!(s.cpus)),
                ("host.memory_bytes".to_string(), json!(s.memory_bytes)),
                ("host.containers".to_string(), json!(s.containers())),
                ("host.reserved.cpus".to_string(), json!(s.reserved_cpus)),
                (
                    "host.reserved.memory_bytes".to_string(),
                    json!(s.reserved_memory_bytes),
                ),
                ("host.cpu.usage".to_string(), json!(s.cpu_usage)),
            ]),
        }
    }
}
