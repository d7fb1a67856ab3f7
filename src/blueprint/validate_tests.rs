//! Tests of `validate.rs`.

use super::*;

/// Validates a blueprint written as YAML; each problem as `path: message`.
fn problems(yaml: &str) -> Vec<String> {
    let bp: Blueprint = serde_yaml::from_str(yaml).expect("test blueprint must deserialize");
    validate(&bp).iter().map(ToString::to_string).collect()
}

/// One service, written at `services[0]`'s indentation.
fn service(body: &str) -> Vec<String> {
    let mut yaml = String::from("name: app\nservices:\n  - id: svc\n");
    for line in body.lines() {
        yaml.push_str("    ");
        yaml.push_str(line);
        yaml.push('\n');
    }
    problems(&yaml)
}

const ID_RULE: &str = "it must match ^[a-z][a-z0-9-]{0,39}$ (1 to 40 lower-case letters, \
                       digits or `-`, starting with a letter)";
const NEEDS_IMAGE: &str = "a container needs `image`, e.g. `image: drover/workload:latest`";

#[test]
fn good_blueprints_have_no_problems() {
    assert!(service("type: container\nimage: x").is_empty());
    assert!(service(
        "type: cluster\ninitial_size: 1000\nmember:\n  type: container\n  image: x\n  \
         ports: [1, 65535]\n  command: [serve, --port, '8080']\n  \
         env: { _A: 1, B_2: x }\n  labels: { app: web, io.drover: x }\n  \
         resources: { cpus: 1024, memory: 6Mi }\n  \
         health: { tcp: { port: 65535 }, interval: 1ms, timeout: 1ms }\n\
         policies: [{ use: p }, { type: replacer }, { use: p, type: autoscaler, upper: 2 }]"
    )
    .is_empty());
}

#[test]
fn ids() {
    for good in ["a", "web-1", "a-", &format!("a{}", "b".repeat(39))] {
        assert!(is_valid_id(good), "{good}");
    }
    for bad in [
        "",
        "1a",
        "-a",
        "Web",
        "web_1",
        "wéb",
        "a.b",
        &"a".repeat(41),
    ] {
        assert!(!is_valid_id(bad), "{bad}");
    }
    assert_eq!(
        problems("name: My App\nservices:\n  - { id: 9lives, type: container, image: x }\n"),
        [
            format!("name: application name `My App` is invalid: {ID_RULE}"),
            format!("services[0].id: service id `9lives` is invalid: {ID_RULE}"),
        ]
    );
}

#[test]
fn location_and_services_must_not_be_empty() {
    assert_eq!(
        problems("name: app\nlocation: ' '\nservices: []\n"),
        [
            "location: `location` must not be empty; `local` is this machine's engine",
            "services: an application needs at least one service",
        ]
    );
}

#[test]
fn duplicate_ids_name_the_first() {
    let yaml = "name: app\nservices:\n  - { id: a, type: container, image: x }\n  \
                - { id: b, type: container, image: x }\n  \
                - { id: a, type: container, image: x }\n  \
                - { id: a, type: container, image: x }\n";
    assert_eq!(
        problems(yaml),
        [
            "services[2].id: duplicate service id `a`: services[0] already has it",
            "services[3].id: duplicate service id `a`: services[0] already has it",
        ]
    );
}

#[test]
fn container_rules() {
    assert_eq!(
        service("type: container"),
        [format!("services[0]: {NEEDS_IMAGE}")]
    );
    assert_eq!(
        service("type: container\nimage: ''"),
        ["services[0].image: `image` must not be empty, e.g. `image: drover/workload:latest`"]
    );
    let errs = validate(
        &serde_yaml::from_str(
            "name: app\nservices:\n  - id: c\n    type: container\n    image: x\n    \
             initial_size: 2\n    member: { image: y }\n",
        )
        .unwrap(),
    );
    let got: Vec<_> = errs
        .iter()
        .map(|e| (e.path.to_string(), e.message.as_str(), e.at_key))
        .collect();
    assert_eq!(
        got,
        [
            (
                "services[0].initial_size".to_string(),
                "`initial_size` is only for a cluster (`type: cluster`)",
                true
            ),
            (
                "services[0].member".to_string(),
                "`member` is only for a cluster (`type: cluster`); a container's image, \
                 ports and health go at the service's own level",
                true
            ),
        ]
    );
}

#[test]
fn cluster_rules() {
    assert_eq!(
        service("type: cluster"),
        [
            "services[0]: a cluster needs `member`, the spec each member container is made \
          from, e.g. `member: { image: drover/workload:latest }`"
        ]
    );
    assert_eq!(
        service("type: cluster\nmember: {}"),
        [format!("services[0].member: {NEEDS_IMAGE}")]
    );
    assert_eq!(
        service("type: cluster\nmember: { type: cluster, image: x }"),
        ["services[0].member.type: member `type` must be `container`, got `cluster`"]
    );
    assert_eq!(
        service("type: cluster\ninitial_size: 1001\nmember: { image: x }"),
        ["services[0].initial_size: `initial_size` is 1001; at most 1000 is allowed"]
    );
    let errs = service(
        "type: cluster\nimage: x\ncommand: [a]\nenv: { A: b }\nports: [80]\n\
         resources: {}\nhealth: { tcp: { port: 80 } }\nlabels: { a: b }\n\
         member: { image: x }",
    );
    let fields = [
        "image",
        "command",
        "env",
        "ports",
        "resources",
        "health",
        "labels",
    ];
    assert_eq!(
        errs,
        fields
            .iter()
            .map(|f| format!("services[0].{f}: `{f}` belongs under `member` for a cluster"))
            .collect::<Vec<_>>()
    );
}

