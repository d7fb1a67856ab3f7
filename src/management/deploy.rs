//! Deploy: a blueprint checked, stored, built into an application entity
//! and started. `drover serve --deploy` goes through [`DeployAtStart`],
//! which keeps an application the store already holds (rebound at start)
//! rather than refusing the second run.

use std::collections::BTreeMap;

use actix::prelude::*;

use crate::blueprint::{Blueprint, BlueprintErrors};
use crate::entity::application::ApplicationEntity;
use crate::metrics;
use crate::protocol::{now_ms, EntityRef};

use super::state_metrics::reservations;
use crate::policy::validate::{validate_blueprint, ValidationContext};
use super::{Activity, AppRecord, InvokeEffector, Management, ManagementError};

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
        let store = self.store.clone();
        let write = stored.clone();
        Box::pin(
            async move {
                match store {
                    Some(s) => s
                        .send(crate::store::StoreWrite::CreateApp(write))
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string()),
                    None => Ok(()),
                }
            }
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

/// `drover serve --deploy FILE`: deploys the blueprint, unless the store
/// already holds an application of that name (a second start with the same
/// flags), which is kept as it runs: nothing is touched.
#[derive(Message)]
#[rtype(result = "Result<DeployOutcome, ManagementError>")]
pub struct DeployAtStart {
    pub file: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployOutcome {
    Deployed(String),
    /// The application was already there and is kept. `changed`: the file
    /// differs from the blueprint it runs.
    Kept {
        id: String,
        changed: bool,
    },
}

/// What a start-up deploy does with an application of that name already
/// running from `stored` text.
pub fn keep_existing(id: &str, stored: &str, file_text: &str) -> DeployOutcome {
    DeployOutcome::Kept {
        id: id.to_string(),
        changed: stored.trim_end() != file_text.trim_end(),
    }
}

impl Handler<DeployAtStart> for Management {
    type Result = ResponseActFuture<Self, Result<DeployOutcome, ManagementError>>;
    fn handle(&mut self, msg: DeployAtStart, ctx: &mut Context<Self>) -> Self::Result {
        let existing = match self.validate(&msg.file, &msg.text) {
            Ok(bp) => self
                .apps
                .get(&bp.name)
                .map(|rec| (bp.name.clone(), rec.text.clone())),
            Err(e) => return Box::pin(fut::ready(Err(ManagementError::Blueprint(e)))),
        };
        let Some((id, stored)) = existing else {
            let deploy = Handler::<Deploy>::handle(
                self,
                Deploy {
                    file: msg.file,
                    text: msg.text,
                },
                ctx,
            );
            return Box::pin(deploy.map(|res, _, _| res.map(DeployOutcome::Deployed)));
        };
        let outcome = keep_existing(&id, &stored, &msg.text);
        let message = match &outcome {
            DeployOutcome::Kept { changed: true, .. } => {
                tracing::warn!(app = %id, file = %msg.file, "the running application was kept: {} differs from the blueprint it runs; `drover apply` (coming) will update it", msg.file);
                format!(
                    "{} differs from the running blueprint; the running application was kept (`drover apply`, coming, updates it)",
                    msg.file
                )
            }
            _ => {
                tracing::info!(app = %id, file = %msg.file, "already deployed from the store; kept as it runs");
                format!(
                    "{} is already deployed; the running application was kept",
                    msg.file
                )
            }
        };
        let changed = matches!(outcome, DeployOutcome::Kept { changed: true, .. });
        self.record(Activity {
            kind: "event".into(),
            ..Activity::policy(
                &id,
                &id,
                "deploy.kept",
                serde_json::json!({ "file": msg.file, "changed": changed }),
                "ok",
                message,
            )
        });
        Box::pin(fut::ready(Ok(outcome)))
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
                reservations: reservations(&bp),
                blueprint: bp,
                text,
                file,
                created_ms,
                destroying: false,
                entity,
            },
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_file_keeps_the_application_unchanged() {
        let text = "name: shop\nservices: []\n";
        assert_eq!(
            keep_existing("shop", text, text),
            DeployOutcome::Kept {
                id: "shop".into(),
                changed: false
            }
        );
        // An editor's trailing newline is not a change.
        assert_eq!(
            keep_existing("shop", text, "name: shop\nservices: []\n\n"),
            DeployOutcome::Kept {
                id: "shop".into(),
                changed: false
            }
        );
    }

    #[test]
    fn a_different_file_keeps_the_application_and_says_so() {
        assert_eq!(
            keep_existing("shop", "name: shop\n", "name: shop\nlocation: local\n"),
            DeployOutcome::Kept {
                id: "shop".into(),
                changed: true
            }
        );
    }
}
