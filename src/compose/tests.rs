//! The translation of the compose fixtures in tests/data/compose (written
//! for drover in the patterns of published compose files), and the
//! measurement over a public corpus (`#[ignore]`d: the corpus is fetched,
//! never committed).

use std::path::{Path, PathBuf};

use super::*;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/compose")
}

fn read(p: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(p)
}

/// Translates a fixture with the given environment (nothing else of the
/// process environment leaks in).
fn translate_with(
    rel: &str,
    name: Option<&str>,
    env: &[(&str, &str)],
) -> Result<Translation, ComposeError> {
    let file = data().join(rel);
    let text = std::fs::read_to_string(&file).unwrap();
    let base = file.parent().unwrap().to_path_buf();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = move |k: &str| env.iter().find(|(ek, _)| ek == k).map(|(_, v)| v.clone());
    let src = Source {
        name,
        base_dir: &base,
        env: &lookup,
        read: &read,
    };
    translate(&text, &src)
}

fn fixture(rel: &str) -> Translation {
    let t = translate_with(rel, None, &[]).unwrap_or_else(|e| panic!("{rel} is refused: {e}"));
    model_check(rel, &t);
    t
}

/// The blueprint passes `parse_blueprint`.
fn model_check(rel: &str, t: &Translation) -> crate::blueprint::Blueprint {
    let bp = t.blueprint.clone();
    let yaml = serde_yaml::to_string(&bp).unwrap();
    crate::blueprint::parse_blueprint(rel, &yaml)
        .unwrap_or_else(|e| panic!("{rel} translates to a valid blueprint:\n{e}\n{yaml}"))
}

fn svc<'a>(t: &'a Translation, id: &str) -> &'a Value {
    t.blueprint["services"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| s["id"].as_str() == Some(id))
        .unwrap_or_else(|| panic!("no service {id} in\n{}", t.yaml()))
}

fn paths(list: &[Untranslated]) -> Vec<&str> {
    list.iter().map(|u| u.path.as_str()).collect()
}

fn reason<'a>(list: &'a [Untranslated], path: &str) -> &'a str {
    list.iter()
        .find(|u| u.path == path)
        .map(|u| u.reason.as_str())
        .unwrap_or_else(|| panic!("{path} not listed in {list:#?}"))
}