#[test]
fn ports() {
    assert_eq!(
        service("type: container\nimage: x\nports: [80, 0, 443, 80, 80]"),
        [
            "services[0].ports[1]: port 0 is invalid: ports are 1 to 65535",
            "services[0].ports[3]: port 80 is listed twice: ports[0] is also 80",
            "services[0].ports[4]: port 80 is listed twice: ports[0] is also 80",
        ]
    );
}

#[test]
fn health_checks() {
    let base = "type: cluster\nmember:\n  image: x\n  ports: [80]\n  health: ";
    assert_eq!(
        service(&format!("{base}{{}}")),
        [
            "services[0].member.health: a health check needs one of `tcp` or `http`, \
          e.g. `http: { port: 8080, path: /health }`, or `exec` (run by the engine in the \
          container), e.g. `exec: [pg_isready, -U, app]`"
        ]
    );
    assert_eq!(
        service(&format!(
            "{base}{{ tcp: {{ port: 80 }}, http: {{ port: 80 }} }}"
        )),
        [
            "services[0].member.health: a health check has both `tcp` and `http`; keep \
          exactly one"
        ]
    );
    assert_eq!(
        service(&format!(
            "{base}{{ http: {{ port: 81, path: x }}, interval: 0s, timeout: 0ms }}"
        )),
        [
            "services[0].member.health.http.path: http check path `x` must start with `/`",
            "services[0].member.health.http.port: health check port 81 is not in `ports`: \
             health checks go through the published port, so add 81 to `ports`",
            "services[0].member.health.interval: `interval` must be more than 0, \
             e.g. `interval: 1s`",
            "services[0].member.health.timeout: `timeout` must be more than 0, \
             e.g. `timeout: 1s`",
        ]
    );
    assert_eq!(
        service("type: container\nimage: x\nhealth: { tcp: { port: 0 } }"),
        ["services[0].health.tcp.port: port 0 is invalid: ports are 1 to 65535"]
    );
    // The http path defaults to `/`.
    assert!(service(&format!("{base}{{ http: {{ port: 80 }} }}")).is_empty());
}

#[test]
fn resources() {
    let with = |r: &str| service(&format!("type: container\nimage: x\nresources: {r}"));
    assert_eq!(
        with("{ cpus: 0 }"),
        ["services[0].resources.cpus: `cpus` must be more than 0 and at most 1024, got 0"]
    );
    assert_eq!(
        with("{ cpus: 1024.5 }"),
        ["services[0].resources.cpus: `cpus` must be more than 0 and at most 1024, got 1024.5"]
    );
    assert_eq!(
        with("{ cpus: .nan }"),
        ["services[0].resources.cpus: `cpus` must be more than 0 and at most 1024, got NaN"]
    );
    assert!(with("{ cpus: 0.001, memory: 6291456 }").is_empty());
    assert_eq!(
        with("{ memory: 6291455 }"),
        ["services[0].resources.memory: memory 6291455 bytes is below Docker's minimum of 6Mi"]
    );
    assert_eq!(
        with("{ memory: 6M }"),
        ["services[0].resources.memory: memory 6000000 bytes is below Docker's minimum of 6Mi"]
    );
    assert_eq!(
        with("{ memory: 5120Ki }"),
        ["services[0].resources.memory: memory 5Mi is below Docker's minimum of 6Mi"]
    );
}

#[test]
fn env_labels_command() {
    let errs = validate(
        &serde_yaml::from_str(
            "name: app\nservices:\n  - id: c\n    type: container\n    image: x\n    \
             command: []\n    env: { GOOD: 1, 2BAD: x, 'A-B': y, '': z }\n    \
             labels: { io.drover.id: x, io.droverx: y }\n",
        )
        .unwrap(),
    );
    let got: Vec<_> = errs.iter().map(|e| (e.to_string(), e.at_key)).collect();
    // Docker's rule: `2BAD` and `A-B` pass (so does `discovery.type`).
    let env_rule = "is invalid: Docker takes any non-empty name without `=` or NUL";
    assert_eq!(
        got,
        [
            (
                "services[0].command: `command` must not be empty; leave it out to run the \
                 image's own command"
                    .to_string(),
                false
            ),
            (
                format!("services[0].env[\"\"]: environment variable name `` {env_rule}"),
                true
            ),
            (
                "services[0].labels[\"io.drover.id\"]: label `io.drover.id` uses the reserved \
                 prefix `io.drover.`; drover sets those labels itself"
                    .to_string(),
                true
            ),
        ]
    );
}

