//! The read-only answers of the REST API, computed from the read model
//! and the activity record: applications, entities, sensors, activities,
//! hosts, locations, and the metrics scrape.

use std::collections::{BTreeMap, BTreeSet};

use actix::prelude::*;

use crate::metrics;
use crate::protocol::{EntityRef, SensorValue};

use super::read_model::{latest_activities, PageToken};
use super::{
    Activity, AppDetail, AppSummary, EntityView, HostView, Management, ManagementError,
    ACTIVITY_LIMIT_MAX,
};

#[derive(Message)]
#[rtype(result = "Vec<AppSummary>")]
pub struct ListApps;

impl Handler<ListApps> for Management {
    type Result = Vec<AppSummary>;
    fn handle(&mut self, _: ListApps, _: &mut Context<Self>) -> Vec<AppSummary> {
        self.apps
            .iter()
            .map(|(id, rec)| self.summary(id, rec))
            .collect()
    }
}

/// `GET /v1/applications/{app}`, the whole tree or one page of it.
#[derive(Message)]
#[rtype(result = "Result<AppDetail, ManagementError>")]
pub struct GetApp {
    pub app: String,
    /// `Some((limit, after))`: a page of at most `limit` entities.
    pub page: Option<(usize, Option<PageToken>)>,
}

impl Handler<GetApp> for Management {
    type Result = Result<AppDetail, ManagementError>;
    fn handle(&mut self, GetApp { app, page }: GetApp, _: &mut Context<Self>) -> Self::Result {
        let rec = self
            .apps
            .get(&app)
            .ok_or_else(|| ManagementError::NoApplication(app.clone()))?;
        let (entities, next) = match page {
            None => (self.model.app_entities(&app), None),
            Some((limit, after)) => self.model.app_page(&app, limit, after.as_ref()),
        };
        let ids: BTreeSet<&str> = entities.iter().map(|e| e.id.as_str()).collect();
        let latest_activities = latest_activities(&self.activities, &app, &ids, rec.created_ms);
        Ok(AppDetail {
            summary: self.summary(&app, rec),
            entities,
            blueprint: rec.blueprint.clone(),
            latest_activities,
            next_page: next.map(|t| t.to_string()),
        })
    }
}

#[derive(Message)]
#[rtype(result = "Result<Vec<EntityView>, ManagementError>")]
pub struct GetEntities(pub String);

impl Handler<GetEntities> for Management {
    type Result = Result<Vec<EntityView>, ManagementError>;
    fn handle(&mut self, GetEntities(app): GetEntities, _: &mut Context<Self>) -> Self::Result {
        if !self.apps.contains_key(&app) {
            return Err(ManagementError::NoApplication(app));
        }
        Ok(self.model.app_entities(&app))
    }
}

#[derive(Message)]
#[rtype(result = "Result<BTreeMap<String, SensorValue>, ManagementError>")]
pub struct GetSensors {
    pub app: String,
    pub entity: String,
}

impl Handler<GetSensors> for Management {
    type Result = Result<BTreeMap<String, SensorValue>, ManagementError>;
    fn handle(&mut self, msg: GetSensors, _: &mut Context<Self>) -> Self::Result {
        if !self.apps.contains_key(&msg.app) {
            return Err(ManagementError::NoApplication(msg.app));
        }
        self.model
            .get(&EntityRef::new(msg.app.clone(), msg.entity.clone()))
            .map(|v| v.sensors.clone())
            .ok_or(ManagementError::NoEntity {
                app: msg.app,
                entity: msg.entity,
            })
    }
}

/// Filters of `GET /v1/activities`.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityFilter {
    pub application: Option<String>,
    pub entity: Option<String>,
    /// `effector`, `policy` or `event`.
    pub kind: Option<String>,
    /// Activities whose name starts with this: `restarter.`, `replace`.
    pub name: Option<String>,
    /// At most this many (default 100, capped at [`ACTIVITY_LIMIT_MAX`]).
    pub limit: Option<usize>,
}

#[derive(Message)]
#[rtype(result = "Vec<Activity>")]
pub struct ListActivities(pub ActivityFilter);

