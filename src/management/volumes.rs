//! An application's volumes after its destroy: `retain: false` ones are
//! removed with it, the others kept for the next deploy of that name
//! unless the destroy says `--volumes` (Kubernetes keeps a StatefulSet's
//! claims too; compose keeps named volumes unless `down -v`).

use std::collections::BTreeSet;

use actix::prelude::*;

use super::{Management, ManagementError};
use crate::host::volumes::{ListVolumes, ManagedVolume, RemoveVolumes, VolumeError};
use crate::host::DockerHost;

/// Lists an application's volumes on every engine and removes them all
/// (`all`) or only the `retain: false` ones.
#[derive(Message)]
#[rtype(result = "Result<VolumeSweep, ManagementError>")]
pub struct SweepVolumes {
    pub app: String,
    pub all: bool,
}

/// What a sweep did, by engine volume name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeSweep {
    pub removed: Vec<String>,
    pub kept: Vec<String>,
}

/// Which volumes a sweep removes (pure).
pub fn to_remove(volumes: &[ManagedVolume], all: bool) -> (Vec<String>, Vec<String>) {
    volumes
        .iter()
        .map(|v| v.name.clone())
        .partition(|n| all || volumes.iter().any(|v| &v.name == n && !v.retain))
}

impl Management {
    /// Every engine of every location, once.
    async fn all_hosts(
        fixed: Vec<Addr<DockerHost>>,
        pools: Vec<Addr<crate::location::HostPool>>,
    ) -> Vec<Addr<DockerHost>> {
        let mut hosts = fixed;
        for p in pools {
            hosts.extend(
                p.send(crate::location::pool::GetHosts)
                    .await
                    .unwrap_or_default(),
            );
        }
        let mut out: Vec<Addr<DockerHost>> = Vec::new();
        for h in hosts {
            if !out.contains(&h) {
                out.push(h);
            }
        }
        out
    }
}

/// A host that did not answer, as a volume error of the application.
fn unreachable(operation: &'static str, app: &str, e: MailboxError) -> VolumeError {
    VolumeError::Engine {
        operation,
        volume: format!("{app}'s"),
        status: None,
        message: format!("the host did not answer: {e}"),
    }
}

impl Handler<SweepVolumes> for Management {
    type Result = ResponseFuture<Result<VolumeSweep, ManagementError>>;
    fn handle(&mut self, msg: SweepVolumes, _: &mut Context<Self>) -> Self::Result {
        let fixed: Vec<Addr<DockerHost>> = self
            .locations
            .iter()
            .filter(|(name, _)| !self.pools.contains_key(*name))
            .map(|(_, p)| p.host.clone())
            .collect();
        let pools: Vec<_> = self.pools.values().cloned().collect();
        Box::pin(async move {
            let mut sweep = VolumeSweep::default();
            let mut seen = BTreeSet::new();
            for host in Management::all_hosts(fixed, pools).await {
                let listed = host
                    .send(ListVolumes {
                        app: Some(msg.app.clone()),
                    })
                    .await
                    .map_err(|e| unreachable("list", &msg.app, e))??;
                let listed: Vec<ManagedVolume> = listed
                    .into_iter()
                    .filter(|v| seen.insert(v.name.clone()))
                    .collect();
                let (remove, keep) = to_remove(&listed, msg.all);
                sweep.kept.extend(keep);
                if !remove.is_empty() {
                    let removed = host
                        .send(RemoveVolumes(remove))
                        .await
                        .map_err(|e| unreachable("remove", &msg.app, e))??;
                    sweep.removed.extend(removed);
                }
            }
            sweep.removed.sort();
            sweep.kept.sort();
            Ok(sweep)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(name: &str, retain: bool) -> ManagedVolume {
        ManagedVolume {
            name: name.into(),
            app: "shop".into(),
            entity: "web-1".into(),
            volume: "data".into(),
            retain,
        }
    }

    #[test]
    fn a_destroy_keeps_retained_volumes_unless_told() {
        let vols = [v("a", true), v("b", false)];
        assert_eq!(
            to_remove(&vols, false),
            (vec!["b".into()], vec!["a".into()])
        );
        assert_eq!(
            to_remove(&vols, true),
            (vec!["a".into(), "b".into()], vec![])
        );
    }
}