fn y(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

#[test]
fn web_app_with_database_and_cache() {
    let t = fixture("webapp.yml");
    let dir = data().display().to_string();
    assert_eq!(
        t.name, "compose",
        "the directory's name, as compose's project name"
    );
    let web = svc(&t, "web");
    assert_eq!(web["image"], y("myorg/shop-web:1.4.2"));
    assert_eq!(
        web["ports"],
        y("['8000:8080']"),
        "a single container keeps its host port"
    );
    assert_eq!(
        web["env"]["DATABASE_URL"],
        y("postgres://shop:secret@db:5432/shop")
    );
    assert_eq!(web["depends_on"], y("[db, cache]"));
    assert_eq!(
        web["volumes"],
        y(&format!(
            "[{{host: {dir}/static, path: /app/static, read_only: true}}]"
        ))
    );
    assert_eq!(web["policies"][0]["type"], y("restarter"));
    assert_eq!(web["policies"][0]["max_restarts"], y("1000000"));
    let db = svc(&t, "db");
    assert_eq!(
        db["volumes"],
        y("[{name: pgdata, path: /var/lib/postgresql/data}]")
    );
    assert_eq!(
        db["health"],
        y("{test: [CMD-SHELL, pg_isready -U shop], interval: 5s, timeout: 3s, unhealthy_threshold: 5}"),
        "run by the engine, as compose runs it"
    );
    let cache = svc(&t, "cache");
    assert_eq!(
        cache["command"],
        y("[redis-server, --appendonly, 'yes', --maxmemory, 64mb]")
    );
    assert_eq!(cache["resources"]["memory"], y("128Mi"));
    assert_eq!(
        cache["health"],
        y("{tcp: {port: 6379}, interval: 2s, unhealthy_threshold: 3}")
    );
    assert_eq!(
        cache["ports"],
        y("[6379]"),
        "drover's own probe goes through a published port"
    );
    assert!(t.untranslated.is_empty(), "{:#?}", t.untranslated);
    assert_eq!(
        paths(&t.notes),
        ["version", "services.web.environment.SENTRY_DSN"]
    );
}

#[test]
fn builds_and_env_files() {
    let t = fixture("build.yml");
    let dir = data().display().to_string();
    let api = svc(&t, "api");
    assert_eq!(
        api["build"],
        y(&format!(
            "{{context: {dir}/api, dockerfile: Dockerfile.dev, args: {{RUST_VERSION: '1.85'}}}}"
        ))
    );
    assert_eq!(api.get("image"), None, "`build` wins");
    // api.env is read; `environment` wins over it.
    assert_eq!(api["env"]["DATABASE_URL"], y("postgres://api@db/api"));
    assert_eq!(api["env"]["RUST_LOG"], y("debug"));
    assert_eq!(api["env"]["WORKERS"], y("'4'"));
    assert_eq!(
        svc(&t, "worker")["build"]["context"],
        y(&format!("{dir}/worker"))
    );
    assert_eq!(svc(&t, "worker")["depends_on"], y("[api]"));
    assert_eq!(
        paths(&t.untranslated),
        ["services.api.entrypoint", "services.migrate.depends_on.api"]
    );
    assert!(reason(&t.untranslated, "services.migrate.depends_on.api")
        .contains("waiting for one to exit"));
    assert_eq!(
        paths(&t.notes),
        [
            "x-common",
            "services.api.image",
            "services.worker.container_name"
        ]
    );
    assert!(reason(&t.notes, "services.worker.container_name")
        .contains("nothing in the file refers to `my-worker`"));
}

#[test]
fn deploy_sections_and_health_checks() {
    let t = fixture("deploy.yml");
    assert_eq!(t.name, "storefront", "the file's `name`, made an id");
    assert_eq!(t.blueprint["networks"], y("[{name: front}, {name: back}]"));
    let fe = svc(&t, "frontend");
    assert_eq!(fe["type"], y("cluster"));
    assert_eq!(fe["initial_size"], y("3"));
    let m = &fe["member"];
    assert_eq!(m["resources"], y("{cpus: 0.5, memory: 256Mi}"));
    assert_eq!(
        m["health"],
        y("{http: {port: 8080, path: /health}, interval: 10s, timeout: 3s, start_period: 15s, unhealthy_threshold: 3}")
    );
    assert_eq!(
        m["ports"],
        y("[8080]"),
        "members share hosts: no fixed port"
    );
    assert_eq!(
        fe["policies"][0],
        y("{type: restarter, backoff_start: 5s, initial_delay: 5s, max_restarts: 3, window: 120s}")
    );
    let lb = svc(&t, "frontend-lb");
    assert_eq!(lb["target"], y("frontend"));
    assert_eq!(
        (lb["port"].as_u64(), lb["target_port"].as_u64()),
        (Some(80), Some(8080))
    );
    let orders = svc(&t, "orders");
    assert_eq!(orders["type"], y("container"));
    assert_eq!(orders["health"]["http"], y("{port: 9000, path: /ready}"));
    assert_eq!(orders["resources"], y("{cpus: 1.0, memory: 1Gi}"));
    let queue = svc(&t, "queue");
    assert_eq!(
        queue["ports"],
        y("['15672:15672', '15673:15673']"),
        "ranges are expanded"
    );
    assert_eq!(queue.get("health"), None);
    assert_eq!(
        paths(&t.untranslated),
        [
            "networks.back.ipam",
            "services.frontend.deploy.resources.reservations.memory",
            "services.frontend.deploy.update_config",
            "services.orders.deploy.resources.limits.pids",
            "services.orders.networks.back.aliases",
            "services.queue.ports[0]",
        ]
    );
    assert!(reason(&t.untranslated, "services.queue.ports[0]").contains("udp"));
    assert!(
        reason(&t.untranslated, "services.frontend.deploy.update_config")
            .ends_with("(dropped: parallelism)")
    );
    assert_eq!(
        paths(&t.notes),
        ["version", "networks.front.driver", "networks.back.driver"]
    );
}

#[test]
fn homelab_style_file_with_dotenv_and_env_files() {
    let t = fixture("homelab/docker-compose.yml");
    let dir = data().join("homelab").display().to_string();
    assert_eq!(t.name, "homelab");
    let wiki = svc(&t, "wiki");
    assert_eq!(
        wiki["image"],
        y("ghcr.io/example/wiki:2.5.301"),
        "from .env"
    );
    let env = &wiki["env"];
    assert_eq!(env["DB_PASS"], y("correct-horse"));
    assert_eq!(env["TZ"], y("Etc/UTC"), "the default");
    assert_eq!(env["PUBLIC_URL"], y("https://wiki.example.org"));
    assert_eq!(
        env["DB_HOST"],
        y("wiki-db"),
        "`environment` wins over the env_file"
    );
    assert_eq!(env["SITE_TITLE"], y("Team wiki"));
    assert_eq!(env["LOG_LEVEL"], y("info"));
    assert_eq!(wiki["ports"], y("['3000:3000']"));
    assert_eq!(
        wiki["volumes"],
        y(&format!(
            "[{{host: {dir}/data/uploads, path: /app/uploads}}, \
              {{host: /etc/localtime, path: /etc/localtime, read_only: true}}, \
              {{tmpfs: /app/cache, size: '67108864'}}]"
        ))
    );
    assert_eq!(
        wiki["health"],
        y("{http: {port: 3000, path: /healthz}, interval: 30s, timeout: 5s, start_period: 20s, unhealthy_threshold: 3}")
    );
    assert_eq!(
        wiki["labels"]["traefik.http.routers.wiki.rule"],
        y("Host(`wiki.example.org`)")
    );
    assert_eq!(wiki["networks"], y("[proxy]"));
    assert_eq!(wiki["policies"][0]["max_restarts"], y("1000000"));
    let db = svc(&t, "wiki-db");
    assert_eq!(
        db["env"].get("PGDATA"),
        None,
        "unset: left out, as compose does"
    );
    assert_eq!(
        db["volumes"],
        y("[{name: wiki-db, path: /var/lib/postgresql/data}, {tmpfs: /run/postgresql, size: 16Mi}]")
    );
    assert_eq!(
        db["health"]["test"],
        y("[CMD-SHELL, pg_isready -U wiki -d wiki]")
    );
    assert_eq!(db["health"]["start_period"], y("30s"));
    assert_eq!(
        (&db["stop_signal"], &db["stop_grace_period"]),
        (&y("SIGINT"), &y("1m"))
    );
    assert_eq!(
        db["policies"][0],
        y(
            "{type: restarter, backoff_start: 100ms, backoff_factor: 2.0, backoff_cap: 1m, \
             reset_after: 24h, max_restarts: 5, window: 24h}"
        )
    );
    assert_eq!(
        paths(&t.untranslated),
        [
            "networks.proxy.external",
            "services.wiki.ports[0]",
            "services.wiki.ports[1]",
            "services.wiki.security_opt",
        ]
    );
    assert_eq!(db["hostname"], y("wiki-db"));
    assert!(reason(&t.untranslated, "services.wiki.ports[0]").contains("not only 127.0.0.1"));
    assert!(
        reason(&t.untranslated, "services.wiki.security_opt")
            .ends_with("(dropped: no-new-privileges:true)"),
        "every item of a dropped section is named"
    );
    assert_eq!(
        paths(&t.notes),
        [
            "volumes.wiki-db.driver",
            "services.wiki.env_file[1]",
            "services.wiki.container_name",
            "services.wiki.expose",
            "services.wiki-db.container_name",
            "services.wiki-db.environment.PGDATA",
        ]
    );
}

#[test]
fn the_process_environment_wins_and_required_variables_refuse() {
    let t = translate_with(
        "homelab/docker-compose.yml",
        None,
        &[
            ("WIKI_VERSION", "3.0"),
            ("COMPOSE_PROJECT_NAME", "Team Wiki"),
        ],
    )
    .unwrap();
    assert_eq!(svc(&t, "wiki")["image"], y("ghcr.io/example/wiki:3.0"));
    assert_eq!(t.name, "team-wiki", "COMPOSE_PROJECT_NAME, as compose");
    // Without the .env, `${DB_PASSWORD:?...}` refuses the file, as compose does.
    let text = std::fs::read_to_string(data().join("homelab/docker-compose.yml")).unwrap();
    let base = data().join("homelab");
    let no_files = |_: &Path| Err(std::io::ErrorKind::NotFound.into());
    let src = Source {
        name: None,
        base_dir: &base,
        env: &|_| None,
        read: &no_files,
    };
    let err = translate(&text, &src).unwrap_err().to_string();
    assert_eq!(
        err,
        "services.wiki.environment.DB_PASS: required variable DB_PASSWORD is missing a value: \
         set DB_PASSWORD in .env; set it in the environment or in the .env file beside the compose file"
    );
}

#[test]
fn a_missing_env_file_refuses_the_file() {
    let text = "services:\n  a:\n    image: x\n    env_file: [nope.env]\n";
    let base = data();
    let src = Source {
        name: None,
        base_dir: &base,
        env: &|_| None,
        read: &read,
    };
    let err = translate(text, &src).unwrap_err();
    assert!(matches!(err, ComposeError::EnvFile { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("services.a.env_file: cannot read env file "),
        "{err}"
    );
}

#[test]
fn secrets_profiles_builds_and_names() {
    let t = fixture("shop-secrets/compose.yaml");
    let dir = data().join("shop-secrets").display().to_string();
    assert_eq!(t.name, "shop", "the file's `name:`");
    let backend = svc(&t, "backend");
    assert_eq!(
        backend["build"],
        y(&format!(
            "{{context: {dir}/backend, target: builder, args: {{NODE_ENV: production}}}}"
        ))
    );
    assert_eq!(backend["secrets"], y("[db-password]"));
    assert_eq!(backend["ports"], y("['8000:8000']"));
    assert_eq!(
        backend["env"]["API_PREFIX"],
        y("$${API_ROOT}/v1"),
        "compose's `$$` is a literal `$`; drover writes a literal `${{` as `$${{`"
    );
    let db = svc(&t, "db");
    assert_eq!(
        db["secrets"],
        y("[{name: db-password, target: mysql-root-password}]")
    );
    assert_eq!(
        db["health"],
        y("{test: [CMD, mysqladmin, ping, -h, 127.0.0.1, --silent], interval: 3s, start_period: 30s, unhealthy_threshold: 5}")
    );
    assert_eq!(
        db["command"],
        y("['--default-authentication-plugin=mysql_native_password']")
    );
    let fe = svc(&t, "frontend");
    assert_eq!(
        fe["volumes"],
        y(&format!(
            "[{{host: {dir}/frontend/src, path: /code/src}}, {{name: code-node-modules, path: /code/node_modules}}]"
        ))
    );
    let ids: Vec<&Value> = t.blueprint["services"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(
        ids,
        [&y("backend"), &y("db"), &y("frontend")],
        "adminer's profile is not active"
    );
    assert_eq!(
        paths(&t.untranslated),
        ["secrets.db-password.file", "services.db.secrets[0].mode"]
    );
    assert_eq!(
        reason(&t.untranslated, "secrets.db-password.file"),
        format!(
            "drover takes secret files from drover.yaml only, so they never enter its store: \
             add `secrets: {{db-password: {{file: {dir}/db/password.txt}}}}` there"
        )
    );
    assert_eq!(
        paths(&t.notes),
        [
            "services.adminer",
            "services.db.expose",
            "services.frontend.volumes[1]"
        ]
    );
    // An active profile, and --name over everything.
    let t = translate_with(
        "shop-secrets/compose.yaml",
        Some("Shop Test"),
        &[("COMPOSE_PROFILES", "debug")],
    )
    .unwrap();
    assert_eq!(t.name, "shop-test");
    assert_eq!(t.blueprint["name"], y("shop-test"));
    assert_eq!(svc(&t, "adminer")["ports"], y("['8080:8080']"));
}

#[test]
fn the_deployable_fixture() {
    let t = fixture("workload/compose.yaml");
    assert_eq!(t.name, "workload");
    let api = svc(&t, "api");
    assert_eq!(api["image"], y("drover/workload:latest"));
    assert_eq!(
        api["env"],
        y("{ROLE: api, GREETING: hello from .env, BACKEND: 'http://store:8080'}")
    );
    assert_eq!(api["health"]["http"], y("{port: 8080, path: /health}"));
    assert_eq!(svc(&t, "store")["env"]["COST"], y("$5"));
    assert!(t.untranslated.is_empty(), "{:#?}", t.untranslated);
}

/// Every compose fixture under tests/data/compose.
fn all_fixtures(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            all_fixtures(&p, out);
        } else if p.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            out.push(p);
        }
    }
}

#[test]
fn no_fixture_is_refused_and_every_key_left_has_a_reason() {
    let mut files = Vec::new();
    all_fixtures(&data(), &mut files);
    assert!(files.len() >= 7, "{files:?}");
    let mut listing = String::new();
    for f in &files {
        let rel = f.strip_prefix(data()).unwrap().display().to_string();
        let t = fixture(&rel);
        for u in t.untranslated.iter().chain(&t.notes) {
            assert!(
                u.reason.len() > 20,
                "{rel}: {}: a reason a user accepts, not `{}`",
                u.path,
                u.reason
            );
            assert!(
                !u.reason.starts_with("not a Compose"),
                "{rel}: {}: {}",
                u.path,
                u.reason
            );
        }
        for u in &t.untranslated {
            listing.push_str(&format!("{rel}: {}: {}\n", u.path, u.reason));
        }
    }
    // What a reviewer reads: `cargo test compose::tests::no_fixture -- --nocapture`.
    println!("{listing}");
}

#[test]
fn files_that_cannot_be_translated() {
    let base = data();
    let src = Source {
        name: Some("a"),
        base_dir: &base,
        env: &|_| None,
        read: &|_| Err(std::io::ErrorKind::NotFound.into()),
    };
    let t = |text: &str| translate(text, &src).map(|_| ());
    assert!(matches!(t("a: [\n"), Err(ComposeError::NotYaml(_))));
    assert!(matches!(t("- a\n"), Err(ComposeError::NotMapping)));
    assert!(matches!(t("name: a\n"), Err(ComposeError::NoServices)));
    assert!(matches!(
        t("x: &a 1\nservices:\n  <<: *a\n"),
        Err(ComposeError::BadMerge(_))
    ));
    assert!(matches!(
        t("services:\n  a:\n    image: 'x:${TAG'\n"),
        Err(ComposeError::Interpolate { .. })
    ));
    assert_eq!(
        ComposeError::NoServices.to_string(),
        "not a compose file: no `services` mapping"
    );
}

fn inline(text: &str, env: &'static [(&'static str, &'static str)]) -> Translation {
    let base = data();
    let lookup = |k: &str| {
        env.iter()
            .find(|(ek, _)| *ek == k)
            .map(|(_, v)| v.to_string())
    };
    let src = Source {
        name: Some("a"),
        base_dir: &base,
        env: &lookup,
        read: &|_| Err(std::io::ErrorKind::NotFound.into()),
    };
    translate(text, &src).unwrap()
}

#[test]
fn dependencies_on_inactive_profiles_and_ports_published_twice() {
    let text = "services:\n  web:\n    image: w\n    ports: ['80:80', '8080:80']\n    depends_on: [tool]\n  tool:\n    image: t\n    profiles: [dev]\n";
    let t = inline(text, &[]);
    assert_eq!(
        paths(&t.untranslated),
        ["services.web.depends_on.tool", "services.web.ports"]
    );
    assert!(reason(&t.untranslated, "services.web.ports")
        .contains("container port 80 is published more than once"));
    assert_eq!(svc(&t, "web")["ports"], y("['80:80']"));
    assert_eq!(svc(&t, "web").get("depends_on"), None);
    let t = inline(text, &[("COMPOSE_PROFILES", "dev")]);
    assert_eq!(svc(&t, "web")["depends_on"], y("[tool]"));
}

#[test]
fn a_value_that_expands_to_yaml_stays_a_string() {
    // compose interpolates after parsing: `postgres:` with an unset tag is
    // an image name (the engine refuses it), not a YAML error.
    let base = data();
    let src = Source {
        name: Some("a"),
        base_dir: &base,
        env: &|_| None,
        read: &|_| Err(std::io::ErrorKind::NotFound.into()),
    };
    let t = translate("services:\n  db:\n    image: postgres:${TAG}\n", &src).unwrap();
    assert_eq!(svc(&t, "db")["image"], y("'postgres:'"));
    assert_eq!(paths(&t.notes), ["${TAG}"]);
}

#[test]
fn ids_commands_and_memory() {
    assert_eq!(to_id("My_App.v2"), "my-app-v2");
    assert_eq!(to_id("1st"), "s-1st");
    assert_eq!(to_id("/var/lib/x/"), "s--var-lib-x");
    assert_eq!(
        split_command(r#"sh -c 'echo "hi there"' a\ b"#),
        ["sh", "-c", "echo \"hi there\"", "a b"]
    );
    assert_eq!(memory(&Value::from("512m")).as_deref(), Some("512Mi"));
    assert_eq!(memory(&Value::from("1GB")).as_deref(), Some("1Gi"));
    assert_eq!(memory(&Value::from("2GiB")).as_deref(), Some("2Gi"));
    assert_eq!(memory(&Value::from("1.5G")).as_deref(), Some("1610612736"));
    assert_eq!(memory(&Value::from(1000)).as_deref(), Some("1000"));
    assert_eq!(memory(&Value::from("1t")).as_deref(), Some("1099511627776"));
    assert_eq!(memory(&Value::from("lots")), None);
}

#[test]
fn detection() {
    assert!(is_compose("services:\n  web:\n    image: x\n"));
    assert!(!is_compose("name: a\nservices:\n  - id: web\n"));
    assert!(!is_compose("- a\n"));
}

/// The measurement over compose files people publish:
/// `DROVER_COMPOSE_CORPUS=/tmp/compose-corpus cargo test --lib
/// compose::tests::public_corpus -- --ignored --nocapture`. Every
/// `compose*.y*ml` / `docker-compose*.y*ml` under the directory goes
/// through what `drover deploy FILE` does (the process environment, the
/// `.env` beside it, its env files, the blueprint check). It prints the files refused,
/// the untranslated keys per file and by name (`-v`: every one with its
/// reason, with DROVER_COMPOSE_CORPUS_VERBOSE=1).
#[test]
#[ignore]
fn public_corpus() {
    let dir = std::env::var("DROVER_COMPOSE_CORPUS").expect("DROVER_COMPOSE_CORPUS=DIR");
    let verbose = std::env::var("DROVER_COMPOSE_CORPUS_VERBOSE").is_ok_and(|v| v == "1");
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            let n = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_lowercase();
            if p.is_dir() {
                walk(&p, out);
            } else if (n.starts_with("compose") || n.starts_with("docker-compose"))
                && (n.ends_with(".yml") || n.ends_with(".yaml"))
            {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(Path::new(&dir), &mut files);
    let mut refused = Vec::new();
    let mut keys = 0;
    let mut notes = 0;
    let mut by_key: std::collections::BTreeMap<String, usize> = Default::default();
    for f in &files {
        let name = f.display().to_string();
        let text = std::fs::read_to_string(f).unwrap_or_default();
        // As `drover deploy` reads it (cli::import::translate_compose).
        let base = std::fs::canonicalize(f.parent().unwrap()).unwrap();
        let env = |v: &str| std::env::var(v).ok();
        let src = Source {
            name: None,
            base_dir: &base,
            env: &env,
            read: &read,
        };
        let t = match translate(&text, &src) {
            Ok(t) => t,
            Err(e) => {
                refused.push(format!("{name}: {e}"));
                continue;
            }
        };
        let bp = t.blueprint.clone();
        let yaml = serde_yaml::to_string(&bp).unwrap();
        if let Err(e) = crate::blueprint::parse_blueprint(&name, &yaml) {
            refused.push(format!("blueprint check: {e}"));
            continue;
        }
        keys += t.untranslated.len();
        notes += t.notes.len();
        for u in &t.untranslated {
            let last = u.path.rsplit('.').next().unwrap_or(&u.path);
            *by_key
                .entry(last.split(['[', ':']).next().unwrap_or(last).to_string())
                .or_default() += 1;
            if verbose {
                println!("{name}: {}: {}", u.path, u.reason);
            }
        }
    }
    for r in &refused {
        println!("REFUSED {}", r.lines().next().unwrap_or(""));
    }
    let mut freq: Vec<_> = by_key.into_iter().collect();
    freq.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (k, n) in &freq {
        println!("{n:5} {k}");
    }
    println!(
        "files: {}  refused: {}  untranslated keys: {keys}  per file: {:.2}  notes: {notes}",
        files.len(),
        refused.len(),
        keys as f64 / files.len().max(1) as f64
    );
}
