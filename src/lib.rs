//! drover: an autonomic manager for applications in Docker containers.
//!
//! A user writes a YAML blueprint once; drover deploys it onto Docker hosts
//! and keeps it running. Every managed thing is an *entity* actor that
//! publishes *sensors* and accepts *effector* calls.
//!
//! # Layout
//!
//! | module | layer | concept |
//! | --- | --- | --- |
//! | [`protocol`] | 0 | the entity protocol (a leaf): references, sensors, events, `Invoke`, `Subscribe`, lifecycle, the sensor board, effector errors, the clock, and the messages policies send entities (`MarkProblem`, `Move`) |
//! | [`blueprint`] | 0 | the YAML model, parsing with precise error positions, validation (pure: no actors, Docker or HTTP) |
//! | [`placement`] | 0 | where a container goes: the filter and scorer chain, its explanations, the pool's headroom verdict, the CPU moves (pure) |
//! | [`metrics`] | 0 | the Prometheus metric catalogue |
//! | [`wire`] | 0 | the REST API's JSON types, shared by the server, the CLI, `drover chaos` and the tests (a leaf beside the protocol) |
//! | [`compose`] | 0 | docker-compose files to blueprints (pure), every untranslated key listed with its reason |
//! | [`build_context`] | 0 | build contexts: packing a directory with its `.dockerignore` into a deterministic tar, the service's store of uploaded contexts, rewriting a blueprint's contexts in place (a leaf) |
//! | [`store`] | 1 | durable state in redb, or in etcd for a cluster of drovers (with the leader election and its fence): applications, cluster membership, policy memory, host pools' provisioned hosts; the only code touching the database |
//! | [`activity`] | 1 | the record of effector calls, policy decisions and events |
//! | [`host`] | 1 | one actor per Docker engine: the only code that talks to Docker (bollard); event stream, health probes, the workload image, drover's own image and the agent containers run from it |
//! | [`policy`] | 2 | policy actors (restarter, replacer, autoscaler, the per-location placement policy) with their pure decisions and presets |
//! | [`enricher`] | 2 | actors deriving sensors from sensors: aggregate over members, rolling mean, rate |
//! | [`lb`] | 2 | the load balancer entity, its proxy (tcp and http modes) and `drover lb-agent`, the container the proxy runs in so that it outlives drover |
//! | [`leader`] | 2 | who leads a cluster of drovers on etcd: the role `/healthz` shows, standing by, and stopping at once when the lease is lost |
//! | [`entity`] | 3 | one actor per managed thing: application, cluster, container; the policy factory trait they are handed; the messages between a container and its host pool |
//! | [`location`] | 4 | `drover.yaml` locations: the host pool actor (reservations, provisioning, failed hosts, adoption after a restart; sized by the shared autoscaler) and its provisioners |
//! | [`policy_factory`] | 4 | builds the policies a blueprint attaches to an application's entities |
//! | [`management`] | 5 | the actor that owns the applications, routes engine events and keeps the read model the API serves |
//! | [`api`] | 5 | the REST API (actix-web): `/v1`, `/healthz`, `/metrics` |
//! | [`serve`] | 5 | `drover serve`: wires the actors and the HTTP server in one actix System, and stops them gracefully |
//! | [`cli`] | 5 | the client commands; they reach the service over REST only |
//!
//! Dependencies run one way, downwards (`tests/architecture.rs` checks it):
//! a module uses only modules of lower layers (and a few listed same-layer
//! ones). Policies, enrichers and the load balancer reach entities only
//! through [`protocol`] messages; entities know neither policies (an
//! application is handed a policy factory) nor locations (a container holds
//! its pool's recipients); `entity` talks to Docker only through `host`
//! messages; `api` and `cli` reach the system through actor messages and
//! REST respectively.

pub mod activity;
pub mod api;
pub mod blueprint;
pub mod build_context;
pub mod cli;
pub mod compose;
pub mod enricher;
pub mod entity;
pub mod host;
pub mod lb;
pub mod leader;
pub mod location;
pub mod management;
pub mod metrics;
pub mod placement;
pub mod policy;
pub mod policy_factory;
pub mod protocol;
pub mod serve;
pub mod store;
pub mod wire;
