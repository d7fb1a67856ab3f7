//! drover: an autonomic manager for applications in Docker containers.
//!
//! A user writes a YAML blueprint once; drover deploys it onto Docker hosts
//! and keeps it running. Every managed thing is an *entity* actor that
//! publishes *sensors* and accepts *effector* calls.
//!
//! # Layout
//!
//! | module | concept |
//! | --- | --- |
//! | [`blueprint`] | the YAML model, parsing with precise error positions, validation (pure: no actors, Docker or HTTP) |
//! | [`enricher`] | actors deriving sensors from sensors: aggregate over members, rolling mean, rate |
//! | [`protocol`] | the entity protocol (a leaf): references, sensors, events, `Invoke`, `Subscribe`, lifecycle, the sensor board, effector errors, the clock |
//! | [`wire`] | the REST API's JSON types, shared by the server, the CLI, `drover chaos` and the tests (a leaf) |
//! | [`entity`] | one actor per managed thing: application, cluster, container; sensors, lifecycle, effectors |
//! | [`host`] | one actor per Docker engine: the only code that talks to Docker (bollard); event stream, health probes, the workload image |
//! | [`activity`] | the record of effector calls, policy decisions and events |
//! | [`lb`] | the built-in TCP load balancer entity and its proxy |
//! | [`location`] | `drover.yaml` locations: the host pool actor (reservations, provisioning, failed hosts, adoption after a restart; sized by the shared autoscaler) and its provisioners |
//! | [`management`] | the actor that owns the applications, routes engine events and keeps the read model the API serves |
//! | [`api`] | the REST API (actix-web): `/v1`, `/healthz`, `/metrics` |
//! | [`placement`] | where a container goes: the filter and scorer chain, its explanations, the pool's headroom verdict, the CPU moves (pure) |
//! | [`policy`] | policy actors (restarter, replacer, autoscaler, the per-location placement policy) with their pure decisions and presets |
//! | [`metrics`] | the Prometheus metric catalogue |
//! | [`store`] | durable state in redb: applications, cluster membership, policy memory, host pools' provisioned hosts; the only code touching the database |
//! | [`serve`] | `drover serve`: wires the actors and the HTTP server in one actix System, and stops them gracefully |
//! | [`compose`] | docker-compose files to blueprints (pure), every untranslated key listed with its reason |
//! | [`cli`] | the client commands; they reach the service over REST only |
//!
//! Dependencies run one way: `blueprint` knows nothing of the others;
//! `entity` talks to Docker only through `host` messages; `api` and `cli`
//! reach the system through actor messages and REST respectively.

pub mod activity;
pub mod api;
pub mod blueprint;
pub mod cli;
pub mod compose;
pub mod enricher;
pub mod entity;
pub mod host;
pub mod lb;
pub mod location;
pub mod management;
pub mod metrics;
pub mod placement;
pub mod policy;
pub mod protocol;
pub mod serve;
pub mod store;
pub mod wire;
