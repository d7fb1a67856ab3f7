//! Destroy: an application's containers and network removed, then the
//! application forgotten everywhere: the read model, open outages, metrics,
//! and its saved cluster membership and policy memory (in memory and in the
//! store), so that a new application of that name starts afresh.

use std::time::Instant;

use actix::prelude::*;

use crate::metrics;
use crate::protocol::{now_ms, EntityError, EntityRef, Teardown};

use super::{Activity, Management, ManagementError};

/// Destroys an application: removes its containers and network, then
/// forgets it.
#[derive(Message)]
#[rtype(result = "Result<(), ManagementError>")]
pub struct Destroy(pub String);

impl Handler<Destroy> for Management {
    type Result = ResponseActFuture<Self, Result<(), ManagementError>>;
    fn handle(&mut self, Destroy(app): Destroy, _: &mut Context<Self>) -> Self::Result {
        let Some(rec) = self.apps.get_mut(&app) else {
            return Box::pin(fut::ready(Err(ManagementError::NoApplication(app))));
        };
        if rec.destroying {
            return Box::pin(fut::ready(Err(ManagementError::Destroying(app))));
        }
        rec.destroying = true;
        let root = EntityRef::new(app.clone(), app.clone());
        let Some(handle) = self.handles.get(&root).cloned() else {
            self.unpublish_app(&app);
            self.forget_saved(&app);
            return Box::pin(fut::ready(Ok(())));
        };
        let t0 = Instant::now();
        // The intent first: a crash mid-destroy is finished on rebind.
        let store = self.store.clone();
        let intent = self.apps.get(&app).map(|r| crate::store::StoredApp {
            id: app.clone(),
            file: r.file.clone(),
            text: r.text.clone(),
            created_ms: r.created_ms,
            destroying: true,
        });
        let app_id = app.clone();
        Box::pin(
            async move {
                if let (Some(s), Some(intent)) = (&store, intent) {
                    if let Ok(Err(e)) = s.send(crate::store::StoreWrite::PutApp(intent)).await {
                        tracing::error!(app = %app_id, error = %e, "cannot record the destroy intent; destroying anyway");
                    }
                }
                let res = handle.teardown.send(Teardown).await;
                if matches!(res, Ok(Ok(()))) {
                    if let Some(s) = &store {
                        let _ = s.send(crate::store::StoreWrite::DeleteApp(app_id)).await;
                    }
                }
                res
            }
                .into_actor(self)
                .map(move |res, act, _| {
                    let res: Result<(), EntityError> = res.unwrap_or_else(|e| {
                        Err(EntityError::Unreachable {
                            entity: app.clone(),
                            message: e.to_string(),
                        })
                    });
                    let outcome = if res.is_ok() { "ok" } else { "error" };
                    metrics::EFFECTOR_DURATION
                        .with_label_values(&["destroy", outcome])
                        .observe(t0.elapsed().as_secs_f64());
                    act.record(Activity {
                        id: 0,
                        time_ms: now_ms(),
                        application: app.clone(),
                        entity: app.clone(),
                        kind: "effector".into(),
                        name: "destroy".into(),
                        args: serde_json::json!({}),
                        outcome: outcome.into(),
                        message: res.as_ref().err().map(|e| e.to_string()),
                        duration_seconds: t0.elapsed().as_secs_f64(),
                    });
                    match res {
                        Ok(()) => {
                            act.unpublish_app(&app);
                            act.view.model_mut().forget_app(&app);
                            act.handles.retain(|k, _| k.app != app);
                            act.notices.retain(|k, _| k.app != app);
                            act.recovery.forget_app(&app);
                            act.forget_saved(&app);
                            metrics::forget_application(&app);
                            tracing::info!(app = %app, "destroyed");
                            Ok(())
                        }
                        Err(e) => {
                            if let Some(r) = act.apps.get_mut(&app) {
                                r.destroying = false;
                            }
                            Err(e.into())
                        }
                    }
                }),
        )
    }
}