#[test]
fn placement_rules() {
    let with = |p: &str| service(&format!("type: container\nimage: x\nplacement: {p}"));
    assert!(with("{}").is_empty());
    assert!(with(
        "{ strategy: depth-first, max_containers: 4, max_cpu_usage: 0.8, \
         reservation_fit: false, hostname: h1, labels: { zone: a }, \
         affinity: [{ same: entity, not: true }, { same: application }] }"
    )
    .is_empty());
    assert_eq!(
        with("{ max_containers: 0 }"),
        ["services[0].placement.max_containers: `max_containers` must be at least 1"]
    );
    assert!(with("{ rebalance: { above: 0.5, for: 10s, cooldown: 5m } }").is_empty());
    assert_eq!(
        with("{ rebalance: { above: 1.5 } }"),
        [
            "services[0].placement.rebalance.above: `above` is a fraction of the host's CPUs, \
          between 0 and 1, got 1.5"
        ]
    );
    assert_eq!(
        with("{ max_cpu_usage: 1.5 }"),
        [
            "services[0].placement.max_cpu_usage: `max_cpu_usage` is a fraction of the host's \
          CPUs, more than 0 and at most 1 (0.8 is 80%), got 1.5"
        ]
    );
    assert_eq!(
        with("{ hostname: ' ' }"),
        ["services[0].placement.hostname: `hostname` must not be empty"]
    );
    assert_eq!(
        with("{ affinity: [{ not: true }] }"),
        [
            "services[0].placement.affinity[0]: an affinity rule needs one of `same` \
          (application or entity) or `entity` (an entity id), e.g. `{ same: entity, not: true }`"
        ]
    );
    assert_eq!(
        with("{ affinity: [{ same: application, entity: svc }] }"),
        [
            "services[0].placement.affinity[0]: an affinity rule has both `same` and \
          `entity`; keep exactly one"
        ]
    );
    assert_eq!(
        with("{ affinity: [{ entity: nope }] }"),
        [
            "services[0].placement.affinity[0].entity: no service `nope` in this \
          application; services: svc"
        ]
    );
    let cluster = service(
        "type: cluster\nplacement: { max_containers: 0 }\n\
         member: { image: x, placement: { max_cpu_usage: 0 } }",
    );
    assert_eq!(
        cluster,
        [
            "services[0].placement.max_containers: `max_containers` must be at least 1",
            "services[0].member.placement.max_cpu_usage: `max_cpu_usage` is a fraction of \
             the host's CPUs, more than 0 and at most 1 (0.8 is 80%), got 0",
        ]
    );
    let lb = service("type: load-balancer\ntarget: s\nport: 1\nplacement: {}");
    assert!(lb[0].starts_with("services[0].placement: `placement` is not a load balancer setting"));
}

#[test]
fn policies() {
    assert_eq!(
        service("type: container\nimage: x\npolicies:\n  - upper: 3\n  - use: ''\n  - type: a"),
        [
            "services[0].policies[0]: a policy needs `use` (a preset from policies/) or \
             `type` (a policy kind such as `autoscaler`)",
            "services[0].policies[1].use: `use` must not be empty",
        ]
    );
}

#[test]
fn field_paths_display() {
    let p = FieldPath::root()
        .key("services")
        .index(1)
        .key("member")
        .key("ports")
        .index(0);
    assert_eq!(p.to_string(), "services[1].member.ports[0]");
    assert_eq!(FieldPath::root().to_string(), "");
    assert_eq!(FieldPath::root().key("name").to_string(), "name");
    assert_eq!(
        FieldPath::root()
            .key("labels")
            .key("io.drover.x")
            .key("a b")
            .to_string(),
        r#"labels["io.drover.x"]["a b"]"#
    );
    assert_eq!(p.parent().unwrap().to_string(), "services[1].member.ports");
    assert!(p.starts_with(&FieldPath::root().key("services")));
    assert_eq!(FieldPath::root().parent(), None);
}

#[test]
fn bytes_format() {
    assert_eq!(format_bytes(6 << 20), "6Mi");
    assert_eq!(format_bytes(3 << 30), "3Gi");
    assert_eq!(format_bytes(1536), "1536 bytes");
    assert_eq!(format_bytes(2048), "2Ki");
    assert_eq!(format_bytes(0), "0 bytes");
}

#[test]
fn image_pull_and_image_references() {
    assert!(service("type: container\nimage: x\nimage_pull: never").is_empty());
    assert!(service("type: cluster\nmember: { image: x, image_pull: always }").is_empty());
    assert_eq!(
        service("type: container\nbuild: ./web\nimage_pull: always"),
        ["services[0].image_pull: `image_pull` is for an `image` from a registry; an image made by `build` is never pulled"]
    );
    assert_eq!(
        service("type: cluster\nimage_pull: never\nmember: { image: x }"),
        ["services[0].image_pull: `image_pull` belongs under `member` for a cluster"]
    );
    assert_eq!(
        service("type: container\nimage: 'Web:1'"),
        ["services[0].image: image `Web:1`: repository component `Web` must be lower-case letters, digits and separators (`.`, `_`, `-`)"]
    );
}
