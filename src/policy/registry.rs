//! The registry of running policies, kept by the management actor: who
//! answers for `(application, entity, policy)`, and what each was resolved
//! from, so a preset edit can reach every policy that uses it.

use std::collections::BTreeMap;

use actix::Recipient;

use super::{resolve, PolicyConfig, PolicyConfigError, PolicyControl, PolicyRegistered, Presets};
use crate::blueprint::PolicySpec;

pub struct Entry {
    pub kind: String,
    pub preset: Option<String>,
    pub spec: PolicySpec,
    pub control: Recipient<PolicyControl>,
}

#[derive(Default)]
pub struct PolicyRegistry {
    /// (app, entity, policy name) → entry.
    entries: BTreeMap<(String, String, String), Entry>,
}

impl PolicyRegistry {
    pub fn register(&mut self, r: PolicyRegistered) {
        let key = (r.app, r.entity, r.policy.name.clone());
        self.entries.insert(
            key,
            Entry {
                kind: r.policy.config.kind().to_string(),
                preset: r.policy.preset.clone(),
                spec: r.spec,
                control: r.control,
            },
        );
    }

    pub fn forget_app(&mut self, app: &str) {
        self.entries.retain(|(a, _, _), _| a != app);
    }

    /// Drops one policy (removed by an apply).
    pub fn forget(&mut self, app: &str, entity: &str, policy: &str) {
        self.entries
            .remove(&(app.to_string(), entity.to_string(), policy.to_string()));
    }

    /// The blueprint entry a policy is now resolved from (an apply
    /// reconfigured it), for later preset reloads.
    pub fn update_spec(&mut self, app: &str, entity: &str, policy: &str, spec: PolicySpec) {
        if let Some(e) =
            self.entries
                .get_mut(&(app.to_string(), entity.to_string(), policy.to_string()))
        {
            e.spec = spec;
        }
    }

    pub fn get(&self, app: &str, entity: &str, policy: &str) -> Option<&Entry> {
        self.entries
            .get(&(app.to_string(), entity.to_string(), policy.to_string()))
    }

    /// Policy names attached to an entity.
    pub fn names(&self, app: &str, entity: &str) -> Vec<String> {
        self.entries
            .keys()
            .filter(|(a, e, _)| a == app && e == entity)
            .map(|(_, _, p)| p.clone())
            .collect()
    }

    /// Every policy built from `preset`, with its config re-resolved
    /// against the new presets (the blueprint's overrides still win).
    pub fn using_preset<'a>(
        &'a self,
        preset: &'a str,
        presets: &'a Presets,
    ) -> impl Iterator<
        Item = (
            String,
            String,
            String,
            &'a Entry,
            Result<PolicyConfig, Vec<PolicyConfigError>>,
        ),
    > + 'a {
        self.entries
            .iter()
            .filter(move |(_, e)| e.preset.as_deref() == Some(preset))
            .map(move |((a, en, p), e)| {
                (
                    a.clone(),
                    en.clone(),
                    p.clone(),
                    e,
                    resolve(&e.spec, presets).map(|r| r.config),
                )
            })
    }
}
