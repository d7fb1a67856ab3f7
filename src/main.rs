//! The `drover` binary: `drover serve` runs the service; the other commands
//! are clients of its REST API.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use drover::cli::{self, Client, Output};

/// mimalloc rather than glibc's malloc: with thousands of containers the
/// service allocates small, short-lived buffers from several threads at
/// once (engine answers, sensor events), where glibc spent a fifth of the
/// CPU in `malloc` and kept freed memory as fragmented arenas. The
/// `system-alloc` feature leaves glibc's in place, for heap profilers that
/// hook `malloc` (heaptrack), which never see mimalloc's allocations.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "drover",
    version,
    about = "An autonomic manager for applications in Docker containers"
)]
struct Cli {
    /// Where the service is, for client commands.
    #[arg(
        long,
        env = "DROVER_URL",
        default_value = "http://127.0.0.1:7780",
        global = true
    )]
    url: String,
    /// API token the client commands send (default: the admin token that
    /// `drover serve` wrote beside the default store, admin.token).
    #[arg(long, env = "DROVER_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// PEM certificate(s) to trust for an https DROVER_URL (a self-signed
    /// drover's certificate, or its CA).
    #[arg(long, env = "DROVER_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
    /// Output format of commands that print data.
    #[arg(
        short = 'o',
        long = "output",
        value_enum,
        default_value = "text",
        global = true
    )]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum ImportWhat {
    /// `drover import compose docker-compose.yml [--name APP] [--deploy]`: every
    /// compose key that is not translated is listed with its reason.
    Compose {
        file: String,
        /// Application name (default: the file's `name:`, else its directory's name).
        #[arg(long)]
        name: Option<String>,
        /// Deploy the translation instead of printing it.
        #[arg(long)]
        deploy: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum TokenWhat {
    /// Make a token; it is printed once.
    Create {
        /// viewer (reads), operator (also effectors, policies, drain, faults) or admin (everything).
        #[arg(long, value_parser = |s: &str| s.parse::<drover::wire::Role>())]
        role: drover::wire::Role,
        #[arg(long)]
        name: String,
    },
    /// List tokens: names, roles, created, last used (never the tokens).
    Ls,
    /// Revoke a token: its next request is refused.
    Revoke { name: String },
}

// `serve`'s many options make it the large variant; one value is parsed
// per process.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// A load balancer's data plane; `drover serve` runs one per load
    /// balancer in a container (see the README's "Load balancers").
    #[command(hide = true)]
    LbAgent {
        /// Address clients connect to.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Address of the control API (port 0: a free one; printed on the ready line).
        #[arg(long, default_value = "0.0.0.0:0")]
        control: std::net::SocketAddr,
        /// `http` or `tcp`.
        #[arg(long, value_parser = |s: &str| serde_json::from_value::<drover::blueprint::LbMode>(serde_json::Value::String(s.into())).map_err(|e| e.to_string()))]
        mode: drover::blueprint::LbMode,
        /// The blueprint's `limits`, as JSON.
        #[arg(long, value_parser = |s: &str| serde_json::from_str::<drover::blueprint::LbLimits>(s).map_err(|e| e.to_string()))]
        limits: drover::blueprint::LbLimits,
    },
    /// Run the service: REST API, /metrics, /healthz.
    Serve {
        /// Address to listen on (port 0 picks a free one; the chosen address is printed).
        #[arg(long, default_value = "127.0.0.1:7780")]
        listen: String,
        /// Deploy this blueprint once the service is up (repeatable).
        #[arg(long)]
        deploy: Vec<PathBuf>,
        /// Docker endpoint of the `local` location: `local`, `unix:///path/docker.sock` or `tcp://host:port`.
        #[arg(long, default_value = "local", env = "DROVER_DOCKER")]
        docker: String,
        /// The durable store: a redb file (default: $XDG_DATA_HOME/drover/drover.redb
        /// or ~/.local/share/drover/drover.redb), or `etcd://HOST:2379[,HOST:2379...]`
        /// for a cluster of drovers (one leads, the others stand by).
        #[arg(long, env = "DROVER_STORE")]
        store: Option<String>,
        /// With etcd: the drover cluster's name (keys under /drover/NAME/).
        #[arg(long, default_value = "default", env = "DROVER_CLUSTER")]
        cluster_name: String,
        /// With etcd: the CA of the members' certificates (the URLs become https).
        #[arg(long, env = "DROVER_ETCD_CA")]
        etcd_ca: Option<PathBuf>,
        /// With etcd: client certificate (with --etcd-key).
        #[arg(long, env = "DROVER_ETCD_CERT")]
        etcd_cert: Option<PathBuf>,
        /// With etcd: client key of --etcd-cert.
        #[arg(long, env = "DROVER_ETCD_KEY")]
        etcd_key: Option<PathBuf>,
        /// With etcd: user of etcd's authentication (with --etcd-password).
        #[arg(long, env = "DROVER_ETCD_USER")]
        etcd_user: Option<String>,
        /// With etcd: that user's password (better in the environment).
        #[arg(long, env = "DROVER_ETCD_PASSWORD", hide_env_values = true)]
        etcd_password: Option<String>,
        /// With etcd: the leader's lease; a standby takes over within this plus about a second.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        leader_ttl: Duration,
        /// With etcd: the URL others and clients reach this drover by (default: from --listen).
        #[arg(long, env = "DROVER_ADVERTISE_URL")]
        advertise_url: Option<String>,
        /// With etcd: where this drover keeps its local files (admin.token,
        /// provisioned hosts). Default: the default store's directory.
        #[arg(long, env = "DROVER_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// Directory of policy presets.
        #[arg(long, default_value = "policies", env = "DROVER_POLICIES")]
        policies: PathBuf,
        /// Log format on stderr. `RUST_LOG` sets the level (default `info`).
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
        /// Pool that application networks take their subnet from (IPv4 CIDR).
        #[arg(long, default_value = drover::host::subnets::DEFAULT_POOL, env = "DROVER_SUBNET_POOL")]
        subnet_pool: String,
        /// Prefix length of each application network's subnet (24: 254 addresses).
        #[arg(long, default_value_t = drover::host::subnets::DEFAULT_SIZE)]
        subnet_size: u8,
        /// drover.yaml: locations (pools of Docker hosts) beyond `local`.
        #[arg(long, env = "DROVER_CONFIG")]
        config: Option<PathBuf>,
        /// PEM certificate chain to serve HTTPS with (with --tls-key).
        #[arg(long, env = "DROVER_TLS_CERT")]
        tls_cert: Option<PathBuf>,
        /// PEM private key of --tls-cert.
        #[arg(long, env = "DROVER_TLS_KEY")]
        tls_key: Option<PathBuf>,
        /// Serve plain HTTP on a non-loopback address (only behind a proxy
        /// that terminates TLS): tokens would otherwise cross the network in clear.
        #[arg(long)]
        insecure_http: bool,
        /// Another name clients reach drover by (the Host header), beyond its
        /// address and localhost; `NAME` or `NAME:PORT` (repeatable).
        #[arg(long = "allow-host")]
        allow_hosts: Vec<String>,
        /// The largest build context an upload may be (`drover deploy` packs
        /// and uploads each `build:` directory), e.g. `256Mi`, `1Gi`.
        #[arg(long, default_value = "256Mi", value_parser = parse_size)]
        max_build_context: u64,
    },
    /// Manage API tokens (admin): create, ls, revoke.
    Token {
        #[command(subcommand)]
        what: TokenWhat,
    },
    /// Deploy a blueprint.
    Deploy {
        file: String,
        /// Wait, showing progress, until every entity runs or one fails.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Application name of a compose file (default, as compose's project
        /// name: COMPOSE_PROJECT_NAME, the file's `name:`, else its directory's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Create the application or bring it to the blueprint: policies,
    /// sizes and load-balancer settings change in place, member-spec changes
    /// roll, removed services go, added ones are deployed.
    Apply {
        file: String,
        /// Print the plan only (as `drover diff`).
        #[arg(long)]
        dry_run: bool,
    },
    /// Print what `drover apply FILE` would do.
    Diff { file: String },
    /// Translate a docker-compose file into a blueprint (printed), or deploy it.
    Import {
        #[command(subcommand)]
        what: ImportWhat,
    },
    /// List applications.
    Ls,
    /// Show an application's entity tree with key sensors.
    Status { app: String },
    /// Call an effector: `drover invoke shop web resize size=5`.
    Invoke {
        app: String,
        entity: String,
        effector: String,
        args: Vec<String>,
    },
    /// Destroy an application: remove its containers and network. Its named
    /// volumes are kept (a later deploy of the same name mounts them
    /// again) unless `--volumes`.
    Destroy {
        app: String,
        /// Also remove the application's named volumes (their data is lost);
        /// works on an application destroyed before, too.
        #[arg(long)]
        volumes: bool,
    },
    /// Check a blueprint without deploying it (no service needed).
    Validate {
        file: String,
        /// Preset directory added to the built-in presets (as `serve --policies`).
        #[arg(long, env = "DROVER_POLICIES")]
        policies: Option<PathBuf>,
    },
    /// List Docker hosts.
    Hosts,
    /// Show the host pools of drover.yaml: hosts with their sensors,
    /// headroom, recent decisions, events and CPU moves.
    Locations,
    /// Drain a pool host: it takes no new containers and its containers
    /// move to other hosts (new first, old removed after).
    Drain { location: String, host: String },
    /// Let a drained pool host take containers again.
    Uncordon { location: String, host: String },
    /// List recent activities (effector calls, policy decisions), newest first.
    Activities {
        #[arg(long)]
        app: Option<String>,
        /// Only this entity (`web-2`; a host pool's name with `--app @location`).
        #[arg(long)]
        entity: Option<String>,
        /// Only this kind: `effector`, `policy` or `event`.
        #[arg(long)]
        kind: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Inject faults from outside drover (kill, stop, pause or SIGKILL members, stop a pool host's engine) while probing through the load balancer; report how, MTTR and success.
    Chaos {
        app: String,
        /// How long to inject faults.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Time between faults.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// Faults to draw from, comma-separated: kill, stop, pause (through the engine), sigkill (the process, from this machine), engine-stop (a provisioned pool host's engine).
        #[arg(long, default_value = "kill", value_delimiter = ',', value_parser = |s: &str| s.parse::<cli::chaos::FaultKind>())]
        faults: Vec<cli::chaos::FaultKind>,
        /// A cluster or member to aim at (default: every member of every cluster).
        #[arg(long)]
        target: Option<String>,
        /// The same seed gives the same schedule (default: from the clock; printed in the report).
        #[arg(long)]
        seed: Option<u64>,
        /// How long to wait for the application to converge after the last fault.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        settle: Duration,
    },
    /// Show or change a policy: `drover policy get shop web web-autoscaler`, `drover policy set shop web web-autoscaler upper=50`.
    Policy {
        /// ls, get, set, start or stop.
        action: String,
        app: String,
        entity: String,
        policy: Option<String>,
        /// For `set`: a file with the config (YAML or JSON), or key=value pairs laid over the current config.
        config: Vec<String>,
    },
    /// A cluster's rollout: `drover rollout status|pause|resume|undo APP CLUSTER`.
    Rollout {
        /// status, pause, resume or undo.
        action: String,
        app: String,
        cluster: String,
    },
    /// Build the project's HTTP workload image (`drover/workload:latest`) on the local engine.
    WorkloadImage {
        #[arg(long, default_value = "local", env = "DROVER_DOCKER")]
        docker: String,
    },
}

fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // Colour only for a person at a terminal: a file or a pipe gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let args = Cli::parse();
    let out = args.output;
    let token = cli::tokens::resolve(
        args.token.clone(),
        &drover::store::default_path().with_file_name("admin.token"),
    );
    let client = match Client::with_access(&args.url, token, args.ca_cert.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), String> = match args.command {
        Command::LbAgent {
            listen,
            control,
            mode,
            limits,
        } => {
            init_logs(LogFormat::Text);
            drover::lb::agent::run(drover::lb::agent::AgentArgs {
                listen,
                control,
                settings: drover::lb::agent::AgentSettings { mode, limits },
            })
            .map_err(|e| e.to_string())
        }
        Command::Serve {
            listen,
            deploy,
            docker,
            policies,
            log_format,
            subnet_pool,
            subnet_size,
            store,
            cluster_name,
            etcd_ca,
            etcd_cert,
            etcd_key,
            etcd_user,
            etcd_password,
            leader_ttl,
            advertise_url,
            state_dir,
            config,
            tls_cert,
            tls_key,
            insecure_http,
            allow_hosts,
            max_build_context,
        } => {
            init_logs(log_format);
            let target = match store.as_deref() {
                Some(text) => match drover::store::StoreTarget::parse(text, &cluster_name) {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("error: --store: {e}");
                        return ExitCode::FAILURE;
                    }
                },
                None => drover::store::StoreTarget::Redb(drover::store::default_path()),
            };
            let (store, etcd) = match target {
                drover::store::StoreTarget::Redb(p) => (p, None),
                drover::store::StoreTarget::Etcd(mut opts) => {
                    opts.ca = etcd_ca;
                    opts.cert = etcd_cert;
                    opts.key = etcd_key;
                    opts.user = etcd_user;
                    opts.password = etcd_password;
                    let dir = state_dir.unwrap_or_else(|| {
                        let p = drover::store::default_path();
                        p.parent().map(PathBuf::from).unwrap_or_default()
                    });
                    if let Err(e) = std::fs::create_dir_all(&dir) {
                        eprintln!("error: --state-dir {}: {e}", dir.display());
                        return ExitCode::FAILURE;
                    }
                    (
                        dir.join("drover.redb"),
                        Some(drover::serve::EtcdServe {
                            opts,
                            ttl: leader_ttl,
                            advertise: advertise_url,
                        }),
                    )
                }
            };
            let subnets = match subnet_pool
                .parse()
                .and_then(|pool| drover::host::subnets::SubnetPool::new(pool, subnet_size))
            {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: --subnet-pool/--subnet-size: {e}");
                    return ExitCode::FAILURE;
                }
            };
            drover::serve::run(drover::serve::ServeOptions {
                store,
                etcd,
                subnets,
                config,
                listen,
                deploy,
                docker,
                policies,
                tls_cert,
                tls_key,
                insecure_http,
                allow_hosts,
                max_build_context,
            })
            .map_err(|e| e.to_string())
        }
        Command::Token { what } => match what {
            TokenWhat::Create { role, name } => cli::tokens::create(&client, &name, role, out),
            TokenWhat::Ls => cli::tokens::ls(&client, out),
            TokenWhat::Revoke { name } => cli::tokens::revoke(&client, &name, out),
        }
        .map_err(|e| e.to_string()),
        Command::WorkloadImage { docker } => workload_image(&docker, out),
        Command::Deploy {
            file,
            wait,
            timeout,
            name,
        } => cli::deploy(&client, &file, name.as_deref(), wait, timeout, out)
            .map_err(|e| e.to_string()),
        Command::Apply { file, dry_run } => {
            cli::apply::apply(&client, &file, dry_run, out).map_err(|e| e.to_string())
        }
        Command::Diff { file } => {
            cli::apply::apply(&client, &file, true, out).map_err(|e| e.to_string())
        }
        Command::Import {
            what: ImportWhat::Compose { file, name, deploy },
        } => cli::import::import_compose(&client, &file, name.as_deref(), deploy, out)
            .map_err(|e| e.to_string()),
        Command::Ls => cli::ls(&client, out).map_err(|e| e.to_string()),
        Command::Status { app } => cli::status(&client, &app, out).map_err(|e| e.to_string()),
        Command::Invoke {
            app,
            entity,
            effector,
            args,
        } => cli::invoke(&client, &app, &entity, &effector, &args, out).map_err(|e| e.to_string()),
        Command::Destroy { app, volumes } => {
            cli::destroy(&client, &app, volumes, out).map_err(|e| e.to_string())
        }
        Command::Validate { file, policies } => {
            cli::validate(&file, policies.as_deref(), out).map_err(|e| e.to_string())
        }
        Command::Chaos {
            app,
            duration,
            interval,
            faults,
            target,
            seed,
            settle,
        } => {
            let opts = cli::chaos::ChaosOptions {
                app,
                duration,
                interval,
                faults,
                target,
                seed: seed.unwrap_or_else(cli::chaos::seed_from_clock),
                settle,
            };
            cli::chaos::run(&client, &opts)
                .map_err(|e| e.to_string())
                .and_then(|report| {
                    cli::chaos::print_report(&report, out);
                    if report.converged {
                        Ok(())
                    } else {
                        Err(format!(
                            "the application did not converge: {}",
                            report.convergence_detail
                        ))
                    }
                })
        }
        Command::Policy {
            action,
            app,
            entity,
            policy,
            config,
        } => cli::policy(
            &client,
            &action,
            &app,
            &entity,
            policy.as_deref(),
            &config,
            out,
        )
        .map_err(|e| e.to_string()),
        Command::Rollout {
            action,
            app,
            cluster,
        } => {
            cli::rollout::rollout(&client, &action, &app, &cluster, out).map_err(|e| e.to_string())
        }
        Command::Hosts => cli::hosts(&client, out).map_err(|e| e.to_string()),
        Command::Locations => cli::locations(&client, out).map_err(|e| e.to_string()),
        Command::Drain { location, host } => {
            cli::host_op(&client, &location, &host, "drain", out).map_err(|e| e.to_string())
        }
        Command::Uncordon { location, host } => {
            cli::host_op(&client, &location, &host, "uncordon", out).map_err(|e| e.to_string())
        }
        Command::Activities {
            app,
            entity,
            kind,
            limit,
        } => cli::activities(
            &client,
            &cli::ActivityFilter {
                app: app.as_deref(),
                entity: entity.as_deref(),
                kind: kind.as_deref(),
            },
            limit,
            out,
        )
        .map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn workload_image(docker: &str, out: Output) -> Result<(), String> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let d = drover::host::connect(docker)
            .await
            .map_err(|e| e.to_string())?;
        let id = drover::host::workload::build_workload_image(&d)
            .await
            .map_err(|e| e.to_string())?;
        match out {
            Output::Json => drover::outln!(
                "{}",
                serde_json::json!({ "image": drover::host::workload::WORKLOAD_IMAGE, "id": id })
            ),
            Output::Text => {
                drover::outln!("built {} ({id})", drover::host::workload::WORKLOAD_IMAGE)
            }
        }
        Ok(())
    })
}

/// `--max-build-context 256Mi`: a size as blueprints write memory.
fn parse_size(s: &str) -> Result<u64, String> {
    match drover::blueprint::size::parse_memory(s) {
        Ok(0) => Err("must be more than 0 bytes".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string().replacen("memory", "size", 1)),
    }
}
