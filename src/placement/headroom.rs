//! Headroom: Clocker's spare capacity of a host pool.
//!
//! The pool can hold `hosts × max_containers` containers. Headroom is how
//! many of those slots must stay free, as a count or a percent of the
//! pool's possible containers. Too few free slots: the pool is *hot* and
//! wants hosts; enough free slots that a whole host could go and headroom
//! would still hold: *cold*; otherwise *ok*. Pure: the pool actor adds the
//! stabilization windows around it.

use serde::{Deserialize, Serialize};

/// The `headroom:` key of a location. Both unset: no headroom (hosts are
/// added only when a container fits nowhere). Both set: the larger wins.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadroomSpec {
    /// Free container slots to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Free slots to keep, as a percent (0 to 100, exclusive of 100) of
    /// the pool's possible containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeadroomVerdict {
    Hot,
    Ok,
    Cold,
}

impl HeadroomVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            HeadroomVerdict::Hot => "hot",
            HeadroomVerdict::Ok => "ok",
            HeadroomVerdict::Cold => "cold",
        }
    }
}

/// The pool's capacity against its headroom.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Headroom {
    pub hosts: u32,
    pub possible: u32,
    pub used: u32,
    pub free: u32,
    /// Free slots the headroom asks for, at the current pool size.
    pub wanted: u32,
    /// The fewest hosts that hold `used` with the headroom kept (at least 1).
    pub desired_hosts: u32,
    pub verdict: HeadroomVerdict,
}

fn wanted_free(spec: &HeadroomSpec, possible: u32) -> u32 {
    let by_count = spec.count.unwrap_or(0);
    let by_percent = spec
        .percent
        .map(|p| ((p.clamp(0.0, 99.0) / 100.0) * possible as f64).ceil() as u32)
        .unwrap_or(0);
    by_count.max(by_percent)
}

/// The headroom verdict of a pool of `hosts` hosts of `max_per_host`
/// containers each, holding `used` containers.
pub fn headroom(hosts: u32, max_per_host: u32, used: u32, spec: &HeadroomSpec) -> Headroom {
    let per = max_per_host.max(1);
    let possible = hosts * per;
    let free = possible.saturating_sub(used);
    let wanted = wanted_free(spec, possible);
    // The smallest n with n·per − used ≥ wanted(n): n grows by one until it
    // holds (bounded: percent is below 100, so it holds eventually).
    let mut desired = 1u32;
    while desired * per < used + wanted_free(spec, desired * per) && desired < 100_000 {
        desired += 1;
    }
    let verdict = if free < wanted {
        HeadroomVerdict::Hot
    } else if hosts > desired {
        // A host could go and the rest would still keep the headroom.
        HeadroomVerdict::Cold
    } else {
        HeadroomVerdict::Ok
    };
    Headroom {
        hosts,
        possible,
        used,
        free,
        wanted,
        desired_hosts: desired,
        verdict,
    }
}

/// The hosts a pool needs, for its autoscaler: what the headroom asks for,
/// but never fewer than `staying`, the hosts that cannot be removed (static
/// hosts and hosts with containers): a pool whose containers are spread
/// over every host is not cold, since nothing could go.
pub fn hosts_needed(h: &Headroom, staying: u32) -> u32 {
    h.desired_hosts.max(staying)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn count(n: u32) -> HeadroomSpec {
        HeadroomSpec {
            count: Some(n),
            percent: None,
        }
    }

    #[test]
    fn count_headroom() {
        // 2 hosts × 4 = 8 slots, 5 used, 3 free, want 2: ok.
        let h = headroom(2, 4, 5, &count(2));
        assert_eq!((h.possible, h.free, h.wanted), (8, 3, 2));
        assert_eq!(h.verdict, HeadroomVerdict::Ok);
        assert_eq!(h.desired_hosts, 2);
        // 7 used, 1 free < 2: hot, wants 3 hosts.
        let h = headroom(2, 4, 7, &count(2));
        assert_eq!(h.verdict, HeadroomVerdict::Hot);
        assert_eq!(h.desired_hosts, 3);
        // 3 hosts, 2 used: one host (4 slots, 2 free) would do: cold.
        let h = headroom(3, 4, 2, &count(2));
        assert_eq!(h.verdict, HeadroomVerdict::Cold);
        assert_eq!(h.desired_hosts, 1);
    }

    #[test]
    fn percent_headroom() {
        let p = HeadroomSpec {
            count: None,
            percent: Some(25.0),
        };
        // 4 hosts × 8 = 32, 25% = 8 free wanted; 24 used → 8 free: ok.
        let h = headroom(4, 8, 24, &p);
        assert_eq!((h.wanted, h.verdict), (8, HeadroomVerdict::Ok));
        let h = headroom(4, 8, 25, &p);
        assert_eq!(h.verdict, HeadroomVerdict::Hot);
        assert_eq!(h.desired_hosts, 5);
    }

    #[test]
    fn no_headroom_is_never_hot() {
        let h = headroom(2, 4, 8, &HeadroomSpec::default());
        assert_eq!(h.verdict, HeadroomVerdict::Ok);
        let h = headroom(0, 4, 0, &HeadroomSpec::default());
        assert_eq!(h.desired_hosts, 1);
    }

    proptest! {
        #[test]
        fn desired_hosts_keep_the_headroom(
            hosts in 0u32..50, per in 1u32..16, used in 0u32..400,
            c in proptest::option::of(0u32..40), p in proptest::option::of(0.0f64..90.0)
        ) {
            let spec = HeadroomSpec { count: c, percent: p };
            let h = headroom(hosts, per, used, &spec);
            let d = h.desired_hosts;
            // Enough at d, not enough at d − 1 (unless d is 1).
            prop_assert!(d * per >= used + wanted_free(&spec, d * per));
            if d > 1 {
                let e = d - 1;
                prop_assert!(e * per < used + wanted_free(&spec, e * per));
            }
            match h.verdict {
                HeadroomVerdict::Hot => prop_assert!(hosts < d),
                HeadroomVerdict::Cold => prop_assert!(hosts > d),
                HeadroomVerdict::Ok => prop_assert!(hosts >= d || h.free >= h.wanted),
            }
        }
    }

    #[test]
    fn hosts_that_cannot_go_keep_the_pool_from_cold() {
        // 3 hosts of 4, 3 containers: one host would do...
        let h = headroom(3, 4, 3, &HeadroomSpec::default());
        assert_eq!(h.verdict, HeadroomVerdict::Cold);
        assert_eq!(hosts_needed(&h, 1), 1);
        // ...but spread one per host, none can go.
        assert_eq!(hosts_needed(&h, 3), 3);
    }
}
