//! The host pool as the API shows it (`GET /v1/locations`).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;

use super::model::PoolHost;
use crate::placement::Headroom;
use crate::policy::placement::PlacementView;

#[derive(Debug, Clone, Serialize)]
pub struct PoolView {
    pub location: String,
    pub hosts: Vec<PoolHostView>,
    pub headroom: Headroom,
    pub provisioning: bool,
    pub waiting: usize,
    pub decisions: Vec<String>,
    pub events: Vec<String>,
    /// The CPU placement policy's view (watched containers, moves).
    pub placement: PlacementView,
}

#[derive(Debug, Clone, Serialize)]
pub struct PoolHostView {
    pub name: String,
    pub address: String,
    /// `running`, `on-fire`, `decommissioning`, `draining`, `cordoned`.
    pub state: String,
    pub provisioned: bool,
    /// Sensors: `host.cpus`, `host.memory_bytes`, `host.containers`,
    /// `host.reserved.cpus`, `host.reserved.memory_bytes`, `host.cpu.usage`.
    pub sensors: BTreeMap<String, serde_json::Value>,
}

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
