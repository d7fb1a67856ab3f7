//! Effector calls on entities, each recorded as an activity with its
//! duration and outcome.

use std::time::Instant;

use actix::prelude::*;

use crate::metrics;
use crate::protocol::{now_ms, EntityError, EntityRef, Invoke};

use super::{Activity, Management, ManagementError};

/// Calls an effector on an entity, recording it as an activity.
#[derive(Message, Clone)]
#[rtype(result = "Result<serde_json::Value, ManagementError>")]
pub struct InvokeEffector {
    pub app: String,
    pub entity: String,
    pub effector: String,
    pub args: serde_json::Value,
}

/// Fire-and-forget wrapper (the result is only recorded).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detached(InvokeEffector);

impl InvokeEffector {
    pub fn detached(self) -> Detached {
        Detached(self)
    }
}

impl Handler<Detached> for Management {
    type Result = ();
    fn handle(&mut self, Detached(msg): Detached, ctx: &mut Context<Self>) {
        let fut = <Self as Handler<InvokeEffector>>::handle(self, msg, ctx);
        ctx.spawn(fut.map(|_, _, _| ()));
    }
}

impl Handler<InvokeEffector> for Management {
    type Result = ResponseActFuture<Self, Result<serde_json::Value, ManagementError>>;
    fn handle(&mut self, msg: InvokeEffector, _: &mut Context<Self>) -> Self::Result {
        let Some(app) = self.apps.get(&msg.app) else {
            return Box::pin(fut::ready(Err(ManagementError::NoApplication(msg.app))));
        };
        if app.destroying {
            return Box::pin(fut::ready(Err(ManagementError::Destroying(msg.app))));
        }
        let key = EntityRef::new(msg.app.clone(), msg.entity.clone());
        let Some(handle) = self.handles.get(&key).cloned() else {
            return Box::pin(fut::ready(Err(ManagementError::NoEntity {
                app: msg.app,
                entity: msg.entity,
            })));
        };
        let t0 = Instant::now();
        let span = tracing::info_span!("effector", app = %msg.app, entity = %msg.entity, effector = %msg.effector);
        let invoke = Invoke::with_args(&msg.effector, msg.args.clone());
        let fut =
            tracing::Instrument::instrument(async move { handle.invoke.send(invoke).await }, span);
        Box::pin(fut.into_actor(self).map(move |res, act, _| {
            let res = res.unwrap_or_else(|e| Err(EntityError::Unreachable { entity: key.to_string(), message: e.to_string() }));
            let outcome = if res.is_ok() { "ok" } else { "error" };
            let elapsed = t0.elapsed().as_secs_f64();
            // Unknown effector names would make labels unbounded: fold them.
            let label = if matches!(res, Err(EntityError::UnknownEffector { .. })) { "unknown" } else { msg.effector.as_str() };
            metrics::EFFECTOR_DURATION.with_label_values(&[label, outcome]).observe(elapsed);
            match &res {
                Ok(_) => tracing::info!(app = %msg.app, entity = %msg.entity, effector = %msg.effector, seconds = elapsed, "effector done"),
                Err(e) => tracing::warn!(app = %msg.app, entity = %msg.entity, effector = %msg.effector, error = %e, "effector failed"),
            }
            act.record(Activity {
                id: 0,
                time_ms: now_ms(),
                application: msg.app.clone(),
                entity: msg.entity.clone(),
                kind: "effector".into(),
                name: msg.effector.clone(),
                args: msg.args.clone(),
                outcome: outcome.into(),
                message: res.as_ref().err().map(|e| e.to_string()),
                duration_seconds: elapsed,
            });
            res.map_err(ManagementError::from)
        }))
    }
}
