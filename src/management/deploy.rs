//! Deploy: a blueprint checked, stored, built into an application entity
//! and started. `drover serve --deploy` and `drover apply` go through
//! [`super::Apply`], which deploys when the application does not exist.

use std::collections::BTreeMap;

use actix::prelude::*;

use crate::blueprint::{Blueprint, BlueprintErrors};
use crate::entity::application::ApplicationEntity;
use crate::metrics;
use crate::protocol::{now_ms, EntityRef};

use super::{AppRecord, InvokeEffector, Management, ManagementError};
use crate::policy::validate::{validate_blueprint, ValidationContext};

/// Deploys blueprint text: parses and checks it against this service's
/// locations and presets, creates the application and starts it. Answers
/// once the application exists; the start goes on. Nothing is created if
/// any check fails.
#[derive(Message)]
#[rtype(result = "Result<String, ManagementError>")]
pub struct Deploy {
    /// Names the text in errors: a path, or `<request>`.
    pub file: String,
    pub text: String,
}

impl Management {
    /// The one validation ([`validate_blueprint`]) in this service's context.
    pub(super) fn validate(&self, file: &str, text: &str) -> Result<Blueprint, BlueprintErrors> {
        let locations: Vec<String> = self.locations.keys().cloned().collect();
        let secrets: Vec<String> = crate::host::runtime::SECRET_FILES
            .get()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let cx = ValidationContext {
            presets: &self.presets,
            locations: Some(&locations),
            check_build_contexts: true,
            secrets: Some(&secrets),
            allowed_host_paths: Some(&self.allowed_host_paths),
            build_roots: self.build_roots.as_deref(),
            uploads: self.uploads.as_ref(),
        };
        validate_blueprint(file, text, &cx)
    }
}

impl Handler<Deploy> for Management {
    type Result = ResponseActFuture<Self, Result<String, ManagementError>>;
    fn handle(&mut self, msg: Deploy, _: &mut Context<Self>) -> Self::Result {
        let bp = match self.validate(&msg.file, &msg.text) {
            Ok(bp) => bp,
            Err(e) => return Box::pin(fut::ready(Err(ManagementError::Blueprint(e)))),
        };
        let id = bp.name.clone();
        if self.apps.contains_key(&id) || !self.pending_deploys.insert(id.clone()) {
            return Box::pin(fut::ready(Err(ManagementError::Exists(id))));
        }
        // A new application: nothing an earlier one of that name left
        // (cluster numbering, policy memory) may seed it.
        self.forget_saved(&id);
        let stored = crate::store::StoredApp {
            id: id.clone(),
            file: msg.file.clone(),
            text: msg.text.clone(),
            created_ms: now_ms(),
            destroying: false,
        };
        // Acknowledged only once stored: a crash after the answer cannot
        // lose the application.
        Box::pin(
            self.store_write(crate::store::StoreWrite::CreateApp(stored.clone()))
                .into_actor(self)
                .map(move |res, act, ctx| {
                    act.pending_deploys.remove(&id);
                    res.map_err(ManagementError::Store)?;
                    act.create_app(ctx, bp, stored.created_ms, stored.file, stored.text);
                    Ok(id)
                }),
        )
    }
}

impl Management {
    /// Builds an application's actors and starts it (deploy and rebind).
    pub(super) fn create_app(
        &mut self,
        ctx: &mut Context<Self>,
        bp: Blueprint,
        created_ms: u64,
        file: String,
        text: String,
    ) -> String {
        let id = bp.name.clone();
        let at = self
            .locations
            .get(&bp.location)
            .cloned()
            .or_else(|| self.locations.values().next().cloned())
            .expect("at least the local location");
        // Checked above: every policy resolves.
        let policies: BTreeMap<String, Vec<crate::policy::ResolvedPolicy>> = bp
            .services
            .iter()
            .map(|svc| {
                (
                    svc.id.clone(),
                    svc.policies
                        .iter()
                        .filter_map(|p| crate::policy::resolve(p, &self.presets).ok())
                        .collect(),
                )
            })
            .collect();
        let mut links = self.links(ctx);
        // A rebind keeps the digests this deploy pinned; a new deploy has none.
        links.images = crate::entity::images::ImagePins::restore(
            &id,
            links.saved_policy(&id, &id, crate::entity::images::PINS),
            links.store.clone(),
        );
        let tune = self.pools.get(&bp.location).map(|p| p.clone().recipient());
        let factory = crate::policy_factory::BlueprintPolicies::new(
            &bp,
            policies,
            links.clone(),
            ctx.address().recipient(),
            tune,
        );
        let addr =
            ApplicationEntity::new(bp.clone(), at, links, std::sync::Arc::new(factory)).start();
        let handle = ApplicationEntity::handle(&addr);
        let entity = Some(addr.clone());
        let me = EntityRef::new(id.clone(), id.clone());
        self.register(ctx, me.clone(), None, handle);
        self.apps.insert(
            id.clone(),
            AppRecord {
                blueprint: bp,
                text,
                file,
                created_ms,
                destroying: false,
                entity,
            },
        );
        self.publish_app(&id);
        tracing::info!(app = %id, "deploying");
        {
            use crate::blueprint::ServiceType;
            let bp = &self.apps[&id].blueprint;
            let of = |kinds: &[ServiceType]| -> Vec<&str> {
                bp.services
                    .iter()
                    .filter(|s| kinds.contains(&s.kind))
                    .map(|s| s.id.as_str())
                    .collect()
            };
            metrics::init_application(
                &id,
                &of(&[ServiceType::Container, ServiceType::Cluster]),
                &of(&[ServiceType::Cluster]),
            );
        }
        // The start is an effector call like any other, recorded as such.
        ctx.notify(
            InvokeEffector {
                app: id.clone(),
                entity: id.clone(),
                effector: "start".into(),
                args: serde_json::json!({}),
            }
            .detached(),
        );
        id
    }
}