impl Handler<ListActivities> for Management {
    type Result = Vec<Activity>;
    fn handle(
        &mut self,
        ListActivities(f): ListActivities,
        _: &mut Context<Self>,
    ) -> Vec<Activity> {
        self.activities
            .iter()
            .filter(|a| f.application.as_ref().is_none_or(|x| &a.application == x))
            .filter(|a| f.entity.as_ref().is_none_or(|x| &a.entity == x))
            .filter(|a| f.kind.as_ref().is_none_or(|x| &a.kind == x))
            .filter(|a| {
                f.name
                    .as_ref()
                    .is_none_or(|x| a.name.starts_with(x.as_str()))
            })
            .take(f.limit.unwrap_or(100).min(ACTIVITY_LIMIT_MAX))
            .cloned()
            .collect()
    }
}

#[derive(Message)]
#[rtype(result = "Vec<HostView>")]
pub struct ListHosts;

impl Handler<ListHosts> for Management {
    type Result = Vec<HostView>;
    fn handle(&mut self, _: ListHosts, _: &mut Context<Self>) -> Vec<HostView> {
        let mut seen = std::collections::BTreeSet::new();
        self.locations
            .values()
            .filter(|p| seen.insert(p.host_name.clone()))
            .map(|p| HostView {
                name: p.host_name.clone(),
                address: p.host_address.clone(),
                containers: self.model.containers_on(&p.host_name),
                machine: self.host_machine.get(&p.host_name).cloned(),
            })
            .collect()
    }
}

/// The locations with host pools, each with its hosts (and their
/// sensors), headroom, recent placement decisions and pool events
/// (`GET /v1/locations`).
#[derive(Message)]
#[rtype(result = "Vec<crate::location::pool::PoolView>")]
pub struct ListLocations;

impl Handler<ListLocations> for Management {
    type Result = ResponseFuture<Vec<crate::location::pool::PoolView>>;
    fn handle(&mut self, _: ListLocations, _: &mut Context<Self>) -> Self::Result {
        let pools: Vec<_> = self.pools.values().cloned().collect();
        Box::pin(async move {
            let views = futures_util::future::join_all(
                pools.iter().map(|p| p.send(crate::location::pool::GetPool)),
            )
            .await;
            views.into_iter().filter_map(Result::ok).collect()
        })
    }
}

/// An operator's drain or uncordon of one pool host.
#[derive(Message)]
#[rtype(result = "Result<crate::wire::HostOpAnswer, ManagementError>")]
pub struct PoolHostOp {
    pub location: String,
    pub host: String,
    pub op: crate::location::pool::HostOpKind,
}

impl Handler<PoolHostOp> for Management {
    type Result = ResponseFuture<Result<crate::wire::HostOpAnswer, ManagementError>>;
    fn handle(&mut self, msg: PoolHostOp, _: &mut Context<Self>) -> Self::Result {
        let Some(pool) = self.pools.get(&msg.location).cloned() else {
            let known: Vec<&str> = self.pools.keys().map(String::as_str).collect();
            let e = ManagementError::NoHost(format!(
                "no host pool `{}`; pools (drover.yaml): {}",
                msg.location,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
            return Box::pin(async move { Err(e) });
        };
        Box::pin(async move {
            pool.send(crate::location::pool::HostOp {
                host: msg.host,
                op: msg.op,
            })
            .await
            .map_err(|e| ManagementError::NoHost(format!("the host pool did not answer: {e}")))?
            .map_err(|e| ManagementError::NoHost(e.to_string()))
        })
    }
}

/// Rebuilds the state metrics from the read model and renders every metric:
/// one scrape. Rendering here, in the actor, makes a scrape consistent (two
/// concurrent scrapes never see each other's half-rebuilt gauges); it takes
/// well under a millisecond at 100 containers (README, "Observability").
#[derive(Message)]
#[rtype(result = "String")]
pub struct CollectMetrics;

impl Handler<CollectMetrics> for Management {
    type Result = String;
    fn handle(&mut self, _: CollectMetrics, _: &mut Context<Self>) -> String {
        self.collect_state_metrics();
        metrics::render()
    }
}
